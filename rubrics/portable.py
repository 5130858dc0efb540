"""A rubric version as a portable document, in JSON or YAML.

The document holds what a version *says*, not where it lives::

    format: preflab.rubric/v1
    rubric: {name, slug, description, tags}
    version: {changelog, guidelines, aggregation, ask_overall_preference}
    criteria: [ {key, name, description, scale, …, principle}, … ]   # in order

Version numbers, status and dates are left out on purpose: importing a document
makes a new draft wherever it lands, and exporting that draft gives back the same
document byte for byte (the round trip the tests check for every template).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from .models import RubricVersion
from .schema import CriterionError, validate_criterion

FORMAT = "preflab.rubric/v1"
RUBRIC_KEYS = ("name", "slug", "description", "tags")
VERSION_KEYS = ("changelog", "guidelines", "aggregation", "ask_overall_preference")
MAX_DOCUMENT_BYTES = 2_000_000


class DocumentError(ValueError):
    """The document is rejected whole; ``where`` names the field or line."""

    def __init__(self, message: str, *, where: str = ""):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def build_document(version: RubricVersion) -> dict[str, Any]:
    rubric = version.rubric
    return {
        "format": FORMAT,
        "rubric": {"name": rubric.name, "slug": rubric.slug, "description": rubric.description,
                   "tags": list(rubric.tags)},
        "version": {"changelog": version.changelog, "guidelines": version.guidelines,
                    "aggregation": version.aggregation, "ask_overall_preference": version.ask_overall_preference},
        "criteria": [c.as_spec() for c in version.criteria.all()],
    }


def dump_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str):
    # Multi-line markdown reads best as a literal block; PyYAML falls back to a
    # quoted scalar by itself where a block cannot hold the text exactly.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def load_text(text: str | bytes, fmt: str) -> dict[str, Any]:
    """Parse ``text`` as ``fmt`` ('json' or 'yaml'); errors name the line."""
    if isinstance(text, bytes):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"the document is larger than {MAX_DOCUMENT_BYTES // 1_000_000} MB")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"not UTF-8 (byte {exc.start + 1})") from None
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"not valid JSON: {exc.msg}", where=f"line {exc.lineno}") from None
    elif fmt == "yaml":
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}" if mark else ""
            raise DocumentError(f"not valid YAML: {exc.problem or exc.context}", where=where) from None
        except yaml.YAMLError as exc:
            raise DocumentError(f"not valid YAML: {exc}") from None
    else:
        raise DocumentError(f"unknown format {fmt!r}; use json or yaml")
    if not isinstance(data, dict):
        raise DocumentError("expected a mapping at the top level")
    return data


def parse_document(data: dict[str, Any]) -> dict[str, Any]:
    """Check the whole document before anything is written; returns it unchanged."""
    if data.get("format") != FORMAT:
        raise DocumentError(f"expected {FORMAT!r}", where="format")
    for section, keys in (("rubric", RUBRIC_KEYS), ("version", VERSION_KEYS)):
        part = data.get(section)
        if not isinstance(part, dict):
            raise DocumentError("expected a mapping", where=section)
        stray = sorted(set(part) - set(keys))
        if stray:
            raise DocumentError(f"unknown fields: {', '.join(stray)}", where=section)
    rubric, version = data["rubric"], data["version"]
    for key in ("name", "slug"):
        if not isinstance(rubric.get(key), str) or not rubric[key].strip():
            raise DocumentError("required text", where=f"rubric.{key}")
    if not isinstance(rubric.get("tags", []), list) or not all(isinstance(t, str) for t in rubric.get("tags", [])):
        raise DocumentError("expected a list of strings", where="rubric.tags")
    if version.get("aggregation", "weighted_sum") not in RubricVersion.Aggregation.values:
        raise DocumentError(
            f"must be one of {', '.join(RubricVersion.Aggregation.values)}", where="version.aggregation"
        )
    if not isinstance(version.get("ask_overall_preference", True), bool):
        raise DocumentError("expected true or false", where="version.ask_overall_preference")
    criteria = data.get("criteria")
    if not isinstance(criteria, list):
        raise DocumentError("expected a list", where="criteria")
    seen: set[str] = set()
    for i, spec in enumerate(criteria):
        if not isinstance(spec, dict):
            raise DocumentError("expected a mapping", where=f"criteria[{i}]")
        try:
            validate_criterion(spec)
        except CriterionError as exc:
            field, message = next(iter(exc.errors.items()))
            raise DocumentError(message, where=f"criteria[{i}].{field}" if field != "__all__" else f"criteria[{i}]")
        if spec["key"] in seen:
            raise DocumentError(f"duplicate key {spec['key']!r}", where=f"criteria[{i}].key")
        seen.add(spec["key"])
    return data
