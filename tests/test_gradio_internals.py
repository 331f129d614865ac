"""What the app borrows from Gradio's private internals (playground/ui/gradio_internals.py) is still there, shaped
as the app uses it: this file fails when the pinned Gradio changes any of it, so an upgrade breaks here, loudly,
and not in a visitor's session."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import gradio as gr
import pytest

from playground.ui import gradio_internals as gi


def test_the_internals_were_read_against_the_installed_gradio():
    assert gr.__version__ == gi.CHECKED_WITH, (
        f"Gradio {gr.__version__} is installed; gradio_internals.py was checked against {gi.CHECKED_WITH}. Read "
        "each internal it names again in the new version, fix what moved, then set CHECKED_WITH."
    )


@pytest.fixture
def demo():
    with gr.Blocks() as blocks:
        box = gr.Textbox()
        box.submit(lambda x: x, box, box)
    blocks.queue()
    return blocks


def test_the_queue_door_counts_a_sessions_requests_and_refuses_past_the_limit(demo):
    queue = demo._queue
    assert isinstance(queue.pending_event_ids_session, dict)
    assert list(inspect.signature(queue.push).parameters) == ["body", "request", "username"]
    seen = []

    async def push(body, request, username):
        seen.append(body.session_hash)
        return True, "queued", None

    queue.push = push
    gi.limit_per_session(demo, 2, "{n} already")
    queue.pending_event_ids_session["s"] = {"a", "b"}
    body = SimpleNamespace(session_hash="s")
    assert asyncio.run(queue.push(body, None, None)) == (False, "2 already", "queue_full")
    assert asyncio.run(queue.push(SimpleNamespace(session_hash="t"), None, None))[0] is True and seen == ["t"]


def test_a_forgotten_session_leaves_gradios_session_records(demo):
    holder = demo.state_holder
    assert hasattr(holder, "lock") and isinstance(holder.session_data, dict) and isinstance(holder.time_last_used, dict)
    holder.session_data["s"], holder.time_last_used["s"] = object(), object()
    gi.forget_session(demo, "s")
    assert "s" not in holder.session_data and "s" not in holder.time_last_used


def test_the_queues_monitoring_summary_is_made_every_thousand_events_not_after_each(demo, monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    queue = demo._queue
    made = []
    monkeypatch.setattr(type(queue), "_get_df", staticmethod(lambda records: made.append(len(records)) or _frame(records)))
    gi.rare_analytics(demo, every=3)
    record = {"function": "f", "status": "success", "process_time": 0.1}
    for _ in range(7):  # as Gradio counts them: one recorded, then the summary asked for
        queue.events_recorded += 1
        queue.compute_analytics_summary([record] * queue.events_recorded)
    assert made == [3, 6]  # remade at the 3rd and 6th events only (Gradio's own setting: all seven)
    assert queue.cached_event_analytics_summary["functions"]["f"]["total_requests"] == 6


def _frame(records):
    import pandas as pd

    return pd.DataFrame(records)


def test_concurrency_is_set_on_the_events_that_use_the_model(demo):
    for block_fn in demo.fns.values():
        assert {"fn", "concurrency_id", "concurrency_limit"} <= set(vars(block_fn))
    assert gi.set_concurrency(demo, lambda fn: True, "model", 3) == len(demo.fns)
    assert {(f.concurrency_id, f.concurrency_limit) for f in demo.fns.values()} == {("model", 3)}


def test_a_png_reaches_gr_plot_as_the_value_it_makes():
    data = gi.PlotData(type="matplotlib", plot="data:image/png;base64,AAAA")
    assert gr.Plot().postprocess(data) == data  # passed through as is
    assert set(gi.PlotData.model_fields) == {"type", "plot"}


def test_a_skipped_output_is_answered_as_gradio_answers_it_without_building_the_component(monkeypatch):
    from gradio.state_holder import SessionState

    with gr.Blocks() as blocks:
        parts = [gr.JSON(), gr.HTML(), gr.Dataframe(), gr.Plot(), gr.Slider(), gr.Dropdown(), gr.Textbox(), gr.State()]
        gr.Button().click(lambda: None, None, parts)
    block_fn = next(iter(blocks.fns.values()))
    import pandas as pd

    mixes = [[gr.skip()] * 7 + [1], [{"a": 1}, "<b>x</b>"] + [gr.skip()] * 4 + ["t", 2],
             [gr.skip(), gr.skip(), pd.DataFrame({"a": [1, 2]}), gr.skip(), 0.5, gr.skip(), gr.skip(), 4],
             [gr.skip(), "<i>y</i>", gr.skip(), gr.skip(), gr.Slider(maximum=9), gr.skip(), "u", 3]]  # fmt: skip
    own = [asyncio.run(blocks.postprocess_data(block_fn, list(m), SessionState(blocks))) for m in mixes]
    gi.quick_skips(blocks)
    built = []
    real_init = gr.Plot.__init__
    monkeypatch.setattr(gr.Plot, "__init__", lambda self, *a, **k: built.append(1) or real_init(self, *a, **k))
    quick = [asyncio.run(blocks.postprocess_data(block_fn, list(m), SessionState(blocks))) for m in mixes]
    assert quick == own
    assert built == []  # the skipped Plot was never built again
