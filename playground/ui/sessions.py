"""Session lifetime: each browser (or API client) runs one request at a time, and the memory that sessions hold
is bounded, whatever the visitors do.

Gradio keeps every session's `gr.State` (its PlaygroundState, KV cache included) for as long as the process
lives, and an API client never closes its session. `SessionTable` keeps each session's latest state, keyed by
Gradio's session hash, and bounds it (limits from `shared.POLICY`, read at call time):

  turns       a session runs one request at a time: a second waits its turn (up to `session_wait_s`), a third
              is refused in one sentence, so two requests never interleave on one run;
  parking     a session idle for `session_idle_s`, or beyond the `live_sessions` most recently used, drops its
              run (KV cache and step records) and keeps only its recipe (the permalink's value); its next
              request replays the recipe token for token (`handlers.replay`) before going on;
  forgetting  a session idle for `session_ttl_s`, or beyond the `max_sessions` most recently used, is
              forgotten, recipe too (a page still sends its permalink, which `handlers.recover` replays).

A request takes its session's turn through `TABLE.turn` (the request wrapper, `requests.py`, does it for every
endpoint, by the endpoint's policy), gets the session's latest state (`bring_in`) and leaves the state it
returns (`keep`). Without a Gradio request (tests calling an endpoint) there is no session: nothing is
serialised. `configure` puts every model-using event in one concurrency group ("model"), sizes the queue, caps
each session's queued requests and starts the sweeper.

This module knows nothing about how a token is chosen, the page's layout, or what a handler returns beyond
the PlaygroundState among its outputs.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from . import gradio_internals, shared
from .permalink import PERMALINK_PARAM, decode_permalink, permalink_query, replay
from .state import PlaygroundState, UserError

MODEL_GROUP = "model"  # the concurrency id every model-using event shares (one global limit)
BUSY = ("This session is still busy with an earlier request: wait for it to finish (or press Stop), then try "
        "again.")  # fmt: skip
QUEUED = "This session already has {n} requests queued or running: wait for them to finish, then try again."
# Gradio tells each waiting request its place in the queue. By default ("auto") it tells every waiting request
# again whenever one starts: with 70 waiting (100 students) that is 70 messages a start, on the server's one
# Python thread. Once a second, all of them, is as much as a person reads.
QUEUE_STATUS_EVERY_S = 1.0

log = logging.getLogger("playground.ui")


# ----------------------------------------------------------------------------------------------------------
# Parking a run: drop its session, keep its recipe; rebuild it on return


def park(state: PlaygroundState) -> bool:
    """Drop the run's session (KV cache, step records, preview) and keep its recipe; True if it held one."""
    if not isinstance(state, PlaygroundState) or state.session is None:
        return False
    state.parked = permalink_query(state).split(f"{PERMALINK_PARAM}=", 1)[-1]
    state.session = state.preview = None
    state.table_rows, state.text_spans = [], {}  # they hold the step records
    return True


def unpark(state: PlaygroundState) -> PlaygroundState:
    """The parked run replayed from its recipe, token for token, into the same state object (Gradio holds it);
    the chart's scale, the open tab and the inspected step are kept. A recipe that no longer replays (its model
    is gone from the allow-list) leaves a state without a run: the next step starts afresh."""
    recipe, state.parked = state.parked, None
    if not recipe:
        return state
    try:
        fresh, _ = replay(decode_permalink(recipe))
    except Exception as e:  # noqa: BLE001 - the run is lost, not the session
        log.warning("a parked run could not be replayed: %s", e)
        return state
    keep = {"selected": state.selected, "log_scale": state.log_scale, "show_trajectory": state.show_trajectory,
            "stop": state.stop}  # fmt: skip
    state.__dict__.update({**fresh.__dict__, **keep})
    if state.selected is not None and state.selected >= len(state.steps):
        state.selected = None
    return state


def forget(state: PlaygroundState) -> None:
    """Back to a state without a run or recipe (the model picked and the view settings stay)."""
    if isinstance(state, PlaygroundState):
        blank = PlaygroundState(model=state.model, log_scale=state.log_scale, show_trajectory=state.show_trajectory,
                                stop=state.stop)  # fmt: skip
        state.__dict__.update(blank.__dict__)


# ----------------------------------------------------------------------------------------------------------
# The table


@dataclass
class _Entry:
    state: PlaygroundState | None = None
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False  # a request of this session holds its turn
    ahead: bool = False  # ... and it is work done ahead (`ahead`): a request may wait for it beside another
    waiting: int = 0  # requests of this session waiting for the turn


_NO_SESSION = _Entry()  # what a request outside Gradio (a test calling an endpoint) gets: no turn, nothing kept


class SessionTable:
    """Each session's latest state by session hash, least recently used first, and whose turn it is."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._cond = threading.Condition()
        self._sweeper: threading.Thread | None = None
        self.demo = None  # the page whose Gradio sessions are dropped with ours (configure sets it)
        self._dropped = 0  # runs dropped between sweeps

    def __len__(self) -> int:
        return len(self._entries)

    def live(self) -> int:
        """Sessions whose run is in memory (not parked)."""
        with self._cond:
            return sum(1 for e in self._entries.values() if _has_run(e.state))

    @contextlib.contextmanager
    def turn(self, key: str | None, wait: bool = True, ahead: bool = False) -> Iterator[_Entry | None]:
        """Hold the session's turn for the block. `wait=False`: yields None at once when the turn is taken
        (the caller goes on beside it, or, with `ahead`, skips its work). A session's second request waits up to
        `session_wait_s` for the turn; a third is refused (UserError, one sentence). Work done `ahead` of the
        session's requests does not count: while it holds the turn, two requests may wait for it."""
        if key is None:  # no session (a test calling an endpoint): nothing to serialise
            yield _NO_SESSION
            return
        policy = shared.POLICY
        with self._cond:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(last_used=self.clock())
            self._entries.move_to_end(key)
            beside = entry.busy and not wait
            if entry.busy and wait:
                if entry.waiting > (1 if entry.ahead else 0) or not policy.session_wait_s:
                    raise UserError(BUSY)
                entry.waiting += 1
                try:
                    free = self._cond.wait_for(lambda: not entry.busy, timeout=policy.session_wait_s)
                finally:
                    entry.waiting -= 1
                if not free:
                    raise UserError(BUSY)
            if not beside:
                entry.busy, entry.ahead = True, ahead
        if beside:
            yield None
            return
        try:
            yield entry
        finally:
            with self._cond:
                entry.busy = entry.ahead = False
                entry.last_used = self.clock()
                if self._entries.get(key) is entry:
                    self._entries.move_to_end(key)
                self._cond.notify_all()

    def bring_in(self, entry: _Entry | None, state):
        """The state a request should work on: the session's latest (a request that waited its turn was handed
        the state from before the first one finished), rebuilt from its recipe if it was parked."""
        if entry is None:  # beside the request that holds the turn: as handed over
            return state
        if entry is not _NO_SESSION and entry.state is not None:
            state = entry.state
        if isinstance(state, PlaygroundState) and state.parked:
            unpark(state)
        return state

    def keep(self, entry: _Entry | None, state) -> None:
        """Remember `state` (a request's resulting run) as its session's latest, and keep within the bounds."""
        if entry is None or entry is _NO_SESSION or not isinstance(state, PlaygroundState):
            return
        with self._cond:
            entry.state = state
            entry.last_used = self.clock()
            self._dropped += self._bound(shared.POLICY)  # the memory is given back by the next sweep

    def sweep(self) -> int:
        """Park the sessions idle past `session_idle_s` and forget those past `session_ttl_s` (and any beyond the
        bounds); returns how many runs were dropped. Sessions holding or awaiting their turn are left alone."""
        policy = shared.POLICY
        now = self.clock()
        dropped = 0
        with self._cond:
            for key, entry in list(self._entries.items()):  # least recently used first
                if entry.busy or entry.waiting:
                    continue
                idle = now - entry.last_used
                if policy.session_ttl_s is not None and idle > policy.session_ttl_s:
                    dropped += self._forget(key)
                elif policy.session_idle_s is not None and idle > policy.session_idle_s:
                    dropped += park(entry.state)
            dropped += self._bound(policy)
            release, self._dropped = dropped or self._dropped, 0
        if release:
            _release_memory()
        return dropped

    def _bound(self, policy) -> int:
        """Under the lock: park the least recently used runs beyond `live_sessions`, forget the sessions beyond
        `max_sessions`; returns how many runs were dropped."""
        dropped = 0
        idle = [(k, e) for k, e in self._entries.items() if not (e.busy or e.waiting)]  # least recent first
        for key, _ in idle[: max(0, len(self._entries) - policy.max_sessions)]:
            dropped += self._forget(key)
        live = [e for e in self._entries.values() if _has_run(e.state)]
        for entry in [e for e in live if not (e.busy or e.waiting)][: max(0, len(live) - policy.live_sessions)]:
            dropped += park(entry.state)
        return dropped

    def _forget(self, key: str) -> bool:
        """Under the lock: forget the session, and Gradio's record of it (~150 KB of the page's component
        settings per session, otherwise kept until Gradio's own bound); True if it held a run."""
        entry = self._entries.pop(key)
        had_run = _has_run(entry.state)
        forget(entry.state)
        gradio_internals.forget_session(self.demo, key)
        return had_run

    def start_sweeper(self) -> None:
        """Sweep in a daemon thread, a few times per idle period (so memory falls back with no request)."""
        if self._sweeper is not None and self._sweeper.is_alive():
            return

        def loop():
            while True:
                policy = shared.POLICY
                periods = [p for p in (policy.session_idle_s, policy.session_ttl_s) if p]
                time.sleep(min(30.0, max(0.5, min(periods, default=60.0) / 5)))
                try:
                    self.sweep()
                except Exception:  # noqa: BLE001 - the sweeper must outlive any one bad state
                    log.exception("session sweep failed")

        self._sweeper = threading.Thread(target=loop, name="playground-session-sweeper", daemon=True)
        self._sweeper.start()

    def clear(self) -> None:
        with self._cond:
            self._entries.clear()


def _has_run(state) -> bool:
    return isinstance(state, PlaygroundState) and state.session is not None


def _release_memory() -> None:
    """Give the dropped runs' memory back to the system. A run holds no reference cycles, so it is freed as it
    is dropped (no collection needed, which would stall a Step); but glibc keeps freed heap pages in the
    process's RSS until asked to return them."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)


@functools.cache
def _libc():
    return ctypes.CDLL("libc.so.6")


TABLE = SessionTable()


# ----------------------------------------------------------------------------------------------------------
# The queue


def configure(demo, uses_model: Callable[[Callable], bool], policy=None) -> None:
    """Queue the built page under `policy`: every event whose function `uses_model` in one concurrency group
    of `concurrency`, the queue at most `queue_size` long, each session at most `session_queue` requests in it,
    places in the queue told once a second, Gradio's temporary files (the exports' copies) deleted after an
    hour, and the sweeper started."""
    policy = policy or shared.POLICY
    gradio_internals.set_concurrency(demo, uses_model, MODEL_GROUP, policy.concurrency)
    demo.delete_cache = (600, 3600)  # every 10 minutes, what is older than an hour
    demo.queue(default_concurrency_limit=policy.concurrency, max_size=policy.queue_size,
               status_update_rate=QUEUE_STATUS_EVERY_S)  # fmt: skip
    gradio_internals.quick_skips(demo)
    gradio_internals.rare_analytics(demo)
    if policy.session_queue:
        gradio_internals.limit_per_session(demo, policy.session_queue, QUEUED)
    TABLE.demo = demo
    TABLE.start_sweeper()


def server_limits(policy=None) -> dict:
    """Keyword arguments for `demo.launch`: no uploads (the page has no upload; Gradio otherwise takes files of
    any size at /gradio_api/upload) and as many Gradio sessions as the table remembers."""
    policy = policy or shared.POLICY
    return {"max_file_size": 0, "state_session_capacity": policy.max_sessions}
