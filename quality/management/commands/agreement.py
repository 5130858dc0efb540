import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from quality import services

ORDER = ("raw_agreement", "krippendorff_alpha_nominal", "krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
         "fleiss_kappa", "gwet_ac1", "gwet_ac2", "cohen_kappa_quadratic")


class Command(BaseCommand):
    help = ("Agreement of a project's human labels (browser and imported) per criterion: raw agreement, "
            "Krippendorff's α, Fleiss' κ, Gwet's AC1/AC2, weighted Cohen's κ, each with its items and annotators.")

    def add_arguments(self, parser):
        parser.add_argument("project_slug")
        parser.add_argument("--criterion", help=f"One criterion's key ({services.OVERALL!r} for the pairwise choice).")
        parser.add_argument("--json", action="store_true", help="Print JSON: each statistic by name with n_items and n_raters.")

    def handle(self, *args, project_slug, criterion, **options):
        as_json = options["json"]
        project = Project.objects.filter(slug=project_slug).first()
        if project is None:
            raise CommandError(f"no project {project_slug!r}")
        try:
            result = services.project_agreement(project=project, criterion=criterion)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if as_json:
            self.stdout.write(_dumps(result))
            return
        if not result["criteria"]:
            self.stdout.write("No human labels yet: nothing to measure.")
        for crit in result["criteria"]:
            self.stdout.write(f"\n{crit['name']} ({crit['key']}, {crit['scale']})")
            self.stdout.write(f"  {'statistic':<28} {'value':>8} {'items':>7} {'raters':>7}")
            for name in ORDER:
                figure = crit["statistics"].get(name)
                if figure is None:
                    continue
                value = "—" if figure["value"] is None else f"{figure['value']:.4f}"
                extra = f"  ({figure['n_pairs']} annotator pairs)" if "n_pairs" in figure else ""
                self.stdout.write(f"  {name:<28} {value:>8} {figure['n_items']:>7} {figure['n_raters']:>7}{extra}")


def _dumps(result: dict) -> str:
    return jsonlib.dumps(result, indent=2, ensure_ascii=False)
