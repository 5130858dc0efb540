"""benchmarks/rm_calibration.py's core on synthetic labels and a tiny backbone: the
gated pair of runs differs only in β, and β repairs the calibration of clear labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dataio.imports.parsers.finegrained import FINEGRAINED_ERROR_TYPES
from models_svc.ml.config import TrainConfig
from models_svc.ml.data import PairExample, RatedExample, split_by_prompt

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from benchmarks import rm_calibration  # noqa: E402

N_PROMPTS = 40


def clear_labels() -> tuple[list[PairExample], list[RatedExample]]:
    """Every chosen answer is kind and careful, every rejected one curt: labels a
    model can get right with confidence, so a compressed P(A≻B) is miscalibrated."""
    pairs, ratings = [], []
    for i in range(N_PROMPTS):
        conv = [{"role": "user", "content": f"How do I fix problem number {i}?"}]
        good, bad = f"Here is a careful, kind answer to problem {i}.", f"No. Figure out {i} yourself."
        pairs.append(PairExample(f"p{i}", conv, good, bad))
        ratings += [RatedExample(f"p{i}", conv, good, {"helpful": 4.0}), RatedExample(f"p{i}", conv, bad, {"helpful": 0.0})]
    return pairs, ratings


def test_beta_on_and_off_share_split_seed_and_criterion_heads_and_beta_lowers_the_ece(tiny_backbone: Path):
    pairs, ratings = clear_labels()
    base = TrainConfig(backbone=str(tiny_backbone), mode="head", ensemble_size=1, epochs=40, lr=1e-2,
                       batch_size=8, max_length=48)
    splits = [rm_calibration.run_split(pairs, ratings, seed=s, base=base, ratings_in_file=True) for s in (0, 1)]

    for split in splits:
        seed = split["seed"]
        held = split_by_prompt(pairs, rm_calibration.EVAL_FRACTION, seed)[1]
        assert split["held_out_prompts"] == sorted(p.prompt_id for p in held) and len(held) >= 4
        off, on = split["variants"]["gated β off"], split["variants"]["gated β on"]
        # One config with gate_temperature replaced: same split seed, training seed, everything.
        assert {k: v for k, v in off["config"].items() if k != "gate_temperature"} == \
               {k: v for k, v in on["config"].items() if k != "gate_temperature"}
        assert (off["config"]["gate_temperature"], on["config"]["gate_temperature"]) == (False, True)
        assert off["config"]["seed"] == on["config"]["seed"] == split["variants"]["bt"]["config"]["seed"] == seed
        assert off["config"]["split_seed"] == on["config"]["split_seed"] == seed
        # Stage 1 came out identical: the criterion heads do not depend on β.
        assert off["criterion_heads_abs_sum"] == on["criterion_heads_abs_sum"]
        assert off["beta"] == 1.0 and on["beta"] > 1.2
        assert on["mean_abs_diff"] > off["mean_abs_diff"]
        # The benchmark's ECE is the trainer's own held-out figure (same pairs, same formula).
        for row in split["variants"].values():
            assert np.isclose(row["ece"], row["trainer_ece"])

    summary = rm_calibration.summarize_splits(splits)
    assert summary["gated β on"]["ece"]["mean"] < summary["gated β off"]["ece"]["mean"] - 0.05, summary
    assert summary["gated β off"]["eval_accuracy"]["mean"] == 1.0  # clear labels: only calibration is at stake
    # Both orders of every held-out pair fall in some reliability bin, pooled over the splits.
    held_pairs = sum(s["eval_pairs"] - s["eval_ties"] for s in splits)
    assert sum(r["n"] for r in summary["gated β on"]["reliability"]) == 2 * held_pairs


def test_ratings_are_higher_is_better_and_oasst_ranks_span_zero_to_one(tmp_path: Path):
    item = {
        "question": "Who wrote it?", "passages": [["Title", "A sentence."]], "gold": "x",
        **{f"prediction {i}": f"answer {i} with words" for i in range(1, 5)},
        "preference": [1, 1, 1, 0, 2, 1],
        "feedback": {"errors": [{"error type": "Irrelevant", "start": 0, "end": 6},
                                {"error type": "Irrelevant", "start": 7, "end": 8},
                                {"error type": "Redundant", "start": 9, "end": 13}]},
    }
    fg = tmp_path / "fg.json"
    fg.write_text(json.dumps([item]))
    (rating,) = rm_calibration.finegrained_ratings(fg)
    assert rating.response_text == "answer 1 with words"
    assert set(rating.scores) == set(FINEGRAINED_ERROR_TYPES.values())
    assert rating.scores["irrelevant"] == -2.0 and rating.scores["redundant"] == -1.0 and rating.scores["incoherent"] == 0.0

    def reply(mid: str, rank: int) -> dict:
        return {"message_id": mid, "role": "assistant", "text": f"reply {mid}", "rank": rank, "replies": []}

    tree = {"message_tree_id": "t1", "prompt": {"message_id": "q1", "role": "prompter", "text": "Hi?",
                                                 "replies": [reply("a", 0), reply("b", 1), reply("c", 1), reply("d", 2)]}}
    oasst = tmp_path / "oasst.jsonl"
    oasst.write_text(json.dumps(tree) + "\n")
    got = {r.response_text: r.scores["oasst_rank"] for r in rm_calibration.oasst_rank_ratings(oasst)}
    assert got == {"reply a": 1.0, "reply b": 0.5, "reply c": 0.5, "reply d": 0.0}
