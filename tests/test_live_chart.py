"""The live distribution chart in headless chromium (issue 19): drawn by the browser from
views.distribution_chart_data, it shows the record's numbers, keeps its labels legible and inside their place at a
projector's and a phone's width, keeps every overlay when the chosen token is an extra row, fires `select` with the
token id on a click or Enter, and carries a table for screen readers. Runs playground.ui.live_chart.demo() on the
tiny model's records. Skips without Playwright or chromium, unless PLAYGROUND_REQUIRE_BROWSER=1 (CI). Screenshots
go to $PLAYGROUND_SCREENSHOTS when set (to look at), else to pytest's tmp_path."""

from __future__ import annotations

import json
import os
import re

import pytest

from playground import views
from playground.config import DecodingConfig

TIMEOUT_MS = 30_000
MIN_TEXT_PX = 14


def first_step(engine, force_token=None, **settings):
    config = DecodingConfig(**{"strategy": "sample", "seed": 1, "max_new_tokens": 4, "top_n": 20, **settings})
    return engine.start(engine.encode("Once upon a time", chat=False), config).step(force_token=force_token)


@pytest.fixture(scope="module")
def records(tiny_engine):
    """A sampled step that top-k and top-p cut, the same step forced to a token ranked 16th (an extra row), and a
    greedy preview."""
    knobs = dict(temperature=1.5, top_k=6, top_p=0.5)
    sampled = first_step(tiny_engine, **knobs)
    low = sorted(sampled.top, key=lambda c: (-c.shaped_prob, c.rank))[15]
    return {
        "sampled": sampled,
        "extra": first_step(tiny_engine, force_token=low.token_id, **knobs),
        "greedy": first_step(tiny_engine, strategy="greedy"),
    }


@pytest.fixture(scope="module")
def chart_url(records):
    from playground.ui import live_chart

    demo = live_chart.demo(views.distribution_chart_json(records["sampled"], 10))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    path = os.environ.get("PLAYGROUND_SCREENSHOTS") or tmp_path_factory.mktemp("live-chart")
    os.makedirs(path, exist_ok=True)
    return str(path)


def _open(page_factory, url, width, height=900):
    page = page_factory()
    page.set_viewport_size({"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector(".dp-lc-row")
    return page


def _draw(page, record, top_n=10, **kwargs) -> dict:
    """Give the chart this record's data and wait until its rows are drawn; returns the data."""
    data = views.distribution_chart_data(record, top_n, **kwargs)
    page.fill("#dp-chart-json textarea", json.dumps(data, ensure_ascii=False))
    page.click("#dp-chart-draw")
    ids = [r["token_id"] for r in data["rows"]]
    page.wait_for_function("(ids) => JSON.stringify([...document.querySelectorAll('.dp-lc-sr tbody tr[data-token-id]')]"
                           ".map((tr) => Number(tr.dataset.tokenId))) === JSON.stringify(ids)", arg=ids)  # fmt: skip
    page.wait_for_timeout(450)  # the rows' transitions (0.35 s)
    return data


def _percent(text: str) -> float | None:
    return float(text.rstrip("%")) / 100 if text.endswith("%") else None


GEOMETRY_JS = """() => {
  const root = document.querySelector('.dp-lc');
  const rows = [...root.querySelectorAll('.dp-lc-row')].filter((r) => r.style.opacity !== '0');
  const box = (e) => e.getBoundingClientRect();
  return {
    root: box(root).width, host: box(root.closest('.dp-live-chart') || root.parentElement).width,
    rows: rows.map((row) => {
      const track = box(row.querySelector('.dp-lc-track'));
      const label = row.querySelector('.dp-lc-label');
      const note = row.querySelector('.dp-lc-note');
      return {
        id: Number(row.dataset.tokenId), label: label.textContent,
        labelFits: label.scrollWidth <= label.clientWidth + 1,
        labelPx: parseFloat(getComputedStyle(label).fontSize),
        track: [track.left, track.right],
        raw: box(row.querySelector('.dp-lc-raw')).width / track.width,
        after: box(row.querySelector('.dp-lc-after')).width / track.width,
        note: note.hidden ? null : {text: note.textContent, px: parseFloat(getComputedStyle(note).fontSize),
                                    left: box(note).left, right: box(note).right},
        cum: row.querySelector('.dp-lc-cum').hidden ? null : [box(row.querySelector('.dp-lc-cum')).left - track.left,
                                                              box(row.querySelector('.dp-lc-cum')).right - track.left],
        shaded: getComputedStyle(row).backgroundColor,
      };
    }),
    texts: [...root.querySelectorAll('.dp-lc-head, .dp-lc-sub, .dp-lc-tick, .dp-lc-rest, .dp-lc-legend li, .dp-lc-hint, .dp-lc-plabel, .dp-lc-gap')]
      .filter((e) => e.offsetParent !== null).map((e) => [e.textContent, parseFloat(getComputedStyle(e).fontSize)]),
    pline: (() => { const p = root.querySelector('.dp-lc-pline'); return p ? box(p).left : null; })(),
    gap: !!root.querySelector('.dp-lc-gap'),
  };
}"""


def _check_layout(geo: dict, data: dict, width: int) -> None:
    assert geo["root"] >= geo["host"] - 1, f"the chart does not fill its column at {width} px"
    assert [r["id"] for r in geo["rows"]] == [r["token_id"] for r in data["rows"]]
    for shown, row in zip(geo["rows"], data["rows"]):
        assert shown["labelPx"] >= MIN_TEXT_PX, f"label {shown['label']!r} is {shown['labelPx']} px at {width} px"
        assert shown["labelFits"], f"label {shown['label']!r} overflows its place at {width} px"
        assert shown["label"] == row["label"] or "…" in shown["label"]  # shortened in the middle only when needed
        left, right = shown["track"]
        # the bars are the record's numbers (to a pixel of the track)
        assert shown["raw"] == pytest.approx(row["raw"], abs=1.5 / (right - left))
        assert shown["after"] == pytest.approx(row["after"], abs=1.5 / (right - left))
        if shown["note"]:
            assert shown["note"]["px"] >= MIN_TEXT_PX
            assert left - 0.5 <= shown["note"]["left"] and shown["note"]["right"] <= right + 0.5, \
                f"note {shown['note']['text']!r} leaves its row's track at {width} px"  # fmt: skip
    for text, px in geo["texts"]:
        assert px >= MIN_TEXT_PX, f"{text!r} is {px} px at {width} px"


def test_the_chart_shows_the_records_numbers_legibly_at_any_width(chart_url, page_factory, records, shots):
    """The numbers a teacher reads off the chart (the bars, the table a screen reader gets) are the record's, and
    at a projector's 1280 px and a phone's 390 px every text is 14 px or more and inside its place."""
    record = records["sampled"]
    for width in (1280, 390):
        page = _open(page_factory, chart_url, width)
        data = _draw(page, record, 10)
        _check_layout(page.evaluate(GEOMETRY_JS), data, width)
        table = page.evaluate("""() => [...document.querySelectorAll('.dp-lc-sr tbody tr')].map((tr) =>
                                    [...tr.children].map((c) => c.textContent))""")  # fmt: skip
        assert len(table) == len(data["rows"]) + 1  # and the tokens not shown
        for cells, row in zip(table, data["rows"]):
            assert cells[0] == views.token_label(row["token"]) and int(cells[1]) == row["token_id"]
            assert _percent(cells[2]) == pytest.approx(row["raw"], abs=5.1e-5)
            assert _percent(cells[3]) == pytest.approx(row["after"], abs=5.1e-5)
            assert cells[4] == (row["cut"] or "")  # the chart's own words: "cut by top-p", "banned" ...
            assert _percent(cells[5]) == pytest.approx(row["cumulative"], abs=5.1e-5)
            assert cells[6] == ("chosen" if row["chosen"] else "")
        assert _percent(table[-1][2]) == pytest.approx(data["rest"]["raw"], abs=5.1e-5)
        sr = page.evaluate("() => { const t = document.querySelector('.dp-lc-sr'); const b = t.getBoundingClientRect();"
                           " return {w: b.width, h: b.height, caption: t.querySelector('caption').textContent}; }")  # fmt: skip
        assert sr["w"] <= 1 and sr["h"] <= 1 and sr["caption"].startswith("Step 0: chose")  # hidden but read
        legend = page.inner_text(".dp-lc-legend")
        assert "cut by top-k (k = 6)" in legend and "p = 0.5" in legend and "␣ = a space" in legend
        assert "↵ = a new line" in legend
        page.close()


def test_every_overlay_stays_when_the_chosen_token_is_an_extra_row(chart_url, page_factory, records, shots):
    for width, height in ((1440, 900), (390, 844)):
        page = _open(page_factory, chart_url, width, height)
        data = _draw(page, records["extra"], 10)
        geo = page.evaluate(GEOMETRY_JS)
        _check_layout(geo, data, width)
        extra = geo["rows"][-1]
        assert data["rows"][-1]["extra"] and extra["id"] == records["extra"].token_id and geo["gap"]
        assert extra["note"] and extra["note"]["text"].startswith("◀ forced") and "cut by top-k" in extra["note"]["text"]
        assert extra["shaded"] not in ("rgba(0, 0, 0, 0)", "transparent")  # its cut's shade
        assert geo["pline"] is not None  # top-p's threshold
        assert all(r["cum"] is not None for r in geo["rows"])  # the running sum on every row, the extra one too
        for shown, row in zip(geo["rows"], data["rows"]):  # each row's step of the staircase, to a pixel or two
            span = shown["track"][1] - shown["track"][0]
            assert shown["cum"][1] / span == pytest.approx(row["cumulative"], abs=2.5 / span)
            assert shown["cum"][0] / span == pytest.approx(row["cumulative_start"], abs=2.5 / span)
        page.screenshot(path=os.path.join(shots, f"live-chart-extra-{width}x{height}.png"), full_page=True)
        page.close()


def test_a_click_or_enter_on_a_row_asks_for_that_token_and_hover_shows_its_numbers(chart_url, page_factory, records,
                                                                                   shots):  # fmt: skip
    page = _open(page_factory, chart_url, 1440)
    data = _draw(page, records["greedy"], 10, pending=True)
    target = data["rows"][3]
    row = page.locator(f".dp-lc-row[data-token-id='{target['token_id']}']")
    row.hover()
    tip = page.locator(".dp-lc-tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert f"token id {target['token_id']}" in text and f"{100 * target['raw']:.2f}%" in text
    page.screenshot(path=os.path.join(shots, "live-chart-greedy-1440x900.png"), full_page=True)
    row.click()
    picked = page.locator("#dp-chart-picked textarea")
    page.wait_for_function("() => document.querySelector('#dp-chart-picked textarea').value !== ''")
    event = json.loads(picked.input_value())
    assert event == {"index": 3, "value": target["token_id"], "token_id": target["token_id"], "token": target["token"],
                     "step": 0, "pending": True}  # fmt: skip
    other = data["rows"][1]
    page.locator(f".dp-lc-row[data-token-id='{other['token_id']}']").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("(id) => JSON.parse(document.querySelector('#dp-chart-picked textarea').value || '{}')"
                           ".token_id === id", arg=other["token_id"])  # fmt: skip
    # a tap (a touch screen) shows the numbers with a button, and only the button asks for the token
    tapped = data["rows"][5]
    row = page.locator(f".dp-lc-row[data-token-id='{tapped['token_id']}']")
    row.dispatch_event("pointerdown", {"pointerType": "touch", "bubbles": True})
    row.evaluate("(r) => r.click()")
    button = tip.locator("button")
    button.wait_for(state="visible")
    assert button.inner_text() == data["force"]["words"] and f"token id {tapped['token_id']}" in tip.inner_text()
    assert json.loads(picked.input_value())["token_id"] == other["token_id"]  # the tap itself took nothing
    button.click()
    page.wait_for_function("(id) => JSON.parse(document.querySelector('#dp-chart-picked textarea').value || '{}')"
                           ".token_id === id", arg=tapped["token_id"])  # fmt: skip
    page.close()


def test_rows_are_kept_by_token_and_move_when_a_knob_changes(chart_url, page_factory, records):
    """The same token keeps its row element from one value to the next (so CSS moves it), and a token no longer
    shown leaves."""
    page = _open(page_factory, chart_url, 1280)
    _draw(page, records["sampled"], 10)
    page.evaluate("() => document.querySelectorAll('.dp-lc-row').forEach((r) => { r.dataset.mark = 'old'; })")
    data = _draw(page, records["sampled"], 10, log_scale=True)
    marks = page.evaluate("() => [...document.querySelectorAll('.dp-lc-row')].map((r) => r.dataset.mark || '')")
    assert marks and all(m == "old" for m in marks[: len(data["rows"])])
    ticks = page.eval_on_selector_all(".dp-lc-tick", "(ts) => ts.map((t) => t.textContent)")
    assert ticks[0] == "0.01%" and ticks[-1] == "100%"
    assert re.search(r"transform", page.eval_on_selector(".dp-lc-row", "(r) => getComputedStyle(r).transitionProperty"))
    page.close()
