"""Label counts agree across pages (issue #17): the project page and the rubric page
count through rubrics.models.label_counts, say how many labels were derived by a
rubric rule, and use singular and plural forms."""

from __future__ import annotations

import re

import pytest

from annotate import counters
from annotate.models import Comparison, Judgment, LabelSource, Rating, Response
from models_svc.models import RewardSettings
from rubrics.models import label_counts
from tests.conftest import make_user
from tests.factories import fill, pin_rubric

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(project, annotator):
    project.task_kinds = ["pairwise", "rating"]
    project.save(update_fields=["task_kinds"])
    pin_rubric(project, criteria=[{"key": "helpful", "name": "Helpful", "scale": "likert", "min": 0, "max": 4,
                                   "anchors": {"0": "useless", "4": "perfect"}}])
    fill(project, prompts=2, responses=2)
    version = project.rubric_version
    first, second = Comparison.objects.filter(project=project).order_by("id")
    rule = make_user("rule-bot")
    Judgment.objects.create(comparison=first, annotator=annotator, choice="A", strength=-1, rubric_version=version)
    Judgment.objects.create(comparison=second, annotator=annotator, choice="B", strength=1, rubric_version=version)
    Judgment.objects.create(comparison=first, annotator=rule, choice="A", source=LabelSource.DERIVED,
                            derivation_rule="weighted_sum", rubric_version=version)
    Rating.objects.create(response=Response.objects.filter(prompt__project=project).first(), annotator=annotator,
                          scores={"helpful": 3}, rubric_version=version)
    counters.counters_reconcile(project=project)  # written past the services: the page reads the tallies
    return project


def test_label_counts_total_every_source_and_name_the_derived(labelled, other_project):
    assert label_counts(projects=[labelled]) == {
        "judgments": {"total": 3, "derived": 1}, "ratings": {"total": 1, "derived": 0},
        "rankings": {"total": 0, "derived": 0}}
    assert label_counts(projects=[other_project])["judgments"] == {"total": 0, "derived": 0}
    assert label_counts(versions=[labelled.rubric_version], by_version=True) == {
        labelled.rubric_version_id: {"judgments": {"total": 3, "derived": 1}, "ratings": {"total": 1, "derived": 0}}}


def test_project_page_and_rubric_page_show_the_same_figures(labelled, client, owner):
    client.force_login(owner)
    project_page = client.get(f"/p/{labelled.slug}/").content.decode()
    assert '<div id="stat-judgments"><b>3</b><span>judgments (1 derived)</span></div>' in project_page
    assert '<div id="stat-ratings"><b>1</b><span>rating</span></div>' in project_page
    assert '<div id="stat-rankings"><b>0</b><span>rankings</span></div>' in project_page
    rubric_page = client.get(f"/rubrics/{labelled.rubric_version.rubric.slug}/").content.decode()
    cell = re.search(r'<td class="label-counts">(.*?)</td>', rubric_page).group(1)
    assert cell == "3 judgments (1 derived), 1 rating"


def test_rating_levels_show_their_anchor_text_on_screen(labelled, client, annotator):
    client.force_login(annotator)
    html = client.get(f"/p/{labelled.slug}/work/rating/").content.decode()
    key = re.search(r'<p class="anchor-key small" data-criterion="helpful">(.*?)</p>', html, re.S).group(1)
    assert key == "<span><b>0</b> useless</span><span><b>4</b> perfect</span>"


def test_training_modes_say_what_they_cost_on_a_cpu_and_a_gpu(project, client, owner):
    assert dict(RewardSettings.Mode.choices) == {
        "head": "head (frozen backbone: minutes on a CPU, seconds on a GPU)",
        "finetune": "finetune (full fine-tune: tens of minutes on a CPU, minutes on a GPU)"}
    client.force_login(owner)
    page = client.get(f"/p/{project.slug}/models/").content.decode()
    assert ">head (frozen backbone: minutes on a CPU, seconds on a GPU)</option>" in page
    assert "backbone, seconds)" not in page
