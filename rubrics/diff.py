"""What changed between two rubric versions: version fields, criteria added and
removed (matched by key, which is stable across versions), per-field changes of
the criteria both have, and the order when it moved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import RubricVersion
from .portable import VERSION_KEYS

# The changelog describes a version; it is not a change *to* the rubric.
COMPARED_VERSION_FIELDS = tuple(k for k in VERSION_KEYS if k != "changelog")


@dataclass
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass
class CriterionChange:
    key: str
    name: str
    changes: list[FieldChange]


@dataclass
class VersionDiff:
    old: RubricVersion
    new: RubricVersion
    fields: list[FieldChange] = field(default_factory=list)
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[CriterionChange] = field(default_factory=list)
    order: tuple[list[str], list[str]] | None = None

    @property
    def empty(self) -> bool:
        return not (self.fields or self.added or self.removed or self.changed or self.order)


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """Changed fields; a mapping field (anchors) is compared per entry, so a
    reworded anchor shows as ``anchors[2]`` rather than as two whole dicts."""
    changes = []
    for k in list(old) + [k for k in new if k not in old]:
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            subkeys = list(a) + [s for s in b if s not in a]
            changes += [FieldChange(f"{k}[{s}]", a.get(s), b.get(s)) for s in subkeys if a.get(s) != b.get(s)]
        else:
            changes.append(FieldChange(k, a, b))
    return changes


def version_diff(old: RubricVersion, new: RubricVersion) -> VersionDiff:
    diff = VersionDiff(old=old, new=new)
    diff.fields = [
        FieldChange(k, getattr(old, k), getattr(new, k))
        for k in COMPARED_VERSION_FIELDS
        if getattr(old, k) != getattr(new, k)
    ]
    before = {c.key: c.as_spec() for c in old.criteria.all()}
    after = {c.key: c.as_spec() for c in new.criteria.all()}
    diff.added = [spec for key, spec in after.items() if key not in before]
    diff.removed = [spec for key, spec in before.items() if key not in after]
    for key, spec in after.items():
        if key in before:
            changes = _field_changes(before[key], spec)
            if changes:
                diff.changed.append(CriterionChange(key, spec["name"], changes))
    kept_before = [k for k in before if k in after]
    kept_after = [k for k in after if k in before]
    if kept_before != kept_after:
        diff.order = (kept_before, kept_after)
    return diff
