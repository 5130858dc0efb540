"""Agreement of a project's labels, per criterion (DESIGN §6).

Every figure counts every human label of the project, made in the browser or
imported; derived and model labels never count. Labels are read once, as a
stream, into one counts table per criterion (``quality.agreement``), so memory
grows with the items, not with the labels' text. The dashboard reads a stored
result made by a worker; the command line computes on demand.

Statistics, by scale:

* pairwise (the overall choice, and each pairwise criterion): raw agreement,
  Krippendorff's α nominal, Fleiss' κ, Gwet's AC1, all on the symmetric table (a
  label means the same whichever response is called A); for the overall choice
  also α ordinal on the signed 7-point strength (−3 … +3, ties 0);
* Likert and severity: raw agreement, α interval and ordinal, Gwet's AC2 with
  quadratic weights, quadratic-weighted Cohen's κ for each annotator pair;
* binary: raw agreement, α nominal, Gwet's AC1.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotate.models import HUMAN_SOURCES, Judgment, Project, Rating
from rubrics.models import Criterion
from rubrics.schema import answer_number, scale_of

from . import agreement as stats

OVERALL = "overall"
CHOICES = ("A", "B", "tie", "both_bad")
CHOICES_FLIP = (1, 0, 2, 3)
CRITERION_CHOICES = ("A", "B", "tie")  # a criterion's "na" is no answer
CRITERION_FLIP = (1, 0, 2)
STRENGTHS = tuple(range(-3, 4))
STRENGTHS_FLIP = tuple(reversed(range(len(STRENGTHS))))
STATISTIC_HELP = {
    "raw_agreement": "share of annotator pairs on an item that gave the same answer",
    "krippendorff_alpha_nominal": "Krippendorff's α, answers as unordered categories",
    "krippendorff_alpha_ordinal": "Krippendorff's α, answers ordered (pairwise: the signed −3…+3 strength)",
    "krippendorff_alpha_interval": "Krippendorff's α, answers as numbers",
    "fleiss_kappa": "Fleiss' κ (any number of raters per item)",
    "gwet_ac1": "Gwet's AC1 (robust to skewed answers)",
    "gwet_ac2": "Gwet's AC2 with quadratic weights",
    "cohen_kappa_quadratic": "mean quadratic-weighted Cohen's κ over annotator pairs sharing ≥ 2 items",
}


@dataclass
class _Answers:
    """Each item's answers, with who gave them, for one criterion."""

    by_item: dict[Any, list[tuple[int, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, item: Any, rater: int, value: Any) -> None:
        self.by_item[item].append((rater, value))

    def values(self) -> list[list[Any]]:
        return [[v for _, v in answers] for answers in self.by_item.values()]

    def table(self, categories) -> tuple[np.ndarray, np.ndarray]:
        """The counts table's distinct rows and how many items have each."""
        return stats.compress(stats.counts_from_items(self.values(), categories))

    def raters_on_pairable(self) -> int:
        return len({r for answers in self.by_item.values() if len(answers) >= 2 for r, _ in answers})

    def by_rater(self) -> dict[int, dict[Any, Any]]:
        out: dict[int, dict[Any, Any]] = defaultdict(dict)
        for item, answers in self.by_item.items():
            for rater, value in answers:
                out[rater][item] = value
        return out


class _Tally:
    """Answers read in item order, kept as a counts table of distinct rows: memory
    stays flat whatever the number of labels (a million judgments make a handful of
    distinct rows), where ``_Answers`` holds every label."""

    def __init__(self, categories) -> None:
        self.categories = tuple(categories)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.rows: Counter = Counter()
        self.raters: set[int] = set()  # raters on items with ≥ 2 answers
        self._item: Any = None
        self._row: list[int] = []
        self._who: list[int] = []

    def add(self, item: Any, rater: int, value: Any) -> None:
        if item != self._item or not self._who:
            self._flush()
            self._item, self._row = item, [0] * len(self.categories)
        k = self.index.get(value)
        if k is not None:  # as ``counts_from_items``: other answers count for no category
            self._row[k] += 1
        self._who.append(rater)

    def _flush(self) -> None:
        if self._who:
            self.rows[tuple(self._row)] += 1
            if len(self._who) >= 2:
                self.raters.update(self._who)
            self._who = []

    def __bool__(self) -> bool:
        return bool(self.rows or self._who)

    def table(self, categories) -> tuple[np.ndarray, np.ndarray]:
        if tuple(categories) != self.categories:
            raise ValueError("a tally's table has the categories it was made with")
        self._flush()
        rows = np.array(list(self.rows), dtype=float).reshape(len(self.rows), len(self.categories))
        return rows, np.array(list(self.rows.values()), dtype=float)

    def raters_on_pairable(self) -> int:
        self._flush()
        return len(self.raters)


def _figure(value: float | None, counts, raters: int, freq=None) -> dict:
    return stats.Figure(value, stats.n_pairable(counts, freq), raters).as_dict()


def pairwise_statistics(answers: _Answers | _Tally, choices=CHOICES, flip=CHOICES_FLIP) -> dict[str, dict]:
    counts, freq = answers.table(choices)
    both, both_freq = stats.symmetric(counts, flip), np.concatenate([freq, freq])
    raters = answers.raters_on_pairable()
    raw, pairs = stats.raw_agreement(counts, freq)
    out = {
        "raw_agreement": {**_figure(raw, counts, raters, freq), "n_pairs": pairs},
        "krippendorff_alpha_nominal": _figure(stats.krippendorff_alpha(both, "nominal", freq=both_freq), counts, raters, freq),
        "fleiss_kappa": _figure(stats.fleiss_kappa(both, both_freq), counts, raters, freq),
        "gwet_ac1": _figure(stats.gwet_ac(both, freq=both_freq), counts, raters, freq),
    }
    return out


def strength_statistics(strengths: _Answers | _Tally) -> dict[str, dict]:
    counts, freq = strengths.table(STRENGTHS)
    both, both_freq = stats.symmetric(counts, STRENGTHS_FLIP), np.concatenate([freq, freq])
    alpha = stats.krippendorff_alpha(both, "ordinal", domain=STRENGTHS, freq=both_freq)
    return {"krippendorff_alpha_ordinal": _figure(alpha, counts, strengths.raters_on_pairable(), freq)}


def ordered_statistics(answers: _Answers, domain: list[float]) -> dict[str, dict]:
    counts, freq = answers.table(domain)
    raters = answers.raters_on_pairable()
    raw, pairs = stats.raw_agreement(counts, freq)
    kappas = stats.pairwise_cohen_kappa(answers.by_rater(), domain)
    defined = [k.kappa for k in kappas if k.kappa is not None]
    return {
        "raw_agreement": {**_figure(raw, counts, raters, freq), "n_pairs": pairs},
        "krippendorff_alpha_interval": _figure(stats.krippendorff_alpha(counts, "interval", domain, freq), counts, raters, freq),
        "krippendorff_alpha_ordinal": _figure(stats.krippendorff_alpha(counts, "ordinal", domain, freq), counts, raters, freq),
        "gwet_ac2": _figure(stats.gwet_ac(counts, stats.quadratic_weights(domain), freq), counts, raters, freq),
        "cohen_kappa_quadratic": {
            "value": round(sum(defined) / len(defined), 4) if defined else None,
            "n_items": stats.n_pairable(counts, freq), "n_raters": raters, "n_annotator_pairs": len(defined),
            "pairs": [{"annotators": [k.rater_a, k.rater_b], "n_items": k.n_items,
                       "kappa": None if k.kappa is None else round(k.kappa, 4)} for k in kappas],
        },
    }


def binary_statistics(answers: _Answers) -> dict[str, dict]:
    counts, freq = answers.table((1.0, 0.0))
    raters = answers.raters_on_pairable()
    raw, pairs = stats.raw_agreement(counts, freq)
    return {
        "raw_agreement": {**_figure(raw, counts, raters, freq), "n_pairs": pairs},
        "krippendorff_alpha_nominal": _figure(stats.krippendorff_alpha(counts, "nominal", freq=freq), counts, raters, freq),
        "gwet_ac1": _figure(stats.gwet_ac(counts, freq=freq), counts, raters, freq),
    }


# --- reading the labels -----------------------------------------------------------------


def _judgment_answers(rows, *, criteria: bool = True):
    """The answers of these judgments (a queryset), human ones only, read once in
    comparison order into tallies; ``criteria`` False skips the pairwise criteria."""
    overall, strengths = _Tally(CHOICES), _Tally(STRENGTHS)
    by_criterion: dict[str, _Tally] = {}
    rows = rows.filter(source__in=HUMAN_SOURCES).order_by("comparison_id", "annotator_id")
    # without criteria, no JSON to decode (a fifth of the read at a million labels)
    fields = ("comparison_id", "annotator_id", "choice", "strength", *(("criteria",) if criteria else ()))
    for item, rater, choice, strength, *answers in rows.values_list(*fields).iterator(chunk_size=5000):
        overall.add(item, rater, choice)
        if strength is not None:
            strengths.add(item, rater, strength)
        if answers and answers[0]:
            for key, value in answers[0].items():
                if value in CRITERION_CHOICES:
                    tally = by_criterion.get(key)
                    if tally is None:
                        tally = by_criterion[key] = _Tally(CRITERION_CHOICES)
                    tally.add(item, rater, value)
    return overall, strengths, by_criterion


def _rating_answers(project: Project, since=None, until=None) -> tuple[dict[str, _Answers], set[int]]:
    by_key: dict[str, _Answers] = defaultdict(_Answers)
    versions: set[int] = set()
    rows = Rating.objects.filter(response__prompt__project=project, source__in=HUMAN_SOURCES)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    for item, rater, scores, version in rows.values_list(
        "response_id", "annotator_id", "scores", "rubric_version_id"
    ).iterator(chunk_size=5000):
        if version is not None:
            versions.add(version)
        for key, value in (scores or {}).items():
            if value is not None:
                by_key[key].add(item, rater, value)
    return by_key, versions


def _scales(project: Project, version_ids: set[int]) -> dict[str, Any]:
    """key → the criterion's scale object, from the newest version that has it (the
    pinned one first): what a rating's answers mean and which levels exist."""
    ids = set(version_ids) | ({project.rubric_version_id} if project.rubric_version_id else set())
    rows = sorted(Criterion.objects.filter(version_id__in=ids),
                  key=lambda c: (c.version_id != project.rubric_version_id, -c.version_id))
    out: dict[str, Any] = {}
    for c in rows:
        if c.key not in out:
            out[c.key] = (c.name, scale_of(c.as_spec()))
    return out


def _rating_criterion(key: str, answers: _Answers, known: dict[str, Any]) -> dict:
    """The statistics of one rated criterion: its scale says the levels; without a
    rubric (imported ratings) the stored type does (``rubrics.schema``)."""
    name, scale = known.get(key, (key, None))
    if scale is not None and scale.scale in ("likert", "severity"):
        domain = [scale.as_number(level if scale.scale == "severity" else int(level)) for level in scale.levels()]
        numbers = _Answers()
        for item, pairs in answers.by_item.items():
            for rater, value in pairs:
                number = scale.as_number(value)
                if number is not None:
                    numbers.add(item, rater, number)
        return {"key": key, "name": name, "scale": scale.scale, "statistics": ordered_statistics(numbers, domain)}
    values = [v for pairs in answers.by_item.values() for _, v in pairs]
    if (scale is not None and scale.scale == "binary") or all(isinstance(v, bool) for v in values):
        numbers = _Answers()
        for item, pairs in answers.by_item.items():
            for rater, value in pairs:
                if isinstance(value, bool):
                    numbers.add(item, rater, 1.0 if value else 0.0)
        return {"key": key, "name": name, "scale": "binary", "statistics": binary_statistics(numbers)}
    numbers = _Answers()
    for item, pairs in answers.by_item.items():
        for rater, value in pairs:
            number = answer_number(value)
            if number is not None:
                numbers.add(item, rater, number)
    seen = sorted({v for pairs in numbers.by_item.values() for _, v in pairs})
    domain = [float(x) for x in range(int(min(seen)), int(max(seen)) + 1)] if seen and all(
        float(x).is_integer() for x in seen) else seen
    return {"key": key, "name": name, "scale": "likert", "statistics": ordered_statistics(numbers, domain)}


def project_agreement(*, project: Project, criterion: str | None = None, since=None, until=None) -> dict:
    """Agreement per criterion: ``overall`` (the pairwise choice), each pairwise
    criterion, each rated criterion. ``criterion`` keeps one; ``since``/``until``
    keep the labels made in that window. Each statistic carries the number of
    items (with ≥ 2 labels) and of annotators behind it."""
    judgments = Judgment.objects.filter(comparison__project=project)
    if since is not None:
        judgments = judgments.filter(created_at__gte=since)
    if until is not None:
        judgments = judgments.filter(created_at__lt=until)
    overall, strengths, pairwise = _judgment_answers(judgments)
    rated, versions = _rating_answers(project, since, until)
    known = _scales(project, versions)
    out: list[dict] = []
    if overall and criterion in (None, OVERALL):
        out.append({"key": OVERALL, "name": "Overall preference", "scale": "pairwise",
                    "statistics": {**pairwise_statistics(overall), **strength_statistics(strengths)}})
    for key in sorted(pairwise):
        if criterion in (None, key):
            out.append({"key": key, "name": known.get(key, (key, None))[0], "scale": "pairwise",
                        "statistics": pairwise_statistics(pairwise[key], CRITERION_CHOICES, CRITERION_FLIP)})
    for key in sorted(rated):
        if criterion in (None, key) and key not in pairwise:
            out.append(_rating_criterion(key, rated[key], known))
    if criterion is not None and not out:
        raise ValueError(f"no labels answer criterion {criterion!r} in project {project.slug}")
    return {"project": project.slug, "criteria": out}


def judgments_agreement(*, judgments, criterion: str | None = None) -> dict[str, dict]:
    """The statistics ``project_agreement`` states for the overall choice (``criterion``
    None) or one pairwise criterion, over a queryset of judgments (human ones count):
    what an export's dataset card states for the labels of its snapshot."""
    overall, strengths, pairwise = _judgment_answers(judgments, criteria=criterion is not None)
    if criterion is None:
        return {**pairwise_statistics(overall), **strength_statistics(strengths)}
    return pairwise_statistics(pairwise.get(criterion, _Tally(CRITERION_CHOICES)), CRITERION_CHOICES, CRITERION_FLIP)


# --- over time, and the label mix ---------------------------------------------------------


def agreement_by_week(*, project: Project) -> list[dict]:
    """Raw agreement and α nominal of the overall choice per ISO week of the labels
    (an item counts in a week when two of its labels were made in it). One read of
    the labels, bucketed here."""
    weeks: dict[str, _Answers] = defaultdict(_Answers)
    rows = Judgment.objects.filter(comparison__project=project, source__in=HUMAN_SOURCES).values_list(
        "comparison_id", "annotator_id", "choice", "created_at")
    for item, rater, choice, created in rows.iterator(chunk_size=5000):
        year, week, _ = created.isocalendar()
        weeks[f"{year}-W{week:02d}"].add(item, rater, choice)
    out = []
    for week in sorted(weeks):
        figures = pairwise_statistics(weeks[week])
        out.append({"week": week, "raw_agreement": figures["raw_agreement"]["value"],
                    "krippendorff_alpha_nominal": figures["krippendorff_alpha_nominal"]["value"],
                    "n_items": figures["raw_agreement"]["n_items"], "labels": sum(len(v) for v in weeks[week].by_item.values())})
    return out


def label_mix(*, project: Project) -> dict:
    """How people answered, counted in SQL: the overall choice, the signed strength
    of decisive and tied answers, and skips (browser leases given back)."""
    from django.db.models import Count

    from annotate.models import Assignment

    judgments = Judgment.objects.filter(comparison__project=project, source__in=HUMAN_SOURCES)
    choices = dict(judgments.values("choice").annotate(n=Count("id")).values_list("choice", "n"))
    strengths = dict(judgments.filter(strength__isnull=False).values("strength").annotate(n=Count("id"))
                     .values_list("strength", "n"))
    return {
        "choices": {c: choices.get(c, 0) for c in CHOICES},
        # A list, not a mapping: JSON objects lose their key order in PostgreSQL's jsonb.
        "strengths": [{"strength": s, "labels": strengths.get(s, 0)} for s in STRENGTHS],
        "no_strength": max(0, sum(choices.values()) - sum(strengths.values()) - choices.get("both_bad", 0)),
        "skips": Assignment.objects.filter(project=project, state=Assignment.State.SKIPPED).count(),
        "judgments": sum(choices.values()),
    }
