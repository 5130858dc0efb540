"""The annotator's hot queries run as SQL compiled once per connection
(annotate.compiled). Each must send the statement its ORM queryset sends and
give back the same objects, related objects and annotations included."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from annotate import access, presenters, queue, submit
from annotate.compiled import CompiledInsert, CompiledQuery
from annotate.models import AnnotatorCount, Assignment, Comparison, Judgment, Membership, Project, Rating, Ranking, TaskKind
from preflab.api_auth import CompiledTokenAuthentication
from tests.factories import fill, pin_rubric

pytestmark = pytest.mark.django_db


def _snapshot(obj, seen: frozenset = frozenset()) -> dict:
    """Everything an instance carries: its class, loaded fields, annotations,
    deferred fields and the related objects select_related filled in (a reverse
    link back to an object already on the path only by name)."""
    if obj is None:
        return {}
    data = {k: v for k, v in vars(obj).items() if k != "_state"}
    data["__class__"] = type(obj)
    data["__deferred__"] = obj.get_deferred_fields()
    for name, rel in obj._state.fields_cache.items():
        data[f"-> {name}"] = "(back)" if id(rel) in seen else _snapshot(rel, seen | {id(obj)})
    return data


def _same_as_orm(query: CompiledQuery, **values) -> list:
    with CaptureQueriesContext(connection) as orm_sql:
        orm = list(query.build(**values))
    with CaptureQueriesContext(connection) as compiled_sql:
        compiled = query.all(**values)
    assert [q["sql"] for q in compiled_sql] == [q["sql"] for q in orm_sql]
    assert [_snapshot(o) for o in compiled] == [_snapshot(o) for o in orm]
    return compiled


@pytest.fixture
def leased(project, annotator):
    """One live lease of each kind under a published rubric."""
    pin_rubric(project, criteria=[{"key": "clear", "name": "Clarity", "scale": "pairwise"}])
    fill(project, prompts=3, responses=3)
    project.task_kinds = [TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING]
    project.save(update_fields=["task_kinds"])
    return {kind: queue.assignment_lease(project=project, annotator=annotator, kind=kind) for kind in project.task_kinds}


def test_each_hot_query_gives_the_querysets_statement_and_objects(project, annotator, outsider, leased):
    key = Token.objects.create(user=annotator).key
    [token] = _same_as_orm(CompiledTokenAuthentication.query, key=key)
    assert token.user == annotator
    assert _same_as_orm(CompiledTokenAuthentication.query, key="no-such-key") == []

    [mine] = _same_as_orm(access._PROJECT_WITH_ROLE, slug=project.slug, user_id=annotator.pk)
    assert mine.member_role == "annotator"
    [theirs] = _same_as_orm(access._PROJECT_WITH_ROLE, slug=project.slug, user_id=outsider.pk)
    assert theirs.member_role is None
    assert _same_as_orm(access._PROJECT_WITH_ROLE, slug="missing", user_id=annotator.pk) == []

    for kind, lease in leased.items():
        [shown] = _same_as_orm(presenters._TASK[kind], pk=lease.pk)
        assert shown.rubric_version.rubric.name == f"R {project.slug}"
    with transaction.atomic():  # the locking ones
        [member] = _same_as_orm(queue._MEMBER_LOCK, project_id=project.pk, user_id=annotator.pk)
        assert member.served_count == 3 and member.get_deferred_fields()
        for lease in leased.values():
            [locked] = _same_as_orm(submit._LOCK, pk=lease.pk)
            assert locked.project == project and locked.annotator_id == annotator.pk
        assert _same_as_orm(submit._LOCK, pk=lease.pk + 1000) == []


@pytest.mark.parametrize("kind, gold", [(kind, False) for kind in queue.QUEUE_KINDS] + [(TaskKind.PAIRWISE, True)])
def test_the_lease_pick_is_the_candidates_query(project, annotator, kind, gold):
    with transaction.atomic():
        expected = (queue._candidates(project, kind, annotator, gold=gold).values("pk")[:1]
                    .select_for_update(skip_locked=True, of=("self",)).query.get_compiler(connection=connection)
                    .as_sql())
        sql, params = queue._pick(kind, gold, 0).sql(project_id=project.pk, annotator_id=annotator.pk)
    assert (sql, list(params)) == (expected[0], list(expected[1]))


def test_compiles_once_per_connection(project, annotator):
    built = []

    def build(*, pk: int):
        built.append(pk)
        return Project.objects.filter(pk=pk)

    query = CompiledQuery(build, pk=int)
    assert query.first(pk=project.pk) == project
    assert query.first(pk=project.pk + 1) is None
    assert len(built) == 1


def test_an_id_beyond_64_bits_matches_nothing_without_a_query(project):
    query = CompiledQuery(lambda *, pk: Project.objects.filter(pk=pk), pk=int)
    with CaptureQueriesContext(connection) as sent:
        assert query.all(pk=2**70) == []
    assert len(sent) == 0


def test_a_bad_definition_is_refused_clearly(project):
    with pytest.raises(TypeError, match="argument 'when'"):
        CompiledQuery(lambda *, when: Project.objects.all(), when=float)
    unused = CompiledQuery(lambda *, pk: Project.objects.all(), pk=int)
    with pytest.raises(ValueError, match=r"\['pk'\] do not reach"):
        unused.all(pk=1)
    with pytest.raises(TypeError, match="takes"):
        CompiledQuery(lambda *, pk: Project.objects.filter(pk=pk), pk=int).all(id=1)
    with pytest.raises(TypeError, match="values"):
        CompiledQuery(lambda *, pk: Membership.objects.filter(pk=pk).values("pk"), pk=int).all(pk=1)


def test_submitting_an_id_beyond_64_bits_is_the_missing_tasks_404(project, annotator):
    from django.test import Client

    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    huge = api.post(f"/api/v1/tasks/{2**70}/submit/", {"preference": 1}, content_type="application/json")
    missing = api.post("/api/v1/tasks/999999/submit/", {"preference": 1}, content_type="application/json")
    assert huge.status_code == missing.status_code == 404 and huge.content == missing.content
    assert not Assignment.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_locking_query_outside_a_transaction_is_refused_as_the_orm_refuses_it(project):
    # compiled once inside a transaction, the plan must still refuse autocommit later:
    # a row lock that ends with its own statement protects nothing
    query = CompiledQuery(lambda *, pk: Project.objects.select_for_update().filter(pk=pk), pk=int)
    with transaction.atomic():
        assert query.first(pk=project.pk) == project
    if not connection.features.has_select_for_update:  # SQLite: neither locks, neither refuses
        assert query.first(pk=project.pk) == project
        return
    with pytest.raises(transaction.TransactionManagementError, match="outside of a transaction"):
        query.first(pk=project.pk)
    with pytest.raises(transaction.TransactionManagementError):
        list(query.build(pk=project.pk))


def _stored_fields(label) -> dict:
    return {f.attname: getattr(label, f.attname) for f in type(label)._meta.concrete_fields}


ANSWERS = {TaskKind.PAIRWISE: {"preference": 2, "criteria": {"clear": "A"}, "flags": ["broken"], "rationale": "why"},
           TaskKind.RATING: {"scores": {}, "spans": []},
           TaskKind.RANKING: {"groups": None}}


def test_a_submitted_label_is_the_row_stored_whole(project, annotator, leased):
    """On PostgreSQL the label's INSERT is folded into the close-and-tally statement
    (CompiledInsert); every kind's returned instance must be exactly the stored row,
    saved as the ORM marks it, with the tallies counted once."""
    for kind, lease in leased.items():
        answer = dict(ANSWERS[kind], time_on_task_ms=1500, idempotency_key=f"key-{kind}")
        if kind == TaskKind.RANKING:
            ids = [r.pk for r in lease.prompt.responses.order_by("pk")]
            answer["groups"] = [[ids[0]], ids[1:]]
        label = submit.task_submit(assignment=Assignment(pk=lease.pk), user=annotator, answer=answer)
        assert not label._state.adding and label._state.db == "default" and label.pk
        stored = type(label).objects.get(pk=label.pk)
        assert _stored_fields(stored) == _stored_fields(label)
        assert stored.time_on_task_ms == 1500 and stored.idempotency_key == f"key-{kind}"
        assert stored.created_at is not None and stored.updated_at is not None
        lease.refresh_from_db()
        assert lease.state == Assignment.State.SUBMITTED and lease.finished_at is not None
        tally = AnnotatorCount.objects.get(project=project, annotator=annotator, kind=kind)
        assert (tally.labels, tally.time_ms, tally.timed) == (1, 1500, 1)
    judgment = Judgment.objects.get(annotator=annotator)
    assert judgment.criteria and judgment.flags == ["broken"] and judgment.rationale == "why"


def test_a_conflicting_label_rolls_the_whole_submit_back(project, annotator, leased):
    """The folded statement fails whole on the one-label-per-annotator rule: the
    lease stays open and nothing is counted (the same request replayed elsewhere is
    test_postgres's concern; here another label of the pair exists already)."""
    lease = leased[TaskKind.PAIRWISE]
    Judgment.objects.create(comparison=lease.comparison, annotator=annotator, choice="A", strength=-1)
    with pytest.raises(queue.TaskError) as exc:
        submit.task_submit(assignment=Assignment(pk=lease.pk), user=annotator, answer=ANSWERS[TaskKind.PAIRWISE])
    assert exc.value.code == "conflict"
    lease.refresh_from_db()
    assert lease.state == Assignment.State.ACTIVE
    assert not AnnotatorCount.objects.filter(project=project, annotator=annotator, kind=TaskKind.PAIRWISE,
                                             labels__gt=0).exists()
    assert Judgment.objects.filter(annotator=annotator).count() == 1


def test_the_folded_insert_is_the_orms_insert(project, annotator):
    """Same SQL as the ORM's insert compiler, built once per connection; a model with
    a database default is left to save()."""
    insert = CompiledInsert(Judgment)
    fill(project, prompts=1, responses=2)
    comparison = Comparison.objects.filter(project=project).first()
    with CaptureQueriesContext(connection) as orm:
        Judgment(comparison=comparison, annotator=annotator, choice="A", strength=-1).save(force_insert=True)
    sql, params = insert.sql(Judgment(comparison=comparison, annotator=annotator, choice="B", strength=1))
    assert len(params) == len(insert.fields) and sql is insert.sql(Judgment(comparison=comparison))[0]
    assert orm[0]["sql"].split(" VALUES ")[0] == sql.split(" VALUES ")[0]
    assert sql.rstrip().endswith('RETURNING "annotate_judgment"."id"')
    assert CompiledInsert(Membership).sql(Membership(project=project, user=annotator)) is None
