"""benchmarks/_labels.py, rm_accuracy.py and rm_throughput.py on small files and a tiny backbone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dataio.imports.parsers.base import LabelRecord, RankingRecord, Record, ResponseRecord
from models_svc.ml.config import resolve_precision

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from benchmarks import _labels, rm_accuracy, rm_throughput  # noqa: E402


def _ranked(pid: str, groups: list[list[str]]) -> Record:
    ids = [r for g in groups for r in g]
    responses = [ResponseRecord(r, f"text {r}") for r in ids]
    return Record(1, pid, [{"role": "user", "content": pid}], {}, responses, rankings=[RankingRecord("x", groups)])


def test_rankings_become_pairs_and_ties_stay_ties():
    pairs = _labels.merge_labels([_ranked("p", [["a"], ["b", "c"], ["d"]])])
    got = {(p.text_a, p.text_b): p.label for p in pairs}
    assert got == {
        ("text a", "text b"): 1, ("text a", "text c"): 1, ("text a", "text d"): 1,
        ("text b", "text c"): 0, ("text b", "text d"): 1, ("text c", "text d"): 1,
    }
    examples = [_labels.to_pair_example(p) for p in pairs]
    assert sum(e.tie for e in examples) == 1
    assert all(e.chosen_text == "text a" for e in examples if "text a" in (e.chosen_text, e.rejected_text))


def test_merged_label_keeps_the_winners_strength():
    responses = [ResponseRecord("x", "X"), ResponseRecord("y", "Y")]
    labels = [LabelRecord("x", "y", "w1", "B", 3), LabelRecord("y", "x", "w2", "A", 2), LabelRecord("x", "y", "w3", "A", 1)]
    (pair,) = _labels.merge_labels([Record(1, "p", [{"role": "user", "content": "q"}], {}, responses, labels)])
    example = _labels.to_pair_example(pair)
    assert (example.chosen_text, example.rejected_text, example.strength, pair.votes) == ("Y", "X", 2, 3)


def test_hh_alias_reads_through_the_importer():
    assert _labels.PARSERS["hh"] is _labels.PARSERS["hh-rlhf"]


def _pandalm_file(tmp_path: Path) -> Path:
    rows = [
        {"idx": i, "instruction": f"question {i % 20}", "input": "", "response1": f"a good answer {i}",
         "response2": f"bad {i}", "annotator1": 1, "annotator2": 1 if i % 5 else 0, "annotator3": 1 if i % 7 else 2,
         "cmp_key": "m1_m2"}
        for i in range(60)
    ]
    source = tmp_path / "pandalm.json"
    source.write_text(json.dumps(rows))
    return source


def test_cli_prints_a_table_and_ends_with_one_json_line(tiny_backbone, tmp_path, monkeypatch, capsys):
    source = _pandalm_file(tmp_path)
    out = tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", [
        "rm_accuracy.py", "--format", "pandalm", "--path", str(source), "--backbone", str(tiny_backbone),
        "--epochs", "3", "--max-length", "32", "--threads", "1", "--seed", "1", "--json", str(out),
    ])
    rm_accuracy.main()
    lines = capsys.readouterr().out.strip().splitlines()
    row = json.loads(lines[-1])
    assert row["mode"] == "head" and row["seed"] == 1 and row["format"] == "pandalm"
    assert row["train_pairs"] + row["eval_pairs"] == row["pairs"] == 60
    assert 0.0 <= row["eval_accuracy"] <= 1.0 and row["texts_embedded"] > 0 and row["peak_rss_mb"] > 0
    assert row["wall_s"] > 0 and row["embed_texts_per_s"] > 0
    assert any(line.startswith("eval_accuracy") for line in lines)
    assert json.loads(out.read_text())["result"] == row
    assert rm_accuracy.Backbone.__dict__["load"].__func__.__name__ == "load"  # the timing wrapper is gone
    assert row["device"] == "cpu" and row["precision"] == resolve_precision("auto", "cpu") and row["gpu"] is None


@pytest.mark.parametrize("fmt", ["csv", "nonsense"])
def test_unknown_or_label_free_input_is_refused(fmt, tmp_path):
    if fmt == "nonsense":
        with pytest.raises(ValueError, match="unknown format"):
            _labels.load_pairs(fmt, tmp_path / "x")
    else:
        path = tmp_path / "x.csv"
        path.write_text("prompt,response_a,response_b\nq,a,b\n")
        assert _labels.load_pairs(fmt, path) == []


def test_throughput_benchmark_accounts_tokens_and_mfu_consistently(tiny_backbone, tmp_path, capsys):
    out = tmp_path / "t.json"
    row = rm_throughput.main([
        "--format", "pandalm", "--path", str(_pandalm_file(tmp_path)), "--backbone", str(tiny_backbone),
        "--train-pairs", "12", "--score-texts", "10", "--batch-size", "4", "--max-length", "32",
        "--threads", "1", "--peak-tflops", "0.5", "--json", str(out),
    ])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == row == json.loads(out.read_text())
    assert (row["device"], row["train_pairs"], row["score_texts"]) == ("cpu", 12, 10)
    assert row["precision"] == resolve_precision("auto", "cpu")
    assert row["train_pairs_per_s"] > 0 and row["score_texts_per_s"] > 0 and row["gemm_tflops"] > 0
    # Each trained pair is two sequences of mean_tokens real tokens.
    assert row["train_tokens_per_s"] / row["train_pairs_per_s"] == pytest.approx(2 * row["mean_tokens"])
    assert row["train_mfu"] == pytest.approx(row["train_model_tflops"] / 0.5)
    assert row["score_vs_gemm"] == pytest.approx(row["score_model_tflops"] / row["gemm_tflops"])
    assert row["non_embedding_params"] > 0 and row["layers"] == 2 and row["width"] == 32


def test_throughput_without_a_known_peak_reports_no_mfu(tiny_backbone, tmp_path):
    row = rm_throughput.main([
        "--format", "pandalm", "--path", str(_pandalm_file(tmp_path)), "--backbone", str(tiny_backbone),
        "--train-pairs", "4", "--score-texts", "4", "--batch-size", "4", "--max-length", "16", "--threads", "1",
        "--precision", "bf16", "--json", str(tmp_path / "t.json"),
    ])
    assert row["precision"] == "bf16" and row["peak_tflops"] is None and row["train_mfu"] is None


def test_cv_reports_every_outer_fold_and_mean_and_std_over_them(tiny_backbone, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cv.json"
    monkeypatch.setattr(sys, "argv", [
        "rm_accuracy.py", "--format", "pandalm", "--path", str(_pandalm_file(tmp_path)), "--backbone", str(tiny_backbone),
        "--cv", "3", "--inner", "2", "--grid", "coarse", "--epochs", "2", "--ensemble", "2", "--max-length", "32",
        "--threads", "1", "--cache-dir", str(tmp_path / "cache"), "--json", str(out),
    ])
    rm_accuracy.main()
    lines = capsys.readouterr().out.strip().splitlines()
    row = json.loads(lines[-1])
    assert json.loads(out.read_text()) == row
    assert row["benchmark"] == "rm_accuracy_cv" and row["k"] == 3 and row["inner"] == 2 and row["pairs"] == 60
    folds = row["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2] and sum(f["test_pairs"] for f in folds) == 60
    assert all(f["train_pairs"] + f["test_pairs"] == 60 for f in folds)
    assert all(set(f["inner_accuracy"]) == set(row["grid"]) and f["chosen"]["recipe"] in row["grid"] for f in folds)
    for role in ("chosen", "default", "before session 7"):
        accuracies = [f[role]["accuracy"] for f in folds]
        assert row["summary"][role]["accuracy"]["mean"] == pytest.approx(sum(accuracies) / 3)
        assert row["summary"][role]["accuracy"]["std"] >= 0.0
    assert row["summary"]["default"]["recipe"] == "L4 z l2=1"
    assert sum(row["chosen_counts"].values()) == 3
    assert "rm_accuracy.py" in row["command"] and "--cv 3" in row["command"] and "load average" in row["uptime"]
    assert any(line.startswith("mean ± std") for line in lines)


@pytest.mark.parametrize("extra", [["--l2", "1"], ["--mode", "finetune"], ["--limit", "10"]])
def test_cv_refuses_options_it_would_choose_or_cannot_honour(extra, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [
        "rm_accuracy.py", "--format", "pandalm", "--path", str(_pandalm_file(tmp_path)), "--cv", "5", *extra,
    ])
    with pytest.raises(SystemExit, match="--cv: head mode only"):
        rm_accuracy.main()
