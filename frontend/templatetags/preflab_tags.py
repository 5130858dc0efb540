"""Small template helpers the task pages need."""

from django import template

register = template.Library()


@register.filter
def lookup(mapping, key):
    """``values|lookup:"crit_x"`` – a form value by computed name (QueryDict or dict)."""
    if mapping is None:
        return None
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def prefixed(key, prefix):
    return f"{prefix}{key}"


@register.filter
def levels(criterion):
    """The options of a rating criterion as (value, label, anchor, key) tuples."""
    scale = criterion.get("scale")
    anchors = criterion.get("anchors") or {}
    if scale == "likert":
        lo, hi = criterion.get("min", 0), criterion.get("max", 4)
        return [(str(v), str(v), anchors.get(str(v), ""), str(v) if 0 <= v <= 9 else "") for v in range(lo, hi + 1)]
    if scale == "binary":
        return [("yes", "Yes", anchors.get("yes", ""), "1"), ("no", "No", anchors.get("no", ""), "2")]
    if scale == "severity":
        return [(lvl, lvl.capitalize(), anchors.get(lvl, ""), str(i + 1))
                for i, lvl in enumerate(("none", "minor", "moderate", "severe"))]
    return []
