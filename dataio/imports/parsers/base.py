"""What every parser shares: the record dataclasses a parser yields, ``ImportRejected``,
the line and JSON readers (UTF-8 checked, line numbers kept) and the small field
validators. No database, and no Django: the benchmarks read files through these
parsers on machines without it."""

from __future__ import annotations

import contextlib
import contextvars
import gzip
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

ROLES = ("system", "user", "assistant")
CHOICES = ("A", "B", "tie", "both_bad")
CRITERION_CHOICES = ("A", "B", "tie", "na")
MAX_TEXT = 1_000_000
MAX_ID = 255


class ImportRejected(Exception):
    """The file is rejected as a whole; nothing was written."""

    def __init__(self, message: str, *, line: int | None = None, field: str = "", unit: str = "line"):
        self.message = message
        self.line = line  # for Parquet, the 1-based row number (unit "row")
        self.field = field
        self.unit = unit
        where = []
        if line is not None:
            where.append(f"{unit} {line}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass
class ResponseRecord:
    external_id: str
    text: str
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelRecord:
    a: str  # response external ids, in the order the file gave them
    b: str
    annotator: str
    choice: str  # relative to (a, b)
    strength: int | None = None  # magnitude 0..3, or None when unknown
    criteria: dict[str, str] = field(default_factory=dict)
    rationale: str = ""
    time_on_task_ms: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RatingRecord:
    response: str  # a response external id of the same record
    annotator: str
    scores: dict[str, Any]  # {criterion_key: value, or None for N/A}
    rationale: str = ""
    spans: list[dict[str, Any]] = field(default_factory=list)  # {start, end, type, …}: offsets into that response's text
    metadata: dict[str, Any] = field(default_factory=dict)
    time_on_task_ms: int | None = None


@dataclass
class RankingRecord:
    annotator: str
    groups: list[list[str]]  # response external ids, best group first; ties share a group
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    line: int
    prompt_id: str
    conversation: list[dict[str, str]]
    prompt_metadata: dict[str, Any]
    responses: list[ResponseRecord]
    labels: list[LabelRecord] = field(default_factory=list)
    ratings: list[RatingRecord] = field(default_factory=list)
    rankings: list[RankingRecord] = field(default_factory=list)
    unit: str = "line"  # what ``line`` counts: file lines, or Parquet rows


def text_id(*parts: str) -> str:
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:20]


def conversation_id(conversation: list[dict[str, str]]) -> str:
    return text_id(json.dumps(conversation, ensure_ascii=False, sort_keys=True))


# --- reading -------------------------------------------------------------------


@dataclass
class ReadLimits:
    """How much a file may inflate to, how long one line (or one JSON array element)
    may be, and a check called every ``check_every`` bytes read (the import service
    passes its cancel check). A gzip of a few MB can inflate to many GB, as one
    endless line or as billions of blank ones: both stop at these caps, and a cancel
    request is seen while they are read, not only between records."""

    max_inflated: int = 2 * 1024**3
    max_line: int = 16 * 1024**2
    check: Callable[[], None] | None = None
    check_every: int = 1024**2


_LIMITS: contextvars.ContextVar[ReadLimits] = contextvars.ContextVar("import_read_limits", default=ReadLimits())


@contextlib.contextmanager
def read_limits(limits: ReadLimits) -> Iterator[None]:
    """Apply ``limits`` to every file the parsers read inside this block."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


def _size(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


class _Meter:
    """Counts the bytes read from the (inflated) file against the limits."""

    def __init__(self) -> None:
        self.limits = _LIMITS.get()
        self.total = 0
        self.next_check = self.limits.check_every

    def add(self, n: int) -> None:
        self.total += n
        if self.total > self.limits.max_inflated:
            raise ImportRejected(f"the file inflates past {_size(self.limits.max_inflated)}; split it into smaller files")
        if self.total >= self.next_check:
            self.next_check = self.total + self.limits.check_every
            if self.limits.check is not None:
                self.limits.check()


def _open_bytes(path: Path) -> io.BufferedIOBase:
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw  # type: ignore[return-value]


def _iter_all_lines(path: Path, *, skip_blank: bool | Callable[[], bool] = False) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for every physical line, decoding UTF-8 strictly;
    while ``skip_blank`` is (or returns) true, lines of blank space are left out. A line is read with a
    bound (``readline``), so an endless one costs no more memory than the line cap,
    and runs of blank lines are skipped a buffer at a time."""
    meter = _Meter()
    cap = meter.limits.max_line
    with _open_bytes(path) as fh:
        try:
            number = 0
            while True:
                skipping = skip_blank() if callable(skip_blank) else skip_blank
                if skipping and (blank := _blank_run(fh.peek(BLANK_PEEK))):
                    fh.read(blank[0])
                    meter.add(blank[0])
                    number += blank[1]
                    continue
                raw = fh.readline(cap + 1)
                if not raw:
                    break
                number += 1
                meter.add(len(raw))
                if len(raw.rstrip(b"\r\n")) > cap:
                    raise ImportRejected(f"line {number} is longer than {_size(cap)}", line=number)
                if skipping and not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ImportRejected(
                        f"invalid UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8",
                        line=number,
                    ) from None
                yield number, text.removeprefix("\ufeff") if number == 1 else text
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ImportRejected(f"cannot read the file: {exc}") from None


BLANK_PEEK = 64 * 1024


def _blank_run(ahead: bytes) -> tuple[int, int] | None:
    """(bytes, lines) of the whole blank lines at the start of ``ahead``, if any."""
    stripped = len(ahead) - len(ahead.lstrip(b" \t\r\n"))
    cut = ahead.rfind(b"\n", 0, stripped) + 1
    return (cut, ahead.count(b"\n", 0, cut)) if cut else None


def _read_all(path: Path) -> bytes:
    """The whole inflated file (a JSON array is parsed whole), read in blocks under
    the limits."""
    meter = _Meter()
    blocks = []
    with _open_bytes(path) as fh:
        try:
            while block := fh.read(1024 * 1024):
                meter.add(len(block))
                blocks.append(block)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ImportRejected(f"cannot read the file: {exc}") from None
    return b"".join(blocks)


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for non-blank lines, decoding UTF-8 strictly."""
    seen_any = False
    for number, text in _iter_all_lines(path, skip_blank=True):
        if text.strip():
            seen_any = True
            yield number, text
    if not seen_any:
        raise ImportRejected("the file is empty: no records found")


def _json_line(number: int, text: str) -> dict[str, Any]:
    """One line of JSON Lines: a JSON object."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRejected(f"not valid JSON ({exc.msg} at column {exc.colno})", line=number) from None
    if not isinstance(obj, dict):
        raise ImportRejected(f"expected a JSON object, got {type(obj).__name__}", line=number)
    return obj


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in iter_lines(path):
        yield number, _json_line(number, text)


def _starts_with_bracket(path: Path) -> bool:
    """Whether the first character after blank space (and a BOM) is ``[``."""
    meter = _Meter()
    with _open_bytes(path) as fh:
        try:
            while block := fh.read(64 * 1024):
                meter.add(len(block))
                rest = block.lstrip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
                if rest:
                    return rest.startswith(b"[")
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ImportRejected(f"cannot read the file: {exc}") from None
    return False


def iter_json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A JSON array of objects, or JSON Lines: whichever the file holds."""
    if not _starts_with_bracket(path):
        yield from iter_json_lines(path)
        return
    # The whole text (blank lines included, so offsets map to real line numbers); an
    # array may be one long line, so the line cap applies to each element instead.
    data = _read_all(path)
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise ImportRejected(f"invalid UTF-8 (byte {exc.start - line_start + 1} of the line); save the file as UTF-8",
                             line=data.count(b"\n", 0, exc.start) + 1) from None
    del data
    cap = _LIMITS.get().max_line
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset: int) -> int:
        lo, hi = 0, len(line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    ws = re.compile(r"\s*")
    expecting_value = True
    while True:
        pos = ws.match(text, pos).end()
        if pos >= len(text):
            raise ImportRejected("the JSON array is not closed (missing ']')", line=line_of(len(text) - 1))
        if text[pos] == "]":
            return
        if not expecting_value:
            if text[pos] != ",":
                raise ImportRejected("expected ',' or ']' between array elements", line=line_of(pos))
            pos = ws.match(text, pos + 1).end()
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ImportRejected(f"not valid JSON ({exc.msg})", line=exc.lineno) from None
        # A character is at most 4 bytes: encode only elements that may be too long.
        if end - pos > cap // 4 and len(text[pos:end].encode("utf-8")) > cap:
            raise ImportRejected(f"the record at line {line_of(pos)} is longer than {_size(cap)}", line=line_of(pos))
        if not isinstance(obj, dict):
            raise ImportRejected(f"expected a JSON object, got {type(obj).__name__}", line=line_of(pos))
        yield line_of(pos), obj
        pos = end
        expecting_value = False


# --- field helpers -------------------------------------------------------------


def _req(obj: dict[str, Any], key: str, line: int, kind: type | tuple[type, ...], *, prefix: str = "") -> Any:
    name = f"{prefix}{key}"
    if key not in obj or obj[key] is None:
        raise ImportRejected("missing required field", line=line, field=name)
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ImportRejected(f"expected {expected}, got {type(value).__name__}", line=line, field=name)
    return value


def _text(value: Any, line: int, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ImportRejected(f"expected a string, got {type(value).__name__}", line=line, field=name)
    if not allow_empty and not value.strip():
        raise ImportRejected("must not be empty", line=line, field=name)
    if len(value) > MAX_TEXT:
        raise ImportRejected(f"longer than {MAX_TEXT} characters", line=line, field=name)
    if "\x00" in value:
        raise ImportRejected("contains a NUL character", line=line, field=name)
    return value


def _ident(value: Any, line: int, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ImportRejected(f"expected a string or integer id, got {type(value).__name__}", line=line, field=name)
    value = str(value).strip()
    if not value or len(value) > MAX_ID:
        raise ImportRejected(f"ids must be 1..{MAX_ID} characters", line=line, field=name)
    return value


def _dict(obj: dict[str, Any], key: str, line: int, prefix: str = "") -> dict[str, Any]:
    value = {} if obj.get(key) is None else obj[key]
    if not isinstance(value, dict):
        raise ImportRejected(f"expected an object, got {type(value).__name__}", line=line, field=f"{prefix}{key}")
    return value


def _conversation(value: Any, line: int, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ImportRejected("expected a non-empty list of {role, content} turns", line=line, field=name)
    turns = []
    for i, turn in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(turn, dict):
            raise ImportRejected("expected an object with role and content", line=line, field=where)
        role = turn.get("role")
        if role not in ROLES:
            raise ImportRejected(f"role must be one of {', '.join(ROLES)}", line=line, field=f"{where}.role")
        turns.append({"role": role, "content": _text(turn.get("content"), line, f"{where}.content")})
    if turns[-1]["role"] == "assistant":
        raise ImportRejected("the conversation must end with a user (or system) turn", line=line, field=name)
    return turns
