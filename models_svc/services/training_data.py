"""Which labels a run sees (DESIGN §4): the project's human and imported
judgments and ratings, fixed by id when the run is queued, turned into the plain
examples ``models_svc.ml`` trains on.

Adjudications (``source = adjudicated``, a researcher's final answer from the
review queue) override: a comparison with an adjudicated label within the
snapshot trains on that label alone, its annotators' labels dropped (an
adjudicated "both bad" leaves the comparison out, as a both-bad label says
nothing about order)."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, Max, OuterRef, Q

from annotate.models import HUMAN_SOURCES, Comparison, Judgment, LabelSource, Project, Rating
from rubrics.schema import answer_number



def training_judgments(project: Project, max_id: int | None = None):
    """The judgments a run trains on (up to ``max_id``): people's labels, except on
    comparisons with an adjudication (also up to ``max_id``), which train on it alone."""
    adjudications = Judgment.objects.filter(comparison_id=OuterRef("comparison_id"), source=LabelSource.ADJUDICATED)
    qs = Judgment.objects.filter(comparison__project=project, choice__in=("A", "B", "tie"))
    if max_id is not None:
        adjudications, qs = adjudications.filter(id__lte=max_id), qs.filter(id__lte=max_id)
    return qs.filter(Q(source=LabelSource.ADJUDICATED) | Q(source__in=HUMAN_SOURCES) & ~Exists(adjudications))


def training_ratings(project: Project):
    return Rating.objects.filter(response__prompt__project=project, source__in=HUMAN_SOURCES)


def labels_snapshot(project: Project) -> dict[str, Any]:
    """Labels up to these ids belong to the run, whatever arrives while it waits."""
    j = training_judgments(project).aggregate(n=Max("id"))["n"] or 0
    r = training_ratings(project).aggregate(n=Max("id"))["n"] or 0
    return {
        "max_judgment_id": j,
        "max_rating_id": r,
        "pairs": training_judgments(project, max_id=j).count(),
        "ratings": training_ratings(project).filter(id__lte=r).count(),
    }


def training_examples(project: Project, snapshot: dict[str, Any]):
    """(pairs, ratings, data hash) for ``models_svc.ml``. Ties are kept (the loss
    decides what to do with them); both-bad labels say nothing about order."""
    import hashlib

    from ..ml.data import PairExample, RatedExample

    flip = Comparison.Choice.flip
    digest = hashlib.sha256()
    pairs = []
    rows = (
        training_judgments(project, max_id=snapshot["max_judgment_id"])
        .select_related("comparison__prompt", "comparison__response_a", "comparison__response_b")
        .order_by("id")
    )
    for j in rows.iterator(chunk_size=2000):
        c = j.comparison
        a_wins = j.choice != "B"
        chosen, rejected = (c.response_a, c.response_b) if a_wins else (c.response_b, c.response_a)
        criteria = {k: (v if a_wins else flip(v)) for k, v in (j.criteria or {}).items()}
        pairs.append(PairExample(
            prompt_id=str(c.prompt_id), conversation=c.prompt.conversation, chosen_text=chosen.text,
            rejected_text=rejected.text, tie=j.choice == "tie",
            strength=abs(j.strength) if j.strength else None, criteria=criteria,
        ))
        digest.update(f"j{j.pk}:{j.choice}:{j.updated_at.isoformat()};".encode())
    ratings = []
    rows = training_ratings(project).filter(id__lte=snapshot["max_rating_id"]).select_related("response__prompt").order_by("id")
    for r in rows.iterator(chunk_size=2000):
        scores = {k: answer_number(v) for k, v in (r.scores or {}).items()}
        ratings.append(RatedExample(prompt_id=str(r.response.prompt_id), conversation=r.response.prompt.conversation,
                                    response_text=r.response.text, scores=scores))
        digest.update(f"r{r.pk}:{r.updated_at.isoformat()};".encode())
    return pairs, ratings, digest.hexdigest()[:16]
