"""Running a project from the browser: create it, change its settings, manage its
members; and the account pages every user has (change your password, accept an
invite). Access helper first, one service call, then a redirect or the page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.messages.views import SuccessMessageMixin
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import services
from .access import get_project_for, require_project_creator
from .models import Assignment, Judgment, Membership, Project, Ranking, Rating, Role
from .project_forms import MemberAddForm, MemberCreateForm, MemberRoleForm, ProjectForm


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request):
    require_project_creator(request.user)
    form = ProjectForm(request.POST or None, creating=True)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(created_by=request.user, **form.changes())
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Created {project.name}. Next: import data, then add annotators.")
            return redirect("project-detail", slug=project.slug)
    return render(request, "annotate/project_form.html", {"form": form, "creating": True})


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    # the form checks a copy: the page keeps showing the project as it is until saved
    form = ProjectForm(request.POST or None, instance=Project.objects.get(pk=project.pk))
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(project=project, **form.changes())
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("project-settings", slug=project.slug)
    return render(request, "annotate/project_form.html", {"form": form, "project": project, "creating": False})


@login_required
@require_POST
def markdown_preview(request):
    """The guidelines' live preview (htmx): the same sanitising renderer as the task page."""
    return render(request, "partials/markdown_preview.html", {"text": request.POST.get("guidelines", "")[:100_000]})


# --- members --------------------------------------------------------------------------


def _members(project) -> list[dict]:
    memberships = list(Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username"))
    ids = [m.user_id for m in memberships]
    labels: dict[int, int] = {}
    for model, scope in ((Judgment, "comparison__project"), (Rating, "response__prompt__project"), (Ranking, "prompt__project")):
        for user_id, n in (model.objects.filter(**{scope: project}, annotator_id__in=ids).values_list("annotator_id")
                           .annotate(n=Count("id")).values_list("annotator_id", "n")):
            labels[user_id] = labels.get(user_id, 0) + n
    leases = dict(Assignment.objects.filter(project=project, annotator_id__in=ids, state=Assignment.State.ACTIVE)
                  .values_list("annotator_id").annotate(n=Count("id")).values_list("annotator_id", "n"))
    return [{"m": m, "labels": labels.get(m.user_id, 0), "leases": leases.get(m.user_id, 0)} for m in memberships]


def _members_page(request, project, *, status: int = 200, **ctx):
    ctx.setdefault("add_form", MemberAddForm())
    ctx.setdefault("create_form", MemberCreateForm())
    return render(request, "annotate/members.html", {
        "project": project, "members": _members(project), "roles": Role.choices,
        "invite_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400), **ctx}, status=status)


@login_required
@require_GET
def members(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    return _members_page(request, project)


@login_required
@require_POST
def member_add(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            services.membership_add(project=project, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Added {form.cleaned_data['username']} as {form.cleaned_data['role']}.")
            return redirect("members", slug=project.slug)
    return _members_page(request, project, add_form=form, status=400)


@login_required
@require_POST
def member_create(request, slug: str):
    """A new account. Its one-time password or invite link is in this response only:
    it is not stored in clear anywhere, so reloading cannot show it again."""
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    form = MemberCreateForm(request.POST)
    if form.is_valid():
        invite = form.cleaned_data["how"] == "invite"
        try:
            membership, secret = services.member_account_create(
                project=project, username=form.cleaned_data["username"], role=form.cleaned_data["role"], invite=invite)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            created = {"username": membership.user.username, "role": membership.role}
            if invite:
                uid = urlsafe_base64_encode(force_bytes(membership.user.pk))
                created["invite_url"] = request.build_absolute_uri(reverse("invite-accept", args=[uid, secret]))
            else:
                created["password"] = secret
            return _members_page(request, project, created=created)
    return _members_page(request, project, create_form=form, status=400)


def _member(project, user_id: int):
    return get_object_or_404(get_user_model(), pk=user_id, memberships__project=project)


@login_required
@require_POST
def member_role(request, slug: str, user_id: int):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    user = _member(project, user_id)
    form = MemberRoleForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError({"role": f"role must be one of {', '.join(Role.values)}"})
        services.membership_set(project=project, user=user, role=form.cleaned_data["role"])
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"{user.username} is now {form.cleaned_data['role']}.")
    return redirect("members", slug=project.slug)


@login_required
@require_POST
def member_remove(request, slug: str, user_id: int):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    user = _member(project, user_id)
    try:
        ended = services.membership_remove(project=project, user=user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Removed {user.username}; their labels stay"
                                  + (f", and {ended} unfinished task{'s' if ended != 1 else ''} went back to the queue."
                                     if ended else "."))
    if user == request.user and not request.user.is_staff:
        return redirect("home")
    return redirect("members", slug=project.slug)


# --- accounts ---------------------------------------------------------------------------


class PasswordChangeView(SuccessMessageMixin, auth_views.PasswordChangeView):
    template_name = "annotate/password_change.html"
    success_url = reverse_lazy("home")
    success_message = "Your password was changed."


class InviteAcceptView(auth_views.PasswordResetConfirmView):
    """An invite link is Django's password-reset link for the new account: it
    expires after PASSWORD_RESET_TIMEOUT and works once (setting the password
    changes the hash the token is made from)."""

    template_name = "annotate/invite_accept.html"
    success_url = reverse_lazy("login")
    post_reset_login = False

    def form_valid(self, form):
        messages.success(self.request, f"Welcome, {form.user.username}: your password is set. Log in to start.")
        return super().form_valid(form)
