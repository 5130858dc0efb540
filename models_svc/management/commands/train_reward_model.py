"""Queue (and optionally wait for) a reward-model run from the command line."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from models_svc.models import TrainingRun
from models_svc.services import lifecycle


class Command(BaseCommand):
    help = "Train a reward model for a project: queued for a Celery worker, or run here with --inline."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("--mode", choices=["head", "finetune"], help="default: the project's setting")
        parser.add_argument("--objective", choices=["bt", "multi", "gated"], help="default: the project's setting")
        parser.add_argument("--wait", action="store_true", help="wait for the worker to finish, printing progress")
        parser.add_argument("--inline", action="store_true",
                            help="train in this process instead of a worker (no worker needed)")
        parser.add_argument("--promote", action="store_true", help="promote the new version when the run succeeds")
        parser.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
            help="a TrainConfig field for this run (repeatable; VALUE is JSON, or else a string), e.g. "
            "--set backbone=smollm2 --set pooling=mean --set layers=1 --set l2=0.3",
        )

    def handle(self, *args, project, mode, objective, wait, inline, promote, overrides, **options):
        proj = Project.objects.filter(slug=project).first()
        if proj is None:
            raise CommandError(f"no project with slug {project!r}")
        try:
            run = lifecycle.training_run_enqueue(project=proj, mode=mode, objective=objective,
                                                trigger=TrainingRun.Trigger.CLI, overrides=_parse_overrides(overrides))
        except lifecycle.TrainingRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"run #{run.pk} queued: {run.config['mode']}/{run.config['objective']}, "
                          f"{run.data_snapshot['pairs']} pairs, {run.data_snapshot['ratings']} ratings")
        if inline:
            run = lifecycle.training_run_execute(run_id=run.pk, worker="cli")
        elif wait:
            last = None
            while run.is_active:
                time.sleep(2)
                run.refresh_from_db()
                shown = (run.status, round(run.progress * 100))
                if shown != last:
                    self.stdout.write(f"  {run.status} {shown[1]}%")
                    last = shown
        else:
            return
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run #{run.pk} {run.status}: {run.error.strip().splitlines()[-1] if run.error else ''}")
        version = run.version
        metrics = version.metrics
        self.stdout.write(self.style.SUCCESS(
            f"model v{version.number}: held-out accuracy {metrics.get('eval_accuracy')}, "
            f"{metrics.get('train_pairs')} train / {metrics.get('eval_pairs')} eval pairs"))
        if promote:
            lifecycle.model_version_promote(version=version)
            self.stdout.write(f"model v{version.number} is now active")


def _parse_overrides(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs: JSON values (numbers, true/false, lists), anything else a string."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out
