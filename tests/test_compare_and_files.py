"""Compare read whole, and files people can keep (issue 20, points 4 and 6), in headless chromium on the tiny model.

Each test guards a slip seen on a projector and in a class's downloads: a final-beams table beside the tree that
cut its Text mid-line and pushed Sum log-prob, Finished and Winner off-screen, in another order than the docs;
downloads all named steps.csv and trace.json; a trace whose permalink was "?run=…", which opens nothing; and a
run that reached its length reported as "stopped". Skips without Playwright or chromium, unless
PLAYGROUND_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_page import PENDING_JS, TIMEOUT_MS, _greedy_run, _open, _set_number

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ui.md"


def documented_final_beams_columns() -> list[str]:
    """The final beams' columns as docs/ui.md lists them under "Outputs of /compare"."""
    found = re.search(r"final beams \(dataframe: `([^`]+)`", DOCS.read_text(encoding="utf-8"))
    assert found, "docs/ui.md no longer lists the final beams' columns"
    return [c.strip() for c in found.group(1).split(",")]


def _compare(page, beams: int, max_new: int) -> None:
    page.get_by_label("Prompt").fill("Once upon a time there was")
    _set_number(page, "dp-max-new", max_new)
    page.get_by_role("tab", name="Compare").click()
    _set_number(page, "dp-c-beams", beams)
    page.wait_for_function(PENDING_JS)
    page.click("#dp-compare")
    page.wait_for_selector("#dp-beam-tree img")
    rows = "Number(document.querySelector('#dp-final-beams [role=grid]').getAttribute('aria-rowcount')) - 1"
    page.wait_for_function(f"{rows} === {beams}")


# Where each header and Text cell of the final beams' table lies, and whether its container scrolls sideways
TABLE_GEOMETRY_JS = """() => {
  const root = document.querySelector('#dp-final-beams');
  const box = (e) => { const r = e.getBoundingClientRect(); return {x0: r.left, x1: r.right, y0: r.top, y1: r.bottom}; };
  const heads = [...root.querySelectorAll('thead th')];
  const names = heads.map((h) => h.innerText.trim());
  const text = names.indexOf('Text');
  const cells = [...root.querySelectorAll(`[role=gridcell][data-col="${text}"]`)];
  const scrollers = [root, ...root.querySelectorAll('.table-wrap, .virtual-table-viewport, table')];
  return {
    names, heads: heads.map(box), viewport: innerWidth, table: box(root),
    overflow: scrollers.map((e) => e.scrollWidth - e.clientWidth),
    cells: cells.map((td) => {
      const span = td.querySelector('span') || td;
      const probe = span.cloneNode(true);  // the text on one line, to tell a text that needs wrapping
      probe.style.cssText = 'position:absolute;visibility:hidden;white-space:nowrap;width:auto;max-width:none';
      td.appendChild(probe);
      const oneLine = probe.getBoundingClientRect();
      probe.remove();
      const r = span.getBoundingClientRect();
      return {cut: span.scrollWidth - span.clientWidth, long: oneLine.width > r.width + 1,
              wrapped: r.height > 1.5 * oneLine.height, box: box(td), text: span.innerText};
    }),
  };
}"""


@pytest.mark.parametrize("width", [1440, 1920])
def test_the_final_beams_table_shows_every_column_whole_with_its_text_wrapped(app_url, page_factory, width):
    """At 1920 px the table beside the tree cut its Text mid-line and pushed Sum log-prob, Finished and Winner
    off-screen, in another order than docs/ui.md. Every header lies inside the page and the table, in the
    documented order; the table never scrolls sideways; a long Text wraps onto more lines, never cut."""
    page = _open(page_factory, app_url, width=width, height=1000)
    _compare(page, beams=4, max_new=48)
    page.locator("#dp-final-beams").scroll_into_view_if_needed()
    g = page.evaluate(TABLE_GEOMETRY_JS)
    assert g["names"] == documented_final_beams_columns()
    for name, head in zip(g["names"], g["heads"]):
        assert 0 <= head["x0"] and head["x1"] <= g["viewport"], f"{name} lies outside the page: {head}"
        assert g["table"]["x0"] - 1 <= head["x0"] and head["x1"] <= g["table"]["x1"] + 1, f"{name} is cut: {head}"
    assert max(g["overflow"]) <= 1, f"the table scrolls sideways: {g['overflow']}"
    assert g["cells"], "no Text cells"
    for cell in g["cells"]:
        assert cell["cut"] <= 1, f"a Text cell is cut: {cell}"
        assert cell["box"]["x1"] <= g["viewport"]
    long = [cell for cell in g["cells"] if cell["long"]]
    assert long, "no text longer than its cell: the test cannot tell wrapping"
    assert all(cell["wrapped"] for cell in long), f"a long text is not wrapped: {long}"
    page.close()


def test_downloads_are_named_after_the_run_and_the_trace_links_back_to_it(app_url, page_factory, tmp_path):
    """Every download was steps.csv or trace.json, so a class's files overwrote one another; the trace's
    permalink was "?run=…", which opens nothing; a run that reached its length said "stopped". Now each file
    is named after the prompt's first words, the model and the seed; the trace's permalink is a whole address
    that opens the run; its finish reason is "length"."""
    import json

    from playground.ui import exports

    page = _open(page_factory, app_url)
    _greedy_run(page, prompt="Once upon a time there was a fox", max_new=3)
    page.click("#dp-share")  # the "Share and export" accordion
    page.get_by_role("button", name="Prepare downloads").click()
    links = page.locator("a[download]")
    page.wait_for_function("document.querySelectorAll('a[download]').length >= 2")
    names = {}
    for i in range(links.count()):
        with page.expect_download() as info:
            links.nth(i).click()
        download = info.value
        names[download.suggested_filename] = tmp_path / download.suggested_filename
        download.save_as(names[download.suggested_filename])
    model = page.input_value("#dp-model input")
    stem = exports.run_stem("Once upon a time", model, 0)
    assert stem.startswith("once-upon-a-time_") and stem.endswith("_seed0"), stem
    assert sorted(names) == [f"{stem}_steps.csv", f"{stem}_trace.json"], names
    trace = json.loads(names[f"{stem}_trace.json"].read_text(encoding="utf-8"))
    assert trace["trace"]["finish_reason"] == "length"
    link = trace["permalink"]
    assert link.startswith(app_url) and "?run=" in link, link
    other = page_factory()
    other.set_default_timeout(TIMEOUT_MS)
    other.goto(link)
    other.wait_for_selector("#dp-text [data-step='2']")
    assert other.inner_text("#dp-text .dp-tokens") == page.inner_text("#dp-text .dp-tokens")
    other.close()
    page.close()
