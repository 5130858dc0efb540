"""The criterion editor's form: flat HTML fields ↔ the criterion dict of the schema.

The schema (``rubrics.schema``) stays the one place that says what is valid; this
module only turns text inputs into typed values and maps the schema's error paths
back onto the inputs they came from, so each message shows beside its field."""

from __future__ import annotations

from typing import Any

from .schema import MAX_LIKERT_LEVELS, SCALES as SCALE_CLASSES

SCALES = tuple(SCALE_CLASSES)
POLARITIES = (("higher_better", "Higher is better"), ("lower_better", "Lower is better"),
              ("target", "Target value (e.g. right length)"))
KINDS = (("principle", "Principle (graded quality)"), ("hard_rule", "Hard rule (a violation decides)"))
NUMBERS = {"min": int, "max": int, "priority": int, "weight": float, "margin": float, "target": float, "threshold": float}
OPTIONAL_NUMBERS = ("target", "threshold")
FIXED_POLARITY = {"pairwise": "higher_better", "severity": "lower_better", "spans": "lower_better"}


def anchor_levels(scale: str, lo: Any = 0, hi: Any = 4) -> list[str]:
    """The levels a scale has anchors for, as the strings the schema keys them by."""
    # The draft being edited may not validate yet, so the scale object is built
    # from the two fields levels depend on, without the schema's other checks.
    cls = SCALE_CLASSES.get(scale)
    if cls is None or "anchors" not in cls.model_fields:  # pairwise and spans take no anchors
        return []
    if scale == "likert":
        try:
            lo, hi = int(lo), int(hi)
        except (TypeError, ValueError):
            return []
        if not (hi > lo and hi - lo < MAX_LIKERT_LEVELS):
            return []
    return list(cls.model_construct(min=lo, max=hi).levels())


def _error_types_text(types: list[dict[str, str]]) -> str:
    return "\n".join(" | ".join(filter(None, (t["key"], t["name"], t.get("description", "")))) for t in types)


def initial_from_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Form values (strings) for an existing criterion."""
    values = {k: ("" if v is None else v) for k, v in spec.items() if k not in ("anchors", "error_types")}
    for level, text in (spec.get("anchors") or {}).items():
        values[f"anchor_{level}"] = text
    values["error_types"] = _error_types_text(spec.get("error_types") or [])
    return values


def spec_from_post(post) -> tuple[dict[str, Any], dict[str, str]]:
    """(criterion dict, field errors found before the schema sees it)."""
    errors: dict[str, str] = {}
    scale = post.get("scale", "likert")
    data: dict[str, Any] = {
        "key": post.get("key", "").strip(),
        "name": post.get("name", "").strip(),
        "description": post.get("description", ""),
        "scale": scale,
        # Pairwise, severity and spans have one meaningful direction each.
        "polarity": FIXED_POLARITY.get(scale) or post.get("polarity", "higher_better"),
        "kind": post.get("kind", "principle"),
        "na_allowed": post.get("na_allowed") in ("on", "true", "1"),
        "requires_rationale": post.get("requires_rationale") in ("on", "true", "1"),
        "principle": post.get("principle", "").strip(),
    }
    for name, cast in NUMBERS.items():
        if name in ("min", "max", "target") and scale != "likert":
            continue
        raw = post.get(name, "").strip()
        if raw == "":
            if name in OPTIONAL_NUMBERS:
                data[name] = None
            continue
        try:
            data[name] = cast(raw)
        except ValueError:
            errors[name] = "enter a whole number" if cast is int else "enter a number"
    if scale == "likert" and data.get("target") is None:
        data.pop("target", None)
    levels = anchor_levels(scale, data.get("min", post.get("min")), data.get("max", post.get("max")))
    anchors = {lvl: post.get(f"anchor_{lvl}", "").strip() for lvl in levels}
    if levels:
        data["anchors"] = {k: v for k, v in anchors.items() if v}
    if scale == "spans":
        types = []
        for n, line in enumerate(post.get("error_types", "").splitlines(), start=1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("|")]
            if len(parts) < 2:
                errors["error_types"] = f"line {n}: write 'key | Name | description'"
                break
            types.append({"key": parts[0], "name": parts[1], "description": " | ".join(parts[2:])})
        data["error_types"] = types
    return data, errors


def field_of(path: str) -> str:
    """The form input a schema error path belongs to (``anchors.3`` → ``anchors``);
    errors about the criterion as a whole (min vs max) go to ``form``."""
    head = path.split(".", 1)[0]
    return "form" if head == "__all__" else head


def errors_by_field(errors: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, message in errors.items():
        field = field_of(path)
        detail = path.split(".", 1)[1] if "." in path else ""
        out.setdefault(field, f"{detail}: {message}" if detail and field in ("anchors", "error_types") else message)
    return out
