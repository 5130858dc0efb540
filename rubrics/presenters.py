"""How a rubric looks to the person answering it: the criterion view that the task
page, the REST API and the rubric editor's preview all show, and the overall
preference scale. No gold answers or scores live here: only the questions."""

from __future__ import annotations

from .models import Criterion

# The rubric-free overall preference (RubricVersion.ask_overall_preference):
# (value in shown terms, label, key). Negative favours the response listed first.
PREFERENCE_SCALE = [
    (-3, "A much better", "1"), (-2, "A better", "2"), (-1, "A slightly better", "3"), (0, "Tie", "4"),
    (1, "B slightly better", "5"), (2, "B better", "6"), (3, "B much better", "7"),
]


def criterion_view(c: Criterion) -> dict:
    """What an annotator needs of a criterion to answer it; weights, priorities and
    thresholds are the researcher's business and stay out."""
    view = {"key": c.key, "name": c.name, "description": c.description, "scale": c.scale,
            "na_allowed": c.na_allowed, "requires_rationale": c.requires_rationale}
    for k in ("min", "max", "anchors", "error_types"):
        if k in c.config:
            view[k] = c.config[k]
    return view
