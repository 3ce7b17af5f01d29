"""CSRF: every HTML form that posts carries the token, a POST without it is refused with 403,
and htmx requests send it from ``hx-headers`` on <body>.

The pages are every GET-able page of the URL walk (tests/security/urlwalk.py) as researcher A
(with A's ids in the URLs) and as the annotator, so forms that apps add later are checked too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings
from django.test import Client

from tests.security.urlwalk import targets
from tests.security.world import make_world, rating_session

CSRF_FAILURE = "CSRF verification failed"
HTMX_VERBS = ("hx-post", "hx-put", "hx-patch", "hx-delete")


@dataclass
class Form:
    action: str
    method: str
    token: str = ""
    fields: dict[str, str] = field(default_factory=dict)


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.open: list[Form] = []
        self.body_headers: str | None = None
        self.htmx: list[tuple[str, str]] = []  # (attribute, url) of unsafe htmx requests

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body_headers = a.get("hx-headers")
        if tag == "form":
            form = Form(action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(form)
            self.open.append(form)
        if tag in ("input", "textarea", "select") and self.open and a.get("name"):
            if a["name"] == "csrfmiddlewaretoken":
                self.open[-1].token = a.get("value", "")
            else:
                self.open[-1].fields[a["name"]] = a.get("value", "")
        for verb in HTMX_VERBS:
            if verb in a:
                self.htmx.append((verb, a[verb]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.open:
            self.open.pop()


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def pages(world, client: Client, user: str) -> dict[str, str]:
    """URL -> HTML of every page this user can GET (200, text/html) among the walk's targets."""
    found: dict[str, str] = {}
    all_targets, _ = targets(world, per_kwarg=20, per_pattern=20)
    for target in all_targets:
        if target.endpoint.is_api or target.endpoint.is_admin or (target.nothing and not target.owned):
            continue
        response = client.get(target.url)
        if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
            found[target.url] = response.content.decode()
        if response.status_code == 200:  # and the partial an htmx request gets, where a page has one
            partial = client.get(target.url, HTTP_HX_REQUEST="true")
            if partial.status_code in (200, 286) and partial["Content-Type"].startswith("text/html"):
                found[f"{target.url}#htmx"] = partial.content.decode()
    assert found, f"{user} can open no page"
    return found


@pytest.fixture
def world(db):
    world = make_world()
    # The annotator's item pages, with their vote forms.
    world.ratings_note = rating_session(world, text="a rated output")
    return world


def logged_in(account) -> Client:
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(account.user)
    return client


@pytest.mark.parametrize("who", ["owner", "annotator"])
def test_every_post_form_carries_the_csrf_token_and_is_refused_without_it(world, who):
    account = getattr(world, who)
    client = logged_in(account)
    html_pages = pages(world, client, who)
    forms = []
    for url, html in html_pages.items():
        parsed = parse(html)
        for form in parsed.forms:
            if form.method == "post":
                forms.append((url, form))
                assert form.token, f"a form posting to {form.action!r} on {url} has no csrfmiddlewaretoken"
    assert forms, f"no form found on {who}'s pages"
    actions = {urlsplit(urljoin(url.split("#")[0], form.action)).path for url, form in forms}
    if who == "owner":
        assert {"/logout/", "/comparisons/new/", f"/comparisons/{world.comparison.id}/cancel/"} <= actions, actions
    elif world.ratings_note.startswith("session with"):
        assert any(action.startswith("/rate/i/") for action in actions), actions  # the vote form

    for url, form in forms:
        action = urljoin(url.split("#")[0], form.action)
        refused = client.post(action, form.fields)
        assert refused.status_code == 403 and CSRF_FAILURE in refused.content.decode(), (action, refused.status_code)
        # The same POST with the form's own token gets past the CSRF check.
        allowed = client.post(action, {**form.fields, "csrfmiddlewaretoken": form.token})
        assert CSRF_FAILURE not in allowed.content.decode(), action
        if action.endswith("/logout/"):
            client.force_login(account.user)


@pytest.mark.parametrize("who", ["owner", "annotator"])
def test_htmx_requests_send_the_token_from_the_body(world, who):
    account = getattr(world, who)
    client = logged_in(account)
    checked = 0
    for url, html in pages(world, client, who).items():
        if url.endswith("#htmx"):
            continue  # a partial is swapped into a page whose <body> carries the header
        parsed = parse(html)
        if "<body" in html and "htmx" in html:  # a whole page that loads htmx (not a fragment)
            assert parsed.body_headers, f"{url}: <body> has no hx-headers"
            token = json.loads(parsed.body_headers).get("X-CSRFToken")
            assert token, f"{url}: hx-headers has no X-CSRFToken"
        elif parsed.htmx:
            token = client.cookies[settings.CSRF_COOKIE_NAME].value  # what the host page's body would hold
        else:
            continue
        for _verb, target in parsed.htmx:
            action = urljoin(url, target)
            refused = client.post(action)
            assert refused.status_code == 403 and CSRF_FAILURE in refused.content.decode(), action
            allowed = client.post(action, HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true")
            assert CSRF_FAILURE not in allowed.content.decode(), action
            checked += 1
    if who == "owner":
        assert checked, "no htmx POST found on the owner's pages (the comparison page has one)"


def test_every_page_url_refuses_a_post_without_the_token(world):
    """Not only the forms: any page URL refuses a tokenless POST from a logged-in browser."""
    client = logged_in(world.owner)
    all_targets, _ = targets(world, per_kwarg=1, per_pattern=2)  # the CSRF check does not look at ids
    checked = 0
    for target in all_targets:
        if target.endpoint.is_api:
            continue
        response = client.post(target.url)
        view_class = getattr(target.endpoint.callback, "cls", None)
        if view_class is not None:  # a DRF view (the schema, its docs page): CSRF applies to session logins
            assert response.status_code in (403, 405), target.url
        else:
            assert response.status_code == 403 and CSRF_FAILURE in response.content.decode(), target.url
        checked += 1
    assert checked >= 10
    anonymous = Client(enforce_csrf_checks=True)
    response = anonymous.post("/login/", {"username": "walk-owner", "password": "x"})
    assert response.status_code == 403 and CSRF_FAILURE in response.content.decode()


def test_api_session_calls_need_the_token_and_token_calls_do_not(world):
    body = {"prompt": "Hi", "presets": [{"strategy": "greedy"}]}
    session = logged_in(world.owner)
    refused = session.post("/api/v1/comparisons/", body, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    session.cookies[settings.CSRF_COOKIE_NAME] = "a" * 32
    ok = session.post("/api/v1/comparisons/", body, content_type="application/json", HTTP_X_CSRFTOKEN="a" * 32)
    assert ok.status_code == 201, ok.content
    token = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {world.owner.token}")
    assert token.post("/api/v1/comparisons/", body, content_type="application/json").status_code == 201
