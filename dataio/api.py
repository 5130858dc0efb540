"""REST API for imports and exports (token or session auth): the same access rules
and services as the pages."""

from __future__ import annotations

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response as ApiResponse

from annotate.access import get_project_for
from annotate.models import ExportJob, ImportJob

from .exports import services as exports
from .exports.spec import AGGREGATIONS, FILE_FORMATS, FORMATS, ExportSpec
from .imports import services as imports
from .imports.parsers import PARSERS


class ImportJobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id", "project", "format", "original_name", "status", "progress", "records_done", "counts",
            "error", "error_line", "error_field", "created_at", "started_at", "finished_at",
        ]


class ImportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=list(PARSERS))
    file = serializers.FileField()


@extend_schema(methods=["GET"], responses=ImportJobSerializer(many=True))
@extend_schema(methods=["POST"], request={"multipart/form-data": ImportRequestSerializer}, responses={202: ImportJobSerializer})
@api_view(["GET", "POST"])
@parser_classes([MultiPartParser, FormParser])
def project_imports(request, slug: str):
    project, _ = get_project_for(request.user, slug, role="researcher")
    if request.method == "GET":
        return ApiResponse(ImportJobSerializer(project.import_jobs.all()[:100], many=True).data)
    body = ImportRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        job = imports.import_job_store_upload(
            project=project, format=body.validated_data["format"], upload=body.validated_data["file"], created_by=request.user
        )
    except ValueError as exc:
        return ApiResponse({"file": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    imports.import_job_enqueue(job=job)
    return ApiResponse(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=ImportJobSerializer)
@api_view(["GET"])
def import_detail(request, slug: str, job_id: int):
    project, _ = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ImportJob, pk=job_id, project=project)
    return ApiResponse(ImportJobSerializer(job).data)


class ExportJobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    download_url = serializers.SerializerMethodField()
    card_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id", "project", "format", "file_format", "options", "snapshot_id", "status", "progress", "rows_written",
            "counts", "error", "created_at", "started_at", "finished_at", "download_url", "card_url",
        ]

    def _url(self, job: ExportJob, name: str) -> str | None:
        if job.status != ExportJob.Status.SUCCEEDED:
            return None
        return reverse(name, kwargs={"slug": job.project.slug, "job_id": job.pk})

    def get_download_url(self, job: ExportJob) -> str | None:
        return self._url(job, "api-export-download")

    def get_card_url(self, job: ExportJob) -> str | None:
        return self._url(job, "api-export-card")


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=list(FORMATS))
    file_format = serializers.ChoiceField(choices=list(FILE_FORMATS), default="jsonl")
    aggregate = serializers.ChoiceField(choices=list(AGGREGATIONS), default="all")
    min_agreement = serializers.FloatField(required=False, allow_null=True, default=None)
    criterion = serializers.CharField(required=False, allow_null=True, default=None)
    margin = serializers.FloatField(required=False, allow_null=True, default=None)
    include_derived = serializers.BooleanField(default=False)
    escape_formulas = serializers.BooleanField(
        default=True, help_text="CSV: prefix ' to text cells starting with = + - @ tab or CR (always on for generic CSV)")

    def validate(self, data):
        try:
            return {"spec": ExportSpec(**data)}
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


@extend_schema(methods=["GET"], responses=ExportJobSerializer(many=True))
@extend_schema(methods=["POST"], request=ExportRequestSerializer, responses={202: ExportJobSerializer})
@api_view(["GET", "POST"])
def project_exports(request, slug: str):
    """List exports, or start one (a Celery job at today's snapshot)."""
    project, _ = get_project_for(request.user, slug, role="researcher")
    if request.method == "GET":
        return ApiResponse(ExportJobSerializer(project.export_jobs.all()[:100], many=True).data)
    body = ExportRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    job = exports.export_job_create(project=project, spec=body.validated_data["spec"], created_by=request.user)
    exports.export_job_enqueue(job=job)
    return ApiResponse(ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=ExportJobSerializer)
@api_view(["GET"])
def export_detail(request, slug: str, job_id: int):
    project, _ = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ExportJob, pk=job_id, project=project)
    return ApiResponse(ExportJobSerializer(job).data)


def _export_file(request, slug: str, job_id: int, which: str) -> FileResponse:
    """The card or data file; its media type is set, not guessed from the file name, so
    that it is one the schema states (see export_download and export_card)."""
    project, _ = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ExportJob, pk=job_id, project=project)
    try:
        path, name = exports.export_job_file(job=job, which=which)
    except FileNotFoundError:
        raise Http404("This export has no such file.") from None
    if which == "card":
        content_type = "text/markdown; charset=utf-8"
    else:
        content_type = "application/zip" if path.suffix == ".zip" else "application/octet-stream"
    return FileResponse(open(path, "rb"), as_attachment=True, filename=name, content_type=content_type)


@extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, (200, "application/zip"): OpenApiTypes.BINARY})
@api_view(["GET"])
def export_download(request, slug: str, job_id: int):
    """A finished export's data file, streamed: a zip for a datasets folder, else the file as it is."""
    return _export_file(request, slug, job_id, "data")


@extend_schema(responses={(200, "text/markdown"): OpenApiTypes.STR})
@api_view(["GET"])
def export_card(request, slug: str, job_id: int):
    """A finished export's dataset card (README.md)."""
    return _export_file(request, slug, job_id, "card")
