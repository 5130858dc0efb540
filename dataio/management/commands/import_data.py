from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate import services
from annotate.models import ImportJob, Project
from dataio.imports import services as imports
from dataio.imports.parsers import PARSERS


class Command(BaseCommand):
    help = "Import prompts, responses and labels into a project (all-or-nothing)."

    def add_arguments(self, parser):
        parser.add_argument("project_slug")
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", required=True, choices=sorted(PARSERS))
        parser.add_argument("--create-project", action="store_true", help="Create the project if it does not exist.")
        parser.add_argument("--name", help="Project name when creating it (default: the slug).")
        parser.add_argument(
            "--background", action="store_true", help="Queue the import for a Celery worker instead of running it here."
        )

    def handle(self, *args, project_slug, path, format, create_project, name, background, **options):
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        project = Project.objects.filter(slug=project_slug).first()
        if project is None:
            if not create_project:
                raise CommandError(f"no project {project_slug!r}; pass --create-project to create it")
            project = services.project_create(name=name or project_slug, slug=project_slug)
            self.stdout.write(f"Created project {project.slug}.")
        job = imports.import_job_create(project=project, format=format, source_path=path)
        if background:
            imports.import_job_enqueue(job=job)
            self.stdout.write(f"Queued import #{job.pk}; follow it on the project page.")
            return
        job = imports.import_job_run(job_id=job.pk)
        if job.status != ImportJob.Status.SUCCEEDED:
            raise CommandError(f"{path}: {job.error or job.status} (nothing was imported)")
        c = job.counts
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {c['records']} records into {project.slug}: "
                f"{c['prompts_created']} new prompts ({c['prompts_existing']} existing), "
                f"{c['responses_created']} new responses, {c['comparisons_created']} new comparisons, "
                f"{c.get('judgments_created', 0)} new judgments ({c.get('judgments_updated', 0)} already present), "
                f"{c.get('ratings_created', 0)} new ratings ({c.get('ratings_updated', 0)} already present), "
                f"{c.get('rankings_created', 0)} new rankings ({c.get('rankings_updated', 0)} already present), "
                f"{c.get('annotators', 0)} annotators."
            )
        )
