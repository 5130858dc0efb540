"""Queue priorities written from the active reward model (active learning wiring)."""

from __future__ import annotations

import numpy as np
import pytest

from annotate import queue, submit
from annotate.models import Comparison, Membership, QueueSlot, Role
from models_svc.ml import acquisition
from models_svc.selection import comparisons_rescore
from models_svc.services import lifecycle, scoring
from tests.factories import fast_training as _fast
from tests.factories import labelled_for_training as _labelled
from tests.helpers import chart_specs

from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_cold_start_is_coverage_first(project):
    from tests.factories import fill

    fill(project, prompts=3, responses=3)
    labelled = Comparison.objects.order_by("id").first()
    from annotate.models import Judgment

    Judgment.objects.create(comparison=labelled, annotator=make_user("early"), choice="A", source="human")
    report = comparisons_rescore(project=project, strategy="uncertainty")  # no model yet
    assert report["used"] == "coverage" and report["rescored"] == 9
    lowest = QueueSlot.objects.order_by("priority").first()
    assert lowest.pk == labelled.pk  # the only pair with a label goes last


def _row_versions() -> dict[int, str]:
    """PostgreSQL's xmin of each queue row: it changes with every write of the row."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT comparison_id, xmin::text FROM annotate_queueslot")
        return dict(cursor.fetchall())


def test_a_rescore_writes_only_the_priorities_that_changed(project):
    """Every write of a queue row leaves a dead version behind (priority is indexed,
    so it is never HOT): a rescore that finds a priority right leaves its row alone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import fill

    fill(project, prompts=3, responses=3)
    first = comparisons_rescore(project=project, strategy="coverage")
    assert first["rescored"] == 9
    right = dict(QueueSlot.objects.values_list("pk", "priority"))
    moved = min(right)
    QueueSlot.objects.filter(pk=moved).update(priority=-1)
    if connection.vendor == "postgresql":
        before = _row_versions()
        comparisons_rescore(project=project, strategy="coverage")
        after = _row_versions()
        assert [pk for pk in after if after[pk] != before[pk]] == [moved]
    else:
        with CaptureQueriesContext(connection) as ctx:
            comparisons_rescore(project=project, strategy="coverage")
        updates = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith('UPDATE "annotate_queueslot"')]
        assert len(updates) == 1 and updates[0].count("WHEN") == 1 and f'"comparison_id" = {moved})' in updates[0]
    assert dict(QueueSlot.objects.values_list("pk", "priority")) == right
    with CaptureQueriesContext(connection) as ctx:  # nothing changed: nothing written
        comparisons_rescore(project=project, strategy="coverage")
    if connection.vendor != "postgresql":
        assert not [q for q in ctx.captured_queries if q["sql"].startswith('UPDATE "annotate_queueslot"')]


def _active_model(project, tiny):
    """12 labelled prompts × 3 pairs, all open, and a promoted model trained on them."""
    _labelled(project, tiny, prompts=12, responses=3)
    QueueSlot.objects.update(open_slots=project.overlap)
    version = lifecycle.training_run_execute(
        run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast()).pk).version
    lifecycle.model_version_promote(version=version)
    return version


def test_uncertainty_priorities_follow_the_model_and_the_queue_hands_out_in_that_order(project, tiny):
    version = _active_model(project, tiny)
    report = comparisons_rescore(project=project, strategy="uncertainty")
    assert report["used"] == "uncertainty" and report["model_version"] == 1 and report["rescored"] == 36

    # Recompute the uncertainty of every pair with the same model, by hand.
    model = scoring.load_model(version)
    pairs = list(Comparison.objects.select_related("prompt", "response_a", "response_b").order_by("id"))
    items = [(c.prompt.conversation, r.text) for c in pairs for r in (c.response_a, c.response_b)]
    members = model.score_items(items).members
    diffs = members[:, 0::2] - members[:, 1::2]
    u = acquisition.score("uncertainty", diffs)
    priority = dict(QueueSlot.objects.values_list("pk", "priority"))
    top = max(pairs, key=lambda c: priority[c.pk])
    assert u[pairs.index(top)] == pytest.approx(u.max())
    # Priorities are a strict order.
    assert len({priority[c.pk] for c in pairs}) == len(pairs)

    annotator = make_user("fresh-eyes")
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    a = queue.assignment_lease(project=project, annotator=annotator, kind="pairwise")
    assert a.comparison_id == top.pk


def test_balpm_orders_the_top_batch_by_bald_plus_the_prompt_entropy_term(project, tiny):
    version = _active_model(project, tiny)
    report = comparisons_rescore(project=project, strategy="balpm")
    assert report["used"] == "balpm" and report["rescored"] == 36

    # By hand: BALD of every pair, plus β × its prompt's entropy term; labelled prompts
    # count once per human label.
    from annotate.models import HUMAN_SOURCES, Judgment

    model = scoring.load_model(version)
    pairs = list(Comparison.objects.select_related("prompt", "response_a", "response_b").order_by("id"))
    items = [(c.prompt.conversation, r.text) for c in pairs for r in (c.response_a, c.response_b)]
    members = model.score_items(items).members
    bald = acquisition.score("bald", members[:, 0::2] - members[:, 1::2])
    prompts = sorted({c.prompt_id for c in pairs})
    convs = {c.prompt_id: c.prompt.conversation for c in pairs}
    labels = Judgment.objects.filter(comparison__project=project, source__in=HUMAN_SOURCES)
    counts = np.array([labels.filter(comparison__prompt_id=p).count() for p in prompts])
    assert counts.sum() > 0
    entropy = acquisition.PromptEntropy(model.prompt_embeddings([convs[p] for p in prompts]),
                                        np.array([prompts.index(c.prompt_id) for c in pairs]), counts)
    combined = bald + acquisition.BALPM_BETA * entropy.terms
    priority = dict(QueueSlot.objects.values_list("pk", "priority"))
    top = max(pairs, key=lambda c: priority[c.pk])
    assert combined[pairs.index(top)] == pytest.approx(combined.max())


def _priorities(project, n_prompts=5):
    from tests.factories import fill

    fill(project, prompts=n_prompts, responses=3)
    pairs = list(Comparison.objects.filter(project=project).order_by("id"))
    for rank, c in enumerate(reversed(pairs)):  # later ids get the higher priority
        QueueSlot.objects.filter(pk=c.pk).update(priority=1000 - rank)
    return sorted(pairs, key=lambda c: -QueueSlot.objects.get(pk=c.pk).priority)


def test_queue_hands_out_in_priority_order_and_logs_the_probability(project, annotator):
    project.selection_strategy = "uncertainty"
    project.save(update_fields=["selection_strategy"])
    ordered = _priorities(project)
    got = []
    for _ in range(4):
        a = queue.assignment_lease(project=project, annotator=annotator, kind="pairwise")
        assert (a.strategy, a.selection_probability) == ("uncertainty", 1.0)
        got.append(a.comparison_id)
        submit.judgment_submit(assignment=a, user=annotator, preference=-1)
    assert got == [c.pk for c in ordered[:4]]


def test_epsilon_exploration_draws_uniformly_at_the_configured_rate(project, annotator):
    import math
    import random

    from django.db.models import F

    from annotate.models import Assignment

    ordered = _priorities(project, n_prompts=4)  # 12 open pairs
    n, eps, trials = len(ordered), 0.25, 600
    project.selection_strategy, project.exploration_rate = "bald", eps
    project.save(update_fields=["selection_strategy", "exploration_rate"])
    random.seed(20261123)
    explored, hits = 0, {c.pk: 0 for c in ordered}
    for _ in range(trials):
        a = queue.assignment_lease(project=project, annotator=annotator, kind="pairwise")
        if a.strategy == "explore":
            explored += 1
            hits[a.comparison_id] += 1
            # the top pair is also the greedy pick: its probability counts both ways
            top = a.comparison_id == ordered[0].pk
            assert a.selection_probability == pytest.approx(eps / n + (1 - eps) * top)
        else:
            assert a.strategy == "bald" and a.comparison_id == ordered[0].pk
            assert a.selection_probability == pytest.approx(1 - eps + eps / n)
        # Put the task back exactly as it was, so every draw sees the same pool.
        Assignment.objects.filter(pk=a.pk).delete()
        QueueSlot.objects.filter(pk=a.comparison_id).update(open_slots=F("open_slots") + 1)
    assert abs(explored / trials - eps) < 4 * math.sqrt(eps * (1 - eps) / trials)
    # The explored draws are uniform over the pool (chi-square, 11 dof; 99.9% quantile 31.3).
    expected = explored / n
    assert sum((h - expected) ** 2 / expected for h in hits.values()) < 31.3


def test_logged_probabilities_give_importance_weights_that_sum_to_the_pool_when_leases_pass_over_taken_pairs(
        project, annotator, monkeypatch):
    """A lease that finds its first candidates taken (by annotators who committed
    after its snapshot) hands out a later one. Horvitz-Thompson: over many draws,
    the mean of 1 / logged probability is the number of pairs that could be handed
    out. The old log ((1 − ε) + ε/n for every greedy hand-out, ε/n for every
    exploring one) gives a mean near 9 here instead of 5."""
    import random

    from django.db.models import F

    from annotate.models import Assignment

    ordered = _priorities(project, n_prompts=3)[:8]  # 8 pairs by priority
    Comparison.objects.filter(project=project).exclude(pk__in=[c.pk for c in ordered]).delete()
    taken = {ordered[i].pk for i in (0, 1, 4)}
    QueueSlot.objects.filter(pk__in=taken).update(open_slots=0)
    real = queue._candidates

    def snapshot_with_taken_pairs(project, kind, annotator, *, gold=False):
        # the snapshot still lists the taken pairs; only the conditional UPDATE finds them gone
        if gold:
            return real(project, kind, annotator, gold=gold)
        return QueueSlot.objects.filter(project=project).order_by("-priority", "pk")

    monkeypatch.setattr(queue, "_candidates", snapshot_with_taken_pairs)
    eps, draws = 0.3, 1000
    project.selection_strategy, project.exploration_rate = "bald", eps
    project.save(update_fields=["selection_strategy", "exploration_rate"])
    random.seed(20)
    weights, handed = [], set()
    for _ in range(draws):
        a = queue.assignment_lease(project=project, annotator=annotator, kind="pairwise")
        weights.append(1 / a.selection_probability)
        handed.add(a.comparison_id)
        Assignment.objects.filter(pk=a.pk).delete()
        QueueSlot.objects.filter(pk=a.comparison_id).update(open_slots=F("open_slots") + 1)
    pool = len(ordered) - len(taken)
    assert handed == {c.pk for c in ordered} - taken
    # 1/p is 1/0.8125 with probability 0.8125, else 26.7 or 13.3: sd 8.3 per draw,
    # so the mean of 1000 draws has sd 0.26; the tolerance 1.0 is about 4 sd.
    assert abs(sum(weights) / draws - pool) < 1.0


def test_handout_probabilities_sum_to_one_over_the_pairs_a_lease_can_reach():
    import itertools

    n, eps = 10, 0.2
    for pattern in itertools.product([False, True], repeat=n):  # True: taken
        if any(all(pattern[o:o + queue.WINDOW]) for o in range(n)):
            continue  # a lease starting there reaches nothing and is retried
        total = 0.0
        for k in range(n):
            if pattern[k]:
                continue
            run = 0
            while run < min(k, queue.WINDOW - 1) and pattern[k - run - 1]:
                run += 1
            total += queue.handout_probability(epsilon=eps, n=n, position=k, taken_before=run)
        assert total == pytest.approx(1.0), pattern


def test_arena_strategy_puts_the_least_separated_sources_first(project):
    from annotate.models import Judgment
    from models_svc.ml.leaderboard import leaderboard
    from models_svc.selection import source_battles

    from tests.factories import fill

    fill(project, prompts=6, responses=3)  # sources model-0, model-1, model-2
    raters = [make_user(f"arena-{i}") for i in range(6)]
    for c in Comparison.objects.select_related("response_a", "response_b"):
        for i, rater in enumerate(raters):
            sources = {c.response_a.source, c.response_b.source}
            if sources == {"model-0", "model-1"}:  # 0 clearly beats 1
                winner = "model-0"
            elif sources == {"model-1", "model-2"}:  # 1 vs 2: a coin toss
                winner = "model-1" if i % 2 else "model-2"
            else:
                winner = "model-0"
            Judgment.objects.create(comparison=c, annotator=rater, source="human",
                                    choice="A" if c.response_a.source == winner else "B")
    rows = {r.source: r for r in leaderboard(source_battles(project), rounds=100)}
    report = comparisons_rescore(project=project, strategy="arena")
    assert report["used"] == "arena"
    top = QueueSlot.objects.select_related("comparison__response_a", "comparison__response_b"
                                           ).order_by("-priority").first().comparison
    overlap = {frozenset(p): min(rows[p[0]].high, rows[p[1]].high) - max(rows[p[0]].low, rows[p[1]].low)
               for p in (("model-0", "model-1"), ("model-1", "model-2"), ("model-0", "model-2"))}
    assert frozenset({top.response_a.source, top.response_b.source}) == max(overlap, key=overlap.get)
    assert max(overlap, key=overlap.get) == frozenset({"model-1", "model-2"})


def test_selection_page_shows_strategy_leaderboard_and_is_for_researchers(client, project, owner, annotator):
    from django.urls import reverse

    from tests.factories import fill

    fill(project, prompts=2, responses=3)
    from annotate.models import Judgment

    for c in Comparison.objects.select_related("response_a", "response_b"):
        Judgment.objects.create(comparison=c, annotator=annotator, source="human", choice="A")
    client.force_login(owner)
    r = client.post(reverse("model-selection-update", args=[project.slug]),
                    {"strategy": "uncertainty", "exploration_rate": "0.1"})
    assert r.status_code == 302
    project.refresh_from_db()
    assert project.selection_strategy == "uncertainty"
    assert project.exploration_rate == 0.1
    comparisons_rescore(project=project)
    html = client.get(reverse("model-selection", args=[project.slug])).content.decode()
    assert '<b id="used-strategy">coverage</b>' in html  # no model yet: coverage first
    assert '<table class="grid" id="leaderboard">' in html and "model-0" in html
    titles = [s["title"] for s in chart_specs(html, "selection-chart-specs")]
    assert titles == ["pool acquisition scores", "learning curve", "sources (Bradley-Terry, 95% bootstrap interval)"]
    r = client.post(reverse("model-selection-update", args=[project.slug]), {"strategy": "magic", "exploration_rate": "2"})
    project.refresh_from_db()
    assert project.selection_strategy == "uncertainty"
    client.force_login(annotator)
    assert client.get(reverse("model-selection", args=[project.slug])).status_code == 403


def test_learning_curve_has_one_point_per_retrain_at_its_label_count(client, project, owner, tiny):
    """The researcher page's learning curve after two retrains: two points, placed at
    each version's number of training pairs, in the chart's spec."""
    from django.urls import reverse

    from annotate import services as annotate_services
    from annotate.models import Judgment, Prompt, Response
    from models_svc.ml.config import TrainConfig
    from models_svc.ml.data import prompt_in_eval

    cfg = TrainConfig()
    rater = make_user("rater-c")

    def add_prompts(n: int) -> None:
        # The held-out side is chosen by a hash of the prompt's id, so keep adding
        # until this batch put at least one prompt there: each version then has an
        # held-out accuracy to plot, whatever ids the database hands out.
        made = 0
        while made < n or not any(prompt_in_eval(str(p), cfg.eval_fraction, cfg.split_seed)
                                  for p in project.prompts.values_list("pk", flat=True)):
            i = project.prompts.count()
            p = Prompt.objects.create(project=project, external_id=f"p{i}",
                                      conversation=[{"role": "user", "content": f"Question {i}?"}])
            for j in range(3):
                Response.objects.create(prompt=p, external_id=f"r{j}", text=f"Answer {j} to question {i}.",
                                        source=f"model-{j}")
            made += 1
        annotate_services.comparisons_generate(project=project)
        for c in Comparison.objects.filter(project=project, judgments__isnull=True):
            Judgment.objects.create(comparison=c, annotator=rater, source="imported",
                                    choice="A" if c.response_a.external_id < c.response_b.external_id else "B")

    _labelled(project, tiny, prompts=4)
    add_prompts(2)
    first = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast()).pk)
    assert first.status == "succeeded", first.error
    add_prompts(6)
    second = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast()).pk)
    assert second.status == "succeeded", second.error
    assert second.version.metrics["train_pairs"] > first.version.metrics["train_pairs"]
    client.force_login(owner)
    html = client.get(reverse("model-selection", args=[project.slug])).content.decode()
    curve = next(s for s in chart_specs(html, "selection-chart-specs") if s["title"] == "learning curve")
    (series,) = curve["series"]
    xs = [x for x, _ in series["points"]]
    assert len(xs) == 2 and xs[0] < xs[1]  # two versions, left to right by labels


def _coin_tosses(project, *, raters: int, seed: int) -> None:
    """Every comparison judged by ``raters`` people, each choice a fair coin."""
    from annotate.models import Judgment

    coins = np.random.default_rng(seed)
    people = [make_user(f"coin-{seed}-{i}") for i in range(raters)]
    for c in Comparison.objects.order_by("id"):
        for person in people:
            Judgment.objects.create(comparison=c, annotator=person, source="human", choice="AB"[coins.integers(2)])


def test_leaderboard_page_projects_the_votes_to_the_target_width(client, project, owner, annotator):
    from django.urls import reverse

    from models_svc.ml.leaderboard import TARGET_WIDTH, leaderboard
    from models_svc.selection import source_battles

    from tests.factories import fill

    fill(project, prompts=4, responses=3)
    _coin_tosses(project, raters=3, seed=0)
    battles = source_battles(project)
    width = float(np.median([r.high - r.low for r in leaderboard(battles, rounds=100)]))
    assert width > TARGET_WIDTH  # a dozen coin tosses: far from the target
    expected = int(np.ceil(len(battles) * (width / TARGET_WIDTH) ** 2))
    client.force_login(owner)
    html = client.get(reverse("model-selection", args=[project.slug])).content.decode()
    block = html.split('id="leaderboard-projection">', 1)[1].split("</p>", 1)[0]
    assert f"<b>{round(width)}</b> points over {len(battles)} votes" in block
    assert f"about <b>{expected}</b> votes in all, {expected - len(battles)} more" in block


def test_projection_scales_as_one_over_root_votes():
    from models_svc.ml.leaderboard import Row, projected_votes

    rows = [Row("a", 1000, 900, 1000, 10), Row("b", 990, 890, 990, 10), Row("c", 980, 930, 980, 10)]
    p = projected_votes(rows, 120, target_width=50)  # median width 100: twice the target
    assert (p.median_width, p.votes_needed, p.more) == (100, 480, 360)
    assert projected_votes(rows, 120, target_width=200).more == 0
    assert projected_votes([], 0) is None


def test_arena_plan_spreads_votes_over_equally_unsure_pairs(project):
    """All three sources are coin tosses: the variance plan alternates between their
    pairs as each pair's variance falls, where the old overlap rule handed out every
    comparison of one pair first."""

    from tests.factories import fill

    fill(project, prompts=6, responses=3)
    _coin_tosses(project, raters=4, seed=1)
    comparisons_rescore(project=project, strategy="arena")
    top = QueueSlot.objects.filter(project=project).select_related(
        "comparison__response_a", "comparison__response_b").order_by("-priority", "pk")[:6]
    pairs = [frozenset({s.comparison.response_a.source, s.comparison.response_b.source}) for s in top]
    assert len(set(pairs)) >= 2, pairs
    assert max(pairs.count(p) for p in set(pairs)) <= 4
