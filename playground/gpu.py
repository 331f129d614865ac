"""Where the model runs on the GPU a Hugging Face Space lends, ZeroGPU included: the `spaces.GPU` decorator (or a
stand-in), ZeroGPU's emulation, and the engine-level operations that run the model, each one GPU call.

On ZeroGPU (the Space sets SPACES_ZERO_GPU) CUDA exists only inside functions decorated with `spaces.GPU`, and
each such call runs in a process of its own: its arguments and results are pickled, a change made to an argument
is lost unless it is returned, and the call's `duration` counts against the visitor's GPU quota. So:

  - every operation that runs the model is one function here, decorated with `GPU(duration=...)`, its duration
    sized to the call (a callable that reads the call's arguments: the steps it asks for, the cache it must
    rebuild). The web layer calls these instead of the session's own methods, and uses what they return;
  - a session (or comparison) travels as itself: an `Engine` pickles as its key, never as its model, and is found
    again in the process the call runs in (`Engine.by_key`). Under ZeroGPU each call moves the run to the
    model's device first and back to the CPU before it returns (`Session.to`), so between requests a run is
    small, picklable and on the CPU: its recipe, its tokens and records, its generator state and its KV cache
    (kept rather than rebuilt: docs/zerogpu.md has the measurements);
  - starting a run needs no model call (`new_session`, `new_comparison`: the prefill is made by the first call).

The model is placed on its device at start-up (`loading`), never inside a call.

ZeroGPU's emulation (PLAYGROUND_ZEROGPU_EMULATE=1), for tests and for anyone without a ZeroGPU Space: each
decorated call gets its arguments and gives its results through a pickle round trip (`pickle.loads(pickle.dumps(
...))`, refusing a model, a CUDA tensor, a lock or an open file), records the pickled sizes (`calls()`), and a
model forward outside a decorated call raises `OutsideGPUCall`.

`ZEROGPU` is the one switch for the rest of the app: true on ZeroGPU or under its emulation. Sharing forwards
across visitors (a batcher) applies on dedicated hardware only, as each ZeroGPU call is its own process: read
`gpu.ZEROGPU` and stay off when it is true. Off ZeroGPU, without emulation, every decorated function is called as
it is: the run stays where the model is, and the caller's session is the one returned.

This module knows nothing about Gradio, the page or how a token is chosen.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import logging
import math
import os
import pickle
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

try:  # on a Space the `spaces` package is there (and must be imported before CUDA is touched); elsewhere it need not be
    import spaces  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the machine
    spaces = None

log = logging.getLogger("playground.gpu")


def _flag(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in ("1", "true", "yes", "on")


ON_ZEROGPU = _flag("SPACES_ZERO_GPU")  # a ZeroGPU Space (set by Hugging Face), with the `spaces` package
EMULATE = _flag("PLAYGROUND_ZEROGPU_EMULATE") and not ON_ZEROGPU  # ZeroGPU's rules, on whatever device is here
ZEROGPU = ON_ZEROGPU or EMULATE  # the switch: each model call its own process, the run on the CPU between calls
KEEP_CACHE = True  # between calls a run keeps its KV cache (on the CPU) rather than rebuilding it: docs/zerogpu.md
BASE_S = 5.0  # a GPU call's duration beyond its forwards: moving the run, the first CUDA work, the slack
S_PER_FORWARD = float(os.environ.get("PLAYGROUND_GPU_S_PER_TOKEN") or 0.25)  # per forward (one token per row)
MAX_DURATION_S = 120  # ZeroGPU's longest call for most visitors
RUN_CHUNK = 8 if ZEROGPU else 1  # tokens per GPU call of a Run: a ZeroGPU call costs its start; elsewhere, stream


class OutsideGPUCall(RuntimeError):
    """The model was asked for a forward outside a GPU call (under ZeroGPU's emulation): on ZeroGPU there is no
    CUDA there."""


@dataclass(frozen=True)
class CallRecord:
    """One emulated GPU call: what was pickled each way, what it declared and how long it took."""

    name: str
    args_bytes: int
    result_bytes: int
    duration_s: int  # the declared duration
    wall_s: float


_IN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("playground_in_gpu_call", default=False)
_CALLS: deque[CallRecord] = deque(maxlen=1000)


def set_emulation(on: bool) -> None:
    """Turn ZeroGPU's emulation on or off in this process (tests; the environment variable sets it at start)."""
    global EMULATE, ZEROGPU
    EMULATE = bool(on) and not ON_ZEROGPU
    ZEROGPU = ON_ZEROGPU or EMULATE


@contextlib.contextmanager
def emulating(on: bool = True) -> Iterator[None]:
    """ZeroGPU's emulation for the block, then as it was."""
    before = EMULATE
    set_emulation(on)
    try:
        yield
    finally:
        set_emulation(before)


def check_forward(model_name: str = "the model") -> None:
    """Called by `Engine.forward` before every forward: under emulation, refuse one outside a GPU call."""
    if EMULATE and not _IN_CALL.get():
        raise OutsideGPUCall(f"{model_name} was run outside a GPU call: on ZeroGPU only a function decorated with "
                             "spaces.GPU (playground.gpu) may run the model.")  # fmt: skip


def calls() -> list[CallRecord]:
    """The emulated GPU calls so far (the latest 1000), oldest first."""
    return list(_CALLS)


def clear_calls() -> None:
    _CALLS.clear()


# ----------------------------------------------------------------------------------------------------------
# The decorator


def GPU(fn: Callable | None = None, *, duration: int | float | Callable[..., float] = 60):  # noqa: N802 - as spaces.GPU
    """`spaces.GPU` on ZeroGPU; elsewhere a stand-in that calls `fn` as it is, or, under emulation, through a
    pickle round trip. As `spaces.GPU`: bare (`@GPU`) or with a duration in seconds (`@GPU(duration=30)`), which
    may be a callable taking the call's arguments."""
    if fn is None:
        return functools.partial(GPU, duration=duration)
    if ON_ZEROGPU and spaces is not None:
        return spaces.GPU(fn, duration=duration)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not EMULATE or _IN_CALL.get():  # not emulating; or a call within a call, which runs where it is
            return fn(*args, **kwargs)
        return _emulated_call(fn, duration, args, kwargs)

    call.duration = duration  # type: ignore[attr-defined] - for tests and the docs
    return call


def _emulated_call(fn: Callable, duration, args: tuple, kwargs: dict):
    started = time.perf_counter()
    sent = _dumps((args, kwargs), f"the arguments of {fn.__name__}")
    args, kwargs = pickle.loads(sent)  # the call sees copies, as in ZeroGPU's own process
    seconds = duration(*args, **kwargs) if callable(duration) else duration
    token = _IN_CALL.set(True)
    try:
        result = fn(*args, **kwargs)
    finally:
        _IN_CALL.reset(token)
    back = _dumps(result, f"the result of {fn.__name__}")
    record = CallRecord(fn.__name__, len(sent), len(back), int(seconds), time.perf_counter() - started)
    _CALLS.append(record)
    log.info("GPU call %s: %d bytes in, %d bytes out, duration %d s, %.3f s", *vars(record).values())
    return pickle.loads(back)


class _CallPickler(pickle.Pickler):
    """Refuses what must never travel in or out of a GPU call: a model (any torch module) or a CUDA tensor.
    (Locks and open files refuse pickling themselves.)"""

    def reducer_override(self, obj):
        import torch

        if isinstance(obj, torch.nn.Module):
            raise pickle.PicklingError(f"A model ({type(obj).__name__}) must not travel in a GPU call.")
        if isinstance(obj, torch.Tensor) and obj.device.type != "cpu":
            raise pickle.PicklingError(f"A tensor on {obj.device} must not travel in a GPU call.")
        return NotImplemented


def _dumps(value, what: str) -> bytes:
    buffer = io.BytesIO()
    try:
        _CallPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise pickle.PicklingError(f"{what} cannot cross a GPU call: {e}") from e
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------------
# Durations: what a call asks ZeroGPU for, from its arguments


def seconds_for(forwards: int) -> int:
    """A call's duration for `forwards` forwards: the base, then S_PER_FORWARD each, at most MAX_DURATION_S."""
    return int(min(MAX_DURATION_S, math.ceil(BASE_S + S_PER_FORWARD * max(forwards, 1))))


def _step_duration(session, config=None, n: int = 1, force_token=None) -> int:
    return seconds_for(session.backlog() + max(int(n), 1) - 1)


def _one_step_duration(session, *args, **kwargs) -> int:
    return seconds_for(session.backlog())


def _replay_duration(session, at: int, steps=()) -> int:
    return seconds_for(1 + int(at) + len(steps))  # at worst the cache is rebuilt up to `at`, then a forward a step


def _explore_duration(session, *args, **kwargs) -> int:
    return seconds_for(1)


def _compare_duration(comparison, n: int | None = None) -> int:
    steps = n if n is not None else max(lane.config.max_new_tokens for lane in comparison.lanes)
    return seconds_for(comparison.backlog() + int(steps))


# ----------------------------------------------------------------------------------------------------------
# The operations that run the model: what the web layer calls


def _arrive(run):
    """The run as a call receives it, on the model's device."""
    return run.to(None) if ZEROGPU else run


def _leave(run):
    """The run as a call returns it: on the CPU under ZeroGPU (no CUDA tensor may come back), else where it is."""
    return run.to("cpu", keep_cache=KEEP_CACHE) if ZEROGPU else run


def new_session(engine, prompt_ids: list[int], config):
    """A session ready for its first step, without a model call: its prompt is prefilled by the first call that
    runs the model (step, preview, prepare, ...). Not a GPU call."""
    session = engine.start(prompt_ids, config, prefill=False)
    return _leave(session)


def new_comparison(engine, prompt_ids: list[int], config, num_samples: int = 1):
    """A comparison (greedy, beam search and `num_samples` samples as rows of one batch), without a model call."""
    return _leave(engine.start_comparison(prompt_ids, config, num_samples, prefill=False))


@GPU(duration=_step_duration)
def step(session, config=None, n: int = 1, force_token: int | None = None):
    """Take `n` steps with `config` (the first always runs: a finished run raises its one sentence, or carries
    on when `config` raises max_new_tokens; the rest stop when the run ends); `force_token` is the first step's
    token. Returns (session, [records])."""
    session = _arrive(session)
    records = [session.step(config=config, force_token=force_token)]
    while len(records) < n and not session.done:
        records.append(session.step(config=config))
    return _leave(session), records


@GPU(duration=_one_step_duration)
def preview(session, config=None):
    """The record the next step would make with `config`, without taking it (its forward is kept for the
    step). Returns (session, record)."""
    session = _arrive(session)
    record = session.preview(config)
    return _leave(session), record


@GPU(duration=_one_step_duration)
def prepare(session):
    """The next step's forward, made ahead of it (nothing shown changes). Returns the session."""
    session = _arrive(session)
    session.prepare()
    return _leave(session)


@GPU(duration=_replay_duration)
def replay(session, at: int, steps=()):
    """Rewind to just after step `at`, then take `steps`, each (config, forced token or None[, the token a link
    recorded]), in one call: a forced token ("use this token instead"), Undo after a force (the replaced steps
    back), a permalink's run replayed. Stops early if the run ends. Returns (session, [records])."""
    session = _arrive(session)
    session.rewind(at)
    records = []
    for config, forced, *recorded in steps:
        if session.done and not session.goes_on(config):
            break
        records.append(session.step(config=config, force_token=forced, expect_token=recorded[0] if recorded else None))
    return _leave(session), records


def force(session, at: int, token: int, config=None):
    """Use `token` at step `at` instead (`at` = len(steps): the pending step): one GPU call. Returns
    (session, record)."""
    session, records = replay(session, at, [(config, token)])
    return session, records[0]


@GPU(duration=_explore_duration)
def explore(session, at: int | None = None, temperatures=(0.5, 1.0, 1.5, 2.0), top_n: int = 20, config=None):
    """The teaching views of step `at` (None: the next step): an `Exploration`. The session is not changed (its
    cache is not used), so nothing else comes back."""
    session = _arrive(session)
    return session.explore(at, temperatures=tuple(temperatures), top_n=top_n, config=config)


def run(session, config=None, chunk: int | None = None, stop: Callable[[], bool] | None = None,
        limit: int | None = None):
    """Step to the end of the run (or `limit` steps), `chunk` tokens per GPU call (default RUN_CHUNK: 8 under
    ZeroGPU, else 1), yielding (session, [records]) after each call; `stop()` is asked between calls. Not a GPU
    call itself: each chunk is one `step`. The first chunk always runs (a finished run raises, or carries on)."""
    chunk = max(int(chunk or RUN_CHUNK), 1)
    taken = 0
    # its steps are one stream for the batcher of shared forwards (none under ZeroGPU, where each call is its own)
    with contextlib.nullcontext() if ZEROGPU else session.streaming():
        while taken == 0 or ((limit is None or taken < limit) and session.goes_on(config)
                             and not (stop is not None and stop())):  # fmt: skip
            session, records = step(session, config, chunk if limit is None else max(1, min(chunk, limit - taken)))
            taken += max(1, len(records))
            yield session, records


@GPU(duration=_compare_duration)
def compare(comparison, n: int | None = None):
    """Up to `n` steps of a comparison (None: to the end), one forward each for all its lanes. Returns
    (comparison, [the records of each step: one per lane, None for a lane that had finished])."""
    comparison = _arrive(comparison)
    steps = []
    while not comparison.done and (n is None or len(steps) < n):
        steps.append(comparison.step())
    return _leave(comparison), steps
