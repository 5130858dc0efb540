"""Querysets compiled to SQL once per connection, for the annotator's hot path
(issue #19 point 2).

Building a queryset and compiling it (``SQLCompiler.as_sql``, ``pre_sql_setup``)
was half the Python CPU of a next-task or submit request, the same work every
time for statements whose shape never changes. A ``CompiledQuery`` keeps the ORM
queryset as the one definition: on first use on a connection it builds it with a
marker value for each argument, compiles it, and remembers the SQL, where each
marker landed among the parameters, and how the rows become model instances (the
same ``from_db`` and select_related populators the ORM uses, with the fields'
converters). Later calls only put the values in place and execute.

Arguments are ints or strs: values the database takes as they are on every
backend (a datetime would need the backend's adaptation per call). The SQL is
exactly what the ORM sends, so statement counts, prepared statements and row
locks are unchanged; ``tests/annotate/test_compiled.py`` checks that each hot
query returns the same objects as its queryset.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable

from django.db import connections
from django.db.transaction import TransactionManagementError
from django.db.models import NOT_PROVIDED, Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.models.sql import InsertQuery

__all__ = ["CompiledInsert", "CompiledQuery", "first_of"]

_INT64 = (-2**63, 2**63 - 1)
_MARK_INT = -730_000_000  # far below any id or count the queries hold as constants


@dataclass(frozen=True)
class _Plan:
    sql: str
    slots: tuple  # per parameter: (True, argument name) or (False, constant)
    model: type[Model] | None  # None for a values() query, used through sql() only
    init_list: list[str]
    start: int
    end: int
    populators: list
    annotations: dict[str, int]
    converters: list  # (position, converters, expression)
    for_update: bool = False


class CompiledQuery:
    """``CompiledQuery(lambda *, slug, user_id: Project.objects.filter(...), slug=str, user_id=int)``;
    ``.all(slug=..., user_id=...)`` and ``.first(...)`` return model instances as
    the queryset would (its own slicing and ordering included)."""

    def __init__(self, build: Callable[..., QuerySet], using: str = "default", **types: type) -> None:
        for name, kind in types.items():
            if kind not in (int, str):
                raise TypeError(f"CompiledQuery argument {name!r}: only int and str are supported, not {kind!r}")
        self.build, self.using, self.types = build, using, types
        # per connection object (one per thread): the converters are bound to it
        self._plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _markers(self) -> dict[str, Any]:
        return {name: (_MARK_INT - i if kind is int else f"\x00compiled:{name}\x00")
                for i, (name, kind) in enumerate(self.types.items())}

    def _compile(self, connection) -> _Plan:
        markers = self._markers()
        qs = self.build(**markers)
        compiler = qs.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        by_value = {value: name for name, value in markers.items()}
        slots = tuple((True, by_value[p]) if _hashable(p) and p in by_value else (False, p) for p in params)
        missing = set(markers) - {name for is_arg, name in slots if is_arg}
        if missing:
            raise ValueError(f"CompiledQuery: argument(s) {sorted(missing)} do not reach the SQL's parameters")
        klass_info, select = compiler.klass_info, compiler.select
        if qs._iterable_class is not ModelIterable:  # values(), values_list(): SQL only
            return _Plan(sql=sql, slots=slots, model=None, init_list=[], start=0, end=0, populators=[],
                         annotations={}, converters=[])
        fields = [s[0] for s in select[:compiler.col_count]]
        converters = [(pos, convs, expr) for pos, (convs, expr) in compiler.get_converters(fields).items()]
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        return _Plan(sql=sql, slots=slots, model=klass_info["model"], for_update=qs.query.select_for_update,
                     init_list=[f[0].target.attname for f in select[start:end]], start=start, end=end,
                     populators=get_related_populators(klass_info, select, self.using),
                     annotations=dict(compiler.annotation_col_map or {}), converters=converters)

    def _plan(self, connection, values: dict[str, Any]) -> tuple[_Plan, list]:
        if values.keys() != self.types.keys():
            raise TypeError(f"CompiledQuery takes {sorted(self.types)}, got {sorted(values)}")
        plan = self._plans.get(connection)
        if plan is None:
            plan = self._plans[connection] = self._compile(connection)
        return plan, [values[v] if is_arg else v for is_arg, v in plan.slots]

    def sql(self, **values: Any) -> tuple[str, list]:
        """The SQL and its parameters, to embed in a larger statement."""
        plan, params = self._plan(connections[self.using], values)
        return plan.sql, params

    def all(self, **values: Any) -> list[Model]:
        connection = connections[self.using]
        plan, params = self._plan(connection, values)
        if plan.model is None:
            raise TypeError("CompiledQuery.all() needs a model queryset; use sql() for values()")
        if any(type(v) is int and not _INT64[0] <= v <= _INT64[1] for v in values.values()):
            # matches no column (the ORM answers EmptyResultSet without a query); SQLite
            # would raise OverflowError on it
            return []
        if plan.for_update and connection.features.has_select_for_update and connection.get_autocommit():
            # the ORM's own guard, which the compiled path no longer passes through:
            # outside a transaction the lock would end with the statement
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            rows = cursor.fetchall()
        out = []
        for row in rows:
            if plan.converters:
                row = list(row)
                for pos, convs, expr in plan.converters:
                    value = row[pos]
                    for convert in convs:
                        value = convert(value, expr, connection)
                    row[pos] = value
            obj = plan.model.from_db(self.using, plan.init_list, row[plan.start:plan.end])
            for populator in plan.populators:
                populator.populate(row, obj)
            for name, pos in plan.annotations.items():
                setattr(obj, name, row[pos])
            out.append(obj)
        return out

    def first(self, **values: Any) -> Model | None:
        rows = self.all(**values)
        return rows[0] if rows else None


def first_of(qs: QuerySet) -> QuerySet:
    """The query ``qs.first()`` runs (its ordering, else the primary key's; one
    row), for a builder whose result is read with ``CompiledQuery.first``."""
    return (qs if qs.ordered else qs.order_by("pk"))[:1]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class CompiledInsert:
    """The ORM's INSERT of one new instance (``RETURNING`` its primary key), its SQL
    built by Django's insert compiler once per connection, for a caller that sends
    it inside a larger statement (the submit folds its label into the statement that
    closes the lease and counts the label: one round trip and no ``save()``).

    Parameters are prepared per call as the compiler does (each field's
    ``pre_save(obj, add=True)`` then ``get_db_prep_save``), so ``auto_now`` stamps
    land on the instance too. ``sql`` answers None for a model this cannot cover
    (a field with its own placeholder or a database default): use ``save()``.
    After the statement, ``saved(obj, pk)`` marks the instance as the ORM would."""

    def __init__(self, model: type[Model], using: str = "default") -> None:
        self.model, self.using = model, using
        meta = model._meta
        self.fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
        self.plain = meta.auto_field is not None and not any(
            hasattr(f, "get_placeholder") or f.db_default is not NOT_PROVIDED for f in self.fields)
        self._sql: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def sql(self, obj: Model) -> tuple[str, list] | None:
        if not self.plain:
            return None
        connection = connections[self.using]
        sql = self._sql.get(connection)
        if sql is None:
            query = InsertQuery(self.model)
            query.insert_values(self.fields, [obj])
            compiler = query.get_compiler(connection=connection)
            compiler.returning_fields = [self.model._meta.pk]
            [(sql, compiled_params)] = compiler.as_sql()
            if len(compiled_params) != len(self.fields) or sql.count("%s") != len(self.fields):
                raise ValueError(f"CompiledInsert: {self.model.__name__}'s insert has a shape this cannot reuse")
            self._sql[connection] = sql
        # after compiling, whose pre_save stamped the instance too: these values win
        return sql, [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in self.fields]

    def saved(self, obj: Model, pk: int) -> None:
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = self.using
