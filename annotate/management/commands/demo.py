from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotate import services
from annotate.models import ImportJob, Project, Role, TaskKind
from rubrics import services as rubric_services
from rubrics.models import Rubric

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo_data" / "demo.jsonl"
# Local demo accounts; the passwords are printed and documented, never for production.
ACCOUNTS = [
    ("admin", "preflab-admin", "admin"),
    ("researcher", "preflab-researcher", Role.RESEARCHER),
    ("annotator1", "preflab-annotator1", Role.ANNOTATOR),
    ("annotator2", "preflab-annotator2", Role.ANNOTATOR),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo project with its rubric, data and accounts. Safe to run twice."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="URL to print for logging in.")

    def handle(self, *args, url, **options):
        if not settings.DEBUG:
            self.stderr.write("Note: DEBUG is off; the demo accounts have public passwords.")
        users = self._accounts()
        project = self._project(users)
        job = services.import_job_create(project=project, format="jsonl", source_path=DEMO_FILE)
        job = services.import_job_run(job_id=job.pk)
        if job.status != ImportJob.Status.SUCCEEDED:
            raise CommandError(f"demo data failed to import: {job.error}")
        created = services.comparisons_generate(project=project)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo project '{project.name}' ready: {project.prompts.count()} prompts, "
                f"{project.comparisons.count()} comparisons ({created} new)."
            )
        )
        self.stdout.write(f"\nOpen {url} and log in as:")
        for username, password, role in ACCOUNTS:
            self.stdout.write(f"  {role:<11} {username:<12} password: {password}")

    @transaction.atomic
    def _accounts(self):
        User = get_user_model()
        users = {}
        for username, password, role in ACCOUNTS:
            user, _ = User.objects.get_or_create(username=username)
            user.is_active = True
            user.is_staff = user.is_superuser = role == "admin"
            user.set_password(password)
            user.save()
            users[username] = (user, role)
        return users

    @transaction.atomic
    def _project(self, users):
        rubric = Rubric.objects.filter(slug="demo-helpsteer2").first()
        if rubric is None:
            version = rubric_services.rubric_create_from_template(
                template="helpsteer2", slug="demo-helpsteer2", name="HelpSteer2 (demo)"
            )
            version = rubric_services.rubric_version_publish(version=version)
        else:
            version = rubric.versions.filter(status="published").order_by("-number").first()
        project = Project.objects.filter(slug="demo").first()
        if project is None:
            project = services.project_create(
                name="PrefLab demo",
                slug="demo",
                description="Twenty-six hand-written prompts with three or four responses of varied quality.",
                guidelines="Compare the two responses as a careful user would. Prefer correct, helpful and safe answers.",
                rubric_version=version,
                task_kinds=[TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING],
                overlap=2,
            )
        for user, role in users.values():
            if role != "admin":
                services.membership_set(project=project, user=user, role=role)
        return project
