"""Model output is untrusted: stored markup renders escaped on every page.

tests/runs/test_views.py checks one output on the comparison partial. Here the payloads go into
every text a page can show (prompt, model name, stop strings, labels, outputs, token traces and
their top-5 alternatives, speculative marks, strategy metrics, run errors, workers, parameters,
and every text field of the other apps' rows), and every HTML page of the URL walk is read: as
researcher A with A's ids, as htmx partials, and as the annotator with rating rows that point at
A's outputs.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from decodelab.runs.models import Comparison, Output, Run
from tests.security.urlwalk import targets
from tests.security.world import make_world, rating_session, trace
from tests.support.servers import ROOT

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
PAYLOAD = f"{SCRIPT}{IMG}\"'&"
RAW = ("<script>alert(1)", "<img src=x onerror")
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


def raw_payload_in(html: str) -> list[str]:
    return [r for r in RAW if r in html]


def store_payloads(world) -> None:
    """Put the payload into every stored text the pages show, straight through the ORM."""
    comparison = world.comparison
    Comparison.objects.filter(pk=comparison.pk).update(prompt=PAYLOAD, model=SCRIPT, stop=[PAYLOAD[:64]])
    succeeded, failed, queued = world.runs
    spec_trace = trace(PAYLOAD)
    spec_trace[0]["spec"] = PAYLOAD  # becomes part of a class attribute
    spec_trace[0]["forced"] = True
    Output.objects.filter(run=succeeded).update(
        text=PAYLOAD, trace=spec_trace, metrics={"constraint": PAYLOAD, PAYLOAD: PAYLOAD, "valid": True}
    )
    Run.objects.filter(pk=succeeded.pk).update(
        label=PAYLOAD,
        worker=PAYLOAD,
        params={"regex": PAYLOAD},
        environment={"device": PAYLOAD, "dtype": PAYLOAD, "torch_version": PAYLOAD},
        metrics={"new_tokens": 2, "decode_ms": 1.0, "note": PAYLOAD},
    )
    Run.objects.filter(pk=failed.pk).update(label=PAYLOAD, error=PAYLOAD, error_field=PAYLOAD)
    Run.objects.filter(pk=queued.pk).update(label=PAYLOAD, status="running", worker=PAYLOAD)


@pytest.fixture
def world(db):
    world = make_world(text=PAYLOAD, prompt=PAYLOAD, annotator_rows=True)
    store_payloads(world)
    world.ratings_note = rating_session(world, text=PAYLOAD)
    return world


def html_pages(client: Client, world) -> dict[str, str]:
    """Every HTML page (and htmx partial) of the walk this client can read."""
    found: dict[str, str] = {}
    all_targets, _ = targets(world, per_kwarg=20, per_pattern=20)  # GETs only: cheap enough to try more ids
    for target in all_targets:
        if target.endpoint.is_admin or (target.nothing and not target.owned):
            continue
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(target.url, **headers)
            if response.status_code in (200, 286) and response["Content-Type"].startswith("text/html"):
                found[target.url + (" (htmx)" if headers else "")] = response.content.decode()
    return found


def browser(account) -> Client:
    # A page that fails on the generic rows' odd values is skipped (only 200s are read), not raised.
    client = Client(raise_request_exception=False)
    client.force_login(account.user)
    return client


def test_every_researcher_page_shows_stored_markup_escaped(world):
    client = browser(world.owner)
    pages = html_pages(client, world)
    detail = f"/comparisons/{world.comparison.id}/"
    must_show = {"/comparisons/", detail, f"{detail} (htmx)"}
    assert must_show <= set(pages), sorted(pages)
    leaks = {url: raw_payload_in(html) for url, html in pages.items() if raw_payload_in(html)}
    assert not leaks, leaks
    for url in must_show:
        assert ESCAPED_SCRIPT in pages[url], url
    page = pages[detail]
    # Outputs, trace tokens (text and title), labels, errors, metrics: each place escaped.
    assert page.count(ESCAPED_SCRIPT) >= 6, page.count(ESCAPED_SCRIPT)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert re.search(r'class="tok[^"]*spec-&lt;script&gt;', page), "the speculative mark is escaped inside class"
    assert "&quot;" in page and "&#x27;" in page  # quotes cannot end an attribute
    report = ROOT / "test-artifacts" / "security"
    report.mkdir(parents=True, exist_ok=True)
    (report / "xss-pages.txt").write_text("\n".join(sorted(pages)) + "\n")


def test_annotator_pages_show_stored_markup_escaped(world):
    client = browser(world.annotator)
    pages = html_pages(client, world)
    assert pages, "the annotator can open no page"
    report = ROOT / "test-artifacts" / "security"
    report.mkdir(parents=True, exist_ok=True)
    (report / "xss-annotator-pages.txt").write_text(world.ratings_note + "\n" + "\n".join(sorted(pages)) + "\n")
    if world.ratings_note.startswith("session with"):
        shown = [url for url, html in pages.items() if ESCAPED_SCRIPT in html]
        assert shown, f"no annotator page shows A's outputs ({world.ratings_note}): {sorted(pages)}"
    leaks = {url: raw_payload_in(html) for url, html in pages.items() if raw_payload_in(html)}
    assert not leaks, leaks


def test_the_api_returns_markup_as_json_text_never_as_html(world):
    api = Client(HTTP_AUTHORIZATION=f"Token {world.owner.token}")
    for url in (f"/api/v1/comparisons/{world.comparison.id}/", f"/api/v1/runs/{world.runs[0].id}/"):
        response = api.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response["X-Content-Type-Options"] == "nosniff"  # browsers never sniff it into HTML
        assert PAYLOAD in response.json()["prompt" if "comparisons" in url else "label"]


# Filters, tags and helpers that switch autoescaping off. json_script is not among them: it
# escapes <, > and & for a <script type="application/json"> block.
UNSAFE = re.compile(
    r"\|\s*safe\b|\|\s*safeseq\b|\{%\s*autoescape\s+off|mark_safe\s*\(|SafeString\s*\(|SafeText\s*\("
    r"|format_html\s*\(|@html_safe|\bhtml_safe\s*\("
)
RAW_HTML_RESPONSE = re.compile(r"HttpResponse\(\s*(f[\"']|[\"'][^\"']*[\"']\s*%|.*\.format\()")


def test_no_template_or_module_turns_autoescaping_off():
    found = []
    files = [*(ROOT / "templates").rglob("*.html"), *(ROOT / "decodelab").rglob("*.html")]
    files += list((ROOT / "decodelab").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        text = path.read_text(errors="replace")
        for lineno, line in enumerate(text.splitlines(), start=1):
            if UNSAFE.search(line) or (path.suffix == ".py" and RAW_HTML_RESPONSE.search(line)):
                found.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_scan_finds_planted_examples():
    for line in ["{{ out.text|safe }}", "{% autoescape off %}", "mark_safe(text)", "format_html(x)", "{{ a | safe }}"]:
        assert UNSAFE.search(line), line
    assert not UNSAFE.search('{{ chart|json_script:"chart-data" }}')
    assert RAW_HTML_RESPONSE.search('return HttpResponse(f"<p>{text}</p>")')
