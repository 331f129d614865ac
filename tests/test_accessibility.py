"""The page for every seat (issue 20, point 5), in headless chromium on the tiny model: axe-core finds nothing
serious, the keyboard reaches Step at once and sees where it is, a screen reader hears each token's probability,
and a colour-blind student tells unlikely, middling and likely tokens apart.

axe-core comes from the PyPI package axe-playwright-python (requirements-dev.txt), which bundles it. Skips
without Playwright or chromium, unless PLAYGROUND_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from test_page import PENDING_JS, _greedy_run, _open


# The chart's rows fade in and out over 0.35 s; axe measures a fading row's text against the page as it is that
# frame (a CI run once found five rows at 3.77:1 mid-fade), so the page is judged once its transitions have ended.
SETTLED_JS = "() => document.getAnimations().every((a) => a.playState !== 'running')"


def _serious_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page once it has settled, one line per rule and node."""
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    page.wait_for_function(PENDING_JS)
    page.wait_for_function(SETTLED_JS)
    results = axe_module.Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {node['target']} {node['failureSummary'][:160]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")
            for node in v["nodes"]]  # fmt: skip


def test_axe_finds_nothing_serious_on_the_step_compare_and_knobs_tabs_after_a_run(app_url, page_factory):
    """axe-core 4.14 found color-contrast (serious) on 44 nodes of the Step tab and 49 of Compare: the light grey
    explanations (2.56:1), indigo labels on indigo-100 (3.62:1), white on the indigo Step button (4.46:1)."""
    page = _open(page_factory, app_url)
    _greedy_run(page, max_new=6)
    found = {"Step": _serious_violations(page)}
    page.get_by_role("tab", name="Compare").click()
    page.click("#dp-compare")
    page.wait_for_selector("#dp-beam-tree img")
    found["Compare"] = _serious_violations(page)
    page.get_by_role("tab", name="Knobs").click()
    page.click("#dp-explore")
    page.locator("#dp-views img:visible").nth(1).wait_for()  # its two figures (the other tabs' are hidden)
    found["Knobs"] = _serious_violations(page)
    assert found == {"Step": [], "Compare": [], "Knobs": []}
    page.close()


FOCUSED_JS = """() => { const e = document.activeElement;
  return {id: e.id, label: e.getAttribute('aria-label') || e.innerText || '', link: e.tagName === 'A'}; }"""


@pytest.mark.parametrize("tab", ["Step by step", "Compare"])
def test_step_is_within_five_tab_stops_of_the_prompt(app_url, page_factory, tab):
    """Step was the 44th Tab stop after the prompt (each slider takes three). A "Skip to Step" link right after the
    prompt, or Step itself, is at most five stops away, and the link lands on Step whichever tab is open."""
    page = _open(page_factory, app_url)
    page.get_by_role("tab", name=tab).click()
    page.click("#dp-prompt textarea")
    for _ in range(5):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED_JS)
        if focused["link"] and focused["label"].strip() == "Skip to Step":
            assert page.locator(".dp-skip").is_visible()  # a sighted keyboard user sees where the focus is
            page.keyboard.press("Enter")
            page.wait_for_function("document.activeElement && document.activeElement.id === 'dp-step'")
            break
        if focused["id"] == "dp-step":
            break
    else:
        pytest.fail("neither Step nor a link to it within five Tab stops of the prompt")
    assert page.locator("#dp-step").is_visible()
    page.keyboard.press("Enter")  # and Enter takes a step
    page.wait_for_selector("#dp-text [data-step='0']")
    page.close()


# Every kind of control the page has, as the keyboard meets it (a token and a chart row are role=button).
KIND_JS = """(e) => e.matches('.dp-tok') ? 'token' : e.matches('.dp-lc-row') ? 'chart row'
  : e.getAttribute('role') === 'tab' ? 'tab' : e.tagName === 'INPUT' ? 'input ' + e.type : e.tagName.toLowerCase()"""
RING_JS = """(e) => { const s = getComputedStyle(e);
  return [s.outlineStyle, parseFloat(s.outlineWidth) || 0, s.outlineColor, s.boxShadow]; }"""
KINDS = {"a", "button", "tab", "textarea", "input text", "input number", "input range", "input radio",
         "input checkbox", "token", "chart row"}  # fmt: skip


def test_every_kind_of_control_shows_a_focus_ring(app_url, page_factory):
    """Sliders, radios, checkboxes and text boxes showed no focus ring (Gradio sets outline: none): a keyboard
    user lost the focus at the third stop. Tabbing from the prompt through the page, each control the focus
    reaches draws an outline of 2 px or more, or a box-shadow it does not have unfocused."""
    page = _open(page_factory, app_url)
    _greedy_run(page, max_new=4)
    page.click("#dp-prompt textarea")
    seen: dict[str, list] = {}
    for _ in range(120):
        page.keyboard.press("Tab")
        handle = page.evaluate_handle("document.activeElement")
        kind = page.evaluate(KIND_JS, handle)
        if kind in KINDS and kind not in seen:
            seen[kind] = [handle, page.evaluate(RING_JS, handle)]
        if set(seen) == KINDS:
            break
    assert set(seen) == KINDS, f"the Tab order never reached {KINDS - set(seen)}"
    page.evaluate("document.activeElement.blur()")
    page.mouse.click(5, 5)
    bare = []
    for kind, (handle, focused) in seen.items():
        unfocused = page.evaluate(RING_JS, handle)
        outline = focused[0] not in ("none", "hidden") and focused[1] >= 2
        shadow = focused[3] not in ("none", "") and focused[3] != unfocused[3]
        if not ((outline and focused[:3] != unfocused[:3]) or shadow):
            bare.append(f"{kind}: focused {focused}, unfocused {unfocused}")
    assert not bare
    page.close()


LABEL = re.compile(r"^“(.*)”, (\d+(?:\.\d+)?)% likely(, forced by you)?$")


def test_each_token_is_a_button_named_with_its_probability_and_unlikely_ones_are_underlined(app_url, page_factory):
    """A token's probability was shown by colour alone and a screen reader heard only the token. Each one is a
    button whose name says how likely it was (the popover's own number), and a token under 10 % has a dotted
    underline, which the legend explains."""
    page = _open(page_factory, app_url)
    _greedy_run(page, max_new=8)
    tokens = page.evaluate("""[...document.querySelectorAll('#dp-text [data-step]')].map((t) => ({
        role: t.getAttribute('role'), tabindex: t.tabIndex, name: t.getAttribute('aria-label'),
        alts: JSON.parse(t.dataset.alts), underline: getComputedStyle(t).borderBottomStyle}))""")
    assert len(tokens) == 8
    cues = set()
    for t in tokens:
        assert t["role"] == "button" and t["tabindex"] == 0, t
        m = LABEL.match(t["name"] or "")
        assert m, t["name"]
        p = float(t["alts"]["sub"].split("%")[0]) / 100  # "12.54% after the knobs, …"
        assert abs(float(m[2]) - 100 * p) <= (0.5 if p >= 0.01 else 0.05), (t["name"], p)
        assert (t["underline"] == "dotted") == (p < 0.10), (t["name"], t["underline"])
        cues.add(p < 0.10)
    assert cues == {True, False}, "the run should hold both an unlikely and a likely token"
    assert "dotted underline = under 10% likely" in page.inner_text("#dp-text .dp-legend")
    page.close()


# Machado, Oliveira & Fernandes (2009), severity 1: the colours a protanope or deuteranope sees, in linear RGB.
MACHADO = {
    "normal vision": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),  # fmt: skip
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),  # fmt: skip
}
MIN_DELTA_E = 20  # CIE76; about 2.3 is a just-noticeable difference, 20 tells colours apart at a glance


def _lab(rgb, matrix) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour (0-255) as someone with the given Machado matrix sees it."""
    c = np.asarray(rgb, dtype=float) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    seen = np.clip(matrix @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ seen
    t = xyz / np.array([0.95047, 1.0, 1.08883])  # relative to white
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def palette_confusions(low, mid, high) -> list[str]:
    """Which pairs of the palette's low, middle and high colours come closer than MIN_DELTA_E, and for whom."""
    out = []
    for who, matrix in MACHADO.items():
        for (a, ca), (b, cb) in itertools.combinations({"low": low, "mid": mid, "high": high}.items(), 2):
            delta = float(np.linalg.norm(_lab(ca, matrix) - _lab(cb, matrix)))
            if delta < MIN_DELTA_E:
                out.append(f"{who}: {a} and {b} ΔE {delta:.1f}")
    return out


def test_the_simulation_tells_the_old_red_amber_green_scale_apart_from_a_safe_one():
    """The check itself: the old scale (hsl 0 -> 65 -> 130) is confused under deuteranopia and protanopia, as
    the issue saw; blue against orange is not."""
    import colorsys

    old = [[255 * x for x in colorsys.hls_to_rgb(h / 360, lum / 100, 0.75)] for h, lum in ((0, 84), (65, 81), (130, 78))]
    assert any(c.startswith("deuteranopia") for c in palette_confusions(*old))
    assert any(c.startswith("protanopia") for c in palette_confusions(*old))
    assert not palette_confusions((0xF2, 0x8E, 0x2B), (0xF7, 0xF7, 0xF7), (0x4E, 0x79, 0xA7))


def test_the_coloured_texts_palette_stays_distinguishable_for_the_colour_blind(app_url, page_factory):
    """In a deuteranopia simulation the middle and high colours of the coloured text looked the same. The
    legend's scale as the page draws it (its 0 %, 50 % and 100 % stops), simulated for protanopia and
    deuteranopia, keeps all three apart; and each token is drawn in a colour of that scale."""
    page = _open(page_factory, app_url)
    _greedy_run(page, max_new=4)
    gradient = page.evaluate("getComputedStyle(document.querySelector('#dp-text .dp-legend-bar')).backgroundImage")
    stops = [tuple(int(x) for x in m) for m in re.findall(r"rgb\((\d+), (\d+), (\d+)\)", gradient)]
    assert len(stops) >= 3 and len(stops) % 2 == 1, gradient
    assert not palette_confusions(stops[0], stops[len(stops) // 2], stops[-1])
    backgrounds = page.evaluate("""[...document.querySelectorAll('#dp-text [data-step]')].map((t) =>
        [getComputedStyle(t).backgroundColor, JSON.parse(t.dataset.alts).sub])""")
    from playground.views import prob_color

    for background, sub in backgrounds:  # the colour of the popover's probability ("12.54% after the knobs")
        expected = prob_color(float(sub.split("%")[0]) / 100)  # to the popover's rounding: within a step or two
        got = [int(x) for x in re.findall(r"\d+", background)[:3]]
        assert max(abs(g - int(expected[i:i + 2], 16)) for g, i in zip(got, (1, 3, 5))) <= 2, (background, sub)
    page.close()
