"""The researcher workbench in Debian's Chromium against the whole stack (real worker on the
default model): upload a prompt set, build a sweep, add greedy, run an experiment, watch its
progress reach 100 %, open the grid and a cell, diff two outputs, compare side by side, see the
charts and download the CSV export. Every page is checked for labelled controls."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PROMPTS_CSV = (
    "id,prompt,reference,tags\n"
    "fr,The capital of France is,Paris,geo\n"
    'count,"Count: one, two,",three,\n'
    "sky,The sky is,blue,colour\n"
)
# Every visible control must have a label (a <label>, aria-label or aria-labelledby).
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter(el => el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 120))"""


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"workbench-{name}.png"), full_page=True)


def labelled(page) -> None:
    assert page.evaluate(UNLABELLED) == [], f"unlabelled controls on {page.url}"


def test_researcher_runs_an_experiment_from_upload_to_export(live_stack, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page.goto(live_stack.base_url + "/login/")
    page.get_by_label("Username").fill(live_stack.username)
    page.get_by_label("Password").fill(live_stack.password)
    page.get_by_role("button", name="Log in").click()

    # 1. A prompt set by upload.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Prompt sets").click()
    labelled(page)
    page.get_by_label("File (.jsonl or .csv)").set_input_files(
        {"name": "tiny.csv", "mimeType": "text/csv", "buffer": PROMPTS_CSV.encode()}
    )
    page.get_by_label("Name (default: the file name)").fill("tiny prompts")
    page.get_by_role("button", name="Upload prompt set").click()
    expect(page.get_by_role("heading", name="Prompt set: tiny prompts")).to_be_visible()
    expect(page.locator("table.list tbody tr")).to_have_count(3)
    expect(page.locator("table.list")).to_contain_text("Count: one, two,")
    shot(page, "prompt-set")

    # 2. A sweep: sampling x temperature 0.7, 1.0 (the strategy select swaps the parameters in).
    page.get_by_role("link", name="Sweep builder").click()
    page.get_by_label("Strategy").select_option("sampling")
    expect(page.get_by_label("X parameter")).to_contain_text("temperature")
    page.get_by_label("Max new tokens").fill("8")
    page.get_by_label("Apply the chat template").uncheck()
    page.get_by_label("X parameter").select_option("temperature")
    page.get_by_label("X values, comma-separated").fill("0.7, 1.0")
    labelled(page)
    shot(page, "sweep-builder")
    page.get_by_role("button", name="Build presets").click()
    expect(page.get_by_role("heading", name="Sweep:")).to_be_visible()
    expect(page.locator("table.sweep-table code.hash")).to_have_count(2)
    shot(page, "sweep")

    # 3. Plus greedy, as a saved preset.
    page.get_by_role("link", name="Presets", exact=True).click()
    page.get_by_role("link", name="New preset").click()
    page.get_by_label("Name (default: a label from the parameters)").fill("greedy")
    page.get_by_label("Strategy").select_option("greedy")
    expect(page.locator("#param-fields")).to_contain_text("This strategy has no parameters")
    page.get_by_label("Max new tokens").fill("8")
    page.get_by_label("Apply the chat template").uncheck()
    labelled(page)
    page.get_by_role("button", name="Create preset").click()
    expect(page.locator("table.list tbody tr")).to_have_count(3)

    # 4. The experiment: 3 prompts x 3 presets x 2 samples on the default model.
    page.get_by_role("link", name="New experiment").click()
    page.get_by_label("Name", exact=True).fill("temperature sweep")
    page.get_by_label("Prompt set").select_option(label="tiny prompts (3 prompts)")
    for box in page.locator("fieldset.preset-picks input[type=checkbox]").all():
        box.check()
    page.get_by_label("Samples per cell").fill("2")
    page.get_by_label("Seeds, one per sample (comma-separated; default 0, 1, …)").fill("11, 12")
    labelled(page)
    page.get_by_role("button", name="Run experiment").click()
    progress = page.locator("#progress")
    expect(page.get_by_role("heading", name="Experiment: temperature sweep")).to_be_visible()
    expect(progress).to_contain_text("of 18 runs finished")
    # A screenshot once some runs have finished (the ETA shows), unless they all finish at once.
    started = "() => document.querySelector('#progress .percent').textContent !== '0.0 %'"
    page.wait_for_function(started, timeout=240_000)
    shot(page, "progress")
    expect(progress.locator(".percent")).to_have_text("100.0 %", timeout=240_000)
    expect(progress).to_have_attribute("data-status", "finished")
    expect(progress).not_to_have_attribute("hx-trigger", "every 1s")  # polling stopped (HTTP 286)
    expect(progress).to_contain_text("succeeded 18")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100.0")
    shot(page, "progress-done")
    experiment_url = page.url

    # 5. The grid: 3 prompts x 3 configurations, every cell an output; keyboard opens a cell.
    page.get_by_role("link", name="Open the grid").click()
    expect(page.locator("td.grid-cell")).to_have_count(9)
    expect(page.locator("td.grid-cell .preview")).to_have_count(18)
    shot(page, "grid")
    column = page.evaluate(
        "[...document.querySelectorAll('table.grid thead th')].findIndex(th => th.textContent.includes('=1.0'))"
    )
    assert column > 0, "no column for temperature 1.0"
    cell = page.locator("table.grid tbody tr").first.locator("td.grid-cell").nth(column - 1).locator("a")
    cell.focus()
    page.keyboard.press("Enter")
    expect(page.locator("article.run")).to_have_count(2)
    page.get_by_label("tokens · probability heat").check()
    expect(page.locator(".token-view").first).to_be_visible()
    assert "top:" in (page.locator(".token-view .tok").first.get_attribute("title") or "")
    shot(page, "cell")

    # 6. A token diff of the cell's two samples.
    page.get_by_role("button", name="Diff the first two outputs").click()
    heading = page.locator("#diff-summary")
    expect(heading).to_contain_text("token")
    if "First divergence" in heading.inner_text():
        expect(page.locator("#first-divergence-a, #first-divergence-b").first).to_be_visible()
    labelled(page)
    shot(page, "diff")

    # 7. One prompt side by side, 4-up.
    page.get_by_role("link", name="← Side by side").click()
    page.get_by_label("4-up").check()
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".columns.layout-4 article.run")).to_have_count(3)
    labelled(page)
    shot(page, "side-by-side")

    # 8. Metrics with charts (vendored Chart.js).
    page.goto(experiment_url)
    page.get_by_role("link", name="Metrics and charts").click()
    expect(page.locator("table.exp-metrics tbody tr")).to_have_count(3)
    page.wait_for_function("() => window.Chart && Chart.getChart('scatter-chart') && Chart.getChart('spread-chart')")
    labelled(page)
    shot(page, "metrics")

    # 9. Export as CSV from the page.
    page.goto(experiment_url)
    page.get_by_label("Format").select_option("csv")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download export").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))  # noqa: SIM115
    assert len(rows) == 18 and {r["status"] for r in rows} == {"succeeded"}
    assert {r["prompt_id"] for r in rows} == {"fr", "count", "sky"} and len({r["config_hash"] for r in rows}) == 3
    assert all(r["model"] == "smollm2-135m" and r["tokens_per_s"] for r in rows)

    # 10. The experiments list and the presets page.
    page.get_by_role("link", name="Experiments", exact=True).first.click()
    expect(page.locator("table.list tbody tr").first).to_contain_text("temperature sweep")
    expect(page.locator("table.list tbody tr").first).to_contain_text("18 / 18")
    labelled(page)
    shot(page, "experiments")
    page.get_by_role("link", name="Presets", exact=True).click()
    expect(page.locator("table.list code.hash")).to_have_count(3)
    labelled(page)
    shot(page, "presets")

    # 11. Narrow screens: the grid scrolls inside its box, not the page.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(experiment_url + "grid/")
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    shot(page, "grid-390")
