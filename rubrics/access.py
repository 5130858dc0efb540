"""Who may use the rubric library: staff, and anyone who runs a project (a
researcher somewhere). Everyone else gets 404, as for projects.

The library is shared (any researcher may read, export, clone and pin a rubric),
but changing one (editing a draft, publishing, discarding, a new version) is for
its owner, the researchers of a project that pins it, and staff; anyone else gets
the same 404 as for a rubric that does not exist. What a rubric's page tells of
projects (where it is pinned, how many labels it has) covers only the viewer's own
projects (``projects_seen_by``).

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


def may_change(user, rubric: Rubric) -> bool:
    """Staff, the rubric's owner, or a researcher of a project that pins one of its versions."""
    if not is_researcher(user):
        return False
    if user.is_staff or rubric.created_by_id == user.pk:
        return True
    return projects_pinning(rubric).filter(memberships__user=user, memberships__role=RESEARCHER).exists()


def get_version_to_change(user, slug: str, number: int) -> RubricVersion:
    """The version, if ``user`` may change its rubric; else the missing rubric's 404."""
    version = get_version_for(user, slug, number)
    if not may_change(user, version.rubric):
        raise Http404(NOT_FOUND)
    return version


IMPORT_REFUSED = "the rubric {slug!r} exists and is not yours to change; import it under another slug"


def may_import_into(user, slug) -> bool:
    """An import adds a version to the rubric ``slug`` when it exists: only where
    ``user`` may change it (a new slug, or a malformed one the import rejects, is fine)."""
    rubric = Rubric.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    return rubric is None or may_change(user, rubric)


def import_slug(document, slug: str | None):
    """The slug an import writes into: the one asked for, else the document's."""
    part = document.get("rubric") if isinstance(document, dict) else None
    return slug or (part.get("slug") if isinstance(part, dict) else None)


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


def projects_seen_by(user):
    """The projects whose names and label counts a rubric page may show ``user``:
    every one for staff, else those they are a member of (any role)."""
    projects = _project_model().objects.all()
    if not user.is_staff:
        projects = projects.filter(memberships__user=user)
    return projects
