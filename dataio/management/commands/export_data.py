from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from dataio.exports.services import export_write
from dataio.exports.spec import AGGREGATIONS, FILE_FORMATS, FORMATS, ExportSpec


class Command(BaseCommand):
    help = "Export a project's labels as a dataset folder (the data and a README.md card), in this process."
    # The checks import the URLconf and every view (30 MB of a 150 MB budget at 1M
    # labels) and guard nothing this command uses; ``manage.py check`` still runs them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("project_slug")
        parser.add_argument("--format", required=True, choices=list(FORMATS))
        parser.add_argument("--out", required=True, type=Path, help="The export folder to create (must not hold files).")
        parser.add_argument("--file-format", default="jsonl", choices=list(FILE_FORMATS))
        parser.add_argument("--aggregate", default="all", choices=list(AGGREGATIONS), help="Pairwise formats: "
                            + "; ".join(f"{k}: {v}" for k, v in AGGREGATIONS.items()).replace("%", "%%") + ".")
        parser.add_argument("--min-agreement", type=float, help="Drop comparisons whose majority share is below this.")
        parser.add_argument("--criterion", help="Export one pairwise criterion's choices instead of the overall preference.")
        parser.add_argument("--margin", type=float, help="Add a margin column: |strength| times this.")
        parser.add_argument("--include-derived", action="store_true", help="Include labels derived by a rubric rule.")
        parser.add_argument("--no-escape-formulas", dest="escape_formulas", action="store_false",
                            help="CSV: write cells starting with = + - @ as they are (default: prefix a quote, as OWASP "
                            "advises; the generic CSV always escapes, and its importer undoes it).")
        parser.add_argument("--snapshot", help="Re-export an earlier snapshot id (default: now).")

    def handle(self, *args, project_slug, out, snapshot, **options):
        project = Project.objects.filter(slug=project_slug).first()
        if project is None:
            raise CommandError(f"no project {project_slug!r}")
        try:
            spec = ExportSpec(
                format=options["format"], file_format=options["file_format"], aggregate=options["aggregate"],
                min_agreement=options["min_agreement"], criterion=options["criterion"], margin=options["margin"],
                include_derived=options["include_derived"], escape_formulas=options["escape_formulas"],
            )
            result = export_write(project=project, spec=spec, out=out, snapshot=snapshot)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
        self.stdout.write(f"snapshot {result.snapshot}; {counts}")
        self.stdout.write(self.style.SUCCESS(f"Wrote {result.rows} rows to {result.data_path} (card: {result.card_path})."))
