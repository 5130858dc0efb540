"""The noise audit finds deliberately flipped labels far above chance on real HH
data: benchmarks/noise_audit.py's in-sample figure on a slice of HH harmless,
asserted loosely (the full figure, three seeds on ≈1,830 training pairs, is in
docs/quality.md: precision@k 0.25 against 0.11 for random flags, AUC 0.70)."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO))

from benchmarks import noise_audit  # noqa: E402
from benchmarks._labels import load_pairs, to_pair_example  # noqa: E402


@pytest.mark.shared_data
def test_flipped_hh_labels_are_found_well_above_chance(shared_data, tmp_path):
    from models_svc.ml.config import TrainConfig

    pairs = [to_pair_example(p) for p in load_pairs("hh", shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")]
    row = noise_audit.run_seed(pairs[:1200], seed=0, share=0.1, config=TrainConfig(cache_dir=str(tmp_path / "cache")),
                               crossfit=False)
    figures = row["in_sample"]
    assert row["flipped"] == figures["k"] > 80
    # 10 % of the labels are flipped: random flags are right about 10 % of the time.
    assert figures["precision_at_k"] >= 0.18, figures
    assert figures["auc"] >= 0.6, figures
