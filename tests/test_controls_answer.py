"""Every control answers (issue 20, point 3), in headless chromium on the tiny model: Stop ends Step ×N after
any sequence of actions and Step ×N streams; a pasted or input-method prompt updates the preview; a typed
out-of-range value is brought into range with one line, no error; the status, the chart and the inspector name
the same step; a notice replaces the one before. Each test failed on the page as issue 20 found it. Skips
without Playwright or chromium, unless PLAYGROUND_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
import time

from test_page import PENDING_JS, STATUS_JS, _greedy_run, _open, _set_number

CHART_ROWS_JS = "[...document.querySelectorAll('#dp-dist .dp-lc-sr tbody tr')].map((tr) => tr.textContent).join('|')"
CHART_TITLE_JS = "document.querySelector('#dp-dist .dp-lc-sr caption')?.textContent || ''"


def _status(page) -> str:
    return page.evaluate(STATUS_JS)


def _step_n(page, n: int) -> None:
    box = page.locator("#dp-n input")
    box.fill(str(n))
    page.wait_for_function(PENDING_JS)
    page.click("#dp-step-n")


def _stop_after_some_tokens(page, n: int) -> int:
    """Step ×N with N = `n`: tokens come while it runs (it streams), Stop ends it after the step in progress;
    returns how many tokens it took."""
    _step_n(page, n)
    # streamed: the first tokens are on the page (counted in the DOM: a token scrolled out of the text's box, or
    # under a character drawn over its bytes, is there all the same) ...
    page.wait_for_function("document.querySelectorAll('#dp-text [data-step]').length >= 5", polling=50)
    shown = page.locator("#dp-text [data-step]").count()
    assert shown < n, f"Step ×{n} showed nothing until its end: {shown} tokens arrived at once"  # ... long before the end
    clicked = time.perf_counter()
    # a person's click where Stop is (a mouse event, as a hand gives it): Playwright's own click (and its waits,
    # unless told to poll) first wait for animation frames, which headless Chromium hardly draws while the tiny
    # model's tokens pour in (~70 a second), so it clicked only once the run had ended
    box = page.locator("#dp-stop").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(f"{STATUS_JS}.includes('Stopped after') || {STATUS_JS}.includes('finished') || "
                           f"document.querySelectorAll('#dp-text [data-step]').length >= {n}")  # fmt: skip
    waited, status = time.perf_counter() - clicked, _status(page)
    assert "Stopped after" in status, status
    taken = int(status.split("Stopped after ")[1].split()[0])
    assert taken < n and waited < 10, (taken, waited)
    page.wait_for_function(f"document.querySelectorAll('#dp-text [data-step]').length === {taken}")
    return taken


def test_stop_ends_step_n_after_a_reset_or_a_new_run_and_step_n_streams(app_url, page_factory):
    """After Reset, Stop did not stop Step ×N (N = 150: all 150 tokens came, 5-8 s later): the Stop reached
    the run the page held, not the new one the request had started. And Step ×N showed nothing until its end."""
    from playground import ui

    eos = ui.shared.REGISTRY.get(ui.DEFAULT_MODEL).tokenizer.eos_token_id
    page = _open(page_factory, app_url)
    page.get_by_label("greedy").check()
    _set_number(page, "dp-max-new", 512)  # (the tiny model's context leaves room for 223)
    page.click("#dp-more-knobs >> text=More knobs")
    box = page.locator("#dp-suppress-tokens textarea, #dp-suppress-tokens input").first
    box.fill(str(eos))  # the run never ends by itself
    box.press("Enter")
    page.wait_for_function(PENDING_JS)
    page.click("#dp-step")
    page.wait_for_selector("#dp-text [data-step='0']")
    page.wait_for_function(PENDING_JS)
    page.click("#dp-reset")
    page.wait_for_function("!document.querySelector('#dp-text [data-step]')")
    page.wait_for_function(PENDING_JS)
    _stop_after_some_tokens(page, 200)
    # a new run started by the request itself (a new seed is a new run): Stop still reaches it
    page.wait_for_function(PENDING_JS)
    seed = page.locator("input[aria-label='Seed'], label:has-text('Seed') input").first
    seed.fill("7")
    seed.press("Enter")
    page.get_by_label("sample", exact=True).check()
    page.wait_for_function(PENDING_JS)
    _stop_after_some_tokens(page, 200)
    page.close()


def _chart_changes(page, before: str, timeout_ms: int = 15_000) -> None:
    page.wait_for_function(f"({CHART_ROWS_JS}) !== {before!r} && ({PENDING_JS})()", timeout=timeout_ms)


def test_a_pasted_or_input_method_prompt_updates_the_preview(app_url, page_factory):
    """The preview followed key presses only: a pasted prompt, or text from an input method (no key press per
    character), left the chart on the old prompt until a key was typed."""
    page = _open(page_factory, app_url)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.wait_for_function(PENDING_JS)
    box = page.locator("#dp-prompt textarea")
    # set in one go, as autofill or a script does (an input event, no key press)
    before = page.evaluate(CHART_ROWS_JS)
    box.fill("Paris is the capital of")
    _chart_changes(page, before)
    # an input method commits composed text without a key press per character
    before = page.evaluate(CHART_ROWS_JS)
    box.click()
    page.keyboard.press("End")
    page.keyboard.insert_text(" 巴黎")
    _chart_changes(page, before)
    # pasted from the clipboard (Ctrl+V: no keypress event reaches the box)
    before = page.evaluate(CHART_ROWS_JS)
    page.evaluate("navigator.clipboard.writeText('The quick brown fox jumps over')")
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Control+V")
    page.wait_for_function("document.querySelector('#dp-prompt textarea').value === 'The quick brown fox jumps over'")
    _chart_changes(page, before)
    # the preview is the new prompt's: a Step takes the token the chart showed
    page.click("#dp-step")
    page.wait_for_selector("#dp-text [data-step='0']")
    assert page.inner_text("#dp-text .dp-prompt").startswith("The quick brown fox jumps over")
    page.close()


def test_a_typed_out_of_range_value_is_brought_into_range_with_one_line_and_no_error(app_url, page_factory, capfd):
    """Typing 5 into Temperature (max 3) gave a red "Error: Value 5 is greater than maximum value 3." toast, a
    traceback in the server log and a red "Error" badge that stayed on the chart."""
    page = _open(page_factory, app_url)
    page.wait_for_function(PENDING_JS)
    capfd.readouterr()
    for elem, typed, expected in (("dp-temperature", "5", "3"), ("dp-top-k", "-5", "0")):
        box = page.locator(f"#{elem} input[type=number]")
        box.fill(typed)
        box.press("Enter")
        page.wait_for_function(f"document.querySelector('#{elem} input[type=number]').value === {expected!r}")
        note = page.locator(f"#{elem} .dp-range-note")
        note.wait_for(state="visible")
        text = note.inner_text()
        assert typed in text and expected in text and "\n" not in text.strip(), text
        page.wait_for_function(PENDING_JS)
        time.sleep(0.5)  # anything that would go wrong has by now
        assert page.locator(".toast-body").count() == 0, page.locator(".toast-body").all_inner_texts()
        assert page.locator("#dp-dist .error, .error").count() == 0  # no output wears an error badge
        assert page.locator(".dp-range-note").count() == 1  # the note replaced the one before
    err = capfd.readouterr().err
    assert "Traceback" not in err and "maximum value" not in err and "minimum value" not in err, err[-2000:]
    # the chart previews the clamped settings: temperature 3 and top-k off
    page.wait_for_function("document.querySelector('#dp-dist .dp-lc-sr caption')?.textContent.startsWith('Next step')")
    page.click("#dp-step")
    page.wait_for_selector("#dp-text [data-step='0']")
    from urllib.parse import parse_qs, urlsplit

    from playground import ui
    from test_page import _link_of_the_run

    run, _ = ui.replay(ui.decode_permalink(parse_qs(urlsplit(_link_of_the_run(page, 1)).query)["run"][0]))
    assert run.steps[0].config.temperature == 3 and run.steps[0].config.top_k == 0
    page.close()


def _named_steps(page) -> tuple[int, int, int]:
    """The step the status line, the chart's title and the inspector each name."""
    status = re.search(r"\bstep (\d+)", _status(page), re.IGNORECASE)
    chart = re.search(r"\bstep \(?(\d+)", page.evaluate(CHART_TITLE_JS), re.IGNORECASE)
    assert status and chart, (_status(page), page.evaluate(CHART_TITLE_JS))
    inspector = int(page.input_value("#dp-inspect input[type=number]"))
    return int(status.group(1)), int(chart.group(1)), inspector


def test_the_status_the_chart_and_the_inspector_name_the_same_step(app_url, page_factory):
    """After a knob moved, the chart said "Next step (3)" while the status and the inspector said step 2."""
    page = _open(page_factory, app_url)
    _set_number(page, "dp-max-new", 16)
    page.wait_for_function(PENDING_JS)
    for n in range(3):
        page.click("#dp-step")
        page.wait_for_selector(f"#dp-text [data-step='{n}']")
        page.wait_for_function(PENDING_JS)
    assert _named_steps(page) == (2, 2, 2)
    _set_number(page, "dp-temperature", 1.3)  # a knob moves: the chart previews the next step
    page.wait_for_function(f"({CHART_TITLE_JS}).startsWith('Next step')")
    page.wait_for_function(PENDING_JS)
    assert _named_steps(page) == (3, 3, 3), (_status(page), page.evaluate(CHART_TITLE_JS))
    assert "preview of step 3" in _status(page)
    inspector = page.locator("#dp-inspect input[type=number]")
    inspector.fill("1")  # the inspector moves to an earlier step, and back
    inspector.press("Tab")
    page.wait_for_function(f"({CHART_TITLE_JS}).startsWith('Step 1')")
    page.wait_for_function(PENDING_JS)
    assert _named_steps(page) == (1, 1, 1)
    inspector.fill("3")
    inspector.press("Tab")
    page.wait_for_function(f"({CHART_TITLE_JS}).startsWith('Next step')")
    page.wait_for_function(PENDING_JS)
    assert _named_steps(page) == (3, 3, 3)
    page.click("#dp-text [data-step='1']")  # an earlier step, inspected
    page.keyboard.press("Escape")
    page.wait_for_function(f"({CHART_TITLE_JS}).startsWith('Step 1')")
    page.wait_for_function(PENDING_JS)
    assert _named_steps(page) == (1, 1, 1)
    page.close()


def test_a_notice_replaces_the_one_before(app_url, page_factory):
    """"Replaced step 2…" and "Undid the force…" stood together under the status after a force and an Undo."""
    page = _open(page_factory, app_url)
    _greedy_run(page, max_new=6)
    page.click("#dp-text [data-step='2']")
    page.wait_for_function("document.querySelector('#dp-force').innerText.includes('step 2')")
    page.keyboard.press("Escape")
    page.click("#dp-candidates input")
    page.locator("[role=option]").nth(1).click()
    page.click("#dp-force")
    page.wait_for_function(f"{STATUS_JS}.includes('Replaced step 2')")
    page.wait_for_function(PENDING_JS)
    page.click("#dp-undo")
    page.wait_for_function(f"{STATUS_JS}.includes('Undid the force')")
    notes = page.locator("#dp-status .dp-notice").all_inner_texts()
    assert len(notes) == 1 and "Undid the force" in notes[0], notes
    page.close()


# -- the same, through the endpoints as the page and an API client call them (no browser) ---------------------


def _controls(ui, **changes) -> dict:
    from conftest import ui_controls

    return dict(zip(ui.CONTROL_NAMES, ui_controls(ui, **{"strategy": "greedy", "max_new_tokens": 40, **changes})))


def test_a_stop_pressed_on_the_page_s_run_after_a_reset_ends_the_new_run_s_step_n(tiny_ui):
    """The page holds the run Reset gave it; Step ×N starts a new run from it (a new object): Stop, sent with
    the page's run, used to set a flag the new run never read."""
    ui = tiny_ui
    first = ui.api.step(None, **_controls(ui), n_steps=2)[-1]
    blank = ui.api.reset(first)[-1]
    stream = ui.api.step_n(blank, **_controls(ui), n_steps=30)
    update = next(stream)
    assert update[-1] is not blank and update[0]["n_steps"] == 1  # a new run, streamed from its first token
    ui.page_api.stop(blank)  # what the page sends: the run it holds
    rest = list(stream)
    final = rest[-1]
    assert final[0]["n_steps"] < 30 and not final[0]["done"], final[0]["n_steps"]
    assert any("Stopped after" in n for n in final[0]["notices"])
    assert ui.api.step(final[-1], **_controls(ui))[0]["n_steps"] == final[0]["n_steps"] + 1  # the flag is cleared


def test_step_n_streams_every_token_and_ends_where_step_n_would(tiny_ui):
    """/step_n streams (one update per token, as /run); its last update is /step's answer for the same N."""
    ui = tiny_ui
    updates = list(ui.api.step_n(None, **_controls(ui), n_steps=5))
    assert [u[0]["n_steps"] for u in updates[:-1]] == [1, 2, 3, 4, 5]
    assert updates[-1][0]["token_ids"] == ui.api.step(None, **_controls(ui), n_steps=5)[0]["token_ids"]


def test_a_notice_replaces_the_one_before_in_the_result_too(tiny_ui):
    ui = tiny_ui
    state = ui.api.step(None, **_controls(ui), n_steps=4)[-1]
    other = next(c.token_id for c in state.session.steps[1].top if c.token_id != state.session.steps[1].token_id)
    forced = ui.api.force(state, **_controls(ui), inspect_step=1, token_id=other)
    assert [n for n in forced[0]["notices"] if "Replaced step 1" in n]
    undone = ui.api.undo(forced[-1], 10)
    assert [n for n in undone[0]["notices"] if "Replaced" in n or "Undid" in n] == [
        "Undid the force: step 1 and the 2 tokens after it are back."]
    assert not [n for n in ui.api.step(undone[-1], **_controls(ui))[0]["notices"] if "Undid" in n]


def test_a_stop_pressed_while_step_n_waits_its_turn_stops_it_and_an_old_one_does_not(tiny_ui):
    """Step ×N clicked, then Stop at once, while the request waited its turn: the Stop was cleared when the run
    started. A press made just before is now kept for it; one from long before is forgotten."""
    ui = tiny_ui
    blank = ui.api.reset(None)[-1]
    ui.page_api.stop(blank)
    updates = list(ui.api.step_n(blank, **_controls(ui), n_steps=20))
    assert updates[-1][0]["n_steps"] == 1 and any("Stopped after 1 token" in n for n in updates[-1][0]["notices"])
    ui.page_api.stop(updates[-1][-1])
    updates[-1][-1].stop.pressed_at -= 60  # a minute ago
    assert list(ui.api.step_n(updates[-1][-1], **_controls(ui), n_steps=5))[-1][0]["n_steps"] == 6
