"""How often a streamed run sends its page an update: every token when it streams alone, fewer when many stream
at once. Each update costs the server's one Python thread ~10 ms (the coloured text, Gradio's postprocessing
and the message), which thirty runs at once would pay for every token they take; the app sends at most
`HostingPolicy.stream_updates_per_s` updates a second in all, shared by the runs streaming now (a run alone sends
every token). A run's first
and last updates are always sent; the tokens between are sent together in the next one (the page's text is
sent as increments, so nothing is lost).

This module knows nothing about decoding, Gradio or the page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Pacer:
    """Counts the runs streaming now and says when each may send its next update."""

    def __init__(self):
        self.streaming = 0
        self._lock = threading.Lock()

    @contextmanager
    def stream(self) -> Iterator[Stream]:
        with self._lock:
            self.streaming += 1
        try:
            yield Stream(self)
        finally:
            with self._lock:
                self.streaming -= 1

    def interval_s(self, updates_per_s: float | None) -> float:
        """The time each run waits between its updates now, for about `updates_per_s` in all (None: no wait); a
        run streaming alone sends every token."""
        return (self.streaming - 1) / updates_per_s if updates_per_s else 0.0


class Stream:
    """One run's updates: `due(updates_per_s)` says whether one is to be sent now (the first always is)."""

    def __init__(self, pacer: Pacer):
        self.pacer, self.sent_at = pacer, None

    def due(self, updates_per_s: float | None) -> bool:
        now = time.perf_counter()
        if self.sent_at is not None and now - self.sent_at < self.pacer.interval_s(updates_per_s):
            return False
        self.sent_at = now
        return True
