"""Writes to rubrics. A version referenced by any label, or already published, is
frozen: every write here checks that first, inside the same transaction, so a
refused edit leaves the database exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import Criterion, Rubric, RubricVersion
from .principles import compile_principle
from .schema import COMMON_FIELDS, CriterionError, split_spec, validate_criterion

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates_data"
VERSION_FIELDS = {"guidelines", "aggregation", "ask_overall_preference", "changelog"}


class RubricVersionLocked(Exception):
    """The version is published or referenced by labels; make a new draft instead."""


def _lock_version(version: RubricVersion) -> RubricVersion:
    """Re-read the version under a row lock and refuse if it may no longer change."""
    locked = RubricVersion.objects.select_for_update().get(pk=version.pk)
    if locked.status != RubricVersion.Status.DRAFT:
        raise RubricVersionLocked(
            f"{locked} is {locked.status}; create a new draft from it to make changes."
        )
    if RubricVersion.objects.filter(pk=locked.pk).referenced().exists():
        raise RubricVersionLocked(f"{locked} is referenced by labels; create a new draft from it to make changes.")
    return locked


def template_list() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(TEMPLATE_DIR.glob("*.json"))]


def template_get(slug: str) -> dict[str, Any]:
    path = TEMPLATE_DIR / f"{slug}.json"
    if not path.is_file():
        raise KeyError(f"no rubric template {slug!r}; known: {', '.join(t['slug'] for t in template_list())}")
    return json.loads(path.read_text())


@transaction.atomic
def rubric_create(
    *,
    name: str,
    slug: str,
    description: str = "",
    tags: list[str] | None = None,
    created_by=None,
    guidelines: str = "",
    aggregation: str = RubricVersion.Aggregation.WEIGHTED_SUM,
    ask_overall_preference: bool = True,
    criteria: list[dict[str, Any]] | None = None,
    changelog: str = "Created.",
) -> RubricVersion:
    """Create a rubric with a first draft version holding ``criteria``; returns the draft."""
    rubric = Rubric.objects.create(
        name=name, slug=slug, description=description, tags=tags or [], created_by=created_by
    )
    version = RubricVersion.objects.create(
        rubric=rubric,
        number=1,
        guidelines=guidelines,
        aggregation=aggregation,
        ask_overall_preference=ask_overall_preference,
        changelog=changelog,
    )
    for data in criteria or []:
        criterion_add(version=version, data=data)
    return version


@transaction.atomic
def rubric_create_from_template(*, template: str, slug: str | None = None, name: str | None = None, created_by=None):
    data = template_get(template)
    return rubric_create(
        name=name or data["name"],
        slug=slug or data["slug"],
        description=data.get("description", ""),
        tags=data.get("tags", []),
        created_by=created_by,
        guidelines=data.get("guidelines", ""),
        aggregation=data.get("aggregation", RubricVersion.Aggregation.WEIGHTED_SUM),
        ask_overall_preference=data.get("ask_overall_preference", True),
        criteria=data["criteria"],
    )


def _validated(data: dict[str, Any], previous: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate and split; fill the principle sentence unless a person wrote one.
    A sentence that was compiled before is compiled again, so it follows edits."""
    columns, config = split_spec(validate_criterion(data))
    written = columns["principle"]
    if previous is not None and written == previous.get("principle") == compile_principle(previous):
        written = ""
    if not written:
        columns["principle"] = compile_principle({**columns, **config})
    return columns, config


@transaction.atomic
def criterion_add(*, version: RubricVersion, data: dict[str, Any]) -> Criterion:
    version = _lock_version(version)
    columns, config = _validated(data)
    if version.criteria.filter(key=columns["key"]).exists():
        raise CriterionError({"key": f"a criterion with key {columns['key']!r} already exists in this version"})
    last = version.criteria.order_by("-position").values_list("position", flat=True).first()
    return Criterion.objects.create(version=version, position=(last or 0) + 1, config=config, **columns)


@transaction.atomic
def criterion_update(*, criterion: Criterion, data: dict[str, Any], replace: bool = False) -> Criterion:
    """Change some fields (``data`` merges over the current ones), or with
    ``replace`` set every field from ``data`` (the editor's form sends them all)."""
    _lock_version(criterion.version)
    merged = dict(data) if replace else {**criterion.as_spec(), **data}
    if merged.get("scale") != criterion.scale:
        # Settings of the old scale (min/max, anchors, error types) do not carry over.
        merged = {k: v for k, v in merged.items() if k in COMMON_FIELDS or k in data}
    columns, config = _validated(merged, previous=criterion.as_spec())
    if columns["key"] != criterion.key and criterion.version.criteria.filter(key=columns["key"]).exists():
        raise CriterionError({"key": f"a criterion with key {columns['key']!r} already exists in this version"})
    for field, value in columns.items():
        setattr(criterion, field, value)
    criterion.config = config
    criterion.save()
    return criterion


@transaction.atomic
def criterion_delete(*, criterion: Criterion) -> None:
    _lock_version(criterion.version)
    criterion.delete()


@transaction.atomic
def criterion_reorder(*, version: RubricVersion, keys: list[str]) -> None:
    version = _lock_version(version)
    existing = {c.key: c for c in version.criteria.all()}
    if sorted(keys) != sorted(existing):
        raise ValueError("reorder must list every criterion key of the version exactly once")
    for position, key in enumerate(keys, start=1):
        Criterion.objects.filter(pk=existing[key].pk).update(position=position)


@transaction.atomic
def rubric_version_update(*, version: RubricVersion, **fields: Any) -> RubricVersion:
    unknown = set(fields) - VERSION_FIELDS
    if unknown:
        raise TypeError(f"cannot update {', '.join(sorted(unknown))} on a rubric version")
    version = _lock_version(version)
    for field, value in fields.items():
        setattr(version, field, value)
    version.full_clean(exclude=["rubric", "parent"])
    version.save()
    return version


@transaction.atomic
def rubric_version_publish(*, version: RubricVersion) -> RubricVersion:
    version = _lock_version(version)
    if not version.criteria.exists() and not version.ask_overall_preference:
        raise ValueError("a version with no criteria must at least ask for an overall preference")
    version.status = RubricVersion.Status.PUBLISHED
    version.published_at = timezone.now()
    version.save(update_fields=["status", "published_at"])
    return version


@transaction.atomic
def rubric_version_new_draft(*, version: RubricVersion, changelog: str = "") -> RubricVersion:
    """Copy ``version`` (any status) into a new draft numbered after the latest one."""
    rubric = Rubric.objects.select_for_update().get(pk=version.rubric_id)
    number = (rubric.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    draft = RubricVersion.objects.create(
        rubric=rubric,
        number=number,
        parent=version,
        changelog=changelog or f"Draft from v{version.number}.",
        guidelines=version.guidelines,
        aggregation=version.aggregation,
        ask_overall_preference=version.ask_overall_preference,
    )
    Criterion.objects.bulk_create(
        [
            Criterion(
                version=draft,
                **{f.name: getattr(c, f.name) for f in Criterion._meta.concrete_fields if f.name not in {"id", "version"}},
            )
            for c in version.criteria.all()
        ]
    )
    return draft


@transaction.atomic
def rubric_version_delete_draft(*, version: RubricVersion) -> None:
    """Throw away an unpublished, unreferenced draft (its parent stays as it was)."""
    version = _lock_version(version)
    rubric = version.rubric
    version.delete()
    if not rubric.versions.exists():
        rubric.delete()


@transaction.atomic
def rubric_clone(*, version: RubricVersion, name: str, slug: str, created_by=None) -> RubricVersion:
    """A new rubric whose first draft copies ``version``; the source is untouched."""
    source = version.rubric
    return rubric_create(
        name=name,
        slug=slug,
        description=source.description,
        tags=list(source.tags),
        created_by=created_by,
        guidelines=version.guidelines,
        aggregation=version.aggregation,
        ask_overall_preference=version.ask_overall_preference,
        criteria=[c.as_spec() for c in version.criteria.all()],
        changelog=f"Cloned from {source.name} v{version.number}.",
    )


@transaction.atomic
def rubric_version_import(*, document: dict[str, Any], slug: str | None = None, name: str | None = None,
                          created_by=None) -> RubricVersion:
    """Create a draft from an exported document (see ``rubrics.portable``).

    Into the rubric with that slug when it exists (as its next version), else into
    a new rubric. Validation happens before any write; a bad document changes
    nothing and the error names the field (``criteria[2].min``)."""
    from .portable import parse_document

    doc = parse_document(document)
    meta, ver = doc["rubric"], doc["version"]
    slug = slug or meta["slug"]
    rubric = Rubric.objects.select_for_update().filter(slug=slug).first()
    if rubric is None:
        return rubric_create(
            name=name or meta["name"], slug=slug, description=meta.get("description", ""),
            tags=meta.get("tags", []), created_by=created_by, guidelines=ver.get("guidelines", ""),
            aggregation=ver.get("aggregation", RubricVersion.Aggregation.WEIGHTED_SUM),
            ask_overall_preference=ver.get("ask_overall_preference", True),
            criteria=doc["criteria"], changelog=ver.get("changelog", ""),
        )
    number = (rubric.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = RubricVersion.objects.create(
        rubric=rubric, number=number, changelog=ver.get("changelog", ""),
        guidelines=ver.get("guidelines", ""),
        aggregation=ver.get("aggregation", RubricVersion.Aggregation.WEIGHTED_SUM),
        ask_overall_preference=ver.get("ask_overall_preference", True),
    )
    for data in doc["criteria"]:
        criterion_add(version=version, data=data)
    return version
