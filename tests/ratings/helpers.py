"""Shared set-up for the ratings tests: API clients and a session made through the API."""

from __future__ import annotations

from rest_framework.test import APIClient

from decodelab.users.models import Role
from decodelab.users.services import user_create
from tests.ratings.builders import finished_comparisons


def client_for(new_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {new_user.token}")
    return client


def make_annotators(*names: str):
    return [user_create(username=name, role=Role.ANNOTATOR) for name in names]


def create_session(api: APIClient, researcher, annotators, *, prompts: int = 3, **fields) -> dict:
    comparisons = finished_comparisons(researcher.user, prompts)
    body = {
        "name": "pilot",
        "mode": "pairwise",
        "comparisons": [str(c.id) for c in comparisons],
        "annotators": [a.user.username for a in annotators],
        "instructions": "Pick the answer you prefer.",
        **fields,
    }
    response = api.post("/api/v1/rating-sessions/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def task_id_of(client: APIClient) -> str:
    tasks = client.get("/api/v1/rating/tasks/").json()
    assert len(tasks) == 1
    return tasks[0]["id"]


def rate_all(client: APIClient, answer) -> list[dict]:
    """Vote on every item of the caller's single task; ``answer(item)`` gives the vote body."""
    task = task_id_of(client)
    seen = []
    while True:
        body = client.get(f"/api/v1/rating/tasks/{task}/next/").json()
        item = body["item"]
        if item is None:
            return seen
        response = client.post(f"/api/v1/rating/items/{item['id']}/vote/", answer(item), format="json")
        assert response.status_code == 201, response.content
        seen.append(item)
