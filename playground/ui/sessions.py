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

`exclusive` wraps the handlers that use the model or replace the run: they take the session's turn, get its
latest state (a request that waited read its state before the first one finished) and leave the state they
return in the table. `nonblocking` wraps the cheap handlers that only read the run (a chart's log scale, the
trajectory tab, inspecting a step, an export): they never wait, as they never did. `ahead` wraps work done
ahead of the next request (the next step's forward): it runs only when the turn is free and never gets a
request refused. `configure` puts every exclusive and ahead handler in one concurrency group ("model"), sizes
the queue, caps each session's queued requests and starts the sweeper. Without a Gradio request (tests
calling handlers) there is no session: nothing is serialised.

This module knows nothing about how a token is chosen, the page's layout, or what a handler returns beyond
the PlaygroundState among its outputs.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from gradio.context import LocalContext

from . import shared
from .state import PlaygroundState, UserError

MODEL_GROUP = "model"  # the concurrency id every model-using event shares (one global limit)
BUSY = ("This session is still busy with an earlier request: wait for it to finish (or press Stop), then try "
        "again.")  # fmt: skip
QUEUED = "This session already has {n} requests queued or running: wait for them to finish, then try again."

log = logging.getLogger("playground.ui")


# ----------------------------------------------------------------------------------------------------------
# Parking a run: drop its session, keep its recipe; rebuild it on return


def park(state: PlaygroundState) -> bool:
    """Drop the run's session (KV cache, step records, preview) and keep its recipe; True if it held one."""
    from .permalink import PERMALINK_PARAM, permalink_query

    if not isinstance(state, PlaygroundState) or state.session is None:
        return False
    state.parked = permalink_query(state).split(f"{PERMALINK_PARAM}=", 1)[-1]
    state.session = state.preview = None
    return True


def unpark(state: PlaygroundState) -> PlaygroundState:
    """The parked run replayed from its recipe, token for token, into the same state object (Gradio holds it);
    the chart's scale, the open tab and the inspected step are kept. A recipe that no longer replays (its model
    is gone from the allow-list) leaves a state without a run: the next step starts afresh."""
    from .handlers import replay
    from .permalink import decode_permalink

    recipe, state.parked = state.parked, None
    if not recipe:
        return state
    try:
        fresh, _, _ = replay(decode_permalink(recipe))
    except Exception as e:  # noqa: BLE001 - the run is lost, not the session
        log.warning("a parked run could not be replayed: %s", e)
        return state
    keep = {"selected": state.selected, "log_scale": state.log_scale, "show_trajectory": state.show_trajectory}
    state.__dict__.update({**fresh.__dict__, **keep})
    if state.selected is not None and state.selected >= len(state.steps):
        state.selected = None
    return state


def forget(state: PlaygroundState) -> None:
    """Back to a state without a run or recipe (the model picked and the view settings stay)."""
    if isinstance(state, PlaygroundState):
        blank = PlaygroundState(model=state.model, log_scale=state.log_scale, show_trajectory=state.show_trajectory)
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


_NO_SESSION = _Entry()  # what a request outside Gradio (a test calling a handler) gets: no turn, nothing kept
_HELD: contextvars.ContextVar[str | None] = contextvars.ContextVar("playground_session_turn", default=None)


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
        if key is None or _HELD.get() == key:  # no session, or this call already holds the turn (undo -> rewind)
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

    def keep(self, entry: _Entry | None, outputs) -> None:
        """Remember the state among a handler's outputs as its session's latest, and keep within the bounds."""
        if entry is None or entry is _NO_SESSION:
            return
        state = next((x for x in reversed(outputs) if isinstance(x, PlaygroundState)), None) if isinstance(
            outputs, tuple) else None  # fmt: skip
        if state is None:
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
        holder = getattr(self.demo, "state_holder", None)
        if holder is not None:
            with holder.lock:
                holder.session_data.pop(key, None)
                holder.time_last_used.pop(key, None)
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
# The handlers' wrappers


def current_session() -> str | None:
    """The session hash of the Gradio request being handled (a browser tab, an API client), else None."""
    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None) if request is not None else None


def exclusive(fn: Callable) -> Callable:
    """`fn` (a handler; a generator streams) run in its session's turn, on the session's latest state, the
    state it returns kept. Marks it as model-using, for `configure`."""
    return _wrap(fn, wait=True)


def nonblocking(fn: Callable) -> Callable:
    """`fn` (a handler that only reads the run) takes its session's turn when it is free, so that a parked run
    is rebuilt first, and otherwise runs beside the request that holds it, never waiting."""
    return _wrap(fn, wait=False)


def ahead(fn: Callable) -> Callable:
    """`fn` (work done ahead of the session's next request, such as the next step's forward) run in the
    session's turn when it is free, and skipped when it is not: it never waits, and a request that comes while
    it runs waits for it without being refused for it. Marks it as model-using, for `configure`."""
    return _wrap(fn, wait=False, ahead=True)


def _wrap(fn: Callable, wait: bool, ahead: bool = False) -> Callable:
    takes_state = next(iter(inspect.signature(fn).parameters), None) == "state"

    def bring_in(entry, args, kwargs):
        if not takes_state:
            return args, kwargs
        if args:
            return (TABLE.bring_in(entry, args[0]), *args[1:]), kwargs
        return args, {**kwargs, "state": TABLE.bring_in(entry, kwargs.get("state"))}

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            with TABLE.turn(current_session(), wait=wait) as entry:
                args, kwargs = bring_in(entry, args, kwargs)
                for outputs in fn(*args, **kwargs):
                    TABLE.keep(entry, outputs)
                    yield outputs

        wrapper = streaming
    else:

        @functools.wraps(fn)
        def plain(*args, **kwargs):
            key = current_session()
            with TABLE.turn(key, wait=wait, ahead=ahead) as entry:
                if entry is None and ahead:  # the session is busy: what was to be done ahead is left to it
                    return None
                held = _HELD.set(key if entry is not None else _HELD.get())
                try:
                    args, kwargs = bring_in(entry, args, kwargs)
                    outputs = fn(*args, **kwargs)
                finally:
                    _HELD.reset(held)
                TABLE.keep(entry, outputs)
                return outputs

        wrapper = plain
    wrapper.uses_model = wait or ahead  # type: ignore[attr-defined] - read by configure()
    return wrapper


# ----------------------------------------------------------------------------------------------------------
# The queue


def configure(demo, policy=None) -> None:
    """Queue the built page under `policy`: every exclusive handler in one concurrency group of
    `concurrency`, the queue at most `queue_size` long, each session at most `session_queue` requests in it,
    Gradio's temporary files (the exports' copies) deleted after an hour, and the sweeper started."""
    policy = policy or shared.POLICY
    for block_fn in demo.fns.values():
        if getattr(block_fn.fn, "uses_model", False):
            block_fn.concurrency_id = MODEL_GROUP
            block_fn.concurrency_limit = policy.concurrency
    demo.delete_cache = (600, 3600)  # every 10 minutes, what is older than an hour
    demo.queue(default_concurrency_limit=policy.concurrency, max_size=policy.queue_size)
    if policy.session_queue:
        limit_per_session(demo._queue, policy.session_queue)
    TABLE.demo = demo
    TABLE.start_sweeper()


def limit_per_session(queue, limit: int) -> None:
    """Refuse a request at the door (HTTP 503, one sentence) when its session already has `limit` requests
    queued or running, so one session's flood never fills the queue that every visitor shares."""
    push = queue.push

    async def push_within_limit(body, request, username):
        pending = queue.pending_event_ids_session.get(body.session_hash or "", ())
        if body.session_hash and len(pending) >= limit:
            return False, QUEUED.format(n=len(pending)), "queue_full"
        return await push(body, request, username)

    queue.push = push_within_limit


def server_limits(policy=None) -> dict:
    """Keyword arguments for `demo.launch`: no uploads (the page has no upload; Gradio otherwise takes files of
    any size at /gradio_api/upload) and as many Gradio sessions as the table remembers."""
    policy = policy or shared.POLICY
    return {"max_file_size": 0, "state_session_capacity": policy.max_sessions}
