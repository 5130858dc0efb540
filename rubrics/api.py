"""REST endpoints for rubrics and their versions (token or session auth). Same
access rule and services as the pages: staff and researchers only."""

from __future__ import annotations

from django.db import IntegrityError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response as ApiResponse

from . import portable, services
from .models import Rubric, RubricVersion
from .schema import CriterionError
from .access import (IMPORT_REFUSED, get_rubric_for, get_version_for, get_version_to_change, import_slug,
                     may_import_into, require_researcher)


class RubricVersionSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = RubricVersion
        fields = ["number", "status", "changelog", "aggregation", "created_at", "published_at"]


class RubricSerializer(serializers.ModelSerializer):
    versions = RubricVersionSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Rubric
        fields = ["slug", "name", "description", "tags", "versions"]


class RubricCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100)
    template = serializers.ChoiceField(choices=["helpsteer2", "ultrafeedback", "hh"], required=False,
                                       help_text="Start from a built-in template.")


class RubricVersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    parent = serializers.IntegerField(allow_null=True, help_text="Number of the version this draft came from.")
    published_at = serializers.DateTimeField(allow_null=True)
    document = serializers.DictField(help_text=f"The portable document ({portable.FORMAT}); see rubrics.portable.")


class ImportSerializer(serializers.Serializer):
    document = serializers.DictField(help_text=f"A {portable.FORMAT} document, as exported.")
    slug = serializers.SlugField(required=False, help_text="Import into this rubric instead of the document's.")


def _version_data(version: RubricVersion) -> dict:
    return {
        "number": version.number, "status": version.status,
        "parent": version.parent.number if version.parent_id else None,
        "published_at": version.published_at, "document": portable.build_document(version),
    }


@extend_schema(methods=["GET"], responses=RubricSerializer(many=True))
@extend_schema(methods=["POST"], request=RubricCreateSerializer, responses={201: RubricVersionSerializer})
@api_view(["GET", "POST"])
def rubric_list(request):
    require_researcher(request.user)
    if request.method == "GET":
        return ApiResponse(RubricSerializer(Rubric.objects.prefetch_related("versions"), many=True).data)
    body = RubricCreateSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    data = body.validated_data
    if Rubric.objects.filter(slug=data["slug"]).exists():
        return ApiResponse({"slug": ["a rubric with this slug exists"]}, status=status.HTTP_400_BAD_REQUEST)
    if data.get("template"):
        version = services.rubric_create_from_template(template=data["template"], slug=data["slug"],
                                                       name=data["name"], created_by=request.user)
    else:
        version = services.rubric_create(name=data["name"], slug=data["slug"], created_by=request.user)
    return ApiResponse(_version_data(version), status=status.HTTP_201_CREATED)


@extend_schema(responses=RubricSerializer)
@api_view(["GET"])
def rubric_detail(request, slug: str):
    return ApiResponse(RubricSerializer(get_rubric_for(request.user, slug)).data)


@extend_schema(responses=RubricVersionSerializer)
@api_view(["GET"])
def version_detail(request, slug: str, number: int):
    return ApiResponse(_version_data(get_version_for(request.user, slug, number)))


@extend_schema(request=None, responses={200: RubricVersionSerializer, 409: None})
@api_view(["POST"])
def version_publish(request, slug: str, number: int):
    version = get_version_to_change(request.user, slug, number)
    try:
        version = services.rubric_version_publish(version=version)
    except (services.RubricVersionLocked, ValueError) as exc:
        return ApiResponse({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return ApiResponse(_version_data(version))


@extend_schema(request=ImportSerializer, responses={201: RubricVersionSerializer})
@api_view(["POST"])
def rubric_import(request):
    require_researcher(request.user)
    body = ImportSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    target = import_slug(body.validated_data["document"], body.validated_data.get("slug"))
    if not may_import_into(request.user, target):
        return ApiResponse({"slug": [IMPORT_REFUSED.format(slug=target)]}, status=status.HTTP_400_BAD_REQUEST)
    try:
        version = services.rubric_version_import(
            document=body.validated_data["document"], slug=body.validated_data.get("slug"), created_by=request.user
        )
    except portable.DocumentError as exc:
        return ApiResponse({exc.where or "document": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    except (CriterionError, IntegrityError) as exc:
        return ApiResponse({"document": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    return ApiResponse(_version_data(version), status=status.HTTP_201_CREATED)
