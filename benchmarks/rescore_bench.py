"""Head-mode refresh + rescoring of a large candidate pool (DESIGN §8: ≤ 60 s for
100k pairs on this machine).

Builds a project of P prompts × K responses (K(K−1)/2 candidate pairs each) in the
configured database, adds pairwise labels for some pairs, then times:

1. a cold refresh: the first head-mode retrain and rescoring embed every
   response once (a deployment keeps the embedding cache warm as texts arrive,
   so this is reported apart);
2. the measured refresh: 500 new labels arrive, a head-mode retrain (BT
   ensemble of 4 heads) runs through ``training_run_execute`` exactly as a worker
   runs it, and every open pair is rescored with the uncertainty strategy through
   ``comparisons_rescore`` (cached embeddings, acquisition, bulk priority write).

Usage (PostgreSQL recommended; create the database first, it is migrated here):

    createdb -h 127.0.0.1 -U postgres preflab_bench_rescore
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench_rescore \\
        .venv/bin/python benchmarks/rescore_bench.py --prompts 2223 --responses 10 --labels 2000

Prints a table and a final JSON line; writes benchmarks/results/rescore_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _setup(data_dir: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("PREFLAB_DATA_DIR", str(data_dir))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _build(prompts: int, responses: int, labels: int, seed: int):
    from annotate import services, slots
    from annotate.models import Project, Prompt, Response, TaskKind

    rng = random.Random(seed)
    slug = f"rescore-{prompts}x{responses}"
    Project.objects.filter(slug=slug).delete()
    project = services.project_create(name=slug, slug=slug, overlap=3)
    words = "the a model answer question helpful clear short long wrong right because therefore example".split()
    made = Prompt.objects.bulk_create(
        [Prompt(project=project, external_id=f"p{i}", conversation=[{"role": "user", "content": f"Question {i}: "
                + " ".join(rng.choices(words, k=12))}]) for i in range(prompts)], batch_size=2000)
    made_responses = Response.objects.bulk_create(
        [Response(prompt=p, external_id=f"r{j}", text=" ".join(rng.choices(words, k=rng.randint(10, 40))),
                  source=f"model-{j}") for p in made for j in range(responses)], batch_size=5000)
    slots.queue_slots_open(project=project, kind=TaskKind.RANKING, units=[(p.pk, p.pk) for p in made])
    slots.queue_slots_open(project=project, kind=TaskKind.RATING, units=[(r.pk, r.prompt_id) for r in made_responses])
    services.comparisons_generate(project=project, max_pairs_per_prompt=responses * (responses - 1) // 2)
    _add_labels(project, labels, seed)
    return project


def _add_labels(project, n: int, seed: int) -> None:
    """``n`` labels from a fresh simulated rater on random pairs; the longer
    response wins, so there is something to learn."""
    from django.contrib.auth import get_user_model

    from annotate.models import Comparison, Judgment

    rng = random.Random(seed)
    user = get_user_model().objects.create(username=f"bench-rater-{seed}-{rng.random():.6f}", is_active=False)
    ids = list(Comparison.objects.filter(project=project).values_list("id", "response_a__text", "response_b__text"))
    Judgment.objects.bulk_create(
        [Judgment(comparison_id=c, annotator=user, choice="A" if len(a) >= len(b) else "B", source="imported")
         for c, a, b in rng.sample(ids, min(n, len(ids)))], batch_size=5000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=2223)
    parser.add_argument("--responses", type=int, default=10)
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "rescore_bench.json"))
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "bench-rescore"))
    args = parser.parse_args()
    _setup(Path(args.data_dir))

    from django.db import connection

    from annotate.models import Comparison, Response
    from models_svc.selection import comparisons_rescore
    from models_svc.services import lifecycle

    t0 = time.perf_counter()
    project = _build(args.prompts, args.responses, args.labels, args.seed)
    build_s = time.perf_counter() - t0
    n_pairs = Comparison.objects.filter(project=project).count()

    def refresh_and_rescore():
        t0 = time.perf_counter()
        run = lifecycle.training_run_execute(
            run_id=lifecycle.training_run_enqueue(project=project, mode="head", objective="bt").pk, worker="bench")
        train_s = time.perf_counter() - t0
        assert run.status == "succeeded", run.error
        lifecycle.model_version_promote(version=run.version)
        t0 = time.perf_counter()
        report = comparisons_rescore(project=project, strategy="uncertainty")
        return run, train_s, report, time.perf_counter() - t0

    # 1. Cold: the first refresh embeds every response once (a deployment keeps the
    #    embedding cache warm as texts arrive, so this is reported apart).
    _, cold_train_s, _, cold_rescore_s = refresh_and_rescore()
    # 2. Warm: new labels arrive, the model is refreshed and the pool rescored.
    _add_labels(project, 500, args.seed + 1)
    run, train_s, report, rescore_s = refresh_and_rescore()
    n_responses = Response.objects.filter(prompt__project=project).count()

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "database": connection.vendor, "pairs": n_pairs, "responses": n_responses, "labels": args.labels + 500,
        "build_s": round(build_s, 1), "cold_retrain_s": round(cold_train_s, 1), "cold_rescore_s": round(cold_rescore_s, 1),
        "head_retrain_s": round(train_s, 1), "rescore_s": round(rescore_s, 1),
        "refresh_plus_rescore_s": round(train_s + rescore_s, 1), "target_s": 60,
        "eval_accuracy": run.version.metrics.get("eval_accuracy"), "peak_rss_mb": round(peak_mb),
        "rescore_report": {k: report[k] for k in ("used", "rescored", "seconds", "score_seconds") if k in report},
    }
    print(f"{'step':<28}{'seconds':>10}")
    for key in ("build_s", "cold_retrain_s", "cold_rescore_s", "head_retrain_s", "rescore_s", "refresh_plus_rescore_s"):
        print(f"{key:<28}{result[key]:>10}")
    print(f"pairs {n_pairs}, responses {n_responses}, peak RSS {result['peak_rss_mb']} MB, database {connection.vendor}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
