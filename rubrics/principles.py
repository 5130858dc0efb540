"""Compile a criterion into one sentence ("The response …").

LLM judges and principle-following reward models (RLBFF, OpenRubrics) take a rubric
as a list of short natural-language principles. The sentence is compiled once,
when the criterion is written, and stored with the version, so an export made
today and one made next year from the same version carry the same words even if
this compiler changes. A researcher may also write the sentence by hand.

Pure function over the flat criterion dict; no Django import (the migration that
back-fills old criteria uses it too).
"""

from __future__ import annotations

import re
from typing import Any

_MARKUP = re.compile(r"[*_`#>]+")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def _first_sentence(markdown: str) -> str:
    text = _LINK.sub(r"\1", markdown or "")
    text = _MARKUP.sub("", text)
    text = " ".join(text.split())
    if not text:
        return ""
    sentence = _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".!? ")
    return sentence


def _lower_first(text: str) -> str:
    # Keep acronyms ("HTML must …") and proper names that start with two capitals.
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def compile_principle(spec: dict[str, Any]) -> str:
    """One sentence for the criterion ``spec`` (the flat dict of the schema)."""
    name = spec["name"].strip()
    scale = spec["scale"]
    polarity = spec.get("polarity", "higher_better")
    hard = spec.get("kind") == "hard_rule"
    detail = _first_sentence(spec.get("description", ""))
    label = name.lower() if not name.isupper() else name

    if scale == "spans":
        types = ", ".join(e["name"].lower() for e in spec.get("error_types") or [])
        head = f"The response {'must' if hard else 'should'} avoid {label}"
        head += f" ({types})" if types else ""
    elif scale == "severity":
        head = f"The response {'must' if hard else 'should'} have no {label} problems"
    elif scale == "pairwise":
        head = f"The better response is the one that is better on {label}"
    elif polarity == "target":
        target = spec.get("target")
        head = (
            f"The response {'must' if hard else 'should'} have the right amount of {label}, "
            f"about {_number(target)} on a {spec.get('min')}–{spec.get('max')} scale"
        )
    elif scale == "binary":
        verb = "must" if hard else "should"
        head = f"The response {verb} {'not ' if polarity == 'lower_better' else ''}satisfy: {name}"
    else:
        verb = "must" if hard else "should"
        level = "low" if polarity == "lower_better" else "high"
        head = f"The response {verb} rate {level} on {label}"
        threshold = spec.get("threshold")
        if hard and threshold is not None:
            head += f" ({'at most' if polarity == 'lower_better' else 'at least'} {_number(threshold)})"

    if detail and detail.lower() != name.lower():
        return f"{head}: {_lower_first(detail)}."
    return f"{head}."
