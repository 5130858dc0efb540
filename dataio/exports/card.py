"""The dataset card (``README.md``) of an export: options, counts, agreement (the
quality app's figures), rubric and columns."""

from __future__ import annotations

from django.template.defaultfilters import pluralize

from rubrics.models import RubricVersion
from quality.services import STATISTIC_HELP
from rubrics.portable import build_document

from .context import Column, Context
from .spec import AGGREGATIONS, FILE_FORMATS, FORMATS, PAIRWISE_FORMATS
from .writers import json_encode

FORMULAS = {
    True: "text cells starting with `=`, `+`, `-`, `@`, tab or CR (after any quotes) carry one more leading `'`, "
          "so that spreadsheets show them as text; the generic CSV importer removes it",
    False: "written as they are (a spreadsheet may run cells starting with `=`, `+`, `-` or `@` as formulas)",
}
COUNT_HELP = {
    "labels": "labels read",
    "items": "comparisons (or rated responses, rankings) with at least one usable label",
    "judgments": "judgments", "ratings": "ratings", "rankings": "rankings",
    "derived_excluded": "derived labels left out (made by a rubric rule, not by a person)",
    "derived_included": "derived labels included (asked for)",
    "adjudicated_excluded": "adjudicated labels left out (a researcher's final answer, not an annotator's label; "
                            "`--aggregate adjudicated` uses them)",
    "adjudicated_items": "comparisons whose row is a researcher's adjudicated answer",
    "excluded_tie_labels": "ties left out (labels)", "excluded_tie_items": "ties left out (comparisons)",
    "excluded_both_bad_labels": "both-bad left out (labels)", "excluded_both_bad_items": "both-bad left out (comparisons)",
    "excluded_vote_tied_items": "comparisons whose vote was tied, left out",
    "inferred_unvoted_items": "comparisons exported with a Dawid-Skene answer that none of their labels gave (agreement 0)",
    "excluded_min_agreement_labels": "labels on comparisons below the minimum agreement, left out",
    "excluded_min_agreement_items": "comparisons below the minimum agreement, left out",
    "excluded_criterion_missing": "labels without an A/B/tie answer for the criterion (n/a or not asked)",
    "excluded_tied_best_labels": "rankings whose best rank is shared, left out",
    "excluded_single_response_labels": "rankings with nothing to reject, left out",
    "excluded_rankings_labels": "rankings left out (no generic import schema carries them)",
    "excluded_ratings_labels": "ratings left out (the generic JSONL schema has none; use CSV or Parquet)",
}


def dataset_card(ctx: Context, columns: list[Column], exported_at) -> str:
    p, spec = ctx.project, ctx.spec
    licence = p.license or "unspecified"
    front = ["---", f"pretty_name: {json_encode(f'{p.name} ({spec.format})')}"]
    if p.license:
        front.append(f"license: {json_encode(p.license)}")
    front += ["tags:", "- preflab", "- human-preference", "---", ""]
    agg = f"`{spec.aggregate}`: {AGGREGATIONS[spec.aggregate]}" if spec.format in PAIRWISE_FORMATS else "`all` (every label)"
    lines = [
        *front,
        f"# {p.name}: `{spec.format}` export",
        "",
        f"Exported from the PrefLab project `{p.slug}` on {exported_at:%Y-%m-%d %H:%M} UTC.",
        "",
        "| | |", "|---|---|",
        f"| format | `{spec.format}`: {FORMATS[spec.format]} |",
        f"| file | `{spec.data_name}` ({FILE_FORMATS[spec.file_format]}) |",
        f"| snapshot | `{ctx.snapshot}` (labels with ids up to these; the same snapshot and options give the same rows) |",
        f"| aggregation | {agg} |",
    ]
    if spec.format in PAIRWISE_FORMATS:
        lines += [
            f"| answer | {'the overall preference' if spec.criterion is None else f'criterion `{spec.criterion}`'} |",
            f"| minimum agreement | {spec.min_agreement if spec.min_agreement is not None else 'none'} |",
            f"| margin | {'none' if spec.margin is None else f'absolute strength × {spec.margin:g}'} |",
        ]
    lines += [
        f"| derived labels | {'included' if spec.include_derived else 'excluded'} |",
        *([f"| formulas | {FORMULAS[spec.escape_formulas]} |"] if spec.file_format == "csv" else []),
        f"| licence | {licence} |",
        "", "## Counts", "", "| | |", "|---|---|", f"| rows written | {ctx.rows} |",
    ]
    for key, value in sorted(ctx.counts.items(), key=lambda kv: (list(COUNT_HELP).index(kv[0]) if kv[0] in COUNT_HELP else 99, kv[0])):
        lines.append(f"| {COUNT_HELP.get(key, key)} | {value} |")
    if ctx.agreement is not None:
        lines += ["", "## Agreement", "", *_agreement_lines(ctx.agreement)]
    lines += ["", "## Rubric", ""]
    versions = RubricVersion.objects.filter(pk__in=[k for k in ctx.rubric_versions if k]).select_related("rubric")
    for v in sorted(versions, key=lambda v: (v.rubric.slug, v.number)):
        doc = build_document(v)
        lines += [f"### {v.rubric.name} v{v.number} (`{v.rubric.slug}`): {ctx.rubric_versions[v.pk]} label{pluralize(ctx.rubric_versions[v.pk])}", ""]
        if doc["version"]["aggregation"]:
            lines += [f"Aggregation of criteria: {doc['version']['aggregation']}.", ""]
        for c in doc["criteria"]:
            lines.append(f"- **{c['key']}** ({c['name']}, {c['scale']}, {c['kind']}): {c['principle'] or c['description']}")
        lines.append("")
    if ctx.rubric_versions.get(None):
        lines += [f"{ctx.rubric_versions[None]} label{pluralize(ctx.rubric_versions[None])} {pluralize(ctx.rubric_versions[None], 'was,were')} made without a rubric version (e.g. imported).", ""]
    if not ctx.rubric_versions:
        lines += ["No labels.", ""]
    lines += ["## Columns", ""]
    as_text = spec.file_format != "jsonl"  # CSV cells and Parquet strings hold nested values as JSON text
    lines += [f"- `{name}`: {help_text}{' (JSON text)' if kind == 'json' and as_text else ''}" for name, kind, help_text in columns]
    return "\n".join(lines) + "\n"


def _agreement_lines(figures: dict[str, dict]) -> list[str]:
    """Quality's figures (``judgments_agreement``), named as ``manage.py agreement
    --json`` names them, each with the items and annotators behind it."""
    if not figures["raw_agreement"]["n_items"]:
        return ["No comparison has two or more human labels: agreement cannot be measured."]
    lines = [
        "The human labels of this snapshot (before aggregation and exclusions), on the answer this export uses, "
        "as `manage.py agreement` states them: each comparison counted in both namings of A and B.", "",
        "| statistic | value | items | annotators | |", "|---|---|---|---|---|",
    ]
    for name, figure in figures.items():
        value = "n/a" if figure["value"] is None else figure["value"]
        lines.append(f"| `{name}` | {value} | {figure['n_items']} | {figure['n_raters']} | {STATISTIC_HELP.get(name, '')} |")
    return lines

