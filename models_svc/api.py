"""REST: score responses with a project's reward model; list versions and runs;
queue a run. Researchers and admins only (token or session auth): annotators must
never see model scores, so they get the same 404 as outsiders."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.decorators import api_view
from rest_framework.response import Response as ApiResponse

from annotate.access import get_project_for
from annotate.models import Role

from .models import ModelVersion, ScoringJob, TrainingRun
from .services import lifecycle, scoring


class TooLarge(APIException):
    """413: the request asks for more scoring than one web request may do."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def _limits() -> dict[str, int]:
    return {"items": settings.SCORE_MAX_ITEMS, "responses": settings.SCORE_MAX_RESPONSES,
            "text_chars": settings.SCORE_MAX_TEXT_CHARS}


def check_score_size(items: list[dict], *, background: bool = False) -> None:
    """Scoring inline runs inside the web request (a worker held for minutes by 64 ×
    64 texts, issue 18): refuse, with the limits named, what would hold it too long;
    a background job takes up to ``SCORE_JOB_MAX_RESPONSES``."""
    limits = _limits()
    responses = sum(len(item["responses"]) for item in items)
    if background:
        if responses > settings.SCORE_JOB_MAX_RESPONSES:
            raise TooLarge(f"{responses} responses in one batch; the limit is {settings.SCORE_JOB_MAX_RESPONSES} "
                           "per background job (PREFLAB_SCORE_JOB_MAX_RESPONSES): split the batch")
    elif len(items) > limits["items"] or responses > limits["responses"]:
        raise TooLarge(f"{len(items)} items with {responses} responses in one request; the limits are "
                       f"{limits['items']} items (PREFLAB_SCORE_MAX_ITEMS) and {limits['responses']} responses "
                       f"(PREFLAB_SCORE_MAX_RESPONSES) per request: split the batch, or send \"background\": true "
                       f"to score up to {settings.SCORE_JOB_MAX_RESPONSES} responses as a job")
    for i, item in enumerate(items):
        texts = [(f"conversation[{t}].content", turn["content"]) for t, turn in enumerate(item["conversation"])]
        texts += [(f"responses[{r}]", text) for r, text in enumerate(item["responses"])]
        for where, text in texts:
            if len(text) > limits["text_chars"]:
                raise TooLarge(f"items[{i}].{where} has {len(text)} characters; the limit is {limits['text_chars']} "
                               "per text (PREFLAB_SCORE_MAX_TEXT_CHARS)")


class Turn(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)


class ScoreItem(serializers.Serializer):
    prompt = serializers.CharField(required=False, trim_whitespace=False,
                                   help_text="A single user turn; or give `conversation`.")
    conversation = Turn(many=True, required=False)
    responses = serializers.ListField(child=serializers.CharField(trim_whitespace=False), min_length=1)

    def validate(self, data):
        if ("prompt" in data) == ("conversation" in data):
            raise serializers.ValidationError("give exactly one of `prompt` or `conversation`")
        if "prompt" in data:
            data["conversation"] = [{"role": "user", "content": data.pop("prompt")}]
        elif not data["conversation"]:
            raise serializers.ValidationError({"conversation": "at least one turn"})
        return data


class ScoreRequest(serializers.Serializer):
    """Limits per request (settings; a request over them gets 413 naming them):
    ``PREFLAB_SCORE_MAX_ITEMS`` items, ``PREFLAB_SCORE_MAX_RESPONSES`` responses in
    all, ``PREFLAB_SCORE_MAX_TEXT_CHARS`` characters per text."""

    prompt = serializers.CharField(required=False, trim_whitespace=False)
    conversation = Turn(many=True, required=False)
    responses = serializers.ListField(child=serializers.CharField(trim_whitespace=False), required=False)
    items = ScoreItem(many=True, required=False, help_text="A batch: prompts with their responses.")
    version = serializers.IntegerField(required=False, help_text="Model version number; default: the active one.")
    background = serializers.BooleanField(default=False, help_text=(
        "Score as a background job: 202 with the job, whose `url` gives progress and, when done, the result."))

    def validate(self, data):
        single = {k: data[k] for k in ("prompt", "conversation", "responses") if k in data}
        if bool(single) == ("items" in data):
            raise serializers.ValidationError("send either `responses` with a `prompt`/`conversation`, or `items`")
        if single:
            item = ScoreItem(data=single)
            item.is_valid(raise_exception=True)
            data["items"] = [item.validated_data]
        check_score_size(data["items"], background=data["background"])
        return data


class Score(serializers.Serializer):
    reward = serializers.FloatField(help_text="Ensemble mean μ.")
    std = serializers.FloatField(help_text="Ensemble standard deviation σ (0 for a single model).")
    conservative = serializers.FloatField(help_text="μ − λσ.")
    criteria = serializers.DictField(child=serializers.FloatField(), help_text="Per-criterion scores (multi/gated).")


class ScoreResponse(serializers.Serializer):
    model_version = serializers.IntegerField()
    criteria = serializers.ListField(child=serializers.CharField())
    results = serializers.ListField(child=Score(many=True), help_text="One list per item, in request order.")


class ScoringJobSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version.number")
    url = serializers.SerializerMethodField()
    cancel_url = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField(help_text="When succeeded: as the inline answer (ScoreResponse).")

    class Meta:
        model = ScoringJob
        fields = ["id", "status", "progress", "error", "model_version", "created_at", "started_at", "finished_at",
                  "url", "cancel_url", "result"]

    def _url(self, job, name: str) -> str:
        return reverse(name, kwargs={"slug": job.project.slug, "job_id": job.pk})

    def get_url(self, job) -> str:
        return self._url(job, "api-score-job")

    def get_cancel_url(self, job) -> str:
        return self._url(job, "api-score-job-cancel")

    def get_result(self, job) -> dict | None:
        return job.result if job.status == ScoringJob.Status.SUCCEEDED else None


class ModelVersionSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id")

    class Meta:
        model = ModelVersion
        fields = ["number", "state", "run", "metrics", "created_at", "promoted_at"]


class TrainingRunSerializer(serializers.ModelSerializer):
    version = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = ["id", "status", "trigger", "progress", "config", "data_snapshot", "metrics", "error",
                  "worker", "created_at", "started_at", "finished_at", "version"]

    def get_version(self, run) -> int | None:
        version = getattr(run, "version", None) if run.status == TrainingRun.Status.SUCCEEDED else None
        return version.number if version else None


class RunRequest(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["head", "finetune"], required=False)
    objective = serializers.ChoiceField(choices=["bt", "multi", "gated"], required=False)


def _project(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    return project


@extend_schema(request=ScoreRequest, responses={200: ScoreResponse, 202: ScoringJobSerializer, 409: None, 413: None,
                                                 504: None})
@api_view(["POST"])
def score(request, slug: str):
    """Score now (within the per-request caps; a worker scores while the request waits,
    504 past ``PREFLAB_SCORE_WAIT_S``, 503 when the queue is down or lost during the
    wait), or with ``background`` as a job."""
    project = _project(request, slug)
    body = ScoreRequest(data=request.data)
    body.is_valid(raise_exception=True)
    data = body.validated_data
    version = None
    if "version" in data:
        version = get_object_or_404(ModelVersion, project=project, number=data["version"])
    try:
        if data["background"]:
            job = scoring.scoring_job_create(project=project, items=data["items"], version=version,
                                             created_by=request.user)
            return ApiResponse(ScoringJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        out = scoring.rewards_score_in_worker(project=project, items=data["items"], version=version)
    except LookupError as exc:
        return ApiResponse({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return ApiResponse(out)


def _scoring_job(request, slug: str, job_id: int) -> ScoringJob:
    project = _project(request, slug)
    return get_object_or_404(ScoringJob.objects.select_related("project", "model_version"), project=project, pk=job_id)


@extend_schema(responses=ScoringJobSerializer)
@api_view(["GET"])
def score_job(request, slug: str, job_id: int):
    """A background scoring job: status, progress, and the result once it succeeded."""
    return ApiResponse(ScoringJobSerializer(_scoring_job(request, slug, job_id)).data)


@extend_schema(request=None, responses=ScoringJobSerializer)
@api_view(["POST"])
def score_job_cancel(request, slug: str, job_id: int):
    """Cancel: a queued job at once, a running one at its next chunk."""
    job = _scoring_job(request, slug, job_id)
    job.request_cancel()
    job.refresh_from_db()
    return ApiResponse(ScoringJobSerializer(job).data)


@extend_schema(responses=ModelVersionSerializer(many=True))
@api_view(["GET"])
def model_list(request, slug: str):
    project = _project(request, slug)
    return ApiResponse(ModelVersionSerializer(ModelVersion.objects.filter(project=project), many=True).data)


@extend_schema(methods=["GET"], responses=TrainingRunSerializer(many=True))
@extend_schema(methods=["POST"], request=RunRequest, responses={202: TrainingRunSerializer, 409: None, 503: None})
@api_view(["GET", "POST"])
def run_list(request, slug: str):
    project = _project(request, slug)
    if request.method == "GET":
        runs = TrainingRun.objects.filter(project=project).select_related("version")[:50]
        return ApiResponse(TrainingRunSerializer(runs, many=True).data)
    body = RunRequest(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        run = lifecycle.training_run_enqueue(project=project, created_by=request.user,
                                            trigger=TrainingRun.Trigger.API, **body.validated_data)
    except lifecycle.TrainingRefused as exc:
        return ApiResponse({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return ApiResponse(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=TrainingRunSerializer)
@api_view(["GET"])
def run_detail(request, slug: str, run_id: int):
    project = _project(request, slug)
    return ApiResponse(TrainingRunSerializer(get_object_or_404(TrainingRun, project=project, pk=run_id)).data)
