"""What to export (``ExportSpec``, the formats and options) and snapshots: the
highest label ids an export reads."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import Max

from rubrics.schema import KEY_PATTERN

from annotate.models import ExportJob, Judgment, Project, Ranking, Rating

FORMATS = {
    "trl": "TRL preference pairs: prompt, chosen and rejected as text (optional margin).",
    "trl-conversational": "TRL conversational preference pairs: prompt, chosen and rejected as {role, content} turns.",
    "helpsteer2": "One row per rated response with the mean and count of each criterion (HelpSteer2-style).",
    "rankings": "One row per ranking: the prompt's responses best first, ties sharing a rank.",
    "best-of-n": "One row per ranking with a single best response: chosen, and the rest rejected.",
    "raw": "Every label (judgments, ratings, rankings) with pseudonymous annotators, rubric version and shown order.",
    "generic": "The generic import schema (JSONL, CSV or Parquet): re-imports into PrefLab unchanged.",
}
FILE_FORMATS = {"jsonl": "JSON Lines", "csv": "CSV", "parquet": "Parquet", "hf": "Hugging Face datasets folder"}
AGGREGATIONS = {
    "all": "every label is its own row, with its annotator's pseudonymous id",
    "majority": "one row per comparison: the most frequent answer (a tie in the vote is left out)",
    "dawid-skene": "one row per comparison: the answer Dawid-Skene infers, weighing annotators by their estimated confusion",
    "adjudicated": "one row per comparison: a researcher's adjudicated answer from the review queue where there is one "
                   "(kept whatever the minimum agreement), else the most frequent answer as with majority",
}
PAIRWISE_FORMATS = ("trl", "trl-conversational")
SNAPSHOT_RE = re.compile(r"p(\d+)-j(\d+)-r(\d+)-k(\d+)")


@dataclass(frozen=True)
class ExportSpec:
    """What to export. Invalid combinations raise ``ValueError`` with a sentence."""

    format: str
    file_format: str = "jsonl"
    aggregate: str = "all"
    min_agreement: float | None = None
    criterion: str | None = None
    margin: float | None = None  # scale of the margin column (|strength| × margin); None: no column
    include_derived: bool = False
    # CSV only: prefix a quote to text cells a spreadsheet would run as formulas (OWASP)
    escape_formulas: bool = True

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"unknown file format {self.file_format!r}; choose one of {', '.join(FILE_FORMATS)}")
        if self.format == "generic" and self.file_format == "hf":
            raise ValueError("the generic format is for re-import: choose jsonl, csv or parquet")
        if self.aggregate not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregate!r}; choose one of {', '.join(AGGREGATIONS)}")
        pairwise_only = {
            "aggregation": self.aggregate != "all", "min agreement": self.min_agreement is not None,
            "criterion": self.criterion is not None, "margin": self.margin is not None,
        }
        used = [name for name, on in pairwise_only.items() if on]
        if used and self.format not in PAIRWISE_FORMATS:
            raise ValueError(f"{used[0]} applies to the pairwise formats ({', '.join(PAIRWISE_FORMATS)}) only")
        if self.min_agreement is not None and not 0 < self.min_agreement <= 1:
            raise ValueError("min agreement is a share between 0 (exclusive) and 1")
        if self.criterion is not None and not re.fullmatch(KEY_PATTERN, self.criterion):
            raise ValueError("a criterion key is lower-case letters, digits and _")
        if self.margin is not None and not (math.isfinite(self.margin) and self.margin > 0):
            raise ValueError("the margin scale must be a positive number")
        if self.aggregate == "adjudicated" and self.criterion is not None:
            raise ValueError("adjudications settle the overall preference, not a criterion: aggregate a criterion otherwise")
        if self.margin is not None and self.criterion is not None:
            raise ValueError("per-criterion choices carry no strength, so a criterion split has no margin")
        if not self.escape_formulas and self.format == "generic" and self.file_format == "csv":
            raise ValueError("the generic CSV always escapes formulas: its importer takes the escape off, so it "
                             "re-imports exactly (Parquet and JSONL escape nothing)")

    def writer_options(self) -> dict[str, Any]:
        return {"escape_formulas": self.escape_formulas} if self.file_format == "csv" else {}

    def options(self) -> dict[str, Any]:
        data = asdict(self)
        del data["format"], data["file_format"]
        return data

    @classmethod
    def from_job(cls, job: ExportJob) -> "ExportSpec":
        return cls(format=job.format, file_format=job.file_format, **job.options)

    @property
    def data_name(self) -> str:
        stem = f"{self.format}-{self.criterion}" if self.criterion else self.format
        return stem if self.file_format == "hf" else f"{stem}.{self.file_format}"


@dataclass(frozen=True)
class Snapshot:
    project_id: int
    judgment: int
    rating: int
    ranking: int

    def __str__(self) -> str:
        return f"p{self.project_id}-j{self.judgment}-r{self.rating}-k{self.ranking}"


def snapshot_take(*, project: Project) -> Snapshot:
    """The highest label ids of the project now."""

    def top(qs) -> int:
        return qs.aggregate(m=Max("id"))["m"] or 0

    return Snapshot(
        project.pk,
        top(Judgment.objects.filter(comparison__project=project)),
        top(Rating.objects.filter(response__prompt__project=project)),
        top(Ranking.objects.filter(prompt__project=project)),
    )


def snapshot_parse(*, project: Project, text: str) -> Snapshot:
    m = SNAPSHOT_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a snapshot id: {text!r} (expected p<project>-j<id>-r<id>-k<id>)")
    snap = Snapshot(*map(int, m.groups()))
    if snap.project_id != project.pk:
        raise ValueError(f"snapshot {text} belongs to another project")
    return snap
