from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotate import services
from annotate.models import TaskKind
from rubrics.models import RubricVersion


class Command(BaseCommand):
    help = "Create a project, with OWNER as its researcher (the same service as the New project page)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="Username of the project's researcher.")
        parser.add_argument("--name", help="Display name (default: the slug).")
        parser.add_argument("--description", default="")
        parser.add_argument("--guidelines", default="", help="Markdown shown to annotators.")
        parser.add_argument("--task-kinds", default="pairwise",
                            help=f"Comma-separated: {', '.join(TaskKind.values)} (default: pairwise).")
        parser.add_argument("--overlap", type=int, default=1, help="Labels wanted per task.")
        parser.add_argument("--lease-seconds", type=int, default=900, help="How long a task stays leased.")
        parser.add_argument("--gold-rate", type=float, default=0.0, help="Share of gold tasks, 0-1.")
        parser.add_argument("--license", default="", help="Licence of exported datasets, e.g. cc-by-4.0.")
        parser.add_argument("--rubric", help="A published rubric version to pin, as SLUG:NUMBER.")

    def handle(self, *args, slug, owner, **o):
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"--owner: no user {owner!r}")
        version = None
        if o["rubric"]:
            rubric_slug, _, number = o["rubric"].partition(":")
            version = RubricVersion.objects.filter(rubric__slug=rubric_slug, number=int(number) if number.isdigit() else -1).first()
            if version is None:
                raise CommandError(f"--rubric: no version {o['rubric']!r} (give SLUG:NUMBER)")
        try:
            project = services.project_create(
                name=o["name"] or slug, slug=slug, created_by=user, rubric_version=version,
                description=o["description"], guidelines=o["guidelines"],
                task_kinds=[k.strip() for k in o["task_kinds"].split(",") if k.strip()], overlap=o["overlap"],
                lease_ttl_seconds=o["lease_seconds"], gold_rate=o["gold_rate"], license=o["license"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())) from None
        self.stdout.write(self.style.SUCCESS(f"Created project {project.slug}; {user.username} is its researcher."))
