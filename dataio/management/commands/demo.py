import random
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotate import services
from annotate.counters import counters_reconcile
from annotate.derived import derived_judgments_refresh
from annotate.models import Comparison, ImportJob, Judgment, LabelSource, Project, Rating, Response, Role, TaskKind
from dataio.imports import services as imports
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
# Two simulated raters label every demo response and pair, so the rubric report,
# derived labels and reward-model training have data before anyone annotates.
# Their labels are synthetic (drawn around each response's hand-assigned quality),
# stored as imported with metadata {"synthetic": true}, and never shown to annotators.
SIMULATED_RATERS = ("demo-rater-1", "demo-rater-2")
QUALITY_MEANS = {  # helpfulness, correctness, coherence, complexity, verbosity
    "good": (3.4, 3.5, 3.5, 2.0, 2.0),
    "mediocre": (2.0, 2.2, 2.6, 1.8, 2.6),
    "poor": (0.8, 1.0, 1.8, 1.2, 1.4),
}
CRITERIA = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


class Command(BaseCommand):
    help = "Create (or refresh) the demo project with its rubric, data and accounts. Safe to run twice."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="URL to print for logging in.")

    def handle(self, *args, url, **options):
        if not settings.DEBUG:
            self.stderr.write("Note: DEBUG is off; the demo accounts have public passwords.")
        users = self._accounts()
        project = self._project(users)
        job = imports.import_job_create(project=project, format="jsonl", source_path=DEMO_FILE)
        job = imports.import_job_run(job_id=job.pk)
        if job.status != ImportJob.Status.SUCCEEDED:
            raise CommandError(f"demo data failed to import: {job.error}")
        created = services.comparisons_generate(project=project)
        seeded = self._seed_labels(project)
        derived = derived_judgments_refresh(project=project)
        counters_reconcile(project=project)  # the seeded labels were bulk-written past the services
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo project '{project.name}' ready: {project.prompts.count()} prompts, "
                f"{project.comparisons.count()} comparisons ({created} new); "
                f"simulated raters' labels: {seeded}; derived pairwise labels: {derived['derived']}."
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

    @transaction.atomic
    def _seed_labels(self, project) -> int:
        User = get_user_model()
        raters = []
        for name in SIMULATED_RATERS:
            user, created = User.objects.get_or_create(username=name, defaults={"is_active": False})
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            raters.append(user)
        if Rating.objects.filter(annotator__in=raters, response__prompt__project=project).exists():
            return 0
        version = project.rubric_version
        rng = random.Random(20261123)
        quality = {r.pk: r.metadata.get("quality", "mediocre")
                   for r in Response.objects.filter(prompt__project=project)}
        ratings, judgments = [], []
        for rater in raters:
            for rid, q in sorted(quality.items()):
                scores = {k: min(4, max(0, round(m + rng.gauss(0, 0.6)))) for k, m in zip(CRITERIA, QUALITY_MEANS[q])}
                ratings.append(Rating(response_id=rid, annotator=rater, rubric_version=version, scores=scores,
                                      source=LabelSource.IMPORTED, metadata={"synthetic": True}))
            for c in Comparison.objects.filter(project=project).order_by("id"):
                ua, ub = (sum(QUALITY_MEANS[quality[r]][:2]) + rng.gauss(0, 0.8) for r in (c.response_a_id, c.response_b_id))
                diff = ub - ua  # positive: B better, as in the strength scale
                size = 0 if abs(diff) <= 0.5 else 1 if abs(diff) <= 1.5 else 2 if abs(diff) <= 3 else 3
                strength = size if diff > 0 else -size
                choice = "tie" if size == 0 else ("B" if diff > 0 else "A")
                judgments.append(Judgment(comparison=c, annotator=rater, rubric_version=version, choice=choice,
                                          strength=strength, source=LabelSource.IMPORTED, metadata={"synthetic": True}))
        Rating.objects.bulk_create(ratings)
        Judgment.objects.bulk_create(judgments)
        return len(ratings) + len(judgments)
