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

`CHECKED_WITH` is the Gradio version these were read against; the test fails on any other, as a reminder to
read them again. This module knows nothing about decoding, the page's layout or the handlers.
"""

from __future__ import annotations

from collections.abc import Callable

from gradio.components.plot import PlotData

CHECKED_WITH = "6.31.0"

__all__ = ["CHECKED_WITH", "PlotData", "forget_session", "limit_per_session", "set_concurrency"]


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
