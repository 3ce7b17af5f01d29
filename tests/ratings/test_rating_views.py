"""Browser pages through Django's test client: researcher session pages and the annotator flow."""

from __future__ import annotations

import pytest
from django.test import Client

from decodelab.ratings.models import Assignment, RatingSession, Vote
from tests.ratings.builders import CONFIGS, finished_comparisons
from tests.ratings.helpers import client_for, create_session, make_annotators, rate_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(db):
    return make_annotators("ann1", "ann2")


def _page(new_user) -> Client:
    client = Client()
    client.force_login(new_user.user)
    return client


def test_researcher_creates_a_session_from_the_form(researcher, team):
    comparisons = finished_comparisons(researcher.user, 2)
    page = _page(researcher)
    form = page.get("/rate/sessions/new/")
    assert form.status_code == 200
    html = form.content.decode()
    assert "ann1" in html and comparisons[0].prompt[:20] in html
    response = page.post(
        "/rate/sessions/new/",
        {
            "name": "form session",
            "mode": "pairwise",
            "overlap": "2",
            "annotators": ["ann1", "ann2"],
            "comparisons": [str(c.id) for c in comparisons],
            "instructions": "Choose the better answer.",
            "gold": '{"prompt": "1 + 1 =", "outputs": ["2", "3"], "expected": 0}\n',
            "reveal_after_vote": "on",
        },
    )
    session = RatingSession.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/rate/sessions/{session.id}/"
    assert session.reveal_after_vote and session.overlap == 2
    assert session.items.count() == 7
    detail = page.get(response["Location"]).content.decode()
    assert "Progress per annotator" in detail and f"/rate/t/{session.public_id}/" in detail
    assert "votes.jsonl" in detail and "preferences.jsonl" in detail
    listing = page.get("/rate/sessions/").content.decode()
    assert "form session" in listing


def test_the_form_shows_errors_and_keeps_the_input(researcher, team):
    finished_comparisons(researcher.user, 1)
    page = _page(researcher)
    response = page.post("/rate/sessions/new/", {"name": "x", "mode": "pairwise", "annotators": ["ann1"]})
    assert response.status_code == 400
    html = response.content.decode()
    assert "choose at least one comparison" in html and 'value="x"' in html
    bad_gold = page.post(
        "/rate/sessions/new/",
        {"name": "x", "mode": "pairwise", "annotators": ["ann1"], "gold": "{not json"},
    )
    assert "line 1 is not valid JSON" in bad_gold.content.decode()


def test_rankings_page_shows_ci_bars_the_matrix_and_the_quality_cost_chart(api, researcher, team):
    session = create_session(api, researcher, team, prompts=4, overlap=2)
    for member in team:
        rate_all(
            client_for(member),
            lambda item: {"choice": "left" if "variant z" in item["outputs"][0]["text"] else "right"},
        )
    html = _page(researcher).get(f"/rate/sessions/{session['id']}/rankings/").content.decode()
    assert html.count('class="ci-bar"') >= 6  # BT and length-controlled, three configurations each
    for section in (
        "Bradley-Terry",
        "Length-controlled",
        "Elo",
        "Win / tie / loss",
        "Krippendorff",
        "Fleiss",
        "Position bias",
        "Gold accuracy",
        "Quality versus cost",
    ):
        assert section in html, section
    assert "<svg" in html and 'class="frontier"' in html
    assert all(c["label"] in html for c in CONFIGS)


def test_rankings_page_without_votes_explains_instead_of_failing(api, researcher, team):
    session = create_session(api, researcher, team)
    response = _page(researcher).get(f"/rate/sessions/{session['id']}/rankings/")
    assert response.status_code == 200
    assert "No votes yet." in response.content.decode()


def test_likert_rankings_page_shows_means_per_criterion(api, researcher, team):
    session = create_session(api, researcher, team[:1], mode="likert", criteria=["fluency", "overall"])
    rate_all(client_for(team[0]), lambda item: {"scores": {"fluency": 4, "overall": 3}})
    html = _page(researcher).get(f"/rate/sessions/{session['id']}/rankings/").content.decode()
    assert "Likert means" in html and "fluency" in html and "ordinal" in html


def test_annotator_rates_pairwise_items_through_the_pages(api, researcher, team):
    create_session(api, researcher, team[:1], prompts=1)
    page = _page(team[0])
    queue = page.get("/rate/").content.decode()
    task = RatingSession.objects.get().public_id
    assert f"/rate/t/{task}/" in queue
    html = page.get(f"/rate/t/{task}/").content.decode()
    assert 'data-keys="1 ArrowLeft"' in html and "rating-keys.js" in html and "Skip this item" in html
    current = Assignment.objects.get(annotator=team[0].user, shown_at__isnull=False)
    response = page.post(f"/rate/i/{current.public_id}/vote/", {"choice": "tie", "reason": "same"})
    assert response.status_code == 302 and response["Location"] == f"/rate/t/{task}/"
    vote = Vote.objects.get()
    assert vote.choice == "tie" and vote.reason == "same" and vote.shown_order == current.shown_order
    page.get(response["Location"])  # the redirect shows the next item
    # htmx: the next item comes back as a fragment
    nxt = Assignment.objects.get(annotator=team[0].user, shown_at__isnull=False, status="pending")
    fragment = page.post(f"/rate/i/{nxt.public_id}/vote/", {"choice": "left"}, HTTP_HX_REQUEST="true")
    text = fragment.content.decode()
    assert "<html" not in text and 'id="rating-area"' in text and "2 rated" in text
    last = Assignment.objects.get(annotator=team[0].user, shown_at__isnull=False, status="pending")
    done = page.post(f"/rate/i/{last.public_id}/skip/", HTTP_HX_REQUEST="true").content.decode()
    assert "All done" in done and "1 skipped" in done


def test_likert_and_ranking_forms(api, researcher, team):
    create_session(api, researcher, team[:1], prompts=1, mode="likert", criteria=["fluency", "overall"])
    page = _page(team[0])
    task = RatingSession.objects.get().public_id
    html = page.get(f"/rate/t/{task}/").content.decode()
    assert 'name="score-fluency"' in html and 'name="score-overall"' in html
    current = Assignment.objects.get(shown_at__isnull=False)
    missing = page.post(f"/rate/i/{current.public_id}/vote/", {"score-fluency": "4"})
    assert missing.status_code == 400 and "choose a score" in missing.content.decode()
    page.post(f"/rate/i/{current.public_id}/vote/", {"score-fluency": "4", "score-overall": "5"})
    assert {s.criterion: s.value for s in Vote.objects.get().scores.all()} == {"fluency": 4, "overall": 5}

    other = make_annotators("ranker")[0]
    create_session(api, researcher, [other], prompts=1, mode="ranking", ranking_k=3)
    page = _page(other)
    task = RatingSession.objects.get(mode="ranking").public_id
    html = page.get(f"/rate/t/{task}/").content.decode()
    assert html.count('id="rank-') == 3
    current = Assignment.objects.get(annotator=other.user)
    same = {f"rank-{pid}": "1" for pid in current.shown_order}
    assert "different rank" in page.post(f"/rate/i/{current.public_id}/vote/", same).content.decode()
    ranks = {f"rank-{pid}": str(3 - i) for i, pid in enumerate(current.shown_order)}
    page.post(f"/rate/i/{current.public_id}/vote/", ranks)
    assert Vote.objects.get(assignment=current).ranking == list(reversed(current.shown_order))


def test_reveal_after_vote_shows_configurations_and_cost_only_after_voting(api, researcher, team):
    create_session(api, researcher, team[:1], prompts=1, reveal_after_vote=True)
    page = _page(team[0])
    task = RatingSession.objects.get().public_id
    before = page.get(f"/rate/t/{task}/").content.decode()
    assert not any(c["label"] in before for c in CONFIGS)
    current = Assignment.objects.get(shown_at__isnull=False)
    after = page.post(f"/rate/i/{current.public_id}/vote/", {"choice": "left"}, HTTP_HX_REQUEST="true")
    text = after.content.decode()
    assert "Here is what you compared" in text and "ms per token" in text
    assert sum(c["label"] in text for c in CONFIGS) == 2


def test_researchers_visiting_the_queue_go_to_their_sessions(researcher):
    response = _page(researcher).get("/rate/")
    assert response.status_code == 302 and response["Location"] == "/rate/sessions/"


def test_anonymous_visitors_are_sent_to_log_in():
    response = Client().get("/rate/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
