"""The live distribution chart: a gr.HTML the browser draws from one step's data, instead of a PNG per step.

Its value is `views.distribution_chart_json(record, top_n, log_scale, pending, force_words)` (a JSON string;
"" before any step). The drawing is assets/live_chart.js, run as the component's `js_on_load` (plain JS, no
library, nothing fetched), with assets/live_chart.css, which the script adds to the page once. A click, a tap
on the tip's button or Enter on a row fires the component's `select` event with
`{index, value: token_id, token_id, token, step, pending}`: the page wires it to its force handler.

    chart = live_chart(elem_id="dp-live-dist")
    chart.select(on_chart_force, [state, ...], outputs)        # evt.token_id, evt.step, evt.pending

`demo()` builds a page with the chart and a JSON box, for the browser tests. This module holds no tensor maths
and knows nothing of sessions or handlers.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

ASSETS = Path(__file__).resolve().parents[2] / "assets"
EVENT = "select"  # the event a click on a row fires; its data: index, value (= token_id), token_id, token, step, pending
# The component renders this once; the script draws everything inside it (the value is not in the template, so a
# new value never makes Gradio re-render the markup the script keeps).
TEMPLATE = '<div class="dp-lc-host"></div>'


def chart_script() -> str:
    """The chart's `js_on_load`: its stylesheet as a string constant, then the drawing code (read from assets/
    each time it is called, so an edited asset shows at the next build)."""
    css = (ASSETS / "live_chart.css").read_text(encoding="utf-8")
    js = (ASSETS / "live_chart.js").read_text(encoding="utf-8")
    return f"const CSS = {json.dumps(css)};\n{js}"


def live_chart(value: str = "", **kwargs) -> gr.HTML:
    """The chart as a gr.HTML. `value`: `views.distribution_chart_json(...)` ("" shows a hint). Other keyword
    arguments go to gr.HTML (elem_id, visible, min_height ...)."""
    kwargs.setdefault("elem_classes", ["dp-live-chart"])
    return gr.HTML(value, html_template=TEMPLATE, js_on_load=chart_script(), apply_default_css=False,
                   container=False, padding=False, **kwargs)  # fmt: skip


def demo(value: str = "") -> gr.Blocks:
    """A page with the chart, a JSON box that sets its value (its "Draw" button) and a box that shows the last
    `select` event's data as JSON: what the browser tests drive."""
    with gr.Blocks(title="Live chart") as page:
        chart = live_chart(value, elem_id="dp-live-chart")
        source = gr.Textbox(value, label="Chart data (JSON)", elem_id="dp-chart-json", lines=2, max_lines=4)
        draw = gr.Button("Draw", elem_id="dp-chart-draw")
        picked = gr.Textbox("", label="Last select event", elem_id="dp-chart-picked")
        draw.click(lambda text: text, source, chart)
        chart.select(_picked, None, picked)
    return page


def _picked(evt: gr.EventData) -> str:
    return json.dumps({k: getattr(evt, k, None) for k in ("index", "value", "token_id", "token", "step", "pending")},
                      ensure_ascii=False)  # fmt: skip


if __name__ == "__main__":  # python -m playground.ui.live_chart: try the chart on a step of the embedded model
    from playground import views
    from playground.config import DecodingConfig
    from playground.loading import load_engine

    engine = load_engine(None, device="cpu")
    session = engine.start(engine.encode("The capital of France is", chat=False),
                           DecodingConfig(strategy="sample", temperature=1.0, top_k=8, top_p=0.8, top_n=20))  # fmt: skip
    session.step()
    demo(views.distribution_chart_json(session.steps[-1], 12)).launch()
