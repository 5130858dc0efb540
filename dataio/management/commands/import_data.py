from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotate import services
from annotate.models import ImportJob, Project, Role
from dataio.imports import services as imports
from dataio.imports.parsers import PARSERS


class ImportFailed(Exception):
    """Raised inside the creating transaction so the new project goes with the rows."""


class Command(BaseCommand):
    help = "Import prompts, responses and labels into a project (all-or-nothing)."
    requires_system_checks = []  # as export_data: the URLconf's 30 MB, for nothing this command uses

    def add_arguments(self, parser):
        parser.add_argument("project_slug")
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", required=True, choices=sorted(PARSERS))
        parser.add_argument(
            "--create-project", action="store_true",
            help="Create the project if it does not exist, together with its rows: a failed import leaves no project.",
        )
        parser.add_argument("--name", help="Project name when creating it (default: the slug).")
        parser.add_argument(
            "--owner", help="With --create-project: the username made a researcher of the new project "
            "(default: the only superuser, if there is exactly one; else nobody, and only staff see the project).",
        )
        parser.add_argument(
            "--background", action="store_true", help="Queue the import for a Celery worker instead of running it here."
        )

    def handle(self, *args, project_slug, path, format, create_project, name, owner, background, **options):
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        project = Project.objects.filter(slug=project_slug).first()
        if project is not None:
            job = imports.import_job_create(project=project, format=format, source_path=path)
            if background:
                imports.import_job_enqueue(job=job)
                self.stdout.write(f"Queued import #{job.pk}; follow it on the project page.")
                return
            job = imports.import_job_run(job_id=job.pk)
            if job.status != ImportJob.Status.SUCCEEDED:
                raise CommandError(f"{path}: {job.error or job.status} (nothing was imported)")
        elif not create_project:
            raise CommandError(f"no project {project_slug!r}; pass --create-project to create it")
        elif background:
            raise CommandError("--create-project runs the import here, so that the project and its rows are created "
                               "together or not at all; create the project first to import in the background")
        else:
            job = self._create_and_import(project_slug, name, self._owner(owner), format, path)
            project = job.project
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

    def _owner(self, username: str | None):
        """The user who becomes the new project's researcher, or None (said aloud)."""
        users = get_user_model().objects
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"--owner {username!r}: no such user (nothing was created)")
            return user
        superusers = list(users.filter(is_superuser=True, is_active=True)[:2])
        if len(superusers) == 1:
            self.stdout.write(f"No --owner: {superusers[0].username}, the only superuser, becomes the researcher.")
            return superusers[0]
        self.stdout.write(self.style.WARNING(
            "No --owner and not exactly one superuser: the project has no members, so only staff see it. "
            "Pass --owner USERNAME, or add members in the admin."))
        return None

    def _create_and_import(self, slug: str, name: str | None, owner, format: str, path: Path) -> ImportJob:
        """Create the project, its owner's membership and every row in one transaction:
        a rejected or failed import rolls the project back with its rows (nobody can
        watch this import's progress, which stays inside the transaction)."""
        try:
            with transaction.atomic():
                project = services.project_create(name=name or slug, slug=slug, created_by=owner)
                if owner is not None:
                    services.membership_set(project=project, user=owner, role=Role.RESEARCHER)
                job = imports.import_job_run(job_id=imports.import_job_create(
                    project=project, format=format, source_path=path, created_by=owner).pk)
                if job.status != ImportJob.Status.SUCCEEDED:
                    raise ImportFailed(job.error or job.status)
        except ImportFailed as exc:
            raise CommandError(f"{path}: {exc} (nothing was imported, and project {slug!r} was not created)") from None
        except ValidationError as exc:
            raise CommandError(f"project {slug!r}: {'; '.join(exc.messages)}") from None
        self.stdout.write(f"Created project {slug}" + (f" with {owner.username} as researcher." if owner else "."))
        return job
