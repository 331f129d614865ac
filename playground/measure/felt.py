"""Felt speed: how long the web page takes to answer, as a person sees it, next to the same work through the API.

`measure()` starts the app as a person does (`python app.py`, its own process) on a free localhost port, opens it
in headless Chromium (Playwright) and times, alternating with the same actions sent by `gradio_client` to the same server:

    step     click Step -> the page shows nothing pending                 vs  /step (then /prepare, untimed, as
                                                                              the page makes the next forward)
    run      click Run to the end (after Reset) -> nothing pending        vs  /run (a generator: until it ends)
    preview  move the Temperature slider with the keyboard -> nothing
             pending and the distribution chart's image replaced          vs  /preview

"Nothing pending" is Gradio's own marking in the DOM (Gradio 6): while an event runs, each of its outputs'
status trackers (`[data-testid="status-tracker"]`) loses its `hide` class (`translucent` while waiting,
`generating` while a generator streams), and HTML outputs carry `pending`. `FELT_JS` checks on every change
of the page (a MutationObserver, and image loads) whether the page first reacted (a tracker shown, or the
watched output changed) and then shows no such marker, with the watched output's images loaded; the first
frame painted after that is the end. A page time runs from the input event's timestamp (the click or key
press) to that frame, in the page's own clock; an API time from before the call to its last output, in
Python's. Python only collects the page's result, every POLL_MS: the page is never made to draw extra frames.
Every timed action waits THINK_S first, as a person reads an answer before the next click.

This module knows the page only through element ids (#dp-step, #dp-run, #dp-reset, #dp-temperature, #dp-text,
#dp-dist; it counts #dp-text's `[data-step]` tokens after a run, as a check) and the API only through endpoint
names and the parameter names `view_api()` reports. It knows nothing about how a token is decoded or a chart
is drawn; the settings it sends are the page's defaults, checked against the defaults the API reports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from .stats import alternate, percentile

APP = Path(__file__).resolve().parents[2] / "app.py"
CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
VIEWPORT = {"width": 1440, "height": 900}
ROUNDS = {"step": 7, "run": 3, "preview": 5}  # timed rounds per side; --quick takes QUICK_ROUNDS
QUICK_ROUNDS = {"step": 2, "run": 1, "preview": 2}
TIMEOUT_S = {"step": 120, "run": 600, "preview": 120, "reset": 60}

# The page's defaults (the API gets the same, by parameter name): a sampled run of 32 tokens.
SETTINGS = dict(model="default", chat=False, system="", strategy="sample", temperature=0.8, top_k=50, top_p=0.95,
                min_p=0.0, repetition_penalty=1.0, num_beams=4, length_penalty=1.0, max_new_tokens=32, top_n=10,
                seed=0)  # fmt: skip
TEMPERATURE_STEP = 0.05  # one ArrowRight on the Temperature slider
POLL_MS = 100  # how often Python asks the page whether it finished (the page itself timestamps when it did)
# A person looks at each answer before the next action: every timed action waits this long first, on both sides,
# so that what follows an answer (the page making the next step's forward, /prepare on the API side) is not
# timed as part of the other side's action, as it never is of a person's.
THINK_S = 0.5

# Installed in the page: window.__felt.arm(watch, needChange) before an action; window.__felt.done() is false until
# the action finished, then {ms, sawBusy, changed} or {error}. The page decides when it finished, from its own
# mutations and image loads (and the next painted frame), so Python can poll it slowly: polling every animation
# frame would keep the browser drawing frames, and on a 2-core machine take CPU from the server being timed.
FELT_JS = r"""
(() => {
  if (window.__felt) return;
  const TRACKER = '[data-testid="status-tracker"]';
  const PENDING = `${TRACKER}:not(.hide), .pending, .generating, .eta-bar, .progress-text`;
  const busy = () => document.querySelector(PENDING) !== null;
  const errors = () => document.querySelectorAll('.toast-body.error').length;
  const snapshot = (sel) => {  // what a person sees of an output: its images and its text, not its trackers
    const el = sel && document.querySelector(sel);
    if (!el) return '';
    const srcs = [...el.querySelectorAll('img')].map((i) => i.currentSrc || i.src).join('|');
    let text = '';
    const outside = (n) => !(n.parentElement && n.parentElement.closest(TRACKER));
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT, {
      acceptNode: (n) => outside(n) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT,
    });
    while (walker.nextNode()) text += walker.currentNode.data;
    return srcs + '\u0000' + text;
  };
  const pendingImages = (sel) => {
    const el = sel && document.querySelector(sel);
    return el ? [...el.querySelectorAll('img')].filter((i) => !(i.complete && i.naturalWidth > 0)) : [];
  };
  const f = window.__felt = {
    busy, start: null, watch: null, needChange: false, before: '', reacted: false, sawBusy: false, errors: 0,
    observer: null, mark: null, result: null, painting: false,
    arm(watch, needChange) {
      if (f.observer) f.observer.disconnect();
      if (f.mark) for (const ev of ['pointerdown', 'keydown']) document.removeEventListener(ev, f.mark, true);
      Object.assign(f, {start: null, watch, needChange: !!needChange, before: snapshot(watch), reacted: false,
                        sawBusy: false, errors: errors(), result: null, painting: false});
      f.mark = (e) => { if (f.start === null) { f.start = e.timeStamp; setTimeout(f.check, 0); } };
      for (const ev of ['pointerdown', 'keydown']) document.addEventListener(ev, f.mark, true);
      f.observer = new MutationObserver(f.check);  // every change of class, src, text or children
      f.observer.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true,
                                         attributeFilter: ['class', 'src']});
    },
    check() {  // on each mutation and image load: has the action finished? Then time the next painted frame.
      if (f.start === null || f.result !== null || f.painting) return;
      const failed = document.querySelector(`${TRACKER}:not(.hide) .error`);  // an output's event failed
      if (failed || errors() > f.errors) {
        const toasts = document.querySelectorAll('.toast-body.error');
        const why = toasts.length ? toasts[toasts.length - 1].innerText : failed.innerText;
        f.result = {error: (why || 'error').replace('×', '').replace(/\s+/g, ' ').trim()};
        return;
      }
      if (busy()) { f.reacted = f.sawBusy = true; return; }
      const changed = snapshot(f.watch) !== f.before;
      if (!(f.reacted || changed) || (f.needChange && !changed)) return;
      const loading = pendingImages(f.watch);
      if (loading.length) {
        for (const img of loading) img.addEventListener('load', f.check, {once: true});
        return;
      }
      f.painting = true;
      requestAnimationFrame(() => {  // the frame that shows it
        f.painting = false;
        if (busy()) return;  // something started again: wait for the next mutation
        f.result = {ms: performance.now() - f.start, sawBusy: f.sawBusy, changed};
      });
    },
    done() { return f.result === null ? false : f.result; },
  };
})();
"""


class BrowserUnavailable(RuntimeError):
    """Playwright or Chromium is missing: the message is one line saying which, and how to get it."""


class FeltError(RuntimeError):
    """An action failed on the page or through the API (the message says which and why)."""


def require_browser(chromium: str | None = None):
    """Playwright's `sync_playwright`, or BrowserUnavailable naming what is missing (chromium: CHROMIUM)."""
    chromium = chromium or CHROMIUM
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable("playwright is not installed: pip install -r requirements-dev.txt") from None
    if not (os.path.exists(chromium) or shutil.which(chromium)):
        raise BrowserUnavailable(f"no Chromium at {chromium}: install it (apt-get install chromium) "
                                 "or set PLAYGROUND_CHROMIUM")  # fmt: skip
    return sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(model: str | None = None, start_timeout_s: float = 300) -> Iterator[str]:
    """`python app.py` on a free 127.0.0.1 port, as a person starts the app, in its own process (in this one,
    the timing client would share the server's interpreter lock), its default model `model` (None: the embedded
    one) loaded before it answers; yields the URL once it does, stops the app after."""
    from ..loading import is_embedded

    port = free_port()
    command = [sys.executable, str(APP), "--host", "127.0.0.1", "--port", str(port)]
    if not is_embedded(model):
        command += ["--model", str(model)]
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile(mode="w+") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=APP.parent,
                                  env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})  # fmt: skip
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    tail = log.read().strip().splitlines()[-1:] or ["no output"]
                    raise FeltError(f"the app exited ({server.returncode}) before it answered: {tail[0]}")
                try:
                    with urllib.request.urlopen(url, timeout=5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise FeltError(f"the app did not answer on {url} within {start_timeout_s:.0f} s") from None
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


# ----------------------------------------------------------------------------------------------------------
# One action, timed on the page or through the API


def time_on_page(page, act: Callable[[], None], watch: str, need_change: bool = False, timeout_s: float = 120) -> dict:
    """Arm the page, `act()` (a click or a key press), wait until the page has reacted and shows nothing pending.
    {"ms": page time from the input event, "wall_ms": Python's time around act and wait, "saw_busy", "changed"}."""
    page.evaluate("([watch, need]) => window.__felt.arm(watch, need)", [watch, need_change])
    started = time.perf_counter()
    act()
    out = page.wait_for_function("() => window.__felt.done()", polling=POLL_MS, timeout=timeout_s * 1000).json_value()
    wall_ms = (time.perf_counter() - started) * 1000
    if "error" in out:
        raise FeltError(f"the page showed an error: {out['error']}")
    return {"ms": out["ms"], "wall_ms": wall_ms, "saw_busy": out["sawBusy"], "changed": out["changed"]}


def time_api(call: Callable[[], object]) -> float:
    """Milliseconds of one API call, from before the request to its (last) output."""
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def api_arguments(api: dict, endpoint: str, values: dict) -> dict:
    """Keyword arguments for `endpoint` from `values`, by the parameter names view_api() reports; parameters
    not in `values` keep their defaults (a required one without a value is an error)."""
    params = api["named_endpoints"][endpoint]["parameters"]
    missing = [p["parameter_name"] for p in params
               if p["parameter_name"] not in values and not p.get("parameter_has_default")]  # fmt: skip
    if missing:
        raise FeltError(f"{endpoint} needs {', '.join(missing)}, which the benchmark does not know")
    return {name: values[name] for name in (p["parameter_name"] for p in params) if name in values}


def page_defaults_differ(api: dict, endpoint: str, values: dict) -> dict:
    """{name: (page default, value sent)} where the API's reported default (the page's initial value) differs."""
    out = {}
    for p in api["named_endpoints"][endpoint]["parameters"]:
        name = p["parameter_name"]
        if name in values and p.get("parameter_has_default") and p.get("parameter_default") != values[name]:
            out[name] = (p.get("parameter_default"), values[name])
    return out


def summary(page_ms: list[float], api_ms: list[float]) -> dict:
    """Medians, p95s and the felt/API ratio: the median of each round's ratio (its two sides ran back to back)."""
    return {
        "page_median_ms": statistics.median(page_ms),
        "page_p95_ms": percentile(page_ms, 95),
        "api_median_ms": statistics.median(api_ms),
        "api_p95_ms": percentile(api_ms, 95),
        "ratio": statistics.median(p / a for p, a in zip(page_ms, api_ms)),
        "page_ms": page_ms,
        "api_ms": api_ms,
    }


# ----------------------------------------------------------------------------------------------------------
# The measurement


def measure(
    model: str | None = None,
    rounds: dict | None = None,
    quick: bool = False,
    chromium: str | None = None,
    screenshot: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Time Step, Run to the end and the Temperature preview on the page and through the API, in one run of the
    app (`serve_app`).

    `model`: the app's default model (None: the embedded one).
    `rounds`: timed rounds per action ({"step", "run", "preview"}), after one untimed Step on each side (the
    prefill). Returns a JSON-ready dict: per action the page's and the API's times, medians, p95s and the
    ratio; "felt_*" the goals' values; preview None with "preview_error" when the app has no /preview."""
    say = progress or (lambda msg: None)
    rounds = {**(QUICK_ROUNDS if quick else ROUNDS), **(rounds or {})}
    chromium = chromium or CHROMIUM
    sync_playwright = require_browser(chromium)
    from gradio_client import Client

    from .. import ui

    values = dict(SETTINGS, prompt=ui.DEFAULT_PROMPT, n_steps=1)
    seen: list[dict] = []  # the page's timings of the current action, saw_busy included
    result: dict = {"rounds": rounds, "viewport": f"{VIEWPORT['width']}x{VIEWPORT['height']}", "settings": values,
                    "think_s": THINK_S}  # fmt: skip
    started = time.perf_counter()
    say("felt speed: starting the app and Chromium...")
    with serve_app(model) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        client = None
        try:
            result["chromium"] = browser.version
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(FELT_JS)
            page.goto(url, wait_until="load")
            page.wait_for_selector("#dp-step")
            page.wait_for_function("() => window.__felt && !window.__felt.busy()", polling=POLL_MS, timeout=60_000)
            client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
            api = client.view_api(print_info=False, return_format="dict")
            endpoints = set(api["named_endpoints"])
            result["page_defaults_differ"] = page_defaults_differ(api, "/step", values)

            def page_click(selector: str, watch: str = "#dp-text", timeout: str = "step") -> float:
                time.sleep(THINK_S)
                timed = time_on_page(page, lambda: page.click(selector), watch, timeout_s=TIMEOUT_S[timeout])
                seen.append(timed)
                return timed["ms"]

            def api_call(endpoint: str, extra: dict | None = None) -> float:
                time.sleep(THINK_S)
                kwargs = api_arguments(api, endpoint, {**values, **(extra or {})})
                return time_api(lambda: client.submit(**kwargs, api_name=endpoint).result(timeout=TIMEOUT_S["run"]))

            def api_step() -> float:
                """/step, then (untimed) what the page does after each Step: /prepare, the next step's forward."""
                ms = api_call("/step")
                if "/prepare" in endpoints:
                    client.submit(api_name="/prepare").result(timeout=TIMEOUT_S["step"])
                return ms

            # Step: one untimed on each side (the prompt's prefill), then alternating rounds
            say(f"felt speed: Step, {rounds['step']} rounds on the page and through /step...")
            page_click("#dp-step")
            api_step()
            seen.clear()
            step_rounds = alternate(lambda: page_click("#dp-step"), api_step, rounds["step"], warmup=0)
            result["step"] = summary(*step_rounds)
            result["step"]["page_saw_pending"] = all(t["saw_busy"] for t in seen)

            # Preview: a key press on the Temperature slider redraws the pending step's chart
            result["preview"], result["preview_error"] = None, None
            has_slider = page.locator("#dp-temperature input[type=range]").count() > 0
            if "/preview" not in endpoints or not has_slider:
                result["preview_error"] = "the app has no " + (
                    "/preview endpoint" if "/preview" not in endpoints else "#dp-temperature slider") + " yet"
            else:
                say(f"felt speed: Temperature preview, {rounds['preview']} rounds on the page and through /preview...")
                result["preview"] = _preview_rounds(page, api_call, rounds["preview"])

            # Run to the end: Reset first on both sides, so that every run generates the same tokens
            say(f"felt speed: Run to the end, {rounds['run']} rounds on the page and through /run...")

            def page_run() -> float:
                time_on_page(page, lambda: page.click("#dp-reset"), "#dp-text", timeout_s=TIMEOUT_S["reset"])
                return page_click("#dp-run", timeout="run")

            def api_run() -> float:
                api_call("/reset")
                return api_call("/run")

            seen.clear()
            result["run"] = summary(*alternate(page_run, api_run, rounds["run"], warmup=0))
            result["run"]["page_saw_pending"] = all(t["saw_busy"] for t in seen)
            result["run"]["tokens_on_page"] = page.locator("#dp-text [data-step]").count()
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
                result["screenshot"] = str(screenshot)
        finally:
            if client is not None:
                client.close()
            browser.close()
    result["felt_step_ms"] = result["step"]["page_median_ms"]
    result["felt_step_vs_api"] = result["step"]["ratio"]
    result["felt_run_vs_api"] = result["run"]["ratio"]
    result["felt_preview_ms"] = result["preview"]["page_median_ms"] if result["preview"] else None
    result["total_s"] = time.perf_counter() - started
    return result


def _preview_rounds(page, api_call: Callable, rounds: int) -> dict:
    """Alternate ArrowRight / ArrowLeft on the page (the slider's `input` event) with /preview at the same
    temperatures, and leave the slider where it started (an untimed key press back after an odd count)."""
    slider = "#dp-temperature input[type=range]"
    base = SETTINGS["temperature"]
    moves = {"page": 0, "api": 0}
    seen = []

    def page_side() -> float:
        key = "ArrowRight" if moves["page"] % 2 == 0 else "ArrowLeft"
        moves["page"] += 1
        page.focus(slider)
        seen.append(time_on_page(page, lambda: page.keyboard.press(key), "#dp-dist", need_change=True,
                                 timeout_s=TIMEOUT_S["preview"]))  # fmt: skip
        return seen[-1]["ms"]

    def api_side() -> float:
        temperature = round(base + TEMPERATURE_STEP, 4) if moves["api"] % 2 == 0 else base
        moves["api"] += 1
        return api_call("/preview", {"temperature": temperature})

    page_ms, api_ms = alternate(page_side, api_side, rounds, warmup=0)
    if moves["page"] % 2:
        page.focus(slider)
        time_on_page(page, lambda: page.keyboard.press("ArrowLeft"), "#dp-dist", need_change=True,
                     timeout_s=TIMEOUT_S["preview"])  # fmt: skip
    return {**summary(page_ms, api_ms), "page_saw_pending": all(t["saw_busy"] for t in seen)}
