"""A researcher in Debian's Chromium: log in, submit a comparison, watch both outputs arrive."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SHOTS, settled

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_researcher_logs_in_submits_a_comparison_and_sees_both_outputs(live_stack, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_stack.base_url + "/")
    expect(page).to_have_url(f"{live_stack.base_url}/login/?next=/")  # the front door asks for a login
    page.get_by_label("Username").fill(live_stack.username)
    page.get_by_label("Password").fill(live_stack.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Comparisons")).to_be_visible()  # a researcher starts here
    expect(page).to_have_url(f"{live_stack.base_url}/comparisons/")

    page.get_by_role("link", name="New comparison").first.click()
    page.get_by_label("Prompt").fill("Name the capital of France in one word.")
    page.get_by_label("Max new tokens").fill("12")
    presets = page.locator("fieldset.preset")
    expect(presets).to_have_count(3)
    presets.nth(2).get_by_role("button", name="Remove this preset").click()  # keep greedy and beam
    expect(presets).to_have_count(2)
    # Switching a row's strategy swaps in that strategy's parameters (htmx).
    page.get_by_role("button", name="+ Add preset").click()
    expect(presets).to_have_count(3)
    settled(page)
    presets.nth(2).get_by_label("Strategy").select_option("sampling")
    expect(presets.nth(2).get_by_label("temperature")).to_be_visible()
    presets.nth(2).get_by_role("button", name="Remove this preset").click()
    page.screenshot(path=str(SHOTS / "new-comparison-1280.png"), full_page=True)
    page.get_by_role("button", name="Run comparison").click()

    runs = page.locator("article.run")
    expect(runs).to_have_count(2)
    # The page polls until every run has finished; then polling stops (HTTP 286).
    expect(page.locator('article.run[data-status="succeeded"]')).to_have_count(2, timeout=180_000)
    for i in range(2):
        text = runs.nth(i).locator(".output-text").first.inner_text()
        assert text.strip(), f"run {i} has an empty output"
    expect(page.locator("#runs")).not_to_have_attribute("hx-trigger", "every 1s")
    expect(page.locator("table.metrics")).to_contain_text("Tokens/s (decode)")
    page.screenshot(path=str(SHOTS / "comparison-1280.png"), full_page=True)

    # Token view: each token coloured by its probability, with its top-5 on hover.
    expect(page.locator(".token-view").first).to_be_hidden()
    page.get_by_label("tokens · probability heat").check()
    token_view = runs.nth(0).locator(".token-view")
    expect(token_view).to_be_visible()
    expect(runs.nth(0).locator(".plain-view")).to_be_hidden()
    first_token = token_view.locator(".tok").first
    assert "top:" in (first_token.get_attribute("title") or "")
    # The same text, token by token (plus the end-of-sequence token, which the plain view drops).
    assert runs.nth(0).locator(".plain-view").first.text_content() in token_view.text_content()
    page.screenshot(path=str(SHOTS / "comparison-heat-1280.png"), full_page=True)
    page.get_by_label("text", exact=True).check()

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator('article.run[data-status="succeeded"]')).to_have_count(2)
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the page scrolls sideways at 390 px"
    page.screenshot(path=str(SHOTS / "comparison-390.png"), full_page=True)

    page.goto(live_stack.base_url + "/comparisons/")
    expect(page.locator("table.list tbody tr").first).to_contain_text("Name the capital of France")
    page.screenshot(path=str(SHOTS / "list-390.png"), full_page=True)
