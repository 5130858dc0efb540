"""The demo command: accounts, rubric, data; a printed annotator can log in."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from annotate.models import Comparison, Project, Prompt

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
