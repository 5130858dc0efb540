"""REST API (token or session auth). Same access rules and services as the pages."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response as ApiResponse

from . import services
from .access import get_project_for
from .importers import PARSERS
from .models import ImportJob, Project


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["slug", "name", "description", "task_kinds", "overlap", "lease_ttl_seconds", "gold_rate", "selection_strategy"]


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


@api_view(["GET"])
def project_list(request):
    projects = Project.objects.visible_to(request.user).order_by("name")
    return ApiResponse(ProjectSerializer(projects, many=True).data)


@api_view(["GET"])
def project_detail(request, slug: str):
    project, _ = get_project_for(request.user, slug)
    return ApiResponse(ProjectSerializer(project).data)


@api_view(["GET", "POST"])
@parser_classes([MultiPartParser, FormParser])
def project_imports(request, slug: str):
    project, _ = get_project_for(request.user, slug, role="researcher")
    if request.method == "GET":
        return ApiResponse(ImportJobSerializer(project.import_jobs.all()[:100], many=True).data)
    body = ImportRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        job = services.import_job_store_upload(
            project=project, format=body.validated_data["format"], upload=body.validated_data["file"], created_by=request.user
        )
    except ValueError as exc:
        return ApiResponse({"file": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    services.import_job_enqueue(job=job)
    return ApiResponse(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@api_view(["GET"])
def import_detail(request, slug: str, job_id: int):
    project, _ = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ImportJob, pk=job_id, project=project)
    return ApiResponse(ImportJobSerializer(job).data)
