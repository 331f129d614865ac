"""Everything the app borrows from Gradio beyond its public API, in one place, so that a Gradio upgrade breaks
this file loudly (tests/test_gradio_internals.py) instead of the app silently.

What is borrowed, and why:
  queue's door     `Blocks._queue.push` and `Queue.pending_event_ids_session`: a session's requests are counted
                   at the door, so one session's flood is refused before it fills the queue every visitor shares
                   (Gradio has a global `max_size`, no per-session bound).
  session records  `Blocks.state_holder` (`lock`, `session_data`, `time_last_used`): a session the app forgets is
                   forgotten by Gradio too (~150 KB of the page's component settings each), not kept until
                   Gradio's own bound.
  concurrency      `Blocks.fns[...]` (`BlockFunction.fn`, `concurrency_id`, `concurrency_limit`): every event
                   that uses the model shares one concurrency group, set after the events are wired.
  a PNG plot       `gradio.components.plot.PlotData`: a chart encoded by the app (quicker than gr.Plot's own
                   encoding) handed to gr.Plot as the value it would have made.
  quick skips      `Blocks.postprocess_data` and `gradio.blocks.postprocess_update_dict`: an output left as it
                   is (gr.skip()) is answered as Gradio answers it, without Gradio's way there, which builds the
                   component anew and its whole config (~2-3 ms a skipped output; a streamed token skips six).
  rare analytics   `Queue.ANAYLTICS_CACHE_FREQUENCY` (Gradio's spelling): Gradio's queue remakes the summary its
                   monitoring dashboard shows (a pandas DataFrame of the last 10,000 events, grouped, percentiles)
                   after every event, on the server's one Python thread: 2.3 ms an event after 2,500 events, 8.5 ms
                   after 10,000, an hour into a lesson. The app has no dashboard (`enable_monitoring` is off): the
                   summary is made every `ANALYTICS_EVERY` events instead (GRADIO_ANALYTICS_CACHE_FREQUENCY wins).

`CHECKED_WITH` is the Gradio version these were read against; the test fails on any other, as a reminder to
read them again. This module knows nothing about decoding, the page's layout or the handlers.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

from gradio.blocks import postprocess_update_dict
from gradio.components.plot import PlotData

CHECKED_WITH = "6.31.0"

__all__ = ["CHECKED_WITH", "PlotData", "forget_session", "limit_per_session", "quick_skips", "rare_analytics",
           "set_concurrency"]  # fmt: skip
SKIP = {"__type__": "update"}  # what gr.skip() returns
ANALYTICS_EVERY = 1000  # events between two remakes of Gradio's monitoring summary


def limit_per_session(demo, limit: int, refusal: str) -> None:
    """Refuse a request at the queue's door (HTTP 503, `refusal` with {n} filled in) when its session already
    has `limit` requests queued or running."""
    queue = demo._queue
    push = queue.push

    async def push_within_limit(body, request, username):
        pending = queue.pending_event_ids_session.get(body.session_hash or "", ())
        if body.session_hash and len(pending) >= limit:
            return False, refusal.format(n=len(pending)), "queue_full"
        return await push(body, request, username)

    queue.push = push_within_limit


def rare_analytics(demo, every: int = ANALYTICS_EVERY) -> None:
    """Make Gradio's queue remake its monitoring summary every `every` events, not after each one (unless
    GRADIO_ANALYTICS_CACHE_FREQUENCY says otherwise)."""
    if "GRADIO_ANALYTICS_CACHE_FREQUENCY" not in os.environ:
        demo._queue.ANAYLTICS_CACHE_FREQUENCY = every


def forget_session(demo, session_hash: str) -> None:
    """Drop Gradio's own record of a session (its components' state), as the app forgets it."""
    holder = getattr(demo, "state_holder", None)
    if holder is None:
        return
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)


def set_concurrency(demo, uses_model: Callable[[Callable], bool], group: str, limit: int) -> int:
    """Put every event whose function `uses_model` in one concurrency group of `limit`; how many."""
    n = 0
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and uses_model(block_fn.fn):
            block_fn.concurrency_id = group
            block_fn.concurrency_limit = limit
            n += 1
    return n


def quick_skips(demo) -> None:
    """Answer each output an event leaves as it is (gr.skip()) the way Gradio does, but without rebuilding the
    component and its config: Gradio's postprocessing builds a new component for every update, even an empty
    one, which a streamed Run paid six times a token. The other outputs go through Gradio's own path."""
    postprocess = demo.postprocess_data

    async def postprocess_skipping(block_fn, predictions, state):
        outputs = block_fn.outputs
        plain = not block_fn.batch and not block_fn.is_validator_function
        listed = isinstance(predictions, (list, tuple)) and len(predictions) == len(outputs) > 1
        if not (plain and listed):
            return await postprocess(block_fn, predictions, state)
        skipped = {i for i, (block, value) in enumerate(zip(outputs, predictions))
                   if type(value) is dict and value == SKIP and not block.stateful}  # fmt: skip
        if not skipped:
            return await postprocess(block_fn, predictions, state)
        kept = [i for i in range(len(outputs)) if i not in skipped]
        done = []
        if kept:
            rest = copy.copy(block_fn)
            rest.outputs = [outputs[i] for i in kept]
            values = [predictions[i] for i in kept]
            done = await postprocess(rest, values if len(kept) > 1 else values[0], state)
        answers = dict(zip(kept, done))
        return [answers[i] if i in answers else postprocess_update_dict(outputs[i], dict(SKIP), block_fn.postprocess)
                for i in range(len(outputs))]  # fmt: skip

    demo.postprocess_data = postprocess_skipping
