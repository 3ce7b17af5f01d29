"""Walk every (user, URL, verb): nobody but the owner gets content from the owner's objects.

Every URL pattern comes from the root resolver (tests/security/urlwalk.py), so endpoints that
apps add later are walked too. Path parameters are filled with ids of researcher A's objects
(tests/security/world.py: the runs app through its services, every other decodelab model through
a generic factory) and with ids that name nothing. Each URL is requested with GET, POST, PUT,
PATCH and DELETE by:

- ``anonymous`` (no credentials);
- ``owner`` (researcher A), ``foreign`` (researcher B) and ``annotator``: pages and the API with a
  session (a CSRF-enforcing client that sends a valid token, so requests reach the views' own
  checks), and the API once more with ``Authorization: Token``.

Rules ("content" = a 2xx answer, or a redirect anywhere but a login page):

1. No answer is a server error (5xx), for anyone.
2. anonymous: the API answers 401; a page that is not public redirects to the login page
   (the admin's to its own login).
3. URLs whose parameters hold A's ids or ids that name nothing: ``foreign`` gets 404 (405 for a
   verb the URL does not have; the admin redirects to its login), never content, not even a 403
   that would confirm the object exists; ``annotator`` gets 403, 404 or 405; so does ``owner``
   for the ids that name nothing.
4. ``annotator`` gets no content from views declared for researchers (``IsResearcher``,
   ``researcher_required``), nor from any URL outside the ratings app and the public pages.
5. No answer to anyone but A contains A's object ids or the mark in A's texts, except ids the
   request's own URL holds.

The walk asserts at least 1,000 requests and prints a verb x user x status table (also written to
test-artifacts/security/access-walk.txt).
"""

from __future__ import annotations

import collections
import secrets
import string
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from tests.security.urlwalk import LOGIN_PATHS, Target, endpoints, targets
from tests.security.world import World, make_world
from tests.support.servers import ROOT

VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ANNOTATOR_APPS = {"ratings"}  # where annotators may get content


def csrf_secret() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


@dataclass
class Caller:
    user: str  # anonymous, owner, foreign, annotator
    channel: str  # session, token, none
    client: Client
    account: Any = None  # NewUser
    csrf: str = ""

    @property
    def label(self) -> str:
        return self.user if self.channel == "none" else f"{self.user}/{self.channel}"

    def login(self) -> None:
        if self.channel != "session":
            return
        self.client.force_login(self.account.user)
        self.client.cookies[settings.CSRF_COOKIE_NAME] = self.csrf

    def request(self, verb: str, url: str, api: bool):
        headers = {"HTTP_X_CSRFTOKEN": self.csrf} if self.csrf else {}
        if api:
            body, content_type = ("{}" if verb in ("POST", "PUT", "PATCH") else ""), "application/json"
        else:
            body, content_type = "", "application/x-www-form-urlencoded"
        response = self.client.generic(verb, url, body, content_type=content_type, **headers)
        if self.channel == "session":
            cookie = self.client.cookies.get(settings.SESSION_COOKIE_NAME)
            if cookie is None or not cookie.value:  # a logout URL ended the session: log in again
                self.login()
        return response


def strict_client(**headers: str) -> Client:
    # A 5xx comes back as a response (and is counted), not as the view's exception.
    return Client(enforce_csrf_checks=True, raise_request_exception=False, **headers)


def make_callers(world: World) -> list[Caller]:
    callers = [Caller("anonymous", "none", strict_client(), csrf=csrf_secret())]
    callers[0].client.cookies[settings.CSRF_COOKIE_NAME] = callers[0].csrf
    for name, account in (("foreign", world.foreign), ("annotator", world.annotator), ("owner", world.owner)):
        session = Caller(name, "session", strict_client(), account, csrf_secret())
        session.login()
        token = Caller(name, "token", strict_client(HTTP_AUTHORIZATION=f"Token {account.token}"), account)
        callers += [session, token]
    return callers


def is_login_redirect(response) -> bool:
    if response.status_code not in (301, 302, 303, 307, 308):
        return False
    return urlsplit(response["Location"]).path in LOGIN_PATHS


def is_content(response) -> bool:
    return 200 <= response.status_code < 300 or (300 <= response.status_code < 400 and not is_login_redirect(response))


def check(target: Target, caller: Caller, verb: str, response, world: World) -> str | None:
    """The rule this answer breaks, or None."""
    status = response.status_code
    endpoint = target.endpoint
    if status >= 500:
        return "server error"
    if caller.user == "anonymous":
        if endpoint.is_api and status != 401:
            return "anonymous API call must be 401"
        if not endpoint.is_api and not endpoint.is_public and not is_login_redirect(response):
            return "anonymous page must redirect to the login page"
    refused = status in (403, 404, 405) or is_login_redirect(response)
    if target.has_params and caller.user == "foreign" and not (status in (404, 405) or is_login_redirect(response)):
        return "another researcher's object must not exist for them (404; 405 for a verb the URL lacks)"
    if target.has_params and caller.user == "annotator" and not refused:
        return "an annotator got an answer other than 403/404/405 for an object URL"
    if target.nothing and not target.owned and caller.user != "anonymous" and not refused:
        return "an id that names nothing must be 404"
    researchers_url = endpoint.researcher_only or endpoint.app not in ANNOTATOR_APPS
    if caller.user == "annotator" and not endpoint.is_public and is_content(response) and researchers_url:
        return "an annotator got content from a researcher URL"
    if caller.user != "owner":
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        body = raw.decode(errors="replace")
        leaked = [s for s in world.secret_strings() if s in body and s not in target.url]
        if leaked:
            return f"the answer contains A's data: {leaked[:3]}"
    return None


def summary(counts: collections.Counter, callers: list[Caller]) -> str:
    statuses = sorted({status for (_verb, _label, status) in counts})
    head = f"{'verb':7} {'user':20} " + " ".join(f"{s:>5}" for s in statuses) + "  total"
    lines = [head, "-" * len(head)]
    for verb in VERBS:
        for caller in callers:
            row = [counts.get((verb, caller.label, s), 0) for s in statuses]
            if sum(row):
                lines.append(f"{verb:7} {caller.label:20} " + " ".join(f"{n:>5}" for n in row) + f"  {sum(row):>5}")
    lines.append(f"total requests: {sum(counts.values())}")
    return "\n".join(lines)


@pytest.mark.django_db
def test_every_user_url_and_verb_respects_ownership_and_roles():
    world = make_world()
    callers = make_callers(world)
    all_targets, unbuildable = targets(world)
    # Our own URL patterns must all be reachable by the walk; the admin's shadowed login is not.
    ours = [route for route in unbuildable if not route.startswith("admin/")]
    assert not ours, f"cannot build URLs for {ours}: add their parameter names to urlwalk.KWARG_MODELS"

    counts: collections.Counter = collections.Counter()
    violations: list[str] = []
    deferred: list[tuple[Target, Caller, str]] = []
    for target in all_targets:
        for verb in VERBS:
            for caller in callers:
                if caller.channel == "token" and not target.endpoint.is_api:
                    continue  # tokens authenticate API calls only
                if caller.user == "owner" and verb == "DELETE":
                    deferred.append((target, caller, verb))  # the owner's deletions last: A's objects stay
                    continue
                run_one(target, caller, verb, world, counts, violations)
    for target, caller, verb in deferred:
        run_one(target, caller, verb, world, counts, violations)

    table = summary(counts, callers)
    patterns = collections.Counter(t.endpoint.app for t in all_targets)
    report = (
        f"{table}\n\nURLs walked per app: {dict(patterns)}\n"
        f"A's objects: { {label: len(objs) for label, objs in world.owned.items()} }\n"
        f"models without a row: {world.skipped_models}\n"
    )
    print(report)
    out = ROOT / "test-artifacts" / "security"
    out.mkdir(parents=True, exist_ok=True)
    (out / "access-walk.txt").write_text(report)

    assert sum(counts.values()) >= 1000, table
    assert not violations, f"{len(violations)} violations:\n" + "\n".join(violations[:60])
    # The rules above would also hold if every answer were an error: the owner does get content.
    owner_reads = [
        f"/comparisons/{world.comparison.id}/",
        f"/api/v1/comparisons/{world.comparison.id}/",
        f"/api/v1/runs/{world.runs[0].id}/",
    ]
    owner = next(c for c in callers if c.user == "owner" and c.channel == "session")
    for url in owner_reads:
        response = owner.client.get(url)
        assert response.status_code == 200 and "walk-secret" in response.content.decode(), url
    foreign = next(c for c in callers if c.user == "foreign" and c.channel == "token")
    assert foreign.client.get(f"/api/v1/comparisons/{world.foreign_comparison.id}/").status_code == 200


def run_one(target, caller, verb, world, counts, violations) -> None:
    response = caller.request(verb, target.url, target.endpoint.is_api)
    counts[(verb, caller.label, response.status_code)] += 1
    problem = check(target, caller, verb, response, world)
    if problem:
        violations.append(f"{verb} {target.url} as {caller.label}: {response.status_code}: {problem}")


def test_urls_added_later_are_walked(settings):
    """The walk reads the resolver: a pattern that appears later is among the targets."""
    from django.urls import clear_url_caches, include, path

    import decodelab.config.urls as root

    probe = [path("probe/<uuid:comparison_id>/", lambda request, comparison_id: None, name="probe")]
    extra = type("ProbeUrls", (), {"urlpatterns": [*root.urlpatterns, path("security-probe/", include(probe))]})
    settings.ROOT_URLCONF = extra
    clear_url_caches()
    try:
        found = {e.route: e for e in endpoints()}
        probe_endpoint = found["security-probe/probe/<uuid:comparison_id>/"]
        some_id = uuid.uuid4()
        assert probe_endpoint.build({"comparison_id": some_id}) == f"/security-probe/probe/{some_id}/"
    finally:
        clear_url_caches()
