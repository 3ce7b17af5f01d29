"""Blind rating in Debian's Chromium: an annotator rates with the keyboard only; the researcher
then sees rankings with confidence-interval bars. Screenshots: test-artifacts/screenshots/rating-*.png."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SHOTS, settled

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Ten votes, each with a different key the page offers for pairwise items.
KEYS = ["1", "ArrowRight", "3", "b", "2", "ArrowLeft", "t", "4", "1", "2"]


def _demo(stack, *args: str) -> dict[str, str]:
    """Seed finished comparisons and a session with manage.py ratings_demo; return what it printed."""
    done = stack.manage("ratings_demo", "--owner", stack.username, *args)
    assert done.returncode == 0, done.stderr
    out: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith("annotator "):
            out["password"] = line.split("password ", 1)[1].split()[0]
        elif ": " in line:
            key, value = line.split(": ", 1)
            out[key] = value
    return out


def _log_in(page, base_url: str, username: str, password: str, next_url: str) -> None:
    page.goto(f"{base_url}/login/?next={next_url}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def _api(stack, path: str) -> dict:
    request = urllib.request.Request(stack.base_url + path, headers={"Authorization": f"Token {stack.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_annotator_rates_with_the_keyboard_and_researcher_sees_ci_bars(live_stack, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    demo = _demo(live_stack, "--annotators", "kb-rater", "--prompts", "4", "--simulated", "2")
    session_id = demo["session"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _log_in(page, live_stack.base_url, "kb-rater", demo["password"], "/rate/")
    expect(page.get_by_role("heading", name="My rating queue")).to_be_visible()
    expect(page.get_by_role("link", name="Comparisons")).to_have_count(0)  # no researcher navigation
    page.screenshot(path=str(SHOTS / "rating-queue-1280.png"), full_page=True)
    page.get_by_role("link", name="Start rating").click()

    area = page.locator("#rating-area")
    progress = area.locator(".progress-line")
    expect(progress).to_contain_text("0 rated · 12 in this task")
    expect(area.locator(".output-card")).to_have_count(2)
    page.screenshot(path=str(SHOTS / "rating-pairwise-1280.png"), full_page=True)

    seen = set()
    for n, key in enumerate(KEYS, start=1):
        settled(page)
        seen.add(area.locator("form#vote-form").get_attribute("action"))
        if n == 3:  # a reason, typed after R, left with Escape, then the vote key
            page.keyboard.press("r")
            expect(page.get_by_label("Reason")).to_be_focused()
            page.keyboard.type("both say the same thing")
            page.keyboard.press("Escape")
        page.keyboard.press(key)
        expect(progress).to_contain_text(f"{n} rated")
    assert len(seen) == 10, "every vote went to a different item"
    settled(page)
    page.keyboard.press("s")  # skip the eleventh
    expect(progress).to_contain_text("10 rated · 1 skipped")
    settled(page)
    page.keyboard.press("1")
    expect(area.get_by_role("heading", name="All done")).to_be_visible()
    page.screenshot(path=str(SHOTS / "rating-done-1280.png"), full_page=True)

    session = _api(live_stack, f"/api/v1/rating-sessions/{session_id}/")
    mine = next(p for p in session["progress"] if p["annotator"] == "kb-rater")
    assert (mine["done"], mine["skipped"], mine["pending"]) == (11, 1, 0)
    votes = urllib.request.Request(
        f"{live_stack.base_url}/api/v1/rating-sessions/{session_id}/export/votes.jsonl",
        headers={"Authorization": f"Token {live_stack.token}"},
    )
    with urllib.request.urlopen(votes, timeout=30) as response:
        rows = [json.loads(line) for line in response.read().decode().splitlines()]
    ours = [r for r in rows if r["annotator"] == "kb-rater"]
    assert len(ours) == 11 and any(r["reason"] == "both say the same thing" for r in ours)
    assert {r["choice"] for r in ours} == {"left", "right", "tie", "both_bad"}

    researcher = browser.new_page(viewport={"width": 1280, "height": 900})
    _log_in(researcher, live_stack.base_url, live_stack.username, live_stack.password, "/rate/sessions/")
    expect(researcher.get_by_role("heading", name="Rating sessions")).to_be_visible()
    researcher.goto(f"{live_stack.base_url}/rate/sessions/{session_id}/")
    expect(researcher.get_by_role("row", name="kb-rater")).to_contain_text("11")
    researcher.screenshot(path=str(SHOTS / "rating-session-1280.png"), full_page=True)
    researcher.get_by_role("link", name="Rankings").first.click()
    bars = researcher.locator("#bt .ci-bar")
    expect(bars).to_have_count(3)
    for i in range(3):
        box = bars.nth(i).bounding_box()
        assert box and box["width"] > 2, "a CI bar is drawn"
    expect(researcher.locator("#quality-cost svg")).to_be_visible()
    expect(researcher.locator("#quality-cost .on-frontier").first).to_be_visible()
    expect(researcher.locator("#position-bias")).to_contain_text("kb-rater")
    researcher.screenshot(path=str(SHOTS / "rating-rankings-1280.png"), full_page=True)

    researcher.set_viewport_size({"width": 390, "height": 844})
    researcher.reload()
    overflow = researcher.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the rankings page scrolls sideways at 390 px"


def test_likert_and_ranking_with_the_keyboard(live_stack, browser):
    likert = _demo(live_stack, "--annotators", "kb-likert", "--prompts", "1", "--mode", "likert")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _log_in(page, live_stack.base_url, "kb-likert", likert["password"], likert["task"])
    area = page.locator("#rating-area")
    expect(area.locator("fieldset.likert")).to_have_count(3)
    expect(area.locator("fieldset.likert.current")).to_contain_text("fluency")
    page.keyboard.press("4")
    expect(area.locator("fieldset.likert.current")).to_contain_text("relevance")
    page.screenshot(path=str(SHOTS / "rating-likert-1280.png"), full_page=True)
    for n in range(1, 4):
        settled(page)
        for key in ("5", "3", "4") if n > 1 else ("3", "4"):
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        expect(area.locator(".progress-line")).to_contain_text(f"{n} rated")
    expect(area.get_by_role("heading", name="All done")).to_be_visible()

    ranking = _demo(live_stack, "--annotators", "kb-ranker", "--prompts", "1", "--mode", "ranking")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    _log_in(page, live_stack.base_url, "kb-ranker", ranking["password"], ranking["task"])
    area = page.locator("#rating-area")
    expect(area.locator(".ranking select")).to_have_count(3)
    for key in ("2", "3", "1"):
        page.keyboard.press(key)
    expect(page.get_by_label("Rank").nth(1)).to_have_value("1")
    expect(page.get_by_label("Rank").nth(0)).to_have_value("3")
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the rating page scrolls sideways at 390 px"
    page.screenshot(path=str(SHOTS / "rating-ranking-390.png"), full_page=True)
    page.keyboard.press("Enter")
    expect(area.get_by_role("heading", name="All done")).to_be_visible()
