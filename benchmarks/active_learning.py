"""Active-learning simulation (DESIGN §5): real labels replayed as the annotator.

A file of labelled comparisons is read with the project's own importer
(``dataio.imports.parsers``, through ``benchmarks/_labels.py``), so the simulation sees
exactly what an import would. Repeated judgments of one pair are merged into one
label by majority (PandaLM: 3 annotators per row; summarize: the same pair judged
by several workers); no strict majority is a tie. Pairs are split once by prompt (``split_by_prompt``,
fixed seed): the held-out side is the evaluation set, the rest the pool.

Each seed starts from the same random seed set for every strategy, then in
rounds: an ensemble of M heads (the product's head mode: the default backbone
frozen, ``features``/``head``/lr/epochs/l2 from ``TrainConfig`` with the ``--recipe``'s
``RECIPES`` entry, each
member on a bootstrap resample) is trained from scratch on the labels acquired so
far, scores the unlabelled pool (``acquisition.score``), and a batch is picked
(``acquisition.select_batch``); only then are those pairs' labels revealed.
Held-out pairwise accuracy (ties excluded) of the ensemble mean is recorded after
every training. Strategies are ``acquisition.STRATEGIES`` plus
``uncertainty+diverse``: uncertainty ranks, picked greedily with a per-prompt cap
and a penalty on cosine similarity of the pairs' embedding differences e(a) − e(b);
and ``balpm`` (BAL-PM: BALD plus the prompt-entropy term of
``acquisition.PromptEntropy`` on the backbone's prompt embeddings, the authors' β
and k).

    .venv/bin/python benchmarks/active_learning.py --format hh \\
        --path ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz --seeds 5

Every text is embedded once through an on-disk cache (``--cache-dir``), so reruns
only train heads. Output: a JSON (``--out-json``), a plot of accuracy against
labels with a mean ± std band per strategy as PNG (``--out-png``, matplotlib from
the ``bench`` extra) and/or SVG (``--out-plot``, no library), and a table per
strategy on stdout. ``--replot JSON`` redraws the plots from a saved JSON.

JSON: ``dataset`` (sizes), ``config`` (budget and head settings), ``strategies``
→ name → ``labels`` (per round), ``accuracy`` (one curve per seed), ``mean``,
``std``, ``final_mean``, ``final_std``, ``auc_mean``, ``auc_std``,
``auc_vs_random_mean``/``_std`` (per-seed AUC minus random's AUC of the same
seed), ``labels_to_target`` (first budget whose mean accuracy reaches random's
final mean; null when never), ``ratio_to_random`` (that over random's full
budget); ``target_accuracy`` (random's final mean). AUC is the area under
accuracy-vs-labels divided by the label range (the mean accuracy over the budget).
Wall-clock times (``wall_seconds``, ``embed_seconds``, ``round_seconds`` per
strategy) go to ``*.timing.json`` beside it.

Runs are deterministic: every generator is seeded from the seed (the global ones
too, ``seed_everything``), and exact ties in acquisition are broken by the seeded
generator, so the same command on the same features writes the same JSON, byte
for byte. Features come from the embedding cache; a cache filled by another run
holds the vectors that run computed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# The importer-based loading and label merging are shared with rm_accuracy.py.
from benchmarks._al_plot import write_png, write_svg  # noqa: E402
from benchmarks._labels import PARSERS, LabelledPair, merge_labels  # noqa: E402
from benchmarks._machine import uptime as _uptime  # noqa: E402
from models_svc.ml import acquisition  # noqa: E402
from models_svc.ml.config import TrainConfig  # noqa: E402
from models_svc.ml.data import split_by_prompt  # noqa: E402
from models_svc.ml.evaluate import pairwise_accuracy  # noqa: E402
from models_svc.ml.heads import Ensemble, make_head  # noqa: E402
from models_svc.ml.losses import preference_loss  # noqa: E402

STRATEGIES = ("random", "uncertainty", "entropy", "bald", "variance", "uncertainty+diverse", "balpm")
# The head recipe docs/active-learning.md's first tables were measured with: the last
# layer alone and L2-normalised raw features (the product's head default until layer
# averaging and z-scoring became it, +2.4 points on HH). Kept so those figures
# reproduce; the strategies are compared with each other under one learner either way.
LEARNER = {"layers": 1, "standardize": False}
# --recipe: "legacy" is LEARNER; "default" is today's head-mode defaults (TrainConfig:
# last 4 layers averaged, z-scored features, lr 1e-3, 60 epochs, l2 1).
RECIPES: dict[str, dict[str, Any]] = {"legacy": LEARNER, "default": {}}
SPLIT_SEED = 0  # the fixed held-out split, as a project keeps it (TrainConfig.split_seed)
RESULTS = REPO / "benchmarks" / "results"


# ----------------------------------------------------------------------------- data


@dataclass
class SimData:
    """What the simulation needs, as arrays. ``features`` has one row per distinct
    (conversation, response); pairs index into it. Pool labels live here only to
    build the :class:`Oracle`; the loop itself never reads them."""

    features: torch.Tensor  # (items, D)
    pool_a: np.ndarray
    pool_b: np.ndarray
    pool_prompts: list[str]
    pool_labels: np.ndarray  # hidden: +1 a won, −1 b won, 0 tie
    eval_a: np.ndarray  # preferred first (or A for a tie)
    eval_b: np.ndarray
    eval_tie: np.ndarray
    # (items, D′) embedding of each item's prompt alone (BAL-PM's feature space); None
    # where no strategy needs it.
    prompt_features: torch.Tensor | None = None


class Oracle:
    """The simulated annotator: a pool pair's label exists for the learner only
    once the pair is acquired; every reveal is recorded (the test checks it)."""

    def __init__(self, labels: np.ndarray):
        self._labels = np.asarray(labels)
        self.revealed: list[int] = []

    def reveal(self, indices: Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=int)
        self.revealed.extend(idx.tolist())
        return self._labels[idx].copy()


Item = tuple[list[dict[str, str]], str]  # (conversation, response)


def item_table(pairs: Sequence[LabelledPair]) -> tuple[list[Item], dict[tuple[str, str], int]]:
    """The distinct (conversation, response) items of the pairs, each embedded once,
    and the index of each (conversation json, text)."""
    index: dict[tuple[str, str], int] = {}
    items: list[Item] = []
    for p in pairs:
        conv = json.dumps(p.conversation, sort_keys=True)
        for text in (p.text_a, p.text_b):
            if (conv, text) not in index:
                index[(conv, text)] = len(items)
                items.append((p.conversation, text))
    return items, index


def embed(items: Sequence[Item], cache_dir: Path, threads: int,
          learner: dict[str, Any] = LEARNER) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-mode features of the items, and the embedding of each item's prompt
    alone, through the product's backbone code and on-disk embedding cache (default
    backbone, ``TrainConfig`` features with ``learner``)."""
    from models_svc.ml.backbone import Backbone, Embedder, EmbeddingCache
    from models_svc.ml.infer import embed_items
    from models_svc.ml.presets import default_backbone_path

    cfg = TrainConfig(**learner).resolve()
    torch.set_num_threads(threads)
    backbone = Backbone.load(default_backbone_path(), max_length=cfg.max_length, device="cpu", layers=cfg.layers)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The cache is a regenerable binary artefact: keep it out of git without touching the repo's .gitignore.
    (cache_dir / ".gitignore").write_text("*\n")
    embedder = Embedder(backbone, EmbeddingCache(cache_dir, backbone), cfg.embed_batch_size)
    started = time.perf_counter()
    last = [0.0]

    def progress(done: int, todo: int) -> None:
        if time.perf_counter() - last[0] > 15 or done == todo:
            last[0] = time.perf_counter()
            print(f"  embedded {done}/{todo} new texts ({done / max(last[0] - started, 1e-9):.0f}/s)", flush=True)

    feats, prompts = embed_items(
        backbone, embedder, items, features=cfg.features, with_prompts=True, normalize=cfg.normalize, on_progress=progress
    )
    assert prompts is not None
    return feats, prompts


def build_sim_data(
    train: Sequence[LabelledPair], held: Sequence[LabelledPair], features: torch.Tensor, index: dict[tuple[str, str], int],
    prompt_features: torch.Tensor | None = None,
) -> SimData:
    def item(p: LabelledPair, text: str) -> int:
        return index[(json.dumps(p.conversation, sort_keys=True), text)]

    # Held-out pairs are stored preferred-first, the convention of evaluate.pairwise_accuracy.
    ev_first = [item(p, p.text_b if p.label < 0 else p.text_a) for p in held]
    ev_second = [item(p, p.text_a if p.label < 0 else p.text_b) for p in held]
    return SimData(
        features=features,
        pool_a=np.array([item(p, p.text_a) for p in train], dtype=int),
        pool_b=np.array([item(p, p.text_b) for p in train], dtype=int),
        pool_prompts=[p.prompt_id for p in train],
        pool_labels=np.array([p.label for p in train], dtype=int),
        eval_a=np.array(ev_first, dtype=int),
        eval_b=np.array(ev_second, dtype=int),
        eval_tie=np.array([p.label == 0 for p in held], dtype=bool),
        prompt_features=prompt_features,
    )


# ----------------------------------------------------------------------------- learner


def train_ensemble(
    features: torch.Tensor, a: np.ndarray, b: np.ndarray, label: np.ndarray, cfg: TrainConfig, seed: int
) -> Ensemble:
    """M heads from scratch on the acquired labels, as head mode trains them: each
    member on its own bootstrap resample, all members stepped together by one AdamW
    on Σ_m L_m + λ Σ‖W‖² (no cross terms, so M independent fits), ties as P = ½.

    The members' parameters are stacked and run under ``torch.func.vmap``: the same
    arithmetic as a loop over members, about M times fewer small kernels per step
    (a round must cost well under a second)."""
    assert cfg.batch_size is not None and cfg.epochs is not None and cfg.lr is not None
    n, m_size = len(a), cfg.ensemble_size
    winner = torch.from_numpy(np.where(label < 0, b, a))
    loser = torch.from_numpy(np.where(label < 0, a, b))
    tie = torch.from_numpy(label == 0)
    dim = features.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout of mlp heads
        heads = Ensemble(lambda: make_head(cfg.head, dim, 1, cfg.head_hidden, cfg.head_dropout), m_size, seed)
        params, buffers = torch.func.stack_module_state(list(heads.members))
        template = heads.members[0]

        def forward(p: dict, bufs: dict, x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(template, (p, bufs), (x,)).squeeze(-1)

        batched = torch.func.vmap(forward, randomness="different")
        rngs = [np.random.default_rng([seed, m]) for m in range(m_size)]
        resample = cfg.bootstrap and m_size > 1
        samples = [rng.integers(0, n, n) if resample else np.arange(n) for rng in rngs]
        optimizer = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay or 0.0)
        matrices = [p for p in params.values() if p.dim() >= 3]  # (M, out, in): the members' weight matrices
        template.train()
        for _ in range(cfg.epochs):
            # One gather per epoch (each member its own shuffled resample), then contiguous
            # minibatch views: far cheaper than indexing the feature table at every step.
            orders = torch.from_numpy(np.stack([rng.permutation(s) for rng, s in zip(rngs, samples, strict=True)]))
            x_win = features.index_select(0, winner[orders].reshape(-1)).view(m_size, n, dim)
            x_lose = features.index_select(0, loser[orders].reshape(-1)).view(m_size, n, dim)
            ties = tie[orders]
            for start in range(0, n, cfg.batch_size):
                window = slice(start, start + cfg.batch_size)
                width = len(range(n)[window])
                r = batched(params, buffers, torch.cat([x_win[:, window], x_lose[:, window]], dim=1))
                # Every member's minibatch has the same size, so M × the mean over all of them is Σ_m L_m.
                data_loss = m_size * preference_loss(
                    r[:, :width].reshape(-1),
                    r[:, width:].reshape(-1),
                    ties[:, window].reshape(-1),
                    torch.zeros(m_size * width, dtype=torch.long),  # the default config ignores strength
                    strength_mode=cfg.strength,
                    margins=cfg.margins,
                )
                optimizer.zero_grad(set_to_none=True)
                (data_loss + cfg.l2 * sum(w.pow(2).sum() for w in matrices)).backward()
                optimizer.step()
    for m, member in enumerate(heads.members):
        member.load_state_dict({k: v[m].detach() for k, v in {**params, **buffers}.items()})
    heads.eval()
    return heads


def member_rewards(heads: Ensemble, features: torch.Tensor) -> np.ndarray:
    """(M, items) rewards of every item, in eval mode."""
    with torch.no_grad():
        return heads(features).squeeze(-1).numpy()


def pick(
    strategy: str,
    diffs: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray,
    prompts: Sequence[str],
    pair_embeddings: np.ndarray,
    rng: np.random.Generator,
    diversity: float,
    diverse_cap: int,
    prompt_rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[int]:
    """Indices of the next batch (never an excluded one) by a named strategy.
    ``prompt_rows`` (balpm): one feature row per distinct pool prompt, and each
    pool pair's row."""
    if strategy == "balpm":
        if prompt_rows is None:
            raise ValueError("balpm needs the pool's prompt embeddings (SimData.prompt_features)")
        points, point_of = prompt_rows
        labelled = np.bincount(point_of[np.asarray(exclude, dtype=int)], minlength=len(points))
        entropy = acquisition.PromptEntropy(points, point_of, labelled)
        return [p.index for p in acquisition.balpm_batch(diffs, k, entropy, exclude=exclude, rng=rng)]
    if strategy != "uncertainty+diverse":
        scores = acquisition.score(strategy, diffs, rng)
        return [p.index for p in acquisition.select_batch(scores, k, exclude=exclude, rng=rng)]
    # Uncertainty as rank quantiles in [0, 1]: raw p̄(1 − p̄) crowds near ¼ while the
    # model is unsure, so a fixed penalty would mean something different every round.
    quantiles = acquisition.to_priorities(acquisition.score("uncertainty", diffs)) / 1_000_000
    picks = acquisition.select_batch(
        quantiles,
        k,
        prompt_ids=prompts,
        embeddings=pair_embeddings,
        diversity=diversity,
        per_prompt_cap=diverse_cap,
        exclude=exclude,
        rng=rng,
    )
    return [p.index for p in picks]


def prompt_table(data: SimData) -> tuple[np.ndarray, np.ndarray] | None:
    """The pool's distinct prompts (first-seen order) as feature rows, and each pool
    pair's row; None without prompt features."""
    if data.prompt_features is None:
        return None
    rows: dict[str, int] = {}
    point_of = np.array([rows.setdefault(p, len(rows)) for p in data.pool_prompts], dtype=int)
    first = np.unique(point_of, return_index=True)[1]
    return data.prompt_features[data.pool_a[first]].numpy(), point_of


def standardized(features: torch.Tensor, used: np.ndarray) -> torch.Tensor:
    """z-scored features with the statistics of the items trained on, as head mode
    fits them (``HeadModel.fit_standardization``)."""
    rows = features[torch.from_numpy(np.unique(used))]
    return (features - rows.mean(dim=0)) / rows.std(dim=0, correction=0).clamp_min(1e-6)


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators. The loop draws from its own
    seeded generators (seed set, bootstrap, acquisition ties), but a library call
    that reaches for a global one must not make a rerun differ."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_curve(
    data: SimData,
    strategy: str,
    seed: int,
    *,
    seed_labels: int,
    batch: int,
    rounds: int,
    cfg: TrainConfig,
    diversity: float = 0.5,
    diverse_cap: int = 2,
    oracle: Oracle | None = None,
) -> dict[str, list[float]]:
    """One strategy, one seed: accuracy after the seed set and after each round.
    Pool labels reach the learner only through ``oracle.reveal`` of picked pairs."""
    oracle = oracle or Oracle(data.pool_labels)
    seed_everything(seed)
    n_pool = len(data.pool_a)
    pair_embeddings = (data.features[data.pool_a] - data.features[data.pool_b]).numpy()
    prompt_rows = prompt_table(data) if strategy == "balpm" else None
    # The seed set depends on the seed only, so every strategy starts from the same labels.
    acquired = list(np.random.default_rng([seed, 0]).choice(n_pool, size=min(seed_labels, n_pool), replace=False))
    labels = list(oracle.reveal(acquired))
    rng = np.random.default_rng([seed, 1])
    out: dict[str, list[float]] = {"labels": [], "accuracy": [], "round_seconds": []}

    def retrain(rnd: int, started: float) -> np.ndarray:
        """Fresh ensemble on every label acquired so far; records the point, returns (M, items) rewards."""
        idx = np.array(acquired, dtype=int)
        feats = data.features
        if cfg.standardize:
            feats = standardized(feats, np.concatenate([data.pool_a[idx], data.pool_b[idx]]))
        heads = train_ensemble(feats, data.pool_a[idx], data.pool_b[idx], np.array(labels), cfg, seed * 1000 + rnd)
        rewards = member_rewards(heads, feats)
        diff = (rewards[:, data.eval_a] - rewards[:, data.eval_b]).mean(axis=0)
        out["labels"].append(len(acquired))
        out["accuracy"].append(pairwise_accuracy(diff, data.eval_tie))
        out["round_seconds"].append(time.perf_counter() - started)
        return rewards

    rewards = retrain(0, time.perf_counter())
    for rnd in range(1, rounds + 1):
        k = min(batch, n_pool - len(acquired))
        if k <= 0:
            break
        started = time.perf_counter()
        new = pick(
            strategy,
            rewards[:, data.pool_a] - rewards[:, data.pool_b],
            k,
            exclude=np.array(acquired, dtype=int),
            prompts=data.pool_prompts,
            pair_embeddings=pair_embeddings,
            rng=rng,
            diversity=diversity,
            diverse_cap=diverse_cap,
            prompt_rows=prompt_rows,
        )
        acquired += new
        labels += list(oracle.reveal(new))
        rewards = retrain(rnd, started)
    return out


# ----------------------------------------------------------------------------- summary


def normalised_auc(labels: Sequence[float], accuracy: Sequence[float]) -> float:
    """Trapezoid area under accuracy-vs-labels over the label range: the mean accuracy
    across the budget, in accuracy units (comparable across datasets)."""
    x, y = np.asarray(labels, dtype=float), np.asarray(accuracy, dtype=float)
    if len(x) < 2:
        return float(y[0])
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum() / (x[-1] - x[0]))


def simulate(
    data: SimData,
    strategies: Sequence[str],
    seeds: int,
    *,
    seed_labels: int,
    batch: int,
    rounds: int,
    cfg: TrainConfig,
    diversity: float = 0.5,
    diverse_cap: int = 2,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every strategy × seed curve plus the per-strategy summary (the JSON's
    ``strategies`` and ``target_accuracy``)."""
    runs: dict[str, tuple[list, list, float]] = {}
    for strategy in strategies:
        curves = []
        for seed in range(seeds):
            curves.append(
                run_curve(
                    data, strategy, seed, seed_labels=seed_labels, batch=batch, rounds=rounds, cfg=cfg,
                    diversity=diversity, diverse_cap=diverse_cap,
                )
            )
            c = curves[-1]
            log(f"  {strategy:<20} seed {seed}: final {c['accuracy'][-1]:.3f}, {np.mean(c['round_seconds']):.2f} s/round")
        runs[strategy] = (curves[0]["labels"], [c["accuracy"] for c in curves],
                          float(np.mean([s for c in curves for s in c["round_seconds"]])))
    return summarize(runs)


def summarize(runs: dict[str, tuple[list, list, float]]) -> dict[str, Any]:
    """The per-strategy summary from each strategy's (labels, one accuracy curve per
    seed, mean s/round); random's final mean is every strategy's target."""
    out: dict[str, Any] = {}
    aucs: dict[str, np.ndarray] = {}
    for strategy, (labels, curves, round_seconds) in runs.items():
        acc = np.array(curves)
        aucs[strategy] = np.array([normalised_auc(labels, row) for row in acc])
        out[strategy] = {
            "labels": labels,
            "accuracy": acc.tolist(),
            "mean": acc.mean(axis=0).tolist(),
            "std": acc.std(axis=0).tolist(),
            "final_mean": float(acc[:, -1].mean()),
            "final_std": float(acc[:, -1].std()),
            "auc_mean": float(aucs[strategy].mean()),
            "auc_std": float(aucs[strategy].std()),
            "round_seconds": round_seconds,
        }
    random = out.get("random")
    target = random["final_mean"] if random else None
    for name, summary in out.items():
        hits = [n for n, m in zip(summary["labels"], summary["mean"], strict=True) if target is not None and m >= target]
        summary["labels_to_target"] = hits[0] if hits else None
        summary["ratio_to_random"] = hits[0] / random["labels"][-1] if hits and random else None
        # Seed s of every strategy starts from the same seed set and first model, so
        # per-seed differences cancel much of the seed-to-seed noise.
        delta = aucs[name] - aucs["random"] if random else None
        summary["auc_vs_random_mean"] = float(delta.mean()) if delta is not None else None
        summary["auc_vs_random_std"] = float(delta.std()) if delta is not None else None
    return {"strategies": out, "target_accuracy": target}


def table(result: dict[str, Any]) -> str:
    """Markdown table, one row per strategy."""
    rows = [
        "| strategy | final acc (mean ± std) | AUC (mean ± std) | AUC − random (paired) "
        "| labels to random's final | ratio to random's budget | s/round |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in result["strategies"].items():
        # Without a random run there is no target: "not reached" would read as a loss.
        reached = ("– (no random run)" if result["target_accuracy"] is None
                   else "not reached (∞)" if s["labels_to_target"] is None else str(s["labels_to_target"]))
        ratio = ("–" if result["target_accuracy"] is None
                 else "∞" if s["ratio_to_random"] is None else f"{s['ratio_to_random']:.2f}×")
        delta = "–" if s["auc_vs_random_mean"] is None else f"{s['auc_vs_random_mean']:+.3f} ± {s['auc_vs_random_std']:.3f}"
        rows.append(
            f"| {name} | {s['final_mean']:.3f} ± {s['final_std']:.3f} | {s['auc_mean']:.3f} ± {s['auc_std']:.3f} "
            f"| {delta} | {reached} | {ratio} | {s['round_seconds']:.2f} |"
        )
    return "\n".join(rows)


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=sorted(PARSERS))
    parser.add_argument("--path", type=Path)
    parser.add_argument("--strategies", default="random,uncertainty,bald,variance,uncertainty+diverse")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=50, help="pairs acquired per round")
    parser.add_argument("--seed-labels", type=int, default=50, help="uniformly drawn labels before the first model")
    parser.add_argument("--eval-fraction", type=float, default=0.2, help="share of prompts held out (fixed split)")
    parser.add_argument("--limit", type=int, help="cap the pool at its first N pairs (file order); held-out stays whole")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="legacy",
                        help="head recipe: legacy (last layer, L2-normalised; the first tables) or default (today's head mode)")
    parser.add_argument("--diversity", type=float, default=0.5, help="uncertainty+diverse: penalty per unit cosine")
    parser.add_argument("--diverse-cap", type=int, default=2, help="uncertainty+diverse: pairs per prompt per batch")
    parser.add_argument("--cache-dir", type=Path, default=RESULTS / "cache")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embedding (the heads use one)")
    parser.add_argument("--out-json", type=Path)
    parser.add_argument("--out-plot", type=Path, help="SVG file")
    parser.add_argument("--out-png", type=Path, help="PNG file (needs the bench extra: matplotlib)")
    parser.add_argument("--replot", type=Path, help="only redraw the plots from a JSON this script wrote")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                        help="join runs of other strategies on the same data and budget (run side by side) into "
                             "--out-json: the curves are the runs', the summary is recomputed")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(args.replot.read_text())
        _plots(args, saved, Path(saved["dataset"]["path"]).name, saved["config"]["seeds"])
        return
    if args.merge:
        if not args.out_json:
            parser.error("--merge needs --out-json")
        merged = merge_results(args.merge)
        merged["command"] = "python benchmarks/active_learning.py " + " ".join(sys.argv[1:])
        write_json(args.out_json, merged)
        _plots(args, merged, Path(merged["dataset"]["path"]).name, merged["config"]["seeds"])
        print(table(merged))
        return
    if not (args.format and args.path):
        parser.error("--format and --path are required (unless --replot)")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strategies {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    if not args.path.exists():
        sys.exit(f"{args.path} not found (the shared data folder, see ../shared/data/README.md)")

    started = time.perf_counter()
    uptime_before = _uptime()
    pairs = merge_labels(PARSERS[args.format](args.path))
    train, held = split_by_prompt(pairs, args.eval_fraction, SPLIT_SEED)
    train = train[: args.limit]
    print(f"{args.path.name}: {len(pairs)} pairs after merging repeated judgments", flush=True)
    t0 = time.perf_counter()
    items, index = item_table([*train, *held])
    features, prompt_features = embed(items, args.cache_dir, args.threads, RECIPES[args.recipe])
    embed_s = time.perf_counter() - t0
    data = build_sim_data(train, held, features, index, prompt_features)
    # The heads are tiny: one thread avoids sync overhead and leaves the other core to the machine.
    torch.set_num_threads(1)
    cfg = TrainConfig(**RECIPES[args.recipe]).resolve()
    n_pool, n_eval = len(data.pool_a), len(data.eval_a)
    print(
        f"pool {n_pool} pairs, held out {n_eval} ({int(data.eval_tie.sum())} ties, excluded from accuracy); "
        f"features {tuple(features.shape)} in {embed_s:.0f} s; budget {args.seed_labels} + {args.rounds} × {args.batch}",
        flush=True,
    )
    result = simulate(
        data, strategies, args.seeds, seed_labels=args.seed_labels, batch=args.batch, rounds=args.rounds, cfg=cfg,
        diversity=args.diversity, diverse_cap=args.diverse_cap, log=lambda line: print(line, flush=True),
    )
    result = {
        "command": "python benchmarks/active_learning.py " + " ".join(sys.argv[1:]),
        "dataset": {
            "format": args.format,
            "path": str(args.path),
            "pairs": len(pairs),
            "pool": n_pool,
            "eval": n_eval,
            "eval_ties": int(data.eval_tie.sum()),
            "pool_ties": int((data.pool_labels == 0).sum()),
            "multi_vote_pairs": sum(p.votes > 1 for p in pairs),
            "limit": args.limit,
        },
        "config": {
            "seeds": args.seeds,
            "seed_labels": args.seed_labels,
            "batch": args.batch,
            "rounds": args.rounds,
            "eval_fraction": args.eval_fraction,
            "split_seed": SPLIT_SEED,
            "diversity": args.diversity,
            "diverse_cap": args.diverse_cap,
            "recipe": args.recipe,
            "balpm": {"beta": acquisition.BALPM_BETA, "neighbours": acquisition.BALPM_NEIGHBOURS},
            "head": {
                k: getattr(cfg, k)
                for k in ("features", "layers", "standardize", "head", "ensemble_size", "bootstrap", "lr", "epochs",
                          "batch_size", "l2", "ties")
            },
            "embed_seconds": round(embed_s, 1),
        },
        **result,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "uptime_before": uptime_before,
        "uptime_after": _uptime(),
    }
    print(f"\nrandom's final mean accuracy: {result['target_accuracy']}")
    print(table(result))
    print(f"wall time {result['wall_seconds']} s (embedding {embed_s:.0f} s)")
    if args.out_json:
        write_json(args.out_json, result)
    _plots(args, result, args.path.name, args.seeds)
    print(json.dumps({"dataset": args.path.name, "recipe": args.recipe, "target_accuracy": result["target_accuracy"],
                      "ratio_to_random": {n: s["ratio_to_random"] for n, s in result["strategies"].items()},
                      "auc_vs_random": {n: s["auc_vs_random_mean"] for n, s in result["strategies"].items()},
                      "wall_seconds": result["wall_seconds"]}))


def merge_results(paths: Sequence[Path]) -> dict[str, Any]:
    """Results files of one dataset, budget and recipe, each with other strategies,
    as one (a strategy's curves do not depend on which others ran beside it). The
    timing files' s/round, load and wall times come along."""
    results = [json.loads(p.read_text()) for p in paths]
    timings = [json.loads(p.with_suffix(".timing.json").read_text()) for p in paths]
    first = results[0]
    for path, r in zip(paths, results, strict=True):
        if (r["dataset"], r["config"]) != (first["dataset"], first["config"]):
            raise ValueError(f"{path}: another dataset, budget or recipe than {paths[0]}; only like runs merge")
    runs: dict[str, tuple[list, list, float]] = {}
    for path, r, t in zip(paths, results, timings, strict=True):
        for name, s in r["strategies"].items():
            if name in runs:
                raise ValueError(f"{path}: strategy {name!r} is in two of the files")
            runs[name] = (s["labels"], s["accuracy"], t["round_seconds"][name])
    return {
        "command": "",
        "merged_from": [r["command"] for r in results],
        "dataset": first["dataset"],
        "config": first["config"],
        **summarize(runs),
        "wall_seconds": sum(t["wall_seconds"] for t in timings),
        "uptime_before": [t["uptime_before"] for t in timings],
        "uptime_after": [t["uptime_after"] for t in timings],
    }


def write_json(path: Path, result: dict[str, Any]) -> None:
    """The results to ``path``, the wall-clock timings and the machine's load beside
    it (``*.timing.json``): a rerun of the same command then writes an identical
    results file."""
    result = json.loads(json.dumps(result))
    timing = {"uptime_before": result.pop("uptime_before", None), "uptime_after": result.pop("uptime_after", None),
              "wall_seconds": result.pop("wall_seconds", None),
              "embed_seconds": result.get("config", {}).pop("embed_seconds", None),
              "round_seconds": {name: s.pop("round_seconds", None) for name, s in result["strategies"].items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    path.with_suffix(".timing.json").write_text(json.dumps(timing, indent=1))


def _plots(args: argparse.Namespace, result: dict[str, Any], name: str, seeds: int) -> None:
    title = f"{name}: accuracy vs labels ({seeds} seeds, mean ± std)"
    if args.out_plot:
        write_svg(args.out_plot, result, title)
    if args.out_png:
        write_png(args.out_png, result, title)


if __name__ == "__main__":
    main()
