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


@register.filter
def highlight_spans(text, spans):
    """The raw text, escaped, with each stored span wrapped in <mark> (offsets are
    character positions in the raw text; overlapping spans keep the first)."""
    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    text = text or ""
    out, at = [], 0
    for s in sorted(spans or [], key=lambda s: (s.get("start", 0), s.get("end", 0))):
        start, end = s.get("start"), s.get("end")
        if not (isinstance(start, int) and isinstance(end, int)) or start < at or end > len(text) or start >= end:
            continue
        out.append(escape(text[at:start]))
        out.append(f'<mark data-type="{escape(s.get("type", ""))}" title="{escape(s.get("type", ""))}">{escape(text[start:end])}</mark>')
        at = end
    out.append(escape(text[at:]))
    return mark_safe("".join(out))


@register.filter
def is_researcher(user) -> bool:
    """Staff, or a researcher in some project: who may open the rubric library."""
    if not getattr(user, "is_authenticated", False):
        return False
    from annotate.models import Membership, Role

    return user.is_staff or Membership.objects.filter(user=user, role=Role.RESEARCHER).exists()
