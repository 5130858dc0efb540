"""The noise audit: the active reward-model ensemble scores both responses of
every labelled comparison, and each comparison gets μ and σ of r(A) − r(B) over
the ensemble's members (``quality.noise`` reads them).

It runs in a worker: after each promotion (``noise_audits_autorun``, on the beat,
finds active versions not audited yet: models_svc sits below quality and never
calls it) and on demand. ``pair_flags`` turns the newest audit into the review
queue's evidence.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
from django.db import transaction
from django.utils import timezone

from annotate.jobs import job_enqueue
from annotate.models import HUMAN_SOURCES, Comparison, Judgment, Project
from models_svc.models import ModelVersion

from . import noise
from .models import NoiseAudit, PairScore

log = logging.getLogger(__name__)
SCORE_CHUNK = 512  # comparisons scored (and progress saved) at a time
STALE_AFTER_SECONDS = 1800


@transaction.atomic
def noise_audit_enqueue(*, project: Project, created_by=None) -> NoiseAudit:
    """Queue an audit with the active version, or return the one queued or running.
    Refused (ValueError) without an active model."""
    Project.objects.select_for_update().get(pk=project.pk)
    active = NoiseAudit.objects.filter(project=project, status__in=NoiseAudit.ACTIVE_STATES).first()
    if active is not None:
        return active
    version = ModelVersion.objects.filter(project=project, state=ModelVersion.State.ACTIVE).first()
    if version is None:
        raise ValueError("this project has no active reward model: train one and promote it first")
    audit = NoiseAudit.objects.create(project=project, model_version=version, created_by=created_by)
    from .tasks import run_noise_audit

    job_enqueue(task=run_noise_audit, args=(audit.pk,), job=audit)
    return audit


def noise_audits_autorun() -> int:
    """Queue an audit for every active version that has none yet; returns how many."""
    audited = NoiseAudit.objects.exclude(status__in=[NoiseAudit.Status.FAILED, NoiseAudit.Status.CANCELLED]) \
        .values("model_version_id")
    queued = 0
    for version in ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).exclude(pk__in=audited) \
            .select_related("project"):
        noise_audit_enqueue(project=version.project)
        queued += 1
    return queued


def _labelled_pairs(project: Project) -> list[tuple[int, list, str, str]]:
    """(comparison id, conversation, text A, text B) of every comparison a person
    gave a decisive or tied answer on."""
    ids = set(Judgment.objects.filter(comparison__project=project, source__in=HUMAN_SOURCES,
                                      choice__in=("A", "B", "tie")).values_list("comparison_id", flat=True))
    rows = Comparison.objects.filter(pk__in=ids).order_by("pk").values_list(
        "pk", "prompt__conversation", "response_a__text", "response_b__text")
    return list(rows)


def noise_audit_run(*, audit_id: int) -> NoiseAudit:
    """Score every labelled comparison with each ensemble member and store μ and σ
    of r(A) − r(B). Claimed with a conditional UPDATE; progress and cancel are
    checked after each chunk."""
    from models_svc.services.scoring import load_model

    now = timezone.now()
    if not NoiseAudit.objects.filter(pk=audit_id, status=NoiseAudit.Status.QUEUED).update(
        status=NoiseAudit.Status.RUNNING, started_at=now, heartbeat_at=now
    ):
        return NoiseAudit.objects.get(pk=audit_id)
    audit = NoiseAudit.objects.select_related("project", "model_version").get(pk=audit_id)
    try:
        if audit.model_version is None:
            raise ValueError("the model version was deleted")
        model = load_model(audit.model_version)
        pairs = _labelled_pairs(audit.project)
        mus, sigmas = [], []
        for start in range(0, len(pairs), SCORE_CHUNK):
            chunk = pairs[start:start + SCORE_CHUNK]
            items = [(conv, text) for _, conv, a, b in chunk for text in (a, b)]
            members = model.score_items(items).members  # (M, 2·n): A, B, A, B, …
            d = members[:, 0::2] - members[:, 1::2]
            mu, sigma = d.mean(axis=0), d.std(axis=0)
            PairScore.objects.bulk_create([PairScore(audit_id=audit_id, comparison_id=pk, mu=float(m), sigma=float(s))
                                           for (pk, *_), m, s in zip(chunk, mu, sigma)])
            mus.extend(mu.tolist())
            sigmas.extend(sigma.tolist())
            if not NoiseAudit.objects.filter(pk=audit_id, cancel_requested=False).update(
                progress=min(1.0, (start + len(chunk)) / len(pairs)), heartbeat_at=timezone.now()
            ):
                PairScore.objects.filter(audit_id=audit_id).delete()
                NoiseAudit.objects.filter(pk=audit_id).update(status=NoiseAudit.Status.CANCELLED,
                                                              finished_at=timezone.now())
                return NoiseAudit.objects.get(pk=audit_id)
        summary = _summary(audit, np.array(mus), np.array(sigmas))
    except Exception as exc:  # the audit must end, and say why
        log.exception("noise audit %s failed", audit_id)
        PairScore.objects.filter(audit_id=audit_id).delete()
        NoiseAudit.objects.filter(pk=audit_id).update(status=NoiseAudit.Status.FAILED, error=str(exc)[:2000],
                                                      finished_at=timezone.now())
    else:
        NoiseAudit.objects.filter(pk=audit_id).update(status=NoiseAudit.Status.SUCCEEDED, progress=1.0,
                                                      summary=summary, finished_at=timezone.now())
    return NoiseAudit.objects.get(pk=audit_id)


def noise_audits_sweep(*, stale_after_seconds: int = STALE_AFTER_SECONDS) -> int:
    return NoiseAudit.sweep(stale_after_seconds=stale_after_seconds,
                            error="the worker stopped responding; nothing was stored",
                            on_stale=lambda audit: PairScore.objects.filter(audit=audit).delete())


def _summary(audit: NoiseAudit, mus: np.ndarray, sigmas: np.ndarray) -> dict:
    flags = pair_flags(project=audit.project, audit=audit)
    counts = defaultdict(int)
    for flag in flags.values():
        for reason in flag["reasons"]:
            counts[reason] += 1
    typical_mu, typical_sigma = noise.scales(mus, sigmas)
    return {"pairs": int(len(mus)), "flagged": dict(counts), "typical_abs_mu": round(typical_mu, 4),
            "typical_sigma": round(typical_sigma, 4), "flip_z": noise.FLIP_Z,
            "mu_histogram": noise.histogram(mus)}


def latest_audit(*, project: Project) -> NoiseAudit | None:
    return NoiseAudit.objects.filter(project=project, status=NoiseAudit.Status.SUCCEEDED).first()


def pair_flags(*, project: Project, audit: NoiseAudit | None = None) -> dict[int, dict]:
    """comparison id → {"reasons": [...], "evidence": z, "mu", "sigma", "labels_against"}
    from the newest audit (or ``audit``): ``likely_flipped`` where some label's
    z = −μ_label/σ is above ``noise.FLIP_Z`` (evidence: the largest such z),
    ``ambiguous_pair`` where |μ| and σ are both small for the project. Empty
    without an audit."""
    audit = audit or latest_audit(project=project)
    if audit is None:
        return {}
    scores = {c: (mu, sigma) for c, mu, sigma in PairScore.objects.filter(audit_id=audit.pk)
              .values_list("comparison_id", "mu", "sigma").iterator(chunk_size=5000)}
    if not scores:
        return {}
    typical_mu, typical_sigma = noise.scales(np.array([m for m, _ in scores.values()]),
                                             np.array([s for _, s in scores.values()]))
    flags: dict[int, dict] = {}
    labels = Judgment.objects.filter(comparison_id__in=list(scores), source__in=HUMAN_SOURCES,
                                     choice__in=("A", "B")).values_list("comparison_id", "choice")
    for comparison_id, choice in labels.iterator(chunk_size=5000):
        mu, sigma = scores[comparison_id]
        z = float(noise.flip_evidence(noise.label_margin(mu, choice), sigma))
        if z > noise.FLIP_Z:
            flag = flags.setdefault(comparison_id, {"reasons": [], "evidence": 0.0, "mu": mu, "sigma": sigma,
                                                    "labels_against": 0})
            if "likely_flipped" not in flag["reasons"]:
                flag["reasons"].append("likely_flipped")
            flag["evidence"] = max(flag["evidence"], z)
            flag["labels_against"] += 1
    for comparison_id, (mu, sigma) in scores.items():
        if noise.is_ambiguous(mu, sigma, typical_mu, typical_sigma):
            flag = flags.setdefault(comparison_id, {"reasons": [], "evidence": 0.0, "mu": mu, "sigma": sigma,
                                                    "labels_against": 0})
            flag["reasons"].append("ambiguous_pair")
    return flags
