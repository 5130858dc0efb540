"""Access helpers: return the object the user may see, or refuse.

A non-member gets the same ``Http404(NOT_FOUND)`` as a missing object, so pages and
the API answer a stranger byte for byte as they answer a typo and nobody learns that
a project exists. A member whose role does not allow a page already knows the
project, so hiding it teaches nothing and a 404 would only look like a broken link:
they get a 403 that says who may open it (the 403.html page, or DRF's
``{"detail": ...}``). tests/preflab/test_authorization_matrix.py holds both."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404
from rubrics.access import NOT_FOUND

from .compiled import CompiledQuery, first_of
from .models import Membership, Project, Role

__all__ = ["NOT_FOUND", "can_manage", "get_assignment_for", "get_project_for", "project_role", "role_refusal"]


def project_role(user, project: Project) -> str | None:
    """'admin' for staff, else the membership role, else None."""
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return "admin"
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def _project_with_role(*, slug: str, user_id: int):
    # the role comes with the project, one query instead of two
    return first_of(Project.objects.filter(slug=slug).annotate(member_role=Subquery(
        Membership.objects.filter(project=OuterRef("pk"), user=user_id).values("role")[:1])))


# compiled once per connection: every API request of an annotator checks access
_PROJECT_WITH_ROLE = CompiledQuery(_project_with_role, slug=str, user_id=int)


def get_project_for(user, slug: str, *, role: str | None = None) -> tuple[Project, str]:
    """The project if ``user`` belongs to it (with ``role`` when given; staff always pass).
    Non-members: 404 as for a missing project; members without ``role``: 403."""
    if user.is_authenticated and not user.is_staff:
        project = _PROJECT_WITH_ROLE.first(slug=slug, user_id=user.pk)
    else:
        project = Project.objects.filter(slug=slug).first()
    if project is None or not user.is_authenticated:
        actual = None
    else:
        actual = "admin" if user.is_staff else project.member_role
    if actual is None:
        raise Http404(NOT_FOUND)
    if role is not None and actual not in ("admin", role):
        raise PermissionDenied(role_refusal(role))
    return project, actual


def role_refusal(role: str) -> str:
    """The reason a member is refused: who may open the page instead."""
    return f"Only this project's {Role(role).label.lower()}s may open this page."


def can_manage(role: str | None) -> bool:
    return role in ("admin", Role.RESEARCHER)


def get_assignment_for(user, assignment_id: int, *, project: Project | None = None):
    """The user's own assignment (in ``project`` when given), or 404: another
    annotator's task is indistinguishable from one that does not exist."""
    from .queue import assignment_for

    assignment = assignment_for(annotator=user, assignment_id=assignment_id)
    if assignment is None or (project is not None and assignment.project_id != project.pk):
        raise Http404(NOT_FOUND)
    return assignment


# Who may create a project: staff, and anyone who already runs one (a researcher
# somewhere), the same people who may open the rubric library. An annotator who
# should run projects is made a researcher of one by a researcher or an admin.
PROJECT_CREATORS = "staff and researchers of a project"


def can_create_project(user) -> bool:
    from rubrics.access import is_researcher

    return is_researcher(user)


def require_project_creator(user) -> None:
    """403 naming who may create projects (no project is involved, so nothing leaks)."""
    if not can_create_project(user):
        raise PermissionDenied(f"Only {PROJECT_CREATORS} may create projects.")
