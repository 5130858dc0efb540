"""Who may use the rubric library: staff, and anyone who runs a project (a
researcher somewhere). Everyone else gets 404, as for projects.

Rubrics sit below annotate (DESIGN §10: rubrics ← annotate), so memberships are
read through the user's reverse relation rather than by importing annotate's
models; ``RESEARCHER`` is annotate's ``Role.RESEARCHER`` (a layout test holds
them equal)."""

from __future__ import annotations

from django.http import Http404

from .models import Rubric, RubricVersion

RESEARCHER = "researcher"
# The one answer to "you may not see this" and "this does not exist", for rubrics and
# (through annotate.access) projects: the same text a missing object gets from DRF.
NOT_FOUND = "Not found."


def is_researcher(user) -> bool:
    """Staff, or a researcher in some project: the one answer to "may this person
    open rubrics" for pages, the API and the top bar."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.is_staff or user.memberships.filter(role=RESEARCHER).exists()


def require_researcher(user) -> None:
    if not is_researcher(user):
        raise Http404(NOT_FOUND)


def get_rubric_for(user, slug: str) -> Rubric:
    require_researcher(user)
    rubric = Rubric.objects.filter(slug=slug).first()
    if rubric is None:
        raise Http404(NOT_FOUND)
    return rubric


def get_version_for(user, slug: str, number: int) -> RubricVersion:
    rubric = get_rubric_for(user, slug)
    version = RubricVersion.objects.select_related("rubric").filter(rubric=rubric, number=number).first()
    if version is None:
        raise Http404(NOT_FOUND)
    return version


def _project_model():
    # annotate's Project, through its foreign key to RubricVersion (see the docstring).
    return RubricVersion._meta.get_field("projects").related_model


def projects_run_by(user):
    """The projects ``user`` may pin a version on: every one for staff, else those
    they are a researcher of."""
    projects = _project_model().objects.all()
    if not user.is_staff:
        projects = projects.filter(memberships__user=user, memberships__role=RESEARCHER)
    return projects.order_by("name")


def projects_pinning(rubric: Rubric):
    return _project_model().objects.filter(rubric_version__rubric=rubric)
