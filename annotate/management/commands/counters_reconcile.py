from django.core.management.base import BaseCommand, CommandError

from annotate.counters import counters_reconcile, counters_reconcile_all
from annotate.models import Project


class Command(BaseCommand):
    help = "Recompute the progress tallies and members' served counts from the raw rows (all projects, or one)."

    def add_arguments(self, parser):
        parser.add_argument("project_slug", nargs="?")

    def handle(self, *args, project_slug=None, **options):
        if project_slug is None:
            result = counters_reconcile_all()
        else:
            project = Project.objects.filter(slug=project_slug).first()
            if project is None:
                raise CommandError(f"no project {project_slug!r}")
            result = counters_reconcile(project=project)
        self.stdout.write(f"{result['wrong']} stored figures were wrong and are now recomputed")
