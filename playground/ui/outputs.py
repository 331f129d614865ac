"""The outputs every step-like handler returns, made from a browser's state: the API's JSON summary, the
coloured text, the distribution chart, the step table, the trajectory, the status line, the inspector, the
candidate list and the permalink (`step_outputs`: a dict by the names `STEP_OUTPUTS` lists; an output left
out is left as the page shows it).

Figures come from `plots`, tables and HTML from `views`; here they are chosen (which record is shown, what is
skipped while a run streams) and rendered to the PNG a gr.Plot shows. No tensor maths, no layout, nothing
about how a request is served.
"""

from __future__ import annotations

import base64
import html
import io

import gradio as gr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from .. import plots, views
from ..records import StepRecord
from .controls import as_int
from .gradio_internals import PlotData
from .permalink import permalink_query
from .state import PlaygroundState, as_run

N_TABLE_CHOICES = 5
# A streaming handler's last update says so (`{**outputs, ENDS_STREAM: True}`); the page's variant then sends
# every run control in it, not only those that changed. The page applies a stream's updates as they come, but
# two that come together are merged, the later winning, and an output the later one leaves as it is (gr.skip)
# loses the earlier one's change: a Run's end-of-run note and its Run button turned off were seen lost that way
# (3 runs in 12). So a stream's last update must hold everything the page is to end with.
ENDS_STREAM = "ends_stream"
PLOT_FORMAT = "png"  # how the charts reach the page: PNG encodes faster than Gradio's default WebP here
# what step_outputs returns, by name (the endpoints' table wires the page's components of these names)
STEP_OUTPUTS = ("result", "text", "distribution", "table", "trajectory", "status", "inspect", "candidates",
                "permalink", "state")  # fmt: skip




def api_result(state: PlaygroundState) -> dict:
    """The compact, JSON-friendly summary API clients read (output 0 of /step, /run, /force ...)."""
    s = state.session
    if s is None:
        return {"model": None, "prompt": "", "text": "", "token_ids": [], "n_steps": 0, "done": False,
                "finish_reason": None, "last_step": None, "notices": [], "permalink": ""}  # fmt: skip
    last = s.steps[-1] if s.steps else None
    last_d = None
    if last is not None:
        last_d = {k: v for k, v in last.to_dict().items() if k != "top" and k != "beams"}
        last_d["top"] = [{"token": c.token, "token_id": c.token_id, "prob": c.prob, "raw_prob": c.raw_prob}
                         for c in sorted(last.top, key=lambda c: c.rank)[:5]]  # fmt: skip
    token_ids = list(s.token_ids)
    return {
        "model": s.engine.name,
        "prompt": state.prompt_text,
        "text": s.engine.decode(token_ids),
        "token_ids": token_ids,
        "n_steps": len(s.steps),
        "done": s.done,
        "finish_reason": s.finish_reason,  # None while not finished, "stopped" after a Stop
        "last_step": last_d,
        "notices": state.shown_notices(),
        "permalink": permalink_query(state),
    }


def status_html(state: PlaygroundState) -> str:
    s = state.session
    if s is None:
        return '<div class="dp-status">Type a prompt and press <b>Step</b> to see the first token\'s distribution.</div>'
    e = html.escape
    n = len(s.steps)
    cfg = s.config
    r, pending = shown_record(state)  # the step the chart and the inspector show: the status names the same
    parts = [f"<b>{n}</b> / {cfg.max_new_tokens} tokens", f"model <code>{e(s.engine.name)}</code>",
             f"strategy <b>{e((r.config if r is not None else cfg).strategy)}</b>"]  # the shown step's  # fmt: skip
    if r is not None:
        what = (f"preview of step {r.step} (not taken yet): {'will pick' if r.config.is_greedy else 'would draw'} "
                if pending else f"step {r.step}: ")  # fmt: skip
        parts.append(
            f"{what}<code>{e(views.token_label(r.token))}</code> p={r.prob:.1%} "
            f"(model {r.raw_prob:.1%}) · entropy {r.entropy:.2f} nats (model {r.entropy_raw:.2f})"
        )
    if s.done or s.finish_reason == "stopped":
        parts.append(f"{'finished' if s.done else 'stopped'}: <b>{e(finish_text(s))}</b>")
    notes = "".join(f'<div class="dp-notice">{e(msg)}</div>' for msg in state.shown_notices())
    return f'<div class="dp-status">{" · ".join(parts)}</div>{notes}'


def finish_text(session) -> str:
    """What happened to the session's run, in the page's words ("reached max new tokens (32)", "you pressed Stop
    after 7 tokens", "not finished: 3 of 32 tokens", ...): views.finish_words of its finish reason."""
    reason, cfg = session.finish_reason, session.config
    text = session.engine.decode(session.token_ids) if reason == "stop_string" else ""
    return views.finish_words(reason, len(session.steps), cfg.max_new_tokens, text, cfg.stop_strings)


def shown_record(state: PlaygroundState) -> tuple[StepRecord | None, bool]:
    """The record the distribution chart and the candidate list show, and whether it is the pending step's
    preview: the inspected step, else the preview (when one was made since the run last moved), else the last."""
    if state.selected is None and state.preview is not None:
        return state.preview, True
    if not state.steps:
        return None, False
    return state.steps[state.selected if state.selected is not None else -1], False


def candidate_choices(record: StepRecord | None, top_n: int) -> list[tuple[str, int]]:
    if record is None:
        return []
    return [(f"{views.token_label(c.token)}   {c.prob:.1%} (model {c.raw_prob:.1%})", c.token_id)
            for c in sorted(record.top, key=lambda c: c.rank)[: max(1, top_n)]]  # fmt: skip


def step_outputs(state: PlaygroundState, top_n=10, full: bool = True, figures: bool = True,
                 text_from: int | None = None) -> dict:  # fmt: skip
    """{result, text, distribution, table, trajectory, status, inspect, candidates, permalink, state}.

    `text_from` (a streamed run: the page has the text up to that step): also "text_increment", the tokens from
    there on (outlined only in the last update, `full`), which the page's variant sends instead of the whole
    text (`requests.serve`).

    `full=False` leaves the step table and the trajectory as they are (they did not change, or a streamed run
    sends them at its end); the trajectory is drawn only while its tab is on screen (`show_trajectory`).
    `figures=False` also leaves the distribution chart, the inspector and the permalink: a streamed run's light
    update, the text and the status only."""
    top_n = max(1, as_int("Candidates shown", top_n or 10))
    steps = state.steps
    if state.selected is not None and state.selected >= len(steps):
        state.selected = None
    record, pending = shown_record(state)
    sel = state.selected if state.selected is not None else (len(steps) - 1 if steps and not pending else None)
    result = api_result(state)
    out = {"result": result, "text": views.colored_text_html(state.prompt_text, steps, sel, made=state.text_spans),
           "status": status_html(state), "state": state}  # fmt: skip
    if text_from is not None and text_from <= len(steps):
        out["text_increment"] = views.colored_text_increment(steps, text_from, sel if full else None,
                                                             made=state.text_spans)
    if not figures:
        return out
    out["distribution"] = distribution_chart(state, top_n)
    if full:
        out["table"] = views.step_table(state.prompt_text, steps, N_TABLE_CHOICES, made=state.table_rows)
        if not steps or state.show_trajectory:  # else off screen: drawn when its tab is opened
            (out["trajectory"],) = rendered(trajectory_chart(state))
    # the inspector names the step the chart shows; where the pending step has a preview, it is the step after
    # the last one
    at, last = (len(steps) if pending else sel), len(steps) - (0 if state.preview is not None else 1)
    out["inspect"] = gr.Slider(minimum=0, maximum=max(1, last), value=at if at is not None else 0, interactive=last > 0)
    choices = candidate_choices(record, top_n)
    out["candidates"] = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)
    out["permalink"] = result["permalink"]
    return out


def distribution_chart(state: PlaygroundState, top_n: int) -> str:
    """The distribution chart of the shown record (`shown_record`) as the page's live chart draws it: the step's
    data as JSON ("" before any step). The browser draws it; the server only writes the numbers (~1 ms, where
    a PNG drawn by matplotlib took ~55 ms a step)."""
    record, pending = shown_record(state)
    return views.distribution_chart_json(record, top_n, log_scale=state.log_scale, pending=pending,
                                         force_words=force_label(state))  # fmt: skip


def force_label(state: PlaygroundState) -> str:
    """What "use this token instead" does to the shown step: replaces it and drops the tokens after it."""
    record, pending = shown_record(state)
    if record is None or pending:
        return "Use this token as the next step"
    after = len(state.steps) - record.step - 1
    if after == 0:
        return f"Replace step {record.step} with this token"
    return f"Replace step {record.step} with this token (drops the {after} token{'s' if after != 1 else ''} after it)"


def trajectory_chart(state: PlaygroundState) -> Figure | None:
    return plots.trajectory_figure(state.steps, legend=False) if state.steps else None


def rendered(*values) -> tuple:
    """`values` with each matplotlib Figure rendered to the PNG a gr.Plot shows (anything else passes through):
    the figures drawn once (the trajectory, the beam tree, the Knobs tab's). (Two charts on two threads were no
    quicker: drawing holds the GIL.)"""
    return tuple(_png(v) if isinstance(v, Figure) else v for v in values)


def _png(figure: Figure) -> PlotData:
    """What gr.Plot(format="png") makes of a figure, made here to be quicker: drawn on an Agg canvas the figure
    keeps (its renderer, and the text sizes it has measured, serve the next draw in the same figure), encoded
    as RGB (every figure of `plots` is opaque) at zlib's fastest level (a little larger, ~30 ms quicker)."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(physical=True), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=PLOT_FORMAT, compress_level=1)
    return PlotData(type="matplotlib", plot="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())


def empty_outputs(state: PlaygroundState | None = None) -> dict:
    return step_outputs(as_run(state))

