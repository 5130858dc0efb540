"""REST API for projects and their members: the same access helpers and services
as the pages (``annotate.project_views``). A refused change answers 400 with the
field it concerns, as the services name it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response as ApiResponse

from rubrics.models import RubricVersion

from . import services
from .access import get_project_for, require_project_creator
from .models import Membership, Project, Role, TaskKind


@extend_schema_field({"type": "object", "nullable": True, "properties": {
    "rubric": {"type": "string", "description": "the rubric's slug"}, "number": {"type": "integer"}}})
class RubricVersionField(serializers.Field):
    """A rubric version as ``{"rubric": slug, "number": n}`` (null: none pinned)."""

    # DRF formats these with str.format: literal braces are doubled
    default_error_messages = {"invalid": 'give {{"rubric": "<slug>", "number": <n>}} or null',
                              "missing": "no version {number} of rubric {rubric!r}"}

    def to_representation(self, version: RubricVersion):
        return {"rubric": version.rubric.slug, "number": version.number}

    def to_internal_value(self, data):
        if not isinstance(data, dict) or not isinstance(data.get("rubric"), str) or not isinstance(data.get("number"), int):
            self.fail("invalid")
        version = RubricVersion.objects.filter(rubric__slug=data["rubric"], number=data["number"]).first()
        if version is None:
            self.fail("missing", rubric=data["rubric"], number=data["number"])
        return version


class ProjectSerializer(serializers.ModelSerializer):
    """A project as it is read, and as it is created (POST) or changed (PATCH)."""

    # min_length states in the schema (minItems) what allow_empty=False enforces
    task_kinds = serializers.ListField(child=serializers.ChoiceField(choices=TaskKind.values), allow_empty=False,
                                       min_length=1, required=False)
    rubric_version = RubricVersionField(allow_null=True, required=False)
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["slug", *services.PROJECT_FIELDS, "rubric_version", "selection_strategy", "role"]
        read_only_fields = ["selection_strategy"]
        # the services check uniqueness and what existing work allows, naming the field
        validators = []
        extra_kwargs = {"slug": {"validators": []}}

    def get_role(self, project) -> str | None:
        from .access import project_role

        request = self.context.get("request")
        return project_role(request.user, project) if request else None


def _service_errors(exc: ValidationError) -> serializers.ValidationError:
    return serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})


@extend_schema(methods=["GET"], responses=ProjectSerializer(many=True))
@extend_schema(methods=["POST"], request=ProjectSerializer, responses={201: ProjectSerializer})
@api_view(["GET", "POST"])
def project_list(request):
    """Projects you belong to (staff: all); POST creates one, and you become its
    researcher (staff and researchers of a project may create projects)."""
    if request.method == "GET":
        projects = Project.objects.visible_to(request.user).select_related("rubric_version__rubric").order_by("name")
        return ApiResponse(ProjectSerializer(projects, many=True, context={"request": request}).data)
    require_project_creator(request.user)
    body = ProjectSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        project = services.project_create(created_by=request.user, **body.validated_data)
    except ValidationError as exc:
        raise _service_errors(exc) from None
    return ApiResponse(ProjectSerializer(project, context={"request": request}).data, status=status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses=ProjectSerializer)
@extend_schema(methods=["PATCH"], request=ProjectSerializer, responses=ProjectSerializer)
@api_view(["GET", "PATCH"])
def project_detail(request, slug: str):
    """One project; PATCH changes its settings (researchers). The slug cannot change."""
    if request.method == "GET":
        project, _ = get_project_for(request.user, slug)
        return ApiResponse(ProjectSerializer(project, context={"request": request}).data)
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    body = ProjectSerializer(project, data=request.data, partial=True)
    body.is_valid(raise_exception=True)
    changes = dict(body.validated_data)
    if "slug" in changes and changes.pop("slug") != project.slug:
        raise serializers.ValidationError({"slug": ["a project's slug cannot change: it is in every link to it"]})
    try:
        project = services.project_update(project=project, **changes)
    except ValidationError as exc:
        raise _service_errors(exc) from None
    return ApiResponse(ProjectSerializer(project, context={"request": request}).data)


# --- members --------------------------------------------------------------------------


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    paused = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_paused(self, membership) -> bool:
        return membership.paused_at is not None


class MemberRequest(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.ANNOTATOR)
    create = serializers.ChoiceField(
        choices=["password", "invite"], required=False,
        help_text="Create the account: with a one-time password (returned once) or an invite link (returned once). "
        "Without it, username names an existing account.")


class MemberCreated(MemberSerializer):
    password = serializers.CharField(required=False)
    invite_url = serializers.CharField(required=False)


class RoleRequest(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


@extend_schema(methods=["GET"], responses=MemberSerializer(many=True))
@extend_schema(methods=["POST"], request=MemberRequest, responses={201: MemberCreated})
@api_view(["GET", "POST"])
def member_list(request, slug: str):
    """The project's members (researchers); POST adds an existing account or creates one."""
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    if request.method == "GET":
        memberships = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
        return ApiResponse(MemberSerializer(memberships, many=True).data)
    body = MemberRequest(data=request.data)
    body.is_valid(raise_exception=True)
    how, data = body.validated_data.get("create"), body.validated_data
    try:
        if how is None:
            membership, secret = services.membership_add(project=project, username=data["username"], role=data["role"]), None
        else:
            membership, secret = services.member_account_create(
                project=project, username=data["username"], role=data["role"], invite=how == "invite")
    except ValidationError as exc:
        raise _service_errors(exc) from None
    out = dict(MemberSerializer(membership).data)
    if how == "password":
        out["password"] = secret
    elif how == "invite":
        uid = urlsafe_base64_encode(force_bytes(membership.user.pk))
        out["invite_url"] = request.build_absolute_uri(reverse("invite-accept", args=[uid, secret]))
    return ApiResponse(out, status=status.HTTP_201_CREATED)


@extend_schema(methods=["PATCH"], request=RoleRequest, responses=MemberSerializer)
@extend_schema(methods=["DELETE"], responses={200: None})
@api_view(["PATCH", "DELETE"])
def member_detail(request, slug: str, username: str):
    """PATCH sets a member's role; DELETE removes them (their live leases end, their labels stay)."""
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    user = get_object_or_404(get_user_model(), username=username, memberships__project=project)
    try:
        if request.method == "DELETE":
            ended = services.membership_remove(project=project, user=user)
            return ApiResponse({"username": username, "removed": True, "leases_ended": ended})
        body = RoleRequest(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.membership_set(project=project, user=user, role=body.validated_data["role"])
    except ValidationError as exc:
        raise _service_errors(exc) from None
    return ApiResponse(MemberSerializer(membership).data)
