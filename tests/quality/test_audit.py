"""The noise audit: μ and σ of r(A) − r(B) from the active ensemble for every
labelled comparison, run by a worker, and the flags the review queue reads."""

from __future__ import annotations

import numpy as np
import pytest

from annotate.models import Comparison, Judgment
from models_svc.services import lifecycle, scoring
from quality import audit, noise
from quality.models import NoiseAudit, PairScore
from tests.conftest import make_user
from tests.factories import fast_training as _fast
from tests.factories import fill
from tests.factories import labelled_for_training as _labelled


def test_label_margin_and_evidence_read_the_label_side():
    assert noise.label_margin(0.8, "A") == 0.8 and noise.label_margin(0.8, "B") == -0.8
    assert noise.label_margin(0.8, "tie") is None
    z = noise.flip_evidence(np.array([-1.0, 1.0, -0.1]), np.array([0.5, 0.5, 1.0]))
    assert z.tolist() == [2.0, -2.0, pytest.approx(0.1)]
    p, r = noise.precision_recall_at_k(np.array([3.0, 2.0, 1.0, 0.0]), np.array([True, False, True, False]), 2)
    assert (p, r) == (0.5, 0.5)


def _promoted(project, tiny):
    _labelled(project, tiny, prompts=6, responses=2)
    version = lifecycle.training_run_execute(
        run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast()).pk).version
    return lifecycle.model_version_promote(version=version)


@pytest.mark.django_db(transaction=True)  # training heart-beats from its own thread and connection
def test_audit_stores_mu_and_sigma_of_every_labelled_pair(project, tiny, celery_eager,
                                                          django_capture_on_commit_callbacks):
    version = _promoted(project, tiny)
    with django_capture_on_commit_callbacks(execute=True):
        queued = audit.noise_audit_enqueue(project=project)
    done = NoiseAudit.objects.get(pk=queued.pk)
    assert done.status == "succeeded", done.error
    assert done.model_version_id == version.pk and done.progress == 1.0
    labelled = set(Judgment.objects.filter(comparison__project=project).values_list("comparison_id", flat=True))
    scores = {p.comparison_id: p for p in PairScore.objects.filter(audit=done)}
    assert set(scores) == labelled and done.summary["pairs"] == len(labelled)
    # μ and σ are those of the members' reward differences, computed here directly.
    c = Comparison.objects.select_related("prompt", "response_a", "response_b").get(pk=min(labelled))
    members = scoring.load_model(version).score_items(
        [(c.prompt.conversation, c.response_a.text), (c.prompt.conversation, c.response_b.text)]).members
    d = members[:, 0] - members[:, 1]
    assert scores[c.pk].mu == pytest.approx(float(d.mean()), abs=1e-5)
    assert scores[c.pk].sigma == pytest.approx(float(d.std()), abs=1e-5)
    assert sum(done.summary["mu_histogram"]["counts"]) == len(labelled)


@pytest.mark.django_db(transaction=True)
def test_no_active_model_no_audit_and_autorun_audits_each_promotion_once(project, tiny):
    with pytest.raises(ValueError, match="no active reward model"):
        audit.noise_audit_enqueue(project=project)
    _promoted(project, tiny)
    assert audit.noise_audits_autorun() == 1
    assert audit.noise_audits_autorun() == 0  # queued already
    assert NoiseAudit.objects.get().status == "queued"


@pytest.mark.django_db
def test_pair_flags_name_labels_the_ensemble_contradicts_and_ambiguous_pairs(project):
    fill(project, prompts=12, responses=2)
    a, b = make_user("ann-a"), make_user("ann-b")
    comparisons = list(Comparison.objects.filter(project=project).order_by("id"))
    for c in comparisons:
        Judgment.objects.create(comparison=c, annotator=a, choice="A", source="human")
    Judgment.objects.create(comparison=comparisons[0], annotator=b, choice="B", source="imported")
    done = NoiseAudit.objects.create(project=project, status="succeeded")
    typical = [(1.0, 0.5)] * len(comparisons)
    typical[0] = (2.0, 0.4)   # the ensemble is sure A is better: b's "B" is contradicted (z = 5)
    typical[1] = (-1.5, 0.5)  # sure B is better: a's "A" is contradicted (z = 3)
    typical[2] = (-0.2, 0.5)  # leans B, not beyond one σ: no flag
    typical[3] = (0.01, 0.05)  # about equal, members agree: ambiguous
    PairScore.objects.bulk_create([PairScore(audit=done, comparison=c, mu=m, sigma=s)
                                   for c, (m, s) in zip(comparisons, typical)])
    flags = audit.pair_flags(project=project)
    assert flags[comparisons[0].pk]["reasons"] == ["likely_flipped"]
    assert flags[comparisons[0].pk]["evidence"] == pytest.approx(5.0)
    assert flags[comparisons[1].pk]["evidence"] == pytest.approx(3.0)
    assert comparisons[2].pk not in flags
    assert flags[comparisons[3].pk]["reasons"] == ["ambiguous_pair"]
    assert set(flags) == {comparisons[0].pk, comparisons[1].pk, comparisons[3].pk}
