"""Criterion settings, validated as a discriminated union on ``scale`` (DESIGN §3).

A criterion is stored in the ``Criterion`` table with its common fields as columns
and its scale-specific settings (min/max, anchors, error types, target) in
``config``; this module is the single place that says what is valid, used by the
services, the admin form, template loading and (later) the editor and the API.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_ANCHOR = 2_000
MAX_PRINCIPLE = 1_000
MAX_LIKERT_LEVELS = 11
SEVERITY_LEVELS = ("none", "minor", "moderate", "severe")
BINARY_LEVELS = ("yes", "no")
PAIRWISE_ANSWERS = ("A", "B", "tie")

Polarity = Literal["higher_better", "lower_better", "target"]
Kind = Literal["principle", "hard_rule"]


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(pattern=KEY_PATTERN, description="Stable slug, kept across versions.")
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str = Field(default="", max_length=MAX_DESCRIPTION, description="Markdown.")
    polarity: Polarity = "higher_better"
    kind: Kind = "principle"
    weight: float = Field(default=1.0, ge=0, le=1000, description="For weighted-sum aggregation.")
    priority: int = Field(default=1, ge=1, le=100, description="1 decides first in hierarchical derivation.")
    margin: float = Field(default=0.0, ge=0, description="Differences within the margin count as ties.")
    threshold: float | None = Field(default=None, description="Constraint value, if any.")
    na_allowed: bool = False
    requires_rationale: bool = False
    principle: str = Field(
        default="", max_length=MAX_PRINCIPLE,
        description="One sentence for LLM judges; compiled from the other fields when left empty.",
    )

    # -- answers: what a label may say on this scale, and what it is worth --------
    # Every place that reads or writes an answer (the queue's submits, derivation,
    # training data, exports, the task page) asks the scale, so the meaning of an
    # answer is written once.

    def levels(self) -> tuple[str, ...]:
        """The answer levels, as the strings a form posts and anchors are keyed by."""
        return ()

    def level_label(self, level: str) -> str:
        return level

    def number_range(self) -> tuple[float, float]:
        """The worst-to-best span of ``as_number`` in raw units (before polarity)."""
        return 0.0, 1.0

    def clean_answer(self, value: Any) -> Any:
        """The stored form of one answer, or ``AnswerError`` saying what is allowed.
        ``None`` is N/A, accepted only where the criterion allows it."""
        if value is None:
            if self.na_allowed:
                return None
            raise AnswerError("N/A is not allowed for this criterion")
        return self._clean(value)

    def _clean(self, value: Any) -> Any:
        raise AnswerError(f"a {self.scale} criterion is not answered directly")

    def as_number(self, value: Any) -> float | None:
        """A stored answer as a number, or None when absent, N/A or invalid."""
        return None


class LikertCriterion(_Common):
    scale: Literal["likert"]
    min: int = Field(ge=-10, le=10)
    max: int = Field(ge=-10, le=10)
    anchors: dict[str, Annotated[str, Field(max_length=MAX_ANCHOR)]] = Field(default_factory=dict)
    target: float | None = None

    def levels(self) -> tuple[str, ...]:
        return tuple(str(v) for v in range(self.min, self.max + 1))

    def number_range(self) -> tuple[float, float]:
        return float(self.min), float(self.max)

    def _clean(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and self.min <= value <= self.max:
            return value
        raise AnswerError(f"a whole number from {self.min} to {self.max}")

    def as_number(self, value: Any) -> float | None:
        number = _plain_number(value)
        return number if number is not None and self.min <= number <= self.max else None

    @model_validator(mode="after")
    def _check(self) -> "LikertCriterion":
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        if self.max - self.min + 1 > MAX_LIKERT_LEVELS:
            raise ValueError(f"a Likert scale has at most {MAX_LIKERT_LEVELS} levels")
        levels = {str(v) for v in range(self.min, self.max + 1)}
        stray = sorted(set(self.anchors) - levels)
        if stray:
            raise ValueError(f"anchors name levels outside {self.min}..{self.max}: {', '.join(stray)}")
        if self.polarity == "target":
            if self.target is None:
                raise ValueError("polarity 'target' needs a target value")
            if not self.min <= self.target <= self.max:
                raise ValueError(f"target {self.target} is outside {self.min}..{self.max}")
        elif self.target is not None:
            raise ValueError("target is only used with polarity 'target'")
        return self


class BinaryCriterion(_Common):
    scale: Literal["binary"]
    anchors: dict[Literal["yes", "no"], Annotated[str, Field(max_length=MAX_ANCHOR)]] = Field(default_factory=dict)

    def levels(self) -> tuple[str, ...]:
        return BINARY_LEVELS

    def level_label(self, level: str) -> str:
        return level.capitalize()

    def _clean(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise AnswerError("yes or no")

    def as_number(self, value: Any) -> float | None:
        return _binary_number(value)

    @model_validator(mode="after")
    def _check(self) -> "BinaryCriterion":
        if self.polarity == "target":
            raise ValueError("polarity 'target' needs a Likert scale")
        return self


class PairwiseCriterion(_Common):
    scale: Literal["pairwise"]

    def levels(self) -> tuple[str, ...]:
        return PAIRWISE_ANSWERS

    def _clean(self, value: Any) -> str:
        if value in PAIRWISE_ANSWERS or (value == "na" and self.na_allowed):
            return value
        raise AnswerError("must be A, B or tie" + (" or na" if self.na_allowed else ""))

    @model_validator(mode="after")
    def _check(self) -> "PairwiseCriterion":
        if self.polarity != "higher_better":
            raise ValueError("a pairwise criterion is answered as A/B/tie; polarity must be 'higher_better'")
        return self


class SeverityCriterion(_Common):
    scale: Literal["severity"]
    polarity: Polarity = "lower_better"
    anchors: dict[Literal["none", "minor", "moderate", "severe"], Annotated[str, Field(max_length=MAX_ANCHOR)]] = (
        Field(default_factory=dict)
    )

    def levels(self) -> tuple[str, ...]:
        return SEVERITY_LEVELS

    def level_label(self, level: str) -> str:
        return level.capitalize()

    def number_range(self) -> tuple[float, float]:
        return 0.0, float(len(SEVERITY_LEVELS) - 1)

    def _clean(self, value: Any) -> str:
        if value in SEVERITY_LEVELS:
            return value
        raise AnswerError("none, minor, moderate or severe")

    def as_number(self, value: Any) -> float | None:
        return _severity_number(value)

    @model_validator(mode="after")
    def _check(self) -> "SeverityCriterion":
        if self.polarity != "lower_better":
            raise ValueError("severity is always lower-better")
        return self


class ErrorType(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str = Field(default="", max_length=MAX_ANCHOR)


class SpansCriterion(_Common):
    scale: Literal["spans"]
    polarity: Polarity = "lower_better"
    error_types: list[ErrorType] = Field(min_length=1, max_length=50)

    def as_number(self, value: Any) -> float | None:
        # The number of tagged errors of this criterion's types; unbounded above.
        number = _plain_number(value)
        return number if number is not None and number >= 0 else None

    @model_validator(mode="after")
    def _check(self) -> "SpansCriterion":
        keys = [e.key for e in self.error_types]
        if len(keys) != len(set(keys)):
            raise ValueError("error type keys must be unique")
        return self


CriterionSpec = Annotated[
    Union[LikertCriterion, BinaryCriterion, PairwiseCriterion, SeverityCriterion, SpansCriterion],
    Field(discriminator="scale"),
]
_adapter: TypeAdapter[Any] = TypeAdapter(CriterionSpec)

COMMON_FIELDS = tuple(_Common.model_fields) + ("scale",)


class AnswerError(ValueError):
    """An answer the criterion's scale does not allow; the message says what does."""


def _plain_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _binary_number(value: Any) -> float | None:
    # Stored as true/false: yes = 1, no = 0.
    return (1.0 if value else 0.0) if isinstance(value, bool) else None


def _severity_number(value: Any) -> float | None:
    # none = 0, minor = 1, moderate = 2, severe = 3: the level's position.
    return float(SEVERITY_LEVELS.index(value)) if value in SEVERITY_LEVELS else None


SCALES: dict[str, type[_Common]] = {
    "likert": LikertCriterion, "binary": BinaryCriterion, "pairwise": PairwiseCriterion,
    "severity": SeverityCriterion, "spans": SpansCriterion,
}


def scale_of(spec: dict[str, Any]) -> _Common:
    """The scale object of a stored criterion (``Criterion.as_spec()`` or a version
    document's criterion), to ask it about answers. Stored criteria were validated
    when written, so this only builds the object."""
    return validate_criterion(spec)


def answer_number(value: Any) -> float | None:
    """A stored rating answer as a number when its criterion is not at hand (a
    dataset mixes rubric versions): the stored type says the scale, since each
    scale stores its own type (binary a bool, severity a level, Likert a number)."""
    if isinstance(value, bool):
        return _binary_number(value)
    if isinstance(value, str):
        return _severity_number(value)
    return _plain_number(value)


class CriterionError(ValueError):
    """Invalid criterion settings; ``errors`` maps a field path to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


KEY_IN_WORDS = "a key is lowercase letters, digits and _, starting with a letter (at most 64 characters)"


def _in_words(err: dict[str, Any]) -> str:
    """Pydantic's message for one error, said as a person would: the editor and
    the API show it next to the field (a regular expression helps nobody)."""
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == KEY_PATTERN:
        return KEY_IN_WORDS
    if kind == "missing":
        return "required"
    if kind == "string_too_short":
        return "cannot be empty"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "a whole number"
    if kind in ("float_parsing", "float_type"):
        return "a number"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        words = {"greater_than_equal": "at least", "less_than_equal": "at most",
                 "greater_than": "more than", "less_than": "less than"}
        return f"{words[kind]} {next(iter(ctx.values()))}"
    if kind == "extra_forbidden":
        return "not a setting of this scale"
    if kind == "literal_error":
        return f"one of {ctx.get('expected', '')}".replace("'", "")
    return err["msg"].removeprefix("Value error, ")


def validate_criterion(data: dict[str, Any]) -> BaseModel:
    """Validate one criterion dict (flat: common fields + scale settings)."""
    try:
        return _adapter.validate_python(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            # The first location element is the union tag ("likert"); drop it.
            loc = [str(p) for p in err["loc"]]
            if loc and loc[0] == data.get("scale"):
                loc = loc[1:]
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = ["scale"]
            field = ".".join(loc) or "__all__"
            errors.setdefault(field, _in_words(err))
        raise CriterionError(errors) from None


def split_spec(spec: BaseModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a validated spec into (column fields, scale-specific config)."""
    data = spec.model_dump(mode="json")
    columns = {k: data.pop(k) for k in COMMON_FIELDS}
    return columns, data
