"""Bulk set-up for the HTTP benchmarks: a project of N comparisons (optionally
with M judgments each), loaded with PostgreSQL COPY in seconds per 100k rows,
and annotator accounts with API tokens.

The rows are written through the models' own field lists: a column the caller
does not give is filled with the field's default (``now`` for an auto time), so a
column added to a model later does not break the load. Queue counters are then
set by the queue's own recount (``queue_slots_rebuild``), whatever form they take,
and maintained tallies by the app's reconcile (``counters_refresh``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator

from django.db import connection, models, transaction
from django.utils import timezone

WORDS = ("the model answers with a short and careful explanation of the question that was asked and then gives an "
         "example that shows the idea in practice before it closes with a summary of the main point").split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _filler(field: models.Field, now):
    """What a column the caller does not name gets: its default, in COPY's terms."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    value = field.get_default()
    if isinstance(field, models.JSONField):
        return json.dumps(value)
    return value


def copy_rows(model: type[models.Model], fields: list[str], rows: Iterable[tuple]) -> None:
    """COPY ``rows`` (values for ``fields``, by attname) into the model's table; every
    other non-null column without a database default gets the field's default."""
    now = timezone.now()
    rest = [f for f in model._meta.concrete_fields
            if not f.primary_key and f.attname not in fields and not f.null and not f.has_db_default()]
    columns = [*fields, *(f.attname for f in rest)]
    extra = tuple(_filler(f, now) for f in rest)
    names = ", ".join(connection.ops.quote_name(_column(model, c)) for c in columns)
    with connection.cursor() as cur:
        pg = cur.connection.cursor()
        with pg.copy(f"COPY {connection.ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, *extra))


def _column(model: type[models.Model], attname: str) -> str:
    for f in model._meta.concrete_fields:
        if f.attname == attname:
            return f.column
    raise ValueError(f"{model.__name__} has no column {attname!r}")


def _ids(sql: str, params: list) -> list[int]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [r[0] for r in cur.fetchall()]


def project_with_pairs(*, slug: str, pairs: int, overlap: int, responses_per_prompt: int = 4,
                       labels_per_pair: int = 0, labellers: list[int] | None = None, seed: int = 0, created_by=None):
    """A pairwise project of ``pairs`` comparisons (every pair of a prompt's
    responses, prompts filled in turn), optionally ``labels_per_pair`` imported
    judgments on each from ``labellers`` (user ids). Returns the project."""
    from annotate import queue, services
    from annotate.models import Comparison, Judgment, Prompt, Response

    rng = random.Random(seed)
    per_prompt = responses_per_prompt * (responses_per_prompt - 1) // 2
    prompts = -(-pairs // per_prompt)
    with transaction.atomic():
        project = services.project_create(name=f"Benchmark {slug}", slug=slug, created_by=created_by, overlap=overlap,
                                          task_kinds=["pairwise"], lease_ttl_seconds=30)
        copy_rows(Prompt, ["project_id", "external_id", "conversation"],
                  ((project.pk, f"q{i}", json.dumps([{"role": "user", "content": f"Question {i}: {_text(rng, 18)}"}]))
                   for i in range(prompts)))
        prompt_ids = _ids("SELECT id FROM annotate_prompt WHERE project_id = %s ORDER BY id", [project.pk])
        copy_rows(Response, ["prompt_id", "external_id", "text", "source"],
                  ((pid, f"r{k}", _text(rng, 45), f"model-{k}") for pid in prompt_ids for k in range(responses_per_prompt)))
        responses = _ids("SELECT r.id FROM annotate_response r JOIN annotate_prompt p ON p.id = r.prompt_id "
                         "WHERE p.project_id = %s ORDER BY r.prompt_id, r.id", [project.pk])
        copy_rows(Comparison, ["project_id", "prompt_id", "response_a_id", "response_b_id"],
                  _pairs(project.pk, prompt_ids, responses, responses_per_prompt, pairs))
        with connection.cursor() as cur:  # their queue state (annotate.models_queue), full until leased
            cur.execute("INSERT INTO annotate_queueslot (comparison_id, project_id, priority, open_slots) "
                        "SELECT id, project_id, 0, %s FROM annotate_comparison WHERE project_id = %s",
                        [overlap, project.pk])
            cur.execute("INSERT INTO annotate_ratingslot (response_id, project_id, prompt_id, open_slots) "
                        "SELECT r.id, p.project_id, r.prompt_id, %s FROM annotate_response r "
                        "JOIN annotate_prompt p ON p.id = r.prompt_id WHERE p.project_id = %s", [overlap, project.pk])
            cur.execute("INSERT INTO annotate_rankingslot (prompt_id, project_id, open_slots) "
                        "SELECT id, project_id, %s FROM annotate_prompt WHERE project_id = %s", [overlap, project.pk])
        if labels_per_pair:
            comparison_ids = _ids("SELECT id FROM annotate_comparison WHERE project_id = %s ORDER BY id", [project.pk])
            copy_rows(Judgment, ["comparison_id", "annotator_id", "choice", "strength", "criteria", "time_on_task_ms", "source"],
                      _judgments(rng, comparison_ids, labellers or [], labels_per_pair))
        queue.queue_slots_rebuild(project=project)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")  # measure with fresh statistics and no dead tuples
    return project


def counters_refresh(project) -> None:
    """Recompute the project's maintained tallies from the rows written here (COPY
    and raw deletes pass them by) with the app's own reconcile, where the app has
    one (``annotate.counters``, issue #19.3); call it once the members exist."""
    try:
        from annotate.counters import counters_reconcile
    except ImportError:
        return
    counters_reconcile(project=project)


def _pairs(project_id: int, prompt_ids: list[int], responses: list[int], k: int, limit: int) -> Iterator[tuple]:
    made = 0
    for n, pid in enumerate(prompt_ids):
        ids = responses[n * k : (n + 1) * k]
        for i in range(k):
            for j in range(i + 1, k):
                if made == limit:
                    return
                yield project_id, pid, ids[i], ids[j]
                made += 1


def _judgments(rng: random.Random, comparison_ids: list[int], users: list[int], per_pair: int) -> Iterator[tuple]:
    for cid in comparison_ids:
        for annotator in rng.sample(users, per_pair):
            choice = rng.choices(("A", "B", "tie", "both_bad"), (45, 40, 10, 5))[0]
            strength = {"A": -rng.randint(1, 3), "B": rng.randint(1, 3), "tie": 0, "both_bad": None}[choice]
            yield cid, annotator, choice, strength, "{}", rng.randint(2000, 60000), "imported"


def accounts(prefix: str, n: int, *, active: bool = True) -> list:
    """``n`` users named prefix-0… (created if missing) with an API token each."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    User = get_user_model()
    names = [f"{prefix}-{i}" for i in range(n)]
    have = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    User.objects.bulk_create([User(username=name, is_active=active, password="!") for name in names if name not in have])
    users = list(User.objects.filter(username__in=names).order_by("id"))
    with_token = set(Token.objects.filter(user__in=users).values_list("user_id", flat=True))
    Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users if u.pk not in with_token])
    tokens = dict(Token.objects.filter(user__in=users).values_list("user_id", "key"))
    for u in users:
        u.api_token = tokens[u.pk]
    return users


def project_drop(slug: str) -> None:
    """Raw deletes: the ORM's cascade would collect a million objects first."""
    from annotate.models import Project

    pk = Project.objects.filter(slug=slug).values_list("pk", flat=True).first()
    if pk is None:
        return
    with transaction.atomic(), connection.cursor() as cur:
        for sql in (
            "DELETE FROM annotate_judgment WHERE comparison_id IN (SELECT id FROM annotate_comparison WHERE project_id = %s)",
            "DELETE FROM annotate_assignment WHERE project_id = %s",
            "DELETE FROM annotate_queueslot WHERE project_id = %s",
            "DELETE FROM annotate_ratingslot WHERE project_id = %s",
            "DELETE FROM annotate_rankingslot WHERE project_id = %s",
            "DELETE FROM annotate_comparison WHERE project_id = %s",
            "DELETE FROM annotate_response WHERE prompt_id IN (SELECT id FROM annotate_prompt WHERE project_id = %s)",
            "DELETE FROM annotate_prompt WHERE project_id = %s",
        ):
            cur.execute(sql, [pk])
    Project.objects.filter(pk=pk).delete()  # the few rows left (memberships, jobs) through the ORM's cascade
