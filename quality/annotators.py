"""Annotator reliability (DESIGN §6): for each annotator of a project, accuracy on
gold tasks, agreement with the majority of the others, competence from
Dawid-Skene and MACE (crowd-kit), position bias, and time on task.

Every human pairwise label counts, imported or made in the browser; position and
time exist only for labels made in the browser (an import does not know which
response a worker saw on the left).

* **Agreement with the majority of the others**: on every comparison the annotator
  labelled where the other annotators' most common answer is unique, the share of
  times they gave it.
* **Competence**: Dawid-Skene's estimate of how often the annotator reports the
  true answer (Σ_c prior_c · P(answer c | truth c)); MACE's posterior probability
  that the annotator is not spamming. Both are fitted on all pairwise labels of
  the project at once, so they mean most with overlapping labels.
* **Position bias**: the share of decisive browser labels (A or B, not tie or both
  bad) that chose the response shown on the left, with a two-sided binomial test
  against one half; flagged when p < ``POSITION_ALPHA``.
* **Speed**: the median time on task; flagged as too fast when it is below
  ``TOO_FAST_SHARE`` of the median of all annotators' medians.
"""

from __future__ import annotations

import statistics
import warnings
from collections import Counter, defaultdict
from typing import Any

from annotate.models import HUMAN_SOURCES, Judgment, Membership, Project, Role
from annotate.queue import gold_scores

POSITION_ALPHA = 0.01
TOO_FAST_SHARE = 0.3
MIN_POSITION_LABELS = 10  # fewer decisive browser labels say nothing about a bias


def _labels(project: Project) -> list[tuple]:
    return list(
        Judgment.objects.filter(comparison__project=project, source__in=HUMAN_SOURCES)
        .values_list("annotator_id", "annotator__username", "comparison_id", "choice", "shown_left_id",
                     "comparison__response_a_id", "time_on_task_ms")
        .iterator(chunk_size=5000)
    )


def agreement_with_majority(labels: list[tuple]) -> dict[int, tuple[int, int]]:
    """annotator → (agreeing, compared): see the module docstring."""
    votes: dict[int, Counter] = defaultdict(Counter)
    for who, _, item, choice, *_ in labels:
        votes[item][choice] += 1
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for who, _, item, choice, *_ in labels:
        others = votes[item].copy()
        others[choice] -= 1
        ranked = [c for c in others.most_common() if c[1] > 0]
        if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
            continue
        out[who][1] += 1
        out[who][0] += ranked[0][0] == choice
    return {who: (a, n) for who, (a, n) in out.items()}


def competence(labels: list[tuple]) -> tuple[dict[int, float], dict[int, float]]:
    """(Dawid-Skene skill, MACE competence) per annotator, from crowd-kit; empty
    when fewer than two annotators overlap on any comparison."""
    import pandas as pd
    from crowdkit.aggregation import MACE, DawidSkene

    frame = pd.DataFrame([(item, who, choice) for who, _, item, choice, *_ in labels],
                         columns=["task", "worker", "label"])
    if frame.empty or frame.groupby("task")["worker"].nunique().max() < 2:
        return {}, {}
    with warnings.catch_warnings():
        # crowd-kit 1.4 calls pandas with keywords pandas 3 deprecates (inplace=, copy=);
        # thousands of warnings per fit, none about our data.
        warnings.filterwarnings("ignore", module="crowdkit")
        ds = DawidSkene(n_iter=100).fit(frame)
        mace = MACE(n_iter=100, random_state=0).fit(frame)
    skill: dict[int, float] = {}
    for worker in frame["worker"].unique():
        errors = ds.errors_.loc[worker]
        skill[int(worker)] = float(sum(ds.priors_[c] * errors.loc[c, c] for c in ds.priors_.index if c in errors.index))
    names = pd.factorize(frame["worker"])[1]  # the order MACE numbers workers in
    knows = {int(name): float(mace.spamming_[i, 1]) for i, name in enumerate(names)}
    return skill, knows


def position_bias(labels: list[tuple]) -> dict[int, dict[str, Any]]:
    """annotator → left-choice share, decisive browser labels and the binomial p."""
    from scipy.stats import binomtest

    tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for who, _, _, choice, shown_left, response_a, _ in labels:
        if shown_left is None or choice not in ("A", "B"):
            continue
        tally[who][1] += 1
        tally[who][0] += (choice == "A") == (shown_left == response_a)
    out = {}
    for who, (left, n) in tally.items():
        p = binomtest(left, n, 0.5).pvalue
        out[who] = {"left_share": left / n, "decisive": n, "p_value": float(p),
                    "flagged": n >= MIN_POSITION_LABELS and p < POSITION_ALPHA}
    return out


def annotator_table(*, project: Project) -> list[dict[str, Any]]:
    """One row per annotator member of the project and per anyone else with a human label in it."""
    labels = _labels(project)
    names: dict[int, str] = {who: name for who, name, *_ in labels}
    counts = Counter(who for who, *_ in labels)
    times: dict[int, list[int]] = defaultdict(list)
    for who, *_, ms in labels:
        if ms is not None:
            times[who].append(ms)
    medians = {who: statistics.median(ms) for who, ms in times.items()}
    typical = statistics.median(medians.values()) if len(medians) >= 3 else None
    majority = agreement_with_majority(labels)
    skill, knows = competence(labels)
    bias = position_bias(labels)
    gold = {g["annotator_id"]: g for g in gold_scores(project=project)}
    members = {m.user_id: m for m in Membership.objects.filter(project=project).select_related("user", "paused_by")}
    for m in members.values():
        if m.role == Role.ANNOTATOR:  # a researcher appears once they label
            names.setdefault(m.user_id, m.user.username)
    rows = []
    for who in sorted(names, key=lambda w: names[w]):
        m = members.get(who)
        agree, compared = majority.get(who, (0, 0))
        g = gold.get(who)
        rows.append({
            "annotator_id": who, "annotator": names[who], "role": m.role if m else None, "labels": counts.get(who, 0),
            "gold_answered": g["answered"] if g else 0, "gold_accuracy": g["accuracy"] if g else None,
            "majority_compared": compared, "majority_agreement": agree / compared if compared else None,
            "dawid_skene_skill": skill.get(who), "mace_competence": knows.get(who),
            "position": bias.get(who),
            "median_time_ms": medians.get(who),
            "too_fast": typical is not None and who in medians and medians[who] < TOO_FAST_SHARE * typical,
            "paused": bool(m and m.paused_at), "paused_reason": m.paused_reason if m else "",
            "paused_by": (m.paused_by.username if m.paused_by else "the gold threshold") if m and m.paused_at else None,
        })
    return rows
