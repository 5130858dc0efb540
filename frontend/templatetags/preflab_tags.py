"""Small template helpers the task pages need."""

from django import template
from django.template.defaultfilters import pluralize

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
    """The options of a rating criterion as (value, label, anchor, key) tuples; the
    levels come from the scale (``rubrics.schema``). The key is the level itself
    when it is a single digit (Likert 0–9), else the option's position."""
    from rubrics.schema import scale_of

    scale = scale_of(criterion)
    anchors = criterion.get("anchors") or {}
    options = []
    for i, level in enumerate(scale.levels()):
        key = level if criterion.get("scale") == "likert" else str(i + 1)
        options.append((level, scale.level_label(level), anchors.get(level, ""), key if len(key) == 1 else ""))
    return options


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
    from rubrics.access import is_researcher as rubric_library_user

    return rubric_library_user(user)


@register.filter
def label_words(figure, noun):
    """``counts.judgments|label_words:"judgment"`` → "judgments (12 derived)": the
    words after the number of a ``rubrics.models.label_counts`` figure."""
    total, derived = (figure or {}).get("total", 0), (figure or {}).get("derived", 0)
    words = f"{noun}{pluralize(total)}"
    return f"{words} ({derived} derived)" if derived else words


@register.filter
def label_count(figure, noun):
    """``counts.judgments|label_count:"judgment"`` → "437 judgments (12 derived)"."""
    return f"{(figure or {}).get('total', 0)} {label_words(figure, noun)}"


LABEL_NOUNS = {"judgments": "judgment", "ratings": "rating", "rankings": "ranking"}


@register.filter
def label_counts_text(counts):
    """All kinds of a ``label_counts`` result in one line ("3 judgments (1 derived),
    1 rating"), kinds without labels left out; "none" when there are none."""
    parts = [label_count(counts[k], noun) for k, noun in LABEL_NOUNS.items() if (counts or {}).get(k, {}).get("total")]
    return ", ".join(parts) or "none"
