"""How a rubric looks to the person answering it: the criterion view that the task
page, the REST API and the rubric editor's preview all show, and the overall
preference scale. No gold answers or scores live here: only the questions."""

from __future__ import annotations

from functools import lru_cache

from .models import Criterion, RubricVersion

# The rubric-free overall preference (RubricVersion.ask_overall_preference):
# (value in shown terms, label, key). Negative favours the response listed first.
PREFERENCE_SCALE = [
    (-3, "A much better", "1"), (-2, "A better", "2"), (-1, "A slightly better", "3"), (0, "Tie", "4"),
    (1, "B slightly better", "5"), (2, "B better", "6"), (3, "B much better", "7"),
]


def version_criteria(version: RubricVersion) -> tuple[Criterion, ...]:
    """A version's criteria in order. A published version never changes (labels pin
    it), so its criteria are read once per process; a draft's on every call."""
    if version.status == RubricVersion.Status.PUBLISHED:
        return _published_criteria(version.pk, version.published_at)
    return tuple(Criterion.objects.filter(version_id=version.pk).order_by("position", "id"))


@lru_cache(maxsize=256)
def _published_criteria(version_id: int, published_at) -> tuple[Criterion, ...]:
    # keyed with the publication time too: a database that reuses ids (a test
    # rolled back, a restored dump) never hands one version's criteria to another
    return tuple(Criterion.objects.filter(version_id=version_id).order_by("position", "id"))


def criterion_view(c: Criterion) -> dict:
    """What an annotator needs of a criterion to answer it; weights, priorities and
    thresholds are the researcher's business and stay out."""
    view = {"key": c.key, "name": c.name, "description": c.description, "scale": c.scale,
            "na_allowed": c.na_allowed, "requires_rationale": c.requires_rationale}
    for k in ("min", "max", "anchors", "error_types"):
        if k in c.config:
            view[k] = c.config[k]
    return view
