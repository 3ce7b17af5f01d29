"""The ratings API end to end in-process: create, rate, rank, export."""

from __future__ import annotations

import csv
import io
import json

import pytest

from decodelab.ratings import serving
from decodelab.ratings.models import Assignment, Candidate, Vote
from tests.ratings.builders import CONFIGS
from tests.ratings.helpers import client_for, create_session, make_annotators, rate_all, task_id_of

pytestmark = pytest.mark.django_db
BEST = CONFIGS[2]["hash"]  # the configuration our simulated annotators prefer


@pytest.fixture
def team(db):
    return make_annotators("ann1", "ann2")


def _prefer_last_variant(item):
    """Choose the output whose text says 'variant z' (the third configuration); tie otherwise."""
    left, right = (o["text"] for o in item["outputs"])
    if "variant z" in left:
        return {"choice": "left"}
    if "variant z" in right:
        return {"choice": "right"}
    return {"choice": "tie", "reason": "same quality"}


def test_researcher_creates_a_session_and_sees_progress(api, researcher, team):
    session = create_session(api, researcher, team, overlap=2)
    assert session["summary"]["items"] == 9
    assert [p["annotator"] for p in session["progress"]] == ["ann1", "ann2"]
    assert all(p["pending"] == 9 for p in session["progress"])
    listed = api.get("/api/v1/rating-sessions/").json()
    assert listed["count"] == 1


def test_annotators_rate_and_the_researcher_gets_rankings_with_intervals(api, researcher, team):
    session = create_session(api, researcher, team, prompts=6, overlap=2)
    for member in team:
        assert len(rate_all(client_for(member), _prefer_last_variant)) == 18
    detail = api.get(f"/api/v1/rating-sessions/{session['id']}/").json()
    assert all(p["done"] == 18 and p["pending"] == 0 for p in detail["progress"])

    report = api.get(f"/api/v1/rating-sessions/{session['id']}/rankings/").json()
    assert report["n_votes"] == 36
    bt = report["bradley_terry"]["result"]
    assert bt["scores"][0]["config"] == BEST
    assert all(row["ci_lower"] <= row["score"] <= row["ci_upper"] for row in bt["scores"])
    assert bt["ci_method"] == "bootstrap-percentile"
    assert report["elo"]["result"][BEST] > 1000
    matrix = report["matrix"]["result"]
    best = matrix["configs"].index(BEST)
    assert sum(matrix["wins"][best]) == 24  # 6 prompts x 2 rivals x 2 annotators
    # identical behaviour from both annotators: perfect agreement
    assert report["agreement"]["krippendorff_alpha"]["result"]["alpha"] == pytest.approx(1.0)
    assert report["agreement"]["krippendorff_alpha"]["result"]["level"] == "nominal"
    assert {b["annotator"] for b in report["position_bias"]["result"]} == {"ann1", "ann2"}
    points = {p["config"]: p for p in report["quality_cost"]["points"]}
    assert set(points) == {c["hash"] for c in CONFIGS}
    assert points[CONFIGS[0]["hash"]]["on_frontier"]  # cheapest
    assert points[BEST]["on_frontier"]  # best


def test_a_vote_cannot_be_cast_twice(researcher, api, team):
    create_session(api, researcher, team)
    client = client_for(team[0])
    item = client.get(f"/api/v1/rating/tasks/{task_id_of(client)}/next/").json()["item"]
    url = f"/api/v1/rating/items/{item['id']}/vote/"
    assert client.post(url, {"choice": "left"}, format="json").status_code == 201
    second = client.post(url, {"choice": "right"}, format="json")
    assert second.status_code == 409
    assert "cannot be cast twice" in second.json()["detail"]
    assert Vote.objects.count() == 1 and Vote.objects.get().choice == "left"
    assert client.post(f"/api/v1/rating/items/{item['id']}/skip/").status_code == 409


def test_the_next_item_stays_the_same_until_answered_and_skip_moves_on(researcher, api, team):
    create_session(api, researcher, team)
    client = client_for(team[0])
    task = task_id_of(client)
    first = client.get(f"/api/v1/rating/tasks/{task}/next/").json()
    again = client.get(f"/api/v1/rating/tasks/{task}/next/").json()
    assert first["item"]["id"] == again["item"]["id"]
    assert client.post(f"/api/v1/rating/items/{first['item']['id']}/skip/").status_code == 200
    after = client.get(f"/api/v1/rating/tasks/{task}/next/").json()
    assert after["item"]["id"] != first["item"]["id"]
    assert after["progress"]["skipped"] == 1


def test_vote_validation_names_the_field(researcher, api, team):
    create_session(api, researcher, team)
    client = client_for(team[0])
    item = client.get(f"/api/v1/rating/tasks/{task_id_of(client)}/next/").json()["item"]
    response = client.post(f"/api/v1/rating/items/{item['id']}/vote/", {}, format="json")
    assert response.status_code == 400
    assert "choice" in response.json()["errors"]


def test_likert_and_ranking_sessions(researcher, api, team):
    likert = create_session(api, researcher, team[:1], mode="likert", criteria=["fluency", "overall"])
    client = client_for(team[0])

    def score(item):
        good = 5 if "variant z" in item["outputs"][0]["text"] else 2
        return {"scores": {"fluency": good, "overall": good}}

    assert len(rate_all(client, score)) == 9
    report = api.get(f"/api/v1/rating-sessions/{likert['id']}/rankings/").json()
    cells = [r for r in report["likert"]["result"] if r["criterion"] == "overall"]
    assert {r["config"]: r["mean"] for r in cells}[BEST] == 5
    assert report["quality_cost"]["score_name"] == "Likert mean (overall)"

    other = make_annotators("rank1")
    ranking = create_session(api, researcher, other, mode="ranking", ranking_k=3)
    ranker = client_for(other[0])

    def rank(item):
        ordered = sorted(item["outputs"], key=lambda o: o["text"].split("variant ")[1], reverse=True)
        return {"ranking": [o["id"] for o in ordered]}

    assert len(rate_all(ranker, rank)) == 3
    report = api.get(f"/api/v1/rating-sessions/{ranking['id']}/rankings/").json()
    assert report["bradley_terry"]["result"]["scores"][0]["config"] == BEST
    pairs = api.get(f"/api/v1/rating-sessions/{ranking['id']}/export/preferences.jsonl")
    lines = [json.loads(line) for line in b"".join(pairs.streaming_content).decode().splitlines()]
    assert len(lines) == 9 and all(p["provenance"]["source"] == "ranking" for p in lines)


def test_exports_carry_shown_order_annotator_timestamps_and_config_hashes(researcher, api, team):
    session = create_session(api, researcher, team[:1])
    rate_all(client_for(team[0]), _prefer_last_variant)
    base = f"/api/v1/rating-sessions/{session['id']}/export/"

    response = api.get(base + "votes.jsonl")
    assert response["Content-Type"] == "application/x-ndjson"
    assert "attachment" in response["Content-Disposition"]
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(rows) == 9
    for row in rows:
        vote = Vote.objects.get(id=row["vote_id"])
        assignment = Assignment.objects.get(vote=vote)
        by_id = {c.public_id: c for c in assignment.item.candidates.all()}
        assert row["shown_left_config"] == by_id[assignment.shown_order[0]].config_hash
        assert row["shown_right_config"] == by_id[assignment.shown_order[1]].config_hash
        assert row["annotator"] == "ann1" and row["created_at"] and row["shown_at"]
        if row["choice"] in ("left", "right"):
            assert row["winner_config"] == BEST

    text = b"".join(api.get(base + "votes.csv").streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 9 and table[0]["shown_left_label"]

    pairs = [
        json.loads(x) for x in b"".join(api.get(base + "preferences.jsonl").streaming_content).decode().split("\n") if x
    ]
    assert len(pairs) == 6  # decisive votes only: the 3 pairs without the best configuration were ties
    for pair in pairs:
        assert set(pair) == {"prompt", "chosen", "rejected", "provenance"}
        assert "variant z" in pair["chosen"]
        assert pair["provenance"]["chosen_config"] == BEST
        assert pair["provenance"]["annotator"] == "ann1"


def test_reveal_after_vote_only_when_the_session_allows_it(researcher, api, team):
    create_session(api, researcher, team[:1], reveal_after_vote=True)
    client = client_for(team[0])
    item = client.get(f"/api/v1/rating/tasks/{task_id_of(client)}/next/").json()["item"]
    result = client.post(f"/api/v1/rating/items/{item['id']}/vote/", {"choice": "tie"}, format="json").json()
    assert [r["side"] for r in result["reveal"]] == ["left", "right"]
    labels = {c["label"] for c in CONFIGS}
    assert all(r["label"] in labels and r["cost_ms_per_token"] > 0 for r in result["reveal"])


def test_gold_accuracy_is_reported_per_annotator(researcher, api, team):
    gold = [{"prompt": "2 + 2 =", "outputs": ["4", "5"], "expected": 0}]
    session = create_session(api, researcher, team[:1], gold=gold)

    def answer(item):
        if item["prompt"] == "2 + 2 =":
            return {"choice": "left" if item["outputs"][0]["text"] == "4" else "right"}
        return {"choice": "tie"}

    assert len(rate_all(client_for(team[0]), answer)) == 10
    report = api.get(f"/api/v1/rating-sessions/{session['id']}/rankings/").json()
    assert report["n_gold_votes"] == 1
    [row] = report["gold_accuracy"]["result"]
    assert row["annotator"] == "ann1" and row["accuracy"] == 1.0


def test_active_sessions_draw_pairs_one_at_a_time(researcher, api, team, monkeypatch):
    session = create_session(api, researcher, team, prompts=8, active=True, overlap=2)
    assert session["summary"]["items"] == 24
    assert Assignment.objects.count() == 0  # nothing is queued up front
    wanted = (CONFIGS[0]["hash"], CONFIGS[2]["hash"])
    asked = []

    def fake_next_pair(votes, *, candidates, configs):
        asked.append((len(votes), sorted(candidates)))
        return wanted

    monkeypatch.setattr(serving, "next_pair", fake_next_pair)
    client = client_for(team[0])
    task = task_id_of(client)
    for _ in range(3):
        item = client.get(f"/api/v1/rating/tasks/{task}/next/").json()["item"]
        shown = {Candidate.objects.get(public_id=o["id"]).config_hash for o in item["outputs"]}
        assert shown == set(wanted)
        client.post(f"/api/v1/rating/items/{item['id']}/vote/", {"choice": "left"}, format="json")
    assert [n for n, _ in asked] == [0, 1, 2]  # the policy sees every vote so far
    assert asked[0][1] == sorted(c["hash"] for c in CONFIGS)


def test_active_sessions_stop_once_the_intervals_separate(researcher, api, team, monkeypatch):
    session = create_session(api, researcher, team, prompts=8, active=True, overlap=2)
    monkeypatch.setattr(serving, "MIN_VOTES_PER_CONFIG", 1)
    monkeypatch.setattr(serving, "separated", lambda votes, configs: len(votes) >= 3)
    rated = rate_all(client_for(team[0]), _prefer_last_variant)
    assert len(rated) == 3
    assert api.get(f"/api/v1/rating-sessions/{session['id']}/").json()["status"] == "stopped"
    later = client_for(team[1])
    assert later.get(f"/api/v1/rating/tasks/{task_id_of(later)}/next/").json()["item"] is None


def test_active_sessions_with_real_statistics_serve_every_pair_until_exhausted(researcher, api, team):
    session = create_session(api, researcher, team, prompts=4, active=True, overlap=2)
    rated = rate_all(client_for(team[0]), _prefer_last_variant)
    # deterministic preferences never make the graph strongly connected, so the rule never stops it
    assert len(rated) == 12
    assert api.get(f"/api/v1/rating-sessions/{session['id']}/").json()["status"] == "open"


def test_create_validation_errors_use_the_api_error_format(api, researcher, team):
    response = api.post(
        "/api/v1/rating-sessions/", {"name": "x", "mode": "pairwise", "annotators": ["nobody"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"comparisons": ["choose at least one comparison"]}
