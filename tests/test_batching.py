"""Shared forwards (playground/batching.py): runs of different visitors that step at the same moment share one
forward, and each gets what it would have got alone.

Most tests hold the model busy with a lone step whose forward waits on an event (`held`), queue the steps of
other runs behind it, and release it: the queued steps then go through the model as one forward, every time,
however loaded the machine is. Model calls are counted at `model.forward`. What each run gets is checked
against a twin made with sharing off: the same tokens (the tiny model's logits are sharp, so a last-bit
difference cannot flip them), logits within 1e-4, the same cache shapes.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from contextlib import contextmanager

import pytest
import torch
from tiny_models import build_tiny_model

from playground.batching import ForwardBatcher, SharingSettings, stackable
from playground.config import DecodingConfig
from playground.engine import Comparison, Engine, ModelMemoryError

GREEDY = DecodingConfig(max_new_tokens=8)
PROMPTS = ["The", "Once upon a time there was a small model", "1 2 3 4 5", "Paris is the capital of"]


@pytest.fixture(autouse=True)
def one_thread():
    """torch on one thread: on models this small a second thread only adds hand-offs (and the threads here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _engine(tiny_engine, share: bool = True, **settings) -> Engine:
    """A fresh Engine (its own batcher) over the tiny model."""
    engine = Engine(tiny_engine.model, tiny_engine.tokenizer, name="tiny", sharing=SharingSettings(**settings))
    engine.share_forwards = share
    return engine


@contextmanager
def model_calls(engine: Engine):
    """Count the calls of the model's forward while active (rows of each call in the list)."""
    calls: list[int] = []
    inner = engine.model.forward

    def counted(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return inner(*args, **kwargs)

    engine.model.forward = counted  # an instance attribute: nn.Module.__call__ finds it first
    try:
        yield calls
    finally:
        del engine.model.forward


@contextmanager
def held(engine: Engine, blocker):
    """The model held busy by `blocker`'s lone step until the block ends: steps started inside queue behind it.
    Yields `wait_queued(n)`, which waits until n requests are queued."""
    release, entered = threading.Event(), threading.Event()
    inner = engine.batcher.forward_alone

    def blocking(*args):
        if not entered.is_set():
            entered.set()
            release.wait(30)
        return inner(*args)

    def step_blocker():
        try:
            blocker.step()
        except ModelMemoryError:  # a test that makes every forward fail fails the blocker's too
            pass

    engine.batcher.forward_alone = blocking
    thread = threading.Thread(target=step_blocker)
    thread.start()
    assert entered.wait(30), "the blocker's step never reached the model"

    def wait_queued(n: int) -> None:
        deadline = time.monotonic() + 30
        while engine.batcher.waiting() < n:
            assert time.monotonic() < deadline, f"only {engine.batcher.waiting()} of {n} steps queued"
            time.sleep(0.002)

    try:
        yield wait_queued
    finally:
        release.set()
        thread.join(30)
        engine.batcher.forward_alone = inner


def _in_threads(fns) -> list:
    """Start each fn in its own thread; return a function that joins them and returns results (raising errors)."""
    results, errors = [None] * len(fns), [None] * len(fns)

    def run(i):
        try:
            results[i] = fns[i]()
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()

    def join():
        for t in threads:
            t.join(60)
        return results, errors

    return join


def _stepped(engine: Engine, prompt: str, steps: int, config: DecodingConfig = GREEDY):
    session = engine.start(engine.encode(prompt), config)
    for _ in range(steps):
        session.step()
    return session


def _same_run(a, b, atol: float = 1e-4) -> None:
    """Session `a` (shared forwards) is where its twin `b` (alone) is: the same tokens and records' choices, every
    step's logits within atol, every cache layer of the same shape and close."""
    assert [r.token_id for r in a.steps] == [r.token_id for r in b.steps]
    assert a.token_ids == b.token_ids
    for ra, rb in zip(a.steps, b.steps):
        assert ra.prob == pytest.approx(rb.prob, abs=1e-4)
    if a._batch.cache is not None and b._batch.cache is not None:
        for la, lb in zip(a._batch.cache.layers, b._batch.cache.layers):
            assert la.keys.shape == lb.keys.shape and la.values.shape == lb.values.shape
            torch.testing.assert_close(la.keys, lb.keys, atol=atol, rtol=0)
    for ra, rb in zip(a.steps, b.steps):  # each step's logits, as its record keeps them (a step drops its used ones)
        la, lb = {c.token_id: c.logit for c in ra.top}, {c.token_id: c.logit for c in rb.top}
        shared = la.keys() & lb.keys()
        assert len(shared) >= len(la) - 1 and all(abs(la[t] - lb[t]) <= atol for t in shared)


def test_concurrent_steps_share_one_forward(tiny_engine):
    """Four runs of different prompt and cache lengths stepping while the model is busy: one forward serves
    them all (counted at the model), and each run is where its lone twin is."""
    engine, alone = _engine(tiny_engine), _engine(tiny_engine, share=False)
    lengths = [1, 3, 2, 4]  # steps already taken: caches of different lengths, after prompts of different lengths
    runs = [_stepped(engine, p, n) for p, n in zip(PROMPTS, lengths)]
    twins = [_stepped(alone, p, n + 1) for p, n in zip(PROMPTS, lengths)]
    engine.batcher.reset_stats()
    blocker = _stepped(engine, "Hello", 1)
    with model_calls(engine) as calls:
        with held(engine, blocker) as wait_queued:
            join = _in_threads([run.step for run in runs])
            wait_queued(len(runs))
        _, errors = join()
    assert errors == [None] * 4
    assert calls == [1, 4]  # the blocker alone, then the four runs in one forward
    stats = engine.sharing_stats()
    assert stats.requests_per_forward == {1: 1, 4: 1} and stats.shared_forwards == 1 and stats.rows == 5
    for run, twin in zip(runs, twins):
        _same_run(run, twin)


def test_lone_step_goes_at_once_and_bitwise_alone(tiny_engine):
    """A visitor alone never waits for company (even with a long window) and its forward is exactly the solo one:
    the same logits bit for bit as with sharing off."""
    engine, alone = _engine(tiny_engine, window_ms=100.0), _engine(tiny_engine, share=False)
    run, twin = _stepped(engine, PROMPTS[1], 0), _stepped(alone, PROMPTS[1], 0)
    engine.batcher.reset_stats()
    for _ in range(5):
        start = time.perf_counter()
        run.step()
        twin.step()
        assert time.perf_counter() - start < 5  # sanity; the wait itself is measured below
        # the step's logits, as its record keeps them (a step drops its used logits): bit for bit
        assert [(c.token_id, c.logit) for c in run.steps[-1].top] == [(c.token_id, c.logit) for c in twin.steps[-1].top]
    stats = engine.sharing_stats()
    assert stats.forwards == 4 and stats.shared_forwards == 0  # the first step uses the prefill's logits
    assert stats.wait_s_max < 0.01  # far under the 100 ms window: nobody waited for company
    assert [r.token_id for r in run.steps] == [r.token_id for r in twin.steps]


def test_shared_runs_equal_lone_runs_to_the_end(tiny_engine):
    """Six greedy and sampled runs stepping in lockstep from threads (sharing most forwards) end with the tokens
    generate-equal lone runs make, sampled ones with their own generator."""
    engine, alone = _engine(tiny_engine, window_ms=20.0), _engine(tiny_engine, share=False)
    sample = DecodingConfig(strategy="sample", temperature=0.9, top_k=30, seed=7, max_new_tokens=8)
    configs = [GREEDY, sample, GREEDY, sample.replace(seed=8), GREEDY, sample.replace(seed=9)]
    prompts = PROMPTS + PROMPTS[:2]
    runs = [engine.start(engine.encode(p), c) for p, c in zip(prompts, configs)]
    gate = threading.Barrier(len(runs))

    def lockstep(run):
        def go():
            while not run.done:
                gate.wait(30)
                run.step()
            for _ in range(GREEDY.max_new_tokens - len(run.steps)):  # keep the barrier whole after an early EOS
                gate.wait(30)
        return go

    _, errors = _in_threads([lockstep(r) for r in runs])()
    assert errors == [None] * len(runs)
    assert engine.sharing_stats().shared_forwards > 0  # the test really shared forwards
    for run, prompt, config in zip(runs, prompts, configs):
        assert run.token_ids == alone.generate(alone.encode(prompt), config).token_ids


def test_beam_and_comparison_rows_share_with_plain_runs(tiny_engine):
    """A beam run (one row per beam), a Comparison (greedy, beam and sampled rows) and two plain runs, queued at
    once: one forward of all their rows; then each ends as it would alone."""
    engine, alone = _engine(tiny_engine), _engine(tiny_engine, share=False)
    beam = DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=6)
    compare_config = DecodingConfig(max_new_tokens=6, num_beams=2, temperature=0.8, seed=3)

    def build(e):
        return [
            _stepped(e, PROMPTS[1], 1, beam), Comparison(e, e.encode(PROMPTS[2]), compare_config, num_samples=2),
            _stepped(e, PROMPTS[0], 1), _stepped(e, PROMPTS[3], 2),
        ]

    runs, twins = build(engine), build(alone)
    runs[1].step()
    twins[1].step()
    blocker = _stepped(engine, "Hello", 1)
    with model_calls(engine) as calls:
        with held(engine, blocker) as wait_queued:
            join = _in_threads([runs[0].step, runs[1].step, runs[2].step, runs[3].step])
            wait_queued(4)
        _, errors = join()
    assert errors == [None] * 4
    assert calls == [1, 3 + 5 + 1 + 1]  # the blocker, then beams + comparison rows + two plain rows at once

    def finish(run):
        def go():
            while not run.done:
                run.step()
        return go

    _, errors = _in_threads([finish(r) for r in runs])()
    assert errors == [None] * 4
    for twin in twins:
        finish(twin)()
    assert runs[0].token_ids == twins[0].token_ids
    shared, lone = runs[1].traces(), twins[1].traces()
    assert {k: t.token_ids for k, t in shared.items()} == {k: t.token_ids for k, t in lone.items()}
    for run, twin in zip(runs[2:], twins[2:]):
        _same_run(run, twin)


def test_rewind_and_force_after_shared_forwards(tiny_engine):
    """A run whose cache came back from a shared forward rewinds (the cache cropped), is forced a token, and goes
    on exactly as its lone twin does."""
    engine, alone = _engine(tiny_engine), _engine(tiny_engine, share=False)
    runs = [_stepped(engine, p, 2) for p in PROMPTS[:3]]
    with held(engine, _stepped(engine, "Hello", 1)) as wait_queued:
        join = _in_threads([run.step for run in runs])
        wait_queued(3)
    assert join()[1] == [None] * 3
    assert engine.sharing_stats().shared_forwards == 1
    run, twin = runs[1], _stepped(alone, PROMPTS[1], 3)
    for session in (run, twin):
        session.rewind(1)
        session.step(force_token=42)
        session.step()
        session.step()
    _same_run(run, twin)
    assert run.steps[1].forced and run.steps[1].token_id == 42


def test_a_failed_shared_forward_is_retried_alone(tiny_engine):
    """A shared forward that fails (out of memory with many rows, say) costs no caller its step: each makes its
    forward alone and gets what it would have got (the same tokens as its twin)."""
    engine, alone = _engine(tiny_engine), _engine(tiny_engine, share=False)
    runs = [_stepped(engine, p, 1) for p in PROMPTS[:3]]
    twins = [_stepped(alone, p, 2) for p in PROMPTS[:3]]

    def fail(*args):
        raise ModelMemoryError("out of memory on 3 rows")

    engine.batcher.forward_padded = fail
    with held(engine, _stepped(engine, "Hello", 1)) as wait_queued:
        join = _in_threads([run.step for run in runs])
        wait_queued(3)
    assert join()[1] == [None] * 3
    assert engine.sharing_stats().fallbacks == 3
    for run, twin in zip(runs, twins):
        _same_run(run, twin)


def test_an_error_alone_reaches_its_caller(tiny_engine):
    """When the model fails for every forward (out of memory), each caller of a shared forward gets the error it
    would have got alone, ModelMemoryError naming its own rows, and its run is unchanged: the next step works."""
    engine = _engine(tiny_engine)
    runs = [_stepped(engine, p, 1) for p in PROMPTS[:3]]
    before = [len(r._batch.fed[0]) for r in runs]
    inner = engine.model.forward

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with held(engine, _stepped(engine, "Hello", 1)) as wait_queued:
        engine.model.forward = out_of_memory
        join = _in_threads([run.step for run in runs])
        wait_queued(3)
    _, errors = join()
    del engine.model.forward
    assert engine.model.forward == inner
    assert all(isinstance(e, ModelMemoryError) and "1 rows of 1 tokens" in str(e) for e in errors), errors
    assert [len(r._batch.fed[0]) for r in runs] == before and all(len(r.steps) == 1 for r in runs)
    for run in runs:
        run.step()  # the run goes on


def test_off_switch_and_settings(tiny_engine, monkeypatch):
    """PLAYGROUND_SHARE_FORWARDS=0 (or engine.share_forwards = False) sends every forward alone: nothing reaches
    the batcher; bad settings are refused with the variable's name."""
    monkeypatch.setenv("PLAYGROUND_SHARE_FORWARDS", "0")
    engine = Engine(tiny_engine.model, tiny_engine.tokenizer)
    assert engine.share_forwards is False
    _stepped(engine, PROMPTS[1], 3)
    assert engine.sharing_stats().forwards == 0
    monkeypatch.setenv("PLAYGROUND_SHARE_FORWARDS", "maybe")
    with pytest.raises(ValueError, match="PLAYGROUND_SHARE_FORWARDS"):
        SharingSettings.from_env()
    assert SharingSettings.from_env({"PLAYGROUND_SHARE_WINDOW_MS": "2.5", "PLAYGROUND_SHARE_MAX_ROWS": "8",
                                     "PLAYGROUND_SHARE_STREAM_WAIT_MS": "0"}) == (
        SharingSettings(enabled=True, window_ms=2.5, max_rows=8, stream_wait_ms=0)
    )
    with pytest.raises(ValueError, match="STREAM_WAIT_MS"):
        SharingSettings.from_env({"PLAYGROUND_SHARE_STREAM_WAIT_MS": "soon"})
    for bad in ({"window_ms": -1}, {"window_ms": 1000}, {"max_rows": 0}, {"max_tokens": 0}, {"enabled": "yes"},
                {"stream_wait_ms": -1}, {"stream_wait_ms": 5000}, {"stream_wait_ms": True}):
        with pytest.raises(ValueError):
            SharingSettings(**bad)


@pytest.mark.parametrize(("limits", "expected"), [({"max_rows": 2}, [1, 2, 2]), ({"max_tokens": 1}, [1, 1, 1, 1, 1])])
def test_limits_split_the_queue(tiny_engine, limits, expected):
    """With max_rows 2, four queued one-row runs take two shared forwards of two rows; with a padded-size budget
    of one position, each goes alone."""
    engine = _engine(tiny_engine, **limits)
    runs = [_stepped(engine, p, 1) for p in PROMPTS]
    engine.batcher.reset_stats()
    blocker = _stepped(engine, "Hello", 1)
    with model_calls(engine) as calls:
        with held(engine, blocker) as wait_queued:
            join = _in_threads([run.step for run in runs])
            wait_queued(4)
        assert join()[1] == [None] * 4
    assert calls == expected


@pytest.mark.parametrize("architecture", ["GPT-2", "GPT-NeoX", "OPT", "Falcon", "Gemma"])
def test_architectures_share_exactly(tiny_engine, architecture):
    """Other position schemes (learned, rotary partial, from the mask) under a left-padded shared forward: each
    row's logits within 1e-4 of its lone forward. A sliding-window cache is not stackable: it goes alone."""
    tokenizer = tiny_engine.tokenizer
    model = build_tiny_model(architecture, len(tokenizer), tokenizer.eos_token_id)
    engine = Engine(model, tokenizer, name=architecture)
    engine.share_forwards = False
    runs = [_stepped(engine, p, n) for p, n in zip(PROMPTS[:3], (1, 3, 2))]
    items = [(r._batch.pending[:, None], r._batch.cache) for r in runs]
    assert all(stackable(ids, cache) for ids, cache in items)
    with torch.inference_mode():
        lone = [engine._forward_alone(ids, copy.deepcopy(cache)) for ids, cache in items]
        shared = engine.batcher.forward_together(items)
    for (la, ca), (ls, cs) in zip(lone, shared):
        torch.testing.assert_close(ls, la, atol=1e-4, rtol=0)
        assert [layer.keys.shape for layer in cs.layers] == [layer.keys.shape for layer in ca.layers]


def test_sliding_window_cache_goes_alone(tiny_engine):
    tokenizer = tiny_engine.tokenizer
    engine = Engine(build_tiny_model("Mistral", len(tokenizer), tokenizer.eos_token_id), tokenizer, name="Mistral")
    run = _stepped(engine, PROMPTS[1], 1)
    assert not stackable(run._batch.pending[:, None], run._batch.cache)
    run.step()
    assert engine.sharing_stats().forwards == 0


def test_batcher_without_an_engine():
    """The batcher alone with fake forwards: a lone request is the solo forward's answer, untouched."""
    marker = object()
    batcher = ForwardBatcher(lambda ids, cache: (ids * 2, marker), lambda *a: None)

    class _Layer:
        keys = torch.zeros((1, 2, 5, 4))

    class _Cache:
        layers = [_Layer()]

    logits, cache = batcher.forward(torch.ones((1, 1)), _Cache())
    assert cache is marker and torch.equal(logits, torch.full((1, 1), 2.0))
    assert batcher.stats().forwards == 1 and batcher.stats().rows_per_forward == 1.0


def test_the_run_all_measure_runs_the_class_at_once_and_times_the_shared_forwards(tiny_engine):
    """`batching_bench --run-all N` (docs/bench.md's engine-alone Run all): every student's run ends, the runs
    shared forwards, and the time the model was held is measured, not assumed."""
    from playground.measure.batching_bench import run_all

    engine = _engine(tiny_engine)
    (r,) = run_all(engine, 4, tokens=3, rounds=1)
    assert 0 < r["first_s"] <= r["median_s"] <= r["last_s"]
    assert r["forwards"] >= 3 and r["rows_per_forward"] >= 1
    assert 0 < r["model_held_s"] <= r["last_s"] or engine.sharing_stats().shared_forwards == 0
    assert "_shared" not in vars(engine.batcher)  # the timing wrapper is taken off


# -- streams: a Run's forwards wait for the other Runs still taking their step ---------------------------------

SLOW_S = 0.5  # each shared forward of these tests takes this long at least: streams are waited for that long


@contextmanager
def streams_served_together(engine: Engine, *runs):
    """`runs`, each streaming (`Session.streaming`), served by one shared forward that took SLOW_S: the batcher now
    knows them as streams taking their step. Yields the model calls made from then on."""
    inner = engine.batcher.forward_padded

    def slow(*args):
        time.sleep(SLOW_S)
        return inner(*args)

    engine.batcher.forward_padded = slow
    try:
        with contextlib.ExitStack() as streams:
            for run in runs:
                streams.enter_context(run.streaming())
            blocker = _stepped(engine, "Hello", 1)
            with held(engine, blocker) as wait_queued:
                join = _in_threads([run.step for run in runs])
                wait_queued(len(runs))
            assert join()[1] == [None] * len(runs)
            engine.batcher.reset_stats()
            with model_calls(engine) as calls:
                yield calls, streams
    finally:
        engine.batcher.forward_padded = inner


def test_a_stream_waits_for_the_streams_still_taking_their_step(tiny_engine):
    """Two Runs served together: the one back first from its step waits for the other (0.1 s behind) rather than
    take the free model alone, so the two go on in one forward a token, not one forward each."""
    engine = _engine(tiny_engine, stream_wait_ms=1000.0)
    a, b = _stepped(engine, PROMPTS[0], 1), _stepped(engine, PROMPTS[1], 1)
    with streams_served_together(engine, a, b) as (calls, _):
        _, errors = _in_threads([a.step, lambda: (time.sleep(0.1), b.step())])()
    assert errors == [None, None]
    assert calls == [2]  # without the wait: [1, 1], a alone and b after it
    assert 0.05 < engine.sharing_stats().wait_s_max < SLOW_S + 0.5  # a waited for b, not for the whole hold


def test_a_step_never_waits_for_streams(tiny_engine):
    """A visitor's Step (not a stream) while two Runs take their step goes at once, alone."""
    engine = _engine(tiny_engine, stream_wait_ms=1000.0)
    a, b, stepper = (_stepped(engine, p, 1) for p in PROMPTS[:3])
    with streams_served_together(engine, a, b) as (calls, _):
        stepper.step()
    assert calls == [1] and engine.sharing_stats().wait_s_max < 0.05


def test_a_stream_that_ends_or_does_not_come_back_is_not_waited_for(tiny_engine):
    """A Run that ends (leaves `streaming`) frees the one waiting for it at once; one that neither ends nor comes
    back is waited for as long as the last forward took (SLOW_S), no longer."""
    engine = _engine(tiny_engine, stream_wait_ms=1000.0)
    a, b = _stepped(engine, PROMPTS[0], 1), _stepped(engine, PROMPTS[1], 1)
    with streams_served_together(engine, a, b) as (calls, streams):
        join = _in_threads([a.step])
        time.sleep(0.05)
        streams.close()  # both streams end; a's step, waiting for b, goes on
        assert join()[1] == [None]
    assert calls == [1] and engine.sharing_stats().wait_s_max < SLOW_S / 2
    a, b = _stepped(engine, PROMPTS[2], 1), _stepped(engine, PROMPTS[3], 1)
    with streams_served_together(engine, a, b) as (calls, _):
        a.step()  # b never comes back
    assert calls == [1] and SLOW_S * 0.8 < engine.sharing_stats().wait_s_max < SLOW_S + 1.0


def test_no_stream_wait_with_stream_wait_ms_0(tiny_engine):
    """PLAYGROUND_SHARE_STREAM_WAIT_MS=0: a Run back from its step takes the free model at once, as a Step does."""
    engine = _engine(tiny_engine, stream_wait_ms=0.0)
    a, b = _stepped(engine, PROMPTS[0], 1), _stepped(engine, PROMPTS[1], 1)
    with streams_served_together(engine, a, b) as (calls, _):
        a.step()
    assert calls == [1] and engine.sharing_stats().wait_s_max < 0.05
