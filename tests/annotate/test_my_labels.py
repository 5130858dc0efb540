"""My labels and the annotator's project page show every kind of label they made."""

from __future__ import annotations

import pytest

from annotate import counters
from annotate.models import Comparison, Judgment, Prompt, Ranking, Rating, Response
from tests.factories import annotators, fill

pytestmark = pytest.mark.django_db


def test_my_labels_lists_pairwise_ratings_and_rankings_with_prompt_text_and_markdown(client, project, annotator):
    (prompt,) = fill(project, prompts=1, responses=2)
    Prompt.objects.filter(pk=prompt.pk).update(conversation=[{"role": "user", "content": "Which planet is *red*?"}])
    first, second = Response.objects.filter(prompt=prompt).order_by("id")
    Response.objects.filter(pk=first.pk).update(text="It is **Mars**.")
    comparison = Comparison.objects.get(prompt=prompt)
    Judgment.objects.create(comparison=comparison, annotator=annotator, choice="A", strength=-2, shown_left=second,
                            rationale="<b>sure</b>")
    Rating.objects.create(response=first, annotator=annotator, scores={"helpful": 4})
    Ranking.objects.create(prompt=prompt, annotator=annotator, groups=[[second.pk], [first.pk]])
    (other,) = annotators(project, 1, prefix="other")
    Rating.objects.create(response=second, annotator=other, scores={"helpful": 1})

    client.force_login(annotator)
    html = client.get(f"/p/{project.slug}/mine/").content.decode()

    assert "Which planet is *red*?" in html and "<em>red</em>" in html  # the prompt's text, rendered
    assert prompt.external_id not in html.replace(project.slug, "")
    assert "It is <strong>Mars</strong>." in html
    assert html.count('data-judgment="') == 1 and html.count('data-rating="') == 1 and html.count('data-ranking="') == 1
    # shown with ``second`` on the left: the preferred response (canonical A = first) is B on screen
    assert "B preferred (-2)" in html
    ranking = html[html.index('data-ranking="'):]
    assert ranking.index(second.text) < ranking.index("It is <strong>Mars</strong>.")
    assert "&lt;b&gt;sure&lt;/b&gt;" in html  # the rationale, inert


def test_annotators_project_page_counts_every_kind(client, project, annotator):
    (prompt,) = fill(project, prompts=1, responses=2)
    first, second = Response.objects.filter(prompt=prompt)
    Rating.objects.create(response=first, annotator=annotator, scores={})
    Rating.objects.create(response=second, annotator=annotator, scores={})
    Ranking.objects.create(prompt=prompt, annotator=annotator, groups=[[first.pk], [second.pk]])
    counters.counters_reconcile(project=project)  # labels written past the services are counted here
    client.force_login(annotator)
    html = client.get(f"/p/{project.slug}/").content.decode()
    assert ("You have given 3 labels in this project: 0 pairwise judgments, 2 ratings and 1 ranking "
            "(gold checks are scored apart).") in html
    # The home page's "done in total" is the same figure, from the same tallies.
    home = client.get("/").content.decode()
    row = home[home.index(f'data-project="{project.slug}"'):]
    assert '<td data-label="Done in total">3</td>' in row[:row.index("</tr>")]
