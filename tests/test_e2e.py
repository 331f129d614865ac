"""End to end: the real page in a headless chromium, driven by Playwright, on the tiny test model.

Starts the app on a free localhost port in this process, then types a prompt, steps, forces a token, runs
to the end, compares strategies and opens the permalink, checking what the page renders. Skips when
Playwright or chromium is missing, unless PLAYGROUND_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

TIMEOUT_MS = 60_000


def _tokens_text(page) -> str:
    return page.inner_text("#dp-text .dp-tokens")


ROWS_JS = "Number(document.querySelector('#dp-table [role=grid]').getAttribute('aria-rowcount')) - 1"


def _rows(page) -> int:
    """Data rows of the step table (the grid's row count less its header; virtual scrolling hides the rest)."""
    return page.evaluate(ROWS_JS)


def test_step_force_run_compare_and_permalink(app_url, page_factory):
    page = page_factory()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    page.wait_for_selector("#dp-step")

    # Greedy, so the run is the same wherever it is replayed.
    page.get_by_label("greedy").check()
    prompt = page.get_by_label("Prompt")
    prompt.fill("The quick brown fox")

    # Before any Step, the next token's distribution is drawn; picking an example prompt redraws it.
    page.wait_for_selector("#dp-dist .dp-lc-row")
    first = page.text_content("#dp-dist .dp-lc-sr")
    page.get_by_text("Facts", exact=True).click()
    page.wait_for_function(f"document.querySelector('#dp-dist .dp-lc-sr').textContent !== {first!r}")
    prompt.fill("The quick brown fox")
    # A knob redraws it without taking a step.
    page.wait_for_function("() => !document.querySelector('#dp-text [data-step]')")
    before = page.text_content("#dp-dist .dp-lc-sr")
    page.get_by_label("sample", exact=True).check()  # not "beam-sample"
    page.focus("#dp-temperature input[type=range]")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.querySelector('#dp-dist .dp-lc-sr').textContent !== {before!r}")
    assert page.locator("#dp-text [data-step]").count() == 0  # no step was taken
    page.get_by_label("greedy").check()

    page.click("#dp-step")
    page.wait_for_selector("#dp-text [data-step='0']")
    assert "The quick brown fox" in _tokens_text(page)
    page.wait_for_selector("#dp-dist .dp-lc-row")  # the distribution chart is drawn
    page.wait_for_function(f"{ROWS_JS} === 1")

    page.click("#dp-step-n")  # N defaults to 5
    page.wait_for_selector("#dp-text [data-step='5']")
    page.wait_for_function(f"{ROWS_JS} === 6")
    page.get_by_role("tab", name="Trajectory").click()  # drawn when its tab opens
    page.wait_for_selector("#dp-traj img")
    page.get_by_role("tab", name="Step table").click()

    # Force the second candidate of the last step (step 5).
    page.click("#dp-candidates input")
    options = page.locator("[role=option]")
    options.nth(1).wait_for()
    forced_label = options.nth(1).get_attribute("aria-label").split()[0]
    options.nth(1).click()
    page.click("#dp-force")
    page.wait_for_selector("#dp-text .dp-forced")
    forced_text = page.inner_text("#dp-text .dp-forced")
    assert forced_text.replace(" ", "␣") == forced_label or forced_text.strip() == forced_label.replace("␣", "").strip()
    assert _rows(page) == 6

    # The permalink (also written to the address bar) restores the same text, forced token included.
    page.wait_for_function("location.search.includes('run=')")
    link = page.evaluate("location.href")
    text_before = _tokens_text(page)
    other = page_factory()
    other.set_default_timeout(TIMEOUT_MS)
    other.goto(link)
    other.wait_for_selector("#dp-text .dp-forced")
    assert _tokens_text(other) == text_before
    assert other.get_by_label("Prompt").input_value() == "The quick brown fox"
    other.close()

    # Run to the end streams the rest.
    page.click("#dp-run")
    page.wait_for_function("document.querySelector('#dp-status').innerText.includes('finished')")
    page.wait_for_function(f"{ROWS_JS} > 6")  # the table comes with the run's last update

    # Clicking a generated token inspects its step: outlined in the text, its chart shown.
    chart = page.text_content("#dp-dist .dp-lc-sr")
    page.click("#dp-text [data-step='2']")
    page.wait_for_selector("#dp-text .dp-selected[data-step='2']")
    page.wait_for_function("document.querySelector('#dp-status').innerText.includes('step 2:')")
    page.wait_for_function(f"document.querySelector('#dp-dist .dp-lc-sr').textContent !== {chart!r}")

    # Compare: greedy, beam and sampled cards, and the beam tree.
    page.get_by_role("tab", name="Compare").click()
    page.click("#dp-compare")
    page.wait_for_selector("#dp-beam-tree img")
    cards = page.inner_text("#dp-compare-cards")
    assert "greedy" in cards and "beam" in cards and "sample" in cards
    page.close()
