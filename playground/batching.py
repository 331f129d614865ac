"""Shared forwards: the one-token forwards of different runs that wait at the same moment go through the model as
one batch.

Every `Session` (and `Comparison`) of an engine feeds its rows one token at a time after its own KV cache. When
several visitors step at once, their forwards queue here and the first in line (the *leader*, a caller's own
thread: no worker thread, no hand-off when alone) makes one forward for all of them:

    collect   the requests queued when the model is free, up to `max_rows` rows and `max_tokens` rows x padded
              length (the rest wait for the next forward), waiting at most `window_ms`: from the oldest one's
              arrival (it has usually waited that long already, behind the forward in flight), or, while fewer
              are queued than the last forward served (the others are still taking their step), from now;
              and for the *streams* (runs that forward again as soon as they have picked: a Run) that the last
              forward served and that are still taking their step, each as long as that forward took at most
    stack     every request's cache rows, left-padded with zeros to the longest: keys and values (B, H, Lmax, D)
              per layer, an attention mask (B, Lmax + 1) with the padding off, each row's own position (B, 1)
    forward   once, through the engine (`forward_padded`), on `forward_threads` torch threads
    split     each request gets its logits rows and its own cache back, the padding stripped: the same layers
              and shapes a forward alone would leave (copies, so no request keeps the batch's tensors alive)

A request alone never waits for company: when nothing is queued or in flight it goes at once, through the
engine's own solo forward, bitwise the forward it would make without this module (a stream, while other streams
are still taking their step, waits for them: company that is coming). A leader that finds only
itself after its wait does the same. A batched forward that fails (out of memory, say) is retried by every
request alone on its own thread, so each caller gets the error, or the result, it would have got alone.

Which forwards may share is the engine's call (`stackable`: one token per row after a cache of plain full-
attention layers; a prefill, a catch-up or a sliding-window cache goes alone). Different models never share:
each engine has its own batcher. Numerics: a row's logits in a batch differ from its solo forward in the last
bits (matmuls of other shapes, a materialised mask), which can flip a near-tie; docs/batching.md has the figures.

This module knows nothing of Gradio, sessions or decoding: only requests of (token rows, cache, the stream they
belong to) and tensors.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

__all__ = ["SharingSettings", "SharingStats", "ForwardBatcher", "stackable"]

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class SharingSettings:
    """How visitors' forwards are shared (read once, from the environment by `from_env`).

    PLAYGROUND_SHARE_FORWARDS=1      share one-token forwards across runs (1) or give each its own (0)
    PLAYGROUND_SHARE_WINDOW_MS=5     how long a leader that found others waiting waits for more, counted from
                                     the oldest request's arrival (a request alone never waits)
    PLAYGROUND_SHARE_MAX_ROWS=64     rows in one shared forward at most (a beam run brings one per beam)
    PLAYGROUND_SHARE_MAX_TOKENS=16384  rows x padded length of one shared forward at most: the stacked cache's
                                     size (SmolLM2-135M: 46 KB a position), so that one long prompt among
                                     short ones does not pad them all to its length beyond this
    PLAYGROUND_SHARE_PREFILL_MB=32   the prompts' forwards kept for the next run that starts from the same prompt
                                     (prefills.py), all together at most this size (SmolLM2-135M: a 50-token
                                     prompt's is 2.5 MB); 0 keeps none
    PLAYGROUND_SHARE_STREAM_WAIT_MS=500  how long after a forward served a streaming run (a Run, a Step xN) the
                                     next forward waits for it to come back from its step at most: as long as
                                     the last forward took (going without it would cost it that long), within
                                     this; 0 waits for none
    PLAYGROUND_SHARE_THREADS=0       torch threads of a shared forward; 0: the cores this process may use (hosted
                                     mode gives each request's own work one thread; a shared forward, which the
                                     runs it serves all wait for, gets every core)
    """

    enabled: bool = True
    window_ms: float = 5.0
    max_rows: int = 64
    max_tokens: int = 16384
    prefill_mb: float = 32.0
    stream_wait_ms: float = 500.0
    threads: int = 0

    def __post_init__(self):
        if not isinstance(self.enabled, bool):
            raise ValueError(f"enabled must be True or False, got {self.enabled!r}.")
        window = self.window_ms
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 <= window <= 100:
            raise ValueError(f"window_ms must be a number of milliseconds in [0, 100], got {self.window_ms!r}.")
        if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, int) or self.max_rows < 1:
            raise ValueError(f"max_rows must be a positive integer, got {self.max_rows!r}.")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}.")
        size = self.prefill_mb
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 <= size <= 1e6:
            raise ValueError(f"prefill_mb must be a number of megabytes, 0 or more, got {self.prefill_mb!r}.")
        wait = self.stream_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 1000:
            raise ValueError(f"stream_wait_ms must be a number of milliseconds in [0, 1000], got {wait!r}.")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be 0 (every core) or a positive integer, got {self.threads!r}.")

    @property
    def prefill_bytes(self) -> int:
        return int(self.prefill_mb * 2**20)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SharingSettings:
        """Read the PLAYGROUND_SHARE_* variables; a malformed value raises ValueError naming the variable."""
        env = os.environ if env is None else env
        flag = env.get("PLAYGROUND_SHARE_FORWARDS", "1").strip().lower()
        if flag not in TRUE + FALSE:
            raise ValueError(f"PLAYGROUND_SHARE_FORWARDS must be 1 or 0, got {flag!r}.")
        try:
            window = float(env.get("PLAYGROUND_SHARE_WINDOW_MS", "5"))
            rows = int(env.get("PLAYGROUND_SHARE_MAX_ROWS", "64"))
            tokens = int(env.get("PLAYGROUND_SHARE_MAX_TOKENS", "16384"))
            prefill = float(env.get("PLAYGROUND_SHARE_PREFILL_MB", "32"))
            stream_wait = float(env.get("PLAYGROUND_SHARE_STREAM_WAIT_MS", "500"))
            threads = int(env.get("PLAYGROUND_SHARE_THREADS", "0"))
        except ValueError as e:
            raise ValueError("PLAYGROUND_SHARE_WINDOW_MS / _MAX_ROWS / _MAX_TOKENS / _PREFILL_MB / _STREAM_WAIT_MS / "
                             f"_THREADS must be numbers: {e}") from e
        return cls(enabled=flag in TRUE, window_ms=window, max_rows=rows, max_tokens=tokens, prefill_mb=prefill,
                   stream_wait_ms=stream_wait, threads=threads)

    @property
    def forward_threads(self) -> int:
        """torch threads of a shared forward: `threads`, or the cores this process may use."""
        if self.threads:
            return self.threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class SharingStats:
    """Counters since the batcher was made (or last reset), for the app's status and the benchmark."""

    forwards: int = 0  # forwards made for requests that came through the batcher (shared or alone)
    shared_forwards: int = 0  # of which served two requests or more
    requests: int = 0  # requests served (a fallback counts once)
    rows: int = 0  # rows forwarded, all forwards together
    fallbacks: int = 0  # requests of a failed shared forward, retried alone
    wait_s_total: float = 0.0  # time requests spent queued before their forward started
    wait_s_max: float = 0.0
    requests_per_forward: dict[int, int] = field(default_factory=dict)  # {requests in a forward: forwards}

    @property
    def rows_per_forward(self) -> float:
        return self.rows / self.forwards if self.forwards else 0.0

    @property
    def mean_wait_ms(self) -> float:
        return 1e3 * self.wait_s_total / self.requests if self.requests else 0.0


def stackable(input_ids: torch.Tensor, cache) -> bool:
    """Whether a forward of `input_ids` (R, T) after `cache` may share: one token per row, after a non-empty cache
    whose every layer is transformers' plain full-attention `DynamicLayer` (which a zero left-padding and an
    attention mask leave exact). A sliding-window, recurrent, static or quantized layer goes alone."""
    if input_ids.ndim != 2 or input_ids.shape[1] != 1 or cache is None:
        return False
    layers = getattr(cache, "layers", None)
    if not layers:
        return False
    length = None
    for layer in layers:
        if type(layer) is not DynamicLayer or not layer.is_initialized or layer.keys is None:
            return False
        n = layer.keys.shape[-2]
        if n == 0 or layer.keys.shape[0] != input_ids.shape[0] or (length is not None and n != length):
            return False
        length = n
    return True


class _Request:
    """One caller's forward: its token rows (R, 1), its cache (R rows of `length` positions), and what it gets."""

    __slots__ = ("input_ids", "cache", "stream", "rows", "length", "arrived", "done", "alone", "logits", "error")

    def __init__(self, input_ids: torch.Tensor, cache, arrived: float, stream: Hashable | None = None):
        self.input_ids, self.cache, self.arrived, self.stream = input_ids, cache, arrived, stream
        self.rows = input_ids.shape[0]
        self.length = cache.layers[0].keys.shape[-2]
        self.done = False  # served: `logits` (or `error`) is set, or `alone` says to make the forward itself
        self.alone = False
        self.logits: torch.Tensor | None = None
        self.error: BaseException | None = None


class ForwardBatcher:
    """Shares one-token forwards of one model among the threads that ask for them at the same moment.

    `forward_alone(input_ids, cache) -> (logits, cache)` is the engine's own forward, used for a request alone;
    `forward_padded(input_ids, cache, attention_mask, position_ids) -> logits` makes the shared one.
    """

    def __init__(
        self,
        forward_alone: Callable,
        forward_padded: Callable,
        settings: SharingSettings | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.forward_alone = forward_alone
        self.forward_padded = forward_padded
        self.settings = settings or SharingSettings()
        self.clock = clock
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._busy = False  # a forward of this batcher is running (its leader holds the model)
        self._served_last = 0  # requests the last forward served
        self._streams: set[Hashable] = set()  # the streams that have not ended (`end_stream`)
        self._picking: dict[Hashable, float] = {}  # of which those a forward served, taking their step: served at
        self._forward_s = 0.0  # how long the last forward took
        self._stats = _Counters()

    # -- the caller's side -----------------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, cache, stream: Hashable | None = None) -> tuple[torch.Tensor, object]:
        """The forward of `input_ids` (R, 1) after `cache` (stackable): logits (R, V) and the grown cache, made
        alone at once when the model is free, else shared with the requests waiting with this one.

        `stream` names a run that forwards again as soon as it has taken its step (a Run, a Step xN; see
        `end_stream`): the next forward then waits for it (`stream_wait_ms` at most), and a streaming request
        waits for the other streams still taking their step rather than go alone."""
        request = _Request(input_ids, cache, self.clock(), stream)
        with self._cond:
            if stream is not None:
                self._streams.add(stream)
                self._picking.pop(stream, None)  # back: nobody waits for it any longer
            if not self._busy and not self._queue and not (stream is not None and self._streams_due()):
                self._busy = True
                batch = [request]
            else:
                self._queue.append(request)
                self._cond.notify_all()  # a leader collecting may now have its rows
                batch = self._wait_turn(request)
        if batch:
            self._lead(batch)
        if request.alone:  # a shared forward failed: this request's own forward decides
            return self.forward_alone(input_ids, cache)
        if request.error is not None:
            raise request.error
        return request.logits, request.cache

    def _wait_turn(self, request: _Request) -> list[_Request]:
        """Under the lock: wait until a leader has served `request` (returns []) or it is first in line with the
        model free; then collect the batch it leads (within `max_rows`, `max_tokens` and the window)."""
        while True:
            if request.done:
                return []
            if not self._busy and self._queue and self._queue[0] is request:
                break
            self._cond.wait()
        self._busy = True  # the model is this leader's from now on: requests that arrive queue behind it
        window = self.settings.window_ms / 1e3
        # the runs the last forward served are mostly still taking their step (the lane's pick, the record): while
        # fewer are queued, wait up to one window from now for them; else up to one window from the oldest arrival;
        # and for the streams still taking their step, each as long as the last forward took (`_streams_due`)
        deadline = (self.clock() if len(self._queue) < self._served_last else request.arrived) + window
        while sum(r.rows for r in self._queue) < self.settings.max_rows:
            left = max(deadline, self._streams_due()) - self.clock()
            if left <= 0:
                break
            self._cond.wait(left)
        batch, rows, longest = [], 0, 0
        for waiting in list(self._queue):  # in arrival order; one that would not fit waits for the next forward
            grown_rows, grown_length = rows + waiting.rows, max(longest, waiting.length + 1)
            if batch and (grown_rows > self.settings.max_rows or grown_rows * grown_length > self.settings.max_tokens):
                continue
            self._queue.remove(waiting)
            batch.append(waiting)
            rows, longest = grown_rows, grown_length
        return batch

    def _lead(self, batch: list[_Request]) -> None:
        """Make `batch`'s forward (outside the lock), hand each request its part, then free the model."""
        start = self.clock()
        shared_failed = False
        try:
            if len(batch) == 1:
                (request,) = batch
                try:
                    request.logits, request.cache = self.forward_alone(request.input_ids, request.cache)
                except BaseException as e:  # noqa: BLE001 - handed to its caller, raised there
                    request.error = e
            else:
                try:
                    self._shared(batch)
                except BaseException:  # noqa: BLE001 - each request retries alone and gets its own outcome
                    shared_failed = True
                    for request in batch:
                        request.alone = True
        finally:
            with self._cond:
                self._stats.add(batch, start, shared_failed)
                self._served_last = len(batch)
                served = self.clock()
                self._forward_s = served - start
                for request in batch:
                    request.done = True
                    if request.stream in self._streams:
                        self._picking[request.stream] = served
                self._busy = False
                self._cond.notify_all()

    def forward_together(self, items: list[tuple[torch.Tensor, object]]) -> list[tuple[torch.Tensor, object]]:
        """One shared forward of the given (input_ids (R, 1), stackable cache) pairs, now, in the caller's thread:
        what a leader makes for them (for measuring and tests; the app's runs go through `forward`)."""
        batch = [_Request(ids, cache, self.clock()) for ids, cache in items]
        self._shared(batch)
        return [(r.logits, r.cache) for r in batch]

    # -- the shared forward ----------------------------------------------------------------------------------

    def _shared(self, batch: list[_Request]) -> None:
        """One forward for every request of `batch`: stack, forward, split (see the module's docstring)."""
        first = batch[0].cache.layers
        device = first[0].keys.device
        longest = max(r.length for r in batch)
        total = sum(r.rows for r in batch)
        pads = [longest - r.length for r in batch]
        offsets = [sum(r.rows for r in batch[:i]) for i in range(len(batch))]
        mask = torch.ones((total, longest + 1), dtype=torch.long, device=device)  # (B, Lmax + 1)
        positions = torch.empty((total, 1), dtype=torch.long, device=device)  # (B, 1) each row's own position
        for request, pad, start in zip(batch, pads, offsets):
            mask[start : start + request.rows, :pad] = 0
            positions[start : start + request.rows] = request.length

        # one buffer per kind, (layers, B, H, Lmax + 1, D), zeros in the padding (finite: masked out, and never NaN
        # times a zero weight); the forward writes the last column in place
        keys = _buffer([layer.keys for layer in first], total, longest + 1)
        values = _buffer([layer.values for layer in first], total, longest + 1)
        for request, pad, start in zip(batch, pads, offsets):
            for i, own in enumerate(request.cache.layers):
                keys[i][start : start + request.rows, :, pad:longest] = own.keys
                values[i][start : start + request.rows, :, pad:longest] = own.values
        stacked = DynamicCache()
        stacked.layers = [_SlotLayer(k, v, longest) for k, v in zip(keys, values)]

        input_ids = torch.cat([r.input_ids for r in batch])  # (B, 1)
        with _intra_op_threads(self.settings.forward_threads):
            logits, _ = self.forward_padded(input_ids, stacked, mask if any(pads) else None, positions)  # (B, V)

        # split: each request's rows, its padding stripped, as copies (its cache must not hold the batch alive);
        # every copy is made before any cache changes, so a failure here leaves each request's cache as it was
        parts = [
            (_rows(keys, start, request.rows, pad), _rows(values, start, request.rows, pad))
            for request, pad, start in zip(batch, pads, offsets)
        ]  # per request: per layer keys and values (R, H, L + 1, D)
        for request, start, (own_keys, own_values) in zip(batch, offsets, parts):
            for own, k, v in zip(request.cache.layers, own_keys, own_values):
                own.keys, own.values = k, v
            request.logits = logits[start : start + request.rows].clone()  # (R, V), not a view of the batch's

    def end_stream(self, stream: Hashable) -> None:
        """`stream` forwards no more (its Run ended, stopped or failed): no forward waits for it."""
        with self._cond:
            self._streams.discard(stream)
            if self._picking.pop(stream, None) is not None:
                self._cond.notify_all()

    def _streams_due(self) -> float:
        """Under the lock: until when the streams a forward served and that are still taking their step are
        waited for (0.0: none is). Each is waited for as long as the last forward took, `stream_wait_ms` at most:
        a forward made without it would keep it waiting about that long. One not back by then is forgotten."""
        hold, now = min(self.settings.stream_wait_ms / 1e3, self._forward_s), self.clock()
        for stream, served in list(self._picking.items()):
            if served + hold <= now:
                del self._picking[stream]
        return max(self._picking.values(), default=-hold) + hold

    def waiting(self) -> int:
        """Requests queued for the next forward now (not counting one in flight)."""
        with self._cond:
            return len(self._queue)

    # -- counters --------------------------------------------------------------------------------------------

    def stats(self) -> SharingStats:
        with self._cond:
            return self._stats.snapshot()

    def reset_stats(self) -> None:
        with self._cond:
            self._stats = _Counters()


@contextlib.contextmanager
def _intra_op_threads(n: int):
    """torch on `n` threads inside (in this thread; torch also keeps `n` for threads that make their first op
    meanwhile, and MKL for all threads), as before after."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _buffer(like: list[torch.Tensor], rows: int, length: int) -> torch.Tensor | list[torch.Tensor]:
    """Zeros for every layer's (rows, H, length, D), shaped and typed as `like` (each layer's (R, H, L, D)): one
    (layers, rows, H, length, D) tensor when every layer is alike (the usual case), else one tensor per layer."""
    first = like[0]
    if all(t.shape[1:] == first.shape[1:] and t.dtype == first.dtype for t in like):
        shape = (len(like), rows, first.shape[1], length, first.shape[3])
        return torch.zeros(shape, dtype=first.dtype, device=first.device)
    return [torch.zeros((rows, t.shape[1], length, t.shape[3]), dtype=t.dtype, device=t.device) for t in like]


def _rows(buffer: torch.Tensor | list[torch.Tensor], start: int, rows: int, pad: int) -> list[torch.Tensor]:
    """Rows start..start+rows of every layer, without their `pad` padding columns, copied out of the buffer: one
    copy for all layers when the buffer is one tensor (each layer then a view of that request's own copy)."""
    if isinstance(buffer, torch.Tensor):
        return list(buffer[:, start : start + rows, :, pad:].clone().unbind(0))
    return [t[start : start + rows, :, pad:].clone() for t in buffer]


class _SlotLayer(DynamicLayer):
    """A layer of the shared forward's cache: every row left-padded into a preallocated (B, H, Lmax + 1, D) buffer
    whose free column the forward writes in place (a DynamicLayer would copy the whole cache to grow it)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, filled: int):
        super().__init__()
        self.keys, self.values, self.filled = keys, values, filled
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.filled + key_states.shape[-2]
        self.keys[:, :, self.filled : end] = key_states
        self.values[:, :, self.filled : end] = value_states
        self.filled = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_seq_length(self) -> int:
        return self.filled

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.filled + query_length, 0

    def get_max_length(self) -> int:
        return -1


class _Counters:
    """The mutable counters behind `SharingStats` (changed under the batcher's lock)."""

    def __init__(self):
        self.forwards = self.shared_forwards = self.requests = self.rows = self.fallbacks = 0
        self.wait_s_total = self.wait_s_max = 0.0
        self.sizes: Counter[int] = Counter()

    def add(self, batch: list[_Request], start: float, failed: bool) -> None:
        self.forwards += 1
        self.shared_forwards += len(batch) > 1
        self.requests += len(batch)
        self.rows += sum(r.rows for r in batch)
        self.fallbacks += len(batch) if failed else 0
        self.sizes[len(batch)] += 1
        for request in batch:
            wait = max(0.0, start - request.arrived)
            self.wait_s_total += wait
            self.wait_s_max = max(self.wait_s_max, wait)

    def snapshot(self) -> SharingStats:
        return SharingStats(
            forwards=self.forwards, shared_forwards=self.shared_forwards, requests=self.requests, rows=self.rows,
            fallbacks=self.fallbacks, wait_s_total=self.wait_s_total, wait_s_max=self.wait_s_max,
            requests_per_forward=dict(sorted(self.sizes.items())),
        )
