"""Blinding and access: an annotator sees only their own items, never a researcher page, never
anything that tells which strategy, model, parameters or timings produced an output."""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from urllib.parse import urlparse

import pytest
from django.test import Client

from decodelab.ratings.models import Assignment, Candidate, Item, RatingSession
from decodelab.runs.models import Comparison, Run
from tests.ratings.builders import CONFIGS, finished_comparisons
from tests.ratings.helpers import client_for, create_session, make_annotators, rate_all
from workers.models import CATALOG
from workers.protocol import Metrics
from workers.strategies import STRATEGIES

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(db):
    return make_annotators("ann1", "ann2")


def _browser(new_user) -> Client:
    client = Client()
    client.force_login(new_user.user)
    return client


def test_another_annotators_items_are_404_in_the_api_and_the_pages(api, researcher, pair):
    create_session(api, researcher, pair, overlap=1)
    mine = Assignment.objects.filter(annotator=pair[0].user).first()
    assert mine is not None
    intruder_api, intruder_page = client_for(pair[1]), _browser(pair[1])
    base = f"/api/v1/rating/items/{mine.public_id}/"
    assert intruder_api.get(base).status_code == 404
    assert intruder_api.post(base + "vote/", {"choice": "left"}, format="json").status_code == 404
    assert intruder_api.post(base + "skip/").status_code == 404
    assert intruder_page.get(f"/rate/i/{mine.public_id}/").status_code == 404
    assert intruder_page.post(f"/rate/i/{mine.public_id}/vote/", {"choice": "left"}).status_code == 404
    assert intruder_page.post(f"/rate/i/{mine.public_id}/skip/").status_code == 404
    mine.refresh_from_db()
    assert mine.status == "pending" and not hasattr(mine, "vote")


def test_a_task_the_annotator_is_not_part_of_is_404(api, researcher, pair):
    create_session(api, researcher, pair[:1])
    task = RatingSession.objects.get().public_id
    assert client_for(pair[1]).get(f"/api/v1/rating/tasks/{task}/next/").status_code == 404
    assert _browser(pair[1]).get(f"/rate/t/{task}/").status_code == 404


def test_annotators_cannot_reach_researcher_pages_or_endpoints(api, researcher, pair):
    session = create_session(api, researcher, pair)
    sid = session["id"]
    annotator_api, annotator_page = client_for(pair[0]), _browser(pair[0])
    for url in [
        "/api/v1/rating-sessions/",
        f"/api/v1/rating-sessions/{sid}/",
        f"/api/v1/rating-sessions/{sid}/rankings/",
        f"/api/v1/rating-sessions/{sid}/export/votes.jsonl",
        f"/api/v1/rating-sessions/{sid}/export/votes.csv",
        f"/api/v1/rating-sessions/{sid}/export/preferences.jsonl",
        "/api/v1/comparisons/",
        "/api/v1/strategies/",
    ]:
        assert annotator_api.get(url).status_code == 403, url
    assert annotator_api.post("/api/v1/rating-sessions/", {}, format="json").status_code == 403
    assert annotator_api.post(f"/api/v1/rating-sessions/{sid}/status/", {"status": "closed"}).status_code == 403
    for url in [
        "/rate/sessions/",
        "/rate/sessions/new/",
        f"/rate/sessions/{sid}/",
        f"/rate/sessions/{sid}/rankings/",
        "/comparisons/",
    ]:
        assert annotator_page.get(url).status_code == 403, url
    assert annotator_page.post(f"/rate/sessions/{sid}/status/", {"status": "closed"}).status_code == 403


def test_another_researchers_session_is_404(api, researcher, other_researcher, pair):
    session = create_session(api, researcher, pair)
    other = client_for(other_researcher)
    for suffix in ["", "rankings/", "export/votes.jsonl"]:
        assert other.get(f"/api/v1/rating-sessions/{session['id']}/{suffix}").status_code == 404
    other_page = _browser(other_researcher)
    assert other_page.get(f"/rate/sessions/{session['id']}/rankings/").status_code == 404


def test_a_double_vote_from_the_page_keeps_the_first_and_moves_on(api, researcher, pair):
    create_session(api, researcher, pair[:1])
    page = _browser(pair[0])
    task = RatingSession.objects.get().public_id
    page.get(f"/rate/t/{task}/")
    item = Assignment.objects.get(annotator=pair[0].user, shown_at__isnull=False)
    assert page.post(f"/rate/i/{item.public_id}/vote/", {"choice": "left"}, HTTP_HX_REQUEST="true").status_code == 200
    again = page.post(f"/rate/i/{item.public_id}/vote/", {"choice": "right"}, HTTP_HX_REQUEST="true")
    assert again.status_code == 200
    assert "cannot be cast twice" in again.content.decode()
    item.refresh_from_db()
    assert item.vote.choice == "left"


# --- the leak scan ---------------------------------------------------------------------


def forbidden_words() -> set[str]:
    words = set(STRATEGIES)
    words |= {spec["name"] for config in STRATEGIES.values() for spec in config.param_specs()}
    words |= set(CATALOG) | {spec.display_name for spec in CATALOG.values()}
    words |= {f.name for f in dataclasses.fields(Metrics)}
    words |= {"config_hash", "cost_ms_per_token", "n_tokens", "ms per token", "ms/token", "strategy", "tokens"}
    return {w.lower() for w in words}


def forbidden_values() -> set[str]:
    """Identities of the configurations, runs and comparisons behind the items."""
    values = {c["hash"] for c in CONFIGS} | {c["label"] for c in CONFIGS}
    values |= {str(pk) for pk in Run.objects.values_list("id", flat=True)}
    values |= {str(pk) for pk in Comparison.objects.values_list("id", flat=True)}
    values |= {str(pk) for pk in RatingSession.objects.values_list("id", flat=True)}
    return {v.lower() for v in values}


def _random_values(client) -> list[str]:
    """Opaque ids and CSRF/session tokens: random text that could contain a short word by chance."""
    values = [c.value for c in client.cookies.values()]
    for model in (Assignment, Candidate, Item, RatingSession):
        values += list(model.objects.values_list("public_id", flat=True))
    return values


CSRF = re.compile(r'(?:csrfmiddlewaretoken" value=|"X-CSRFToken": )"([^"]+)"')


def _scan(what: str, text: str, client, found: list[str]) -> None:
    for token in CSRF.findall(text) + _random_values(client):
        text = text.replace(token, "<random>")
    lowered = text.lower()
    found += [f"{what}: {w!r}" for w in forbidden_words() | forbidden_values() if w in lowered]


def _check(url: str, response, client, found: list[str]) -> str:
    assert response.status_code in (200, 201, 302, 400, 404, 409), (url, response.status_code)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode()
    _scan(f"URL {url}", url, client, found)
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    _scan(f"headers of {url}", headers, client, found)
    _scan(f"body of {url}", text, client, found)
    return text


LINK = re.compile(r'(?:href|src|action|hx-get|hx-post)="([^"#]+)"')


def test_no_annotator_visible_page_or_endpoint_reveals_the_configuration(api, researcher, pair):
    """Crawl everything an annotator can reach (pages, htmx fragments, static files, API) for every
    mode, while voting, skipping and voting twice, and search it for any strategy, parameter, model
    or timing name, and for the configurations' hashes, labels and ids."""
    gold = [{"prompt": "Name a colour.", "outputs": ["Blue.", "Seven."], "expected": 0}]
    create_session(api, researcher, pair, prompts=2, overlap=2, gold=gold)
    create_session(api, researcher, pair[:1], prompts=1, mode="likert", criteria=["fluency", "overall"])
    create_session(api, researcher, pair[:1], prompts=1, mode="ranking", ranking_k=3)
    create_session(api, researcher, pair[:1], prompts=1, active=True)
    annotator = pair[0]
    page, rest = _browser(annotator), client_for(annotator)
    found: list[str] = []

    # Pages: follow every same-site link from the queue (static files included); vote on each item
    # through the form, with htmx and without, skip one, vote twice.
    todo, seen = deque(["/rate/"]), set()
    while todo:
        url = todo.popleft()
        if url in seen or url.startswith(("/logout", "/static/vendor/")):
            continue  # the vendored htmx library is the same for everyone
        seen.add(url)
        text = _check(url, page.get(url), page, found)
        todo.extend(u for u in LINK.findall(text) if not urlparse(u).netloc and "/vote/" not in u and "/skip/" not in u)
    for session in RatingSession.objects.all():
        task = f"/rate/t/{session.public_id}/"
        for n in range(40):
            text = _check(task, page.get(task, HTTP_HX_REQUEST="true"), page, found)
            current = Assignment.objects.filter(
                annotator=annotator.user, item__session=session, shown_at__isnull=False, status="pending"
            ).first()
            if current is None:
                break
            vote_url = f"/rate/i/{current.public_id}/vote/"
            form = _form_for(session.mode, current)
            if n == 1:
                _check(
                    f"/rate/i/{current.public_id}/skip/", page.post(f"/rate/i/{current.public_id}/skip/"), page, found
                )
                continue
            htmx = {"HTTP_HX_REQUEST": "true"} if n % 2 else {}
            _check(vote_url, page.post(vote_url, form, **htmx), page, found)
            _check(vote_url, page.post(vote_url, form, **htmx), page, found)  # second vote: refused
            _check(f"/rate/i/{current.public_id}/", page.get(f"/rate/i/{current.public_id}/"), page, found)

    # API: tasks, next items, item detail, votes, a double vote, a skip, errors.
    create_session(api, researcher, [annotator], prompts=1)  # a fresh task, untouched by the pages
    tasks = rest.get("/api/v1/rating/tasks/").json()
    assert len(tasks) == 5
    for t in tasks:
        url = f"/api/v1/rating/tasks/{t['id']}/next/"
        response = rest.get(url)
        _check(url, response, rest, found)
        item = response.json()["item"]
        if item is None:
            continue
        _check(f"/api/v1/rating/items/{item['id']}/", rest.get(f"/api/v1/rating/items/{item['id']}/"), rest, found)
        vote_url = f"/api/v1/rating/items/{item['id']}/vote/"
        _check(vote_url, rest.post(vote_url, {"choice": "sideways"}, format="json"), rest, found)
        _check(vote_url, rest.post(vote_url, _api_vote(item), format="json"), rest, found)
        _check(vote_url, rest.post(vote_url, _api_vote(item), format="json"), rest, found)
        _check(
            f"/api/v1/rating/items/{item['id']}/skip/",
            rest.post(f"/api/v1/rating/items/{item['id']}/skip/"),
            rest,
            found,
        )
    _check("/api/v1/rating/tasks/", rest.get("/api/v1/rating/tasks/"), rest, found)
    _check("/api/v1/rating/items/nope/", rest.get("/api/v1/rating/items/nope/"), rest, found)
    assert len(seen) >= 8, seen
    assert not found, "\n".join(sorted(set(found)))


def test_the_leak_scan_does_find_configuration_names_where_they_are_shown(api, researcher, pair):
    """The scan is not vacuous: on the researcher's rankings page it finds labels and strategy names."""
    session = create_session(api, researcher, pair[:1])
    rate_all(client_for(pair[0]), lambda item: {"choice": "left"})
    page = _browser(researcher)
    found: list[str] = []
    _check("rankings", page.get(f"/rate/sessions/{session['id']}/rankings/"), page, found)
    assert any("'greedy'" in hit for hit in found)
    assert any(CONFIGS[1]["label"] in hit for hit in found)


def _form_for(mode: str, assignment: Assignment) -> dict:
    if mode == "pairwise":
        return {"choice": "left", "reason": "clearer"}
    if mode == "likert":
        return {f"score-{c}": "4" for c in assignment.item.session.criteria}
    return {f"rank-{pid}": str(i + 1) for i, pid in enumerate(assignment.shown_order)}


def _api_vote(item: dict) -> dict:
    if item["mode"] == "pairwise":
        return {"choice": "right"}
    if item["mode"] == "likert":
        return {"scores": dict.fromkeys(item["criteria"], 3)}
    return {"ranking": [o["id"] for o in item["outputs"]]}


# --- left/right placement ---------------------------------------------------------------


def test_left_right_placement_is_balanced_and_stored_per_item_and_annotator(api, researcher):
    """1,002 items (334 prompts x 3 pairs), each shown to 3 annotators: 3,006 placements drawn with
    the system's CSPRNG. The share of items whose first configuration is on the left must be
    50 % +/- 4 points (a fair coin misses that with probability ~1e-5)."""
    team = make_annotators("l1", "l2", "l3")
    comparisons = finished_comparisons(researcher.user, 334)
    response = api.post(
        "/api/v1/rating-sessions/",
        {
            "name": "balance",
            "mode": "pairwise",
            "comparisons": [str(c.id) for c in comparisons],
            "annotators": [a.user.username for a in team],
            "overlap": 3,
        },
        format="json",
    )
    assert response.status_code == 201
    first = dict(Candidate.objects.filter(position=0).values_list("item_id", "public_id"))
    placements = list(Assignment.objects.values_list("item_id", "shown_order"))
    assert len(first) == 1002 and len(placements) == 3006
    left_share = sum(order[0] == first[item] for item, order in placements) / len(placements)
    assert 0.46 <= left_share <= 0.54, left_share
    # the order is per (item, annotator): the three annotators of an item do not all share one order
    by_item: dict[int, set] = {}
    for item, order in placements:
        by_item.setdefault(item, set()).add(tuple(order))
    assert sum(len(orders) > 1 for orders in by_item.values()) > 600  # expected 75 % of 1,002
