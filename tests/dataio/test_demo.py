"""The demo command: accounts, rubric, data; a printed annotator can log in."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from annotate.models import Comparison, Project, Prompt, QueueSlot

pytestmark = pytest.mark.django_db


def test_demo_creates_project_accounts_and_is_repeatable(client):
    out = io.StringIO()
    call_command("demo", stdout=out)
    call_command("demo", stdout=io.StringIO())  # a second run changes nothing
    text = out.getvalue()
    project = Project.objects.get(slug="demo")
    prompts = Prompt.objects.filter(project=project)
    assert prompts.count() >= 20
    for p in prompts:
        assert 3 <= p.responses.count() <= 4
    criteria = list(project.rubric_version.criteria.values_list("key", flat=True))
    assert criteria == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
    assert project.rubric_version.status == "published"
    # All K(K-1)/2 pairs of every prompt are candidates.
    expected_pairs = sum(p.responses.count() * (p.responses.count() - 1) // 2 for p in prompts)
    assert Comparison.objects.filter(project=project).count() == expected_pairs

    username, password = re.search(r"annotator\s+(\S+)\s+password: (\S+)", text).groups()
    assert client.login(username=username, password=password)
    home = client.get("/").content.decode()
    assert "PrefLab demo" in home


def test_demo_has_simulated_labels_and_a_derived_agreement_report(client):
    from annotate.derived import derivation_report

    call_command("demo", stdout=io.StringIO())
    call_command("demo", stdout=io.StringIO())  # seeding happens once
    project = Project.objects.get(slug="demo")
    responses = sum(p.responses.count() for p in project.prompts.all())
    pairs = project.comparisons.count()
    from annotate.models import Judgment, Rating

    assert Rating.objects.filter(response__prompt__project=project, source="imported").count() == 2 * responses
    assert Judgment.objects.filter(comparison__project=project, source="imported").count() == 2 * pairs
    assert all(r.metadata == {"synthetic": True} for r in Rating.objects.filter(source="imported"))
    # The progress tallies count the seeded labels as imported.
    from annotate import counters

    assert counters.tallies_equal_recount(project=project)
    assert counters.project_tallies(project=project)["kinds"]["rating"]["imported"] == 2 * responses
    # Every pair has both responses rated, so every pair gets a derived label.
    report = derivation_report(project=project, rule="weighted_sum")
    assert report.derived == pairs and report.human_labels == 2 * pairs
    # The simulated raters judge by the same latent quality as they rate: the
    # derived labels agree with them far above chance (a third), yet not perfectly.
    assert 0.5 < report.agreement < 1.0
    # A score rule has no deciding criterion: its decisions are counted under the
    # rule, and only the derived ties as ties.
    decided = dict(report.decided_by)
    assert decided.get("weighted_sum score") == pairs - report.derived_counts.get("tie", 0)
    assert decided.get("", 0) == report.derived_counts.get("tie", 0)
    # The annotators' queue is untouched by the seeded labels.
    assert QueueSlot.objects.filter(project=project, open_slots=project.overlap).count() == pairs
