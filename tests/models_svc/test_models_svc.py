"""Reward-model registry and lifecycle on the database: enqueue, claim, execute,
cancel, sweep, promote, roll back, auto-refresh, scoring. Training uses a tiny
random-weight backbone, so each run takes seconds."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotate.models import Comparison, Judgment
from models_svc.models import ModelVersion, RewardSettings, TrainingRun
from models_svc.services import lifecycle, scoring

from tests.conftest import make_user
from tests.factories import fast_training as _fast
from tests.factories import held_out_split
from tests.factories import labelled_for_training as _labelled

pytestmark = pytest.mark.django_db(transaction=True)


def test_enqueue_refuses_without_labels_and_twice(project, owner):
    with pytest.raises(lifecycle.TrainingRefused, match="at least 4 pairwise labels"):
        lifecycle.training_run_enqueue(project=project, created_by=owner)
    assert TrainingRun.objects.count() == 0


def test_run_trains_records_a_candidate_and_keeps_the_active_version(project, owner, tiny):
    _labelled(project, tiny)
    run = lifecycle.training_run_enqueue(project=project, created_by=owner, overrides=_fast())
    with pytest.raises(lifecycle.TrainingRefused, match="already queued or running"):
        lifecycle.training_run_enqueue(project=project)
    assert run.data_snapshot["pairs"] == Judgment.objects.count()

    run = lifecycle.training_run_execute(run_id=run.pk)

    assert run.status == "succeeded", run.error
    assert run.config["backbone"] == tiny and run.config["device"] == "cpu"
    assert run.data_snapshot["pairs_used"] == Judgment.objects.count() and len(run.data_snapshot["hash"]) == 16
    v1 = run.version
    assert v1.state == "candidate" and v1.number == 1
    assert 0.0 <= v1.metrics["eval_accuracy"] <= 1.0 and v1.metrics["eval_pairs"] > 0
    assert run.metrics["curves"], "loss/accuracy curves are stored for plots"
    lifecycle.model_version_promote(version=v1)

    # A second run is compared with the active one on the same eval pairs.
    run2 = lifecycle.training_run_execute(
        run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast(seed=1)).pk)
    v2 = run2.version
    assert v2.metrics["previous_version"] == 1 and 0 <= v2.metrics["agreement_with_previous"] <= 1
    assert ModelVersion.objects.get(state="active") == v1  # promotion is explicit


def test_two_workers_never_claim_the_same_run(project, tiny):
    _labelled(project, tiny, prompts=3)
    run = lifecycle.training_run_enqueue(project=project, overrides=_fast())
    first = lifecycle.training_run_claim(run_id=run.pk, worker="w1")
    second = lifecycle.training_run_claim(run_id=run.pk, worker="w2")
    assert first is not None and second is None
    assert TrainingRun.objects.get(pk=run.pk).worker == "w1"


def test_cancel_queued_run_never_trains_and_cancel_running_run_stops(project, tiny):
    _labelled(project, tiny, prompts=3)
    run = lifecycle.training_run_enqueue(project=project, overrides=_fast())
    assert lifecycle.training_run_cancel(run=run).status == "cancelled"
    assert lifecycle.training_run_execute(run_id=run.pk).status == "cancelled"
    assert not ModelVersion.objects.exists()

    run = lifecycle.training_run_enqueue(project=project, overrides=_fast(epochs=200))
    # Ask to stop as soon as the first heartbeat lands.
    original = lifecycle.training_run_heartbeat

    def heartbeat_then_cancel(**kw):
        TrainingRun.objects.filter(pk=kw["run_id"]).update(cancel_requested=True)
        return original(**kw)

    lifecycle.training_run_heartbeat = heartbeat_then_cancel
    try:
        run = lifecycle.training_run_execute(run_id=run.pk)
    finally:
        lifecycle.training_run_heartbeat = original
    assert run.status == "cancelled" and not ModelVersion.objects.exists()
    assert not any(p.name.startswith("run-") for p in lifecycle._artifact_dir(run).parent.glob("*"))


def test_sweep_fails_a_silent_run_and_leaves_the_active_version(project, tiny):
    _labelled(project, tiny, prompts=3)
    v = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast()).pk).version
    lifecycle.model_version_promote(version=v)
    run = lifecycle.training_run_enqueue(project=project, overrides=_fast())
    lifecycle.training_run_claim(run_id=run.pk, worker="ghost:1")
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(minutes=10))
    assert lifecycle.training_runs_sweep() == 1
    run.refresh_from_db()
    assert run.status == "failed" and "stopped sending heartbeats" in run.error
    assert ModelVersion.objects.get(state="active") == v
    # A late result from the ghost worker is not recorded either.
    assert lifecycle.training_run_execute(run_id=run.pk).status == "failed"


def test_promote_and_roll_back_keep_exactly_one_active(project, tiny):
    _labelled(project, tiny, prompts=3)
    v1 = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast()).pk).version
    v2 = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast()).pk).version
    lifecycle.model_version_promote(version=v1)
    lifecycle.model_version_promote(version=v2)
    assert list(ModelVersion.objects.filter(state="active")) == [v2]
    assert lifecycle.model_version_rollback(project=project) == ModelVersion.objects.get(pk=v1.pk)
    assert list(ModelVersion.objects.filter(state="active").values_list("number", flat=True)) == [1]


def test_auto_promote_first_version_and_autorefresh_after_new_labels(project, tiny):
    _labelled(project, tiny, prompts=3)
    RewardSettings.objects.filter(project=project).update(auto_promote=True, refresh_after_labels=5)
    assert lifecycle.reward_models_autorefresh() == 1  # no run yet: every label is new
    run = TrainingRun.objects.get()
    assert run.trigger == "auto" and run.config["mode"] == "head"
    TrainingRun.objects.filter(pk=run.pk).update(config={**run.config, **_fast()})
    lifecycle.training_run_execute(run_id=run.pk)
    assert ModelVersion.objects.get().state == "active"
    assert lifecycle.reward_models_autorefresh() == 0  # nothing new since the run
    c = Comparison.objects.first()
    for i in range(5):
        Judgment.objects.create(comparison=c, annotator=make_user(f"late-{i}"), choice="A", source="human")
    assert lifecycle.reward_models_autorefresh() == 1


def test_multi_objective_model_scores_with_per_criterion_values(project, tiny):
    _labelled(project, tiny, prompts=4, ratings=True)
    run = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(
        project=project, objective="multi", overrides=_fast()).pk)
    assert run.status == "succeeded", run.error
    lifecycle.model_version_promote(version=run.version)
    out = scoring.rewards_score(project=project, items=[
        {"conversation": [{"role": "user", "content": "Question 0?"}], "responses": ["Answer 0 to question 0.", "x"]}])
    assert out["model_version"] == 1 and out["criteria"] == ["correct", "helpful"] or out["criteria"] == ["helpful", "correct"]
    row = out["results"][0][0]
    assert set(row["criteria"]) == {"helpful", "correct"} and isinstance(row["reward"], float)


@pytest.mark.parametrize("objective", ["multi", "gated"])
def test_multi_and_gated_models_keep_the_aggregation_of_the_rubric_version_they_were_trained_under(
        project, tiny, objective):
    """Issue #20, fix 1: the version stores the pinned rubric's weights and polarity;
    a later rubric version changes neither it nor the old model's rewards. multi's
    reward follows the aggregation; gated orients the criteria its gate weighs by it."""
    from models_svc.ml.infer import RewardModel
    from rubrics import services as rubric_services

    v1 = rubric_services.rubric_version_publish(
        version=rubric_services.rubric_create_from_template(template="helpsteer2", slug="hs2"))
    project.rubric_version = v1
    project.save(update_fields=["rubric_version"])
    _labelled(project, tiny, prompts=4, ratings=True, criteria=("helpfulness", "verbosity"))
    run = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(
        project=project, objective=objective, overrides=_fast()).pk)
    assert run.status == "succeeded", run.error
    version = run.version
    stored = {c["key"]: c for c in version.aggregation["criteria"]}
    assert version.aggregation["rule"] == v1.aggregation and version.aggregation["version"] == v1.number
    specs = {c.key: c.as_spec() for c in v1.criteria.all()}
    assert set(stored) == set(specs)
    for key, spec in specs.items():
        assert stored[key]["weight"] == pytest.approx(spec["weight"]) and stored[key]["polarity"] == spec["polarity"]
        assert stored[key]["target"] == spec.get("target")
    assert stored["verbosity"]["polarity"] == "target" and stored["verbosity"]["target"] == 2

    items = [([{"role": "user", "content": "Question 0?"}], t) for t in ("Answer 0 to question 0.", "x " * 40)]
    loaded = RewardModel.load(version.artifact_path)
    assert loaded.config.aggregation == version.aggregation
    before = loaded.score_items(items).reward
    v2 = rubric_services.rubric_version_new_draft(version=v1)
    rubric_services.criterion_update(criterion=v2.criteria.get(key="verbosity"),
                                     data={"weight": 3.0, "polarity": "higher_better", "target": None})
    v2 = rubric_services.rubric_version_publish(version=v2)
    project.rubric_version = v2
    project.save(update_fields=["rubric_version"])
    version.refresh_from_db()
    assert version.aggregation["version"] == v1.number and stored == {c["key"]: c for c in version.aggregation["criteria"]}
    after = RewardModel.load(version.artifact_path).score_items(items).reward
    assert after.tolist() == before.tolist()
    # A new run takes the new version's aggregation.
    run2 = lifecycle.training_run_enqueue(project=project, objective=objective, overrides=_fast())
    verbosity = next(c for c in run2.config["aggregation"]["criteria"] if c["key"] == "verbosity")
    assert (verbosity["weight"], verbosity["polarity"]) == (3.0, "higher_better")


def _version(project, number, metrics, state="candidate"):
    run = TrainingRun.objects.create(project=project, status="succeeded", config={}, data_snapshot={})
    return ModelVersion.objects.create(project=project, run=run, number=number, artifact_path="-", metrics=metrics,
                                       state=state)


def test_auto_promote_needs_the_gain_interval_above_zero_on_enough_held_out_comparisons(project):
    """Issue #20, fix 3: a ">" on a small held-out set promoted noise."""
    from models_svc.ml.evaluate import paired_accuracy_gain

    RewardSettings.objects.update_or_create(project=project, defaults={"auto_promote": True})
    _version(project, 1, {"eval_accuracy": 0.6}, state="active")
    # Equal to the incumbent but for one lucky pair of eight.
    d_new, d_old = [1, 1, 1, 1, 1, -1, -1, -1], [1, 1, 1, 1, -1, -1, -1, -1]
    lucky = _version(project, 2, {"eval_accuracy": 0.625, "previous_accuracy": 0.5, "previous_version": 1,
                                  "gain_over_previous": paired_accuracy_gain(d_new, d_old, [False] * 8, range(8))})
    lifecycle._maybe_auto_promote(lucky)
    assert ModelVersion.objects.get(state="active").number == 1
    # Clearly better on 300 comparisons from 150 prompts.
    import numpy as np

    rng = np.random.default_rng(1)
    old = np.where(rng.random(300) < 0.6, 1.0, -1.0)
    new = np.where(rng.random(300) < 0.8, 1.0, -1.0)
    gain = paired_accuracy_gain(new, old, np.zeros(300, bool), np.repeat(np.arange(150), 2))
    assert gain["low"] > 0
    better = _version(project, 3, {"eval_accuracy": 0.8, "previous_accuracy": 0.6, "previous_version": 1,
                                   "gain_over_previous": gain})
    RewardSettings.objects.filter(project=project).update(promote_min_eval_pairs=301)
    lifecycle._maybe_auto_promote(better)  # one comparison short of the minimum
    assert ModelVersion.objects.get(state="active").number == 1
    RewardSettings.objects.filter(project=project).update(promote_min_eval_pairs=300)
    lifecycle._maybe_auto_promote(better)
    assert ModelVersion.objects.get(state="active").number == 3


def test_a_retrained_version_records_its_gain_over_the_active_one(client, project, owner, tiny):
    _labelled(project, tiny, prompts=6)
    fast = _fast(**held_out_split(project))
    v1 = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project, overrides=fast).pk).version
    lifecycle.model_version_promote(version=v1)
    RewardSettings.objects.filter(project=project).update(auto_promote=True, promote_min_eval_pairs=1)
    run = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project, overrides=fast).pk)
    gain = run.version.metrics["gain_over_previous"]
    # Same labels, same seed: the same model, so no gain and no promotion.
    assert gain["pairs"] > 0 and gain["gain"] == gain["low"] == gain["high"] == 0
    assert ModelVersion.objects.get(state="active") == v1
    client.force_login(owner)
    page = client.get(f"/p/{project.slug}/models/?run={run.pk}").content.decode()
    assert f"over {gain['pairs']} held-out comparisons" in page and "Not enough for automatic promotion" in page
    assert "+0.000 <span class=\"muted\">[0.000, 0.000]</span>" in page
