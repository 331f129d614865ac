"""Shared prefills (playground/prefills.py): a prompt's forward is made once for every run that starts from it, and
those runs are bitwise the runs that make their own; copies are independent; the budget holds; errors reach their
caller; many runs starting at once from one prompt make one prefill."""

from __future__ import annotations

import threading

import pytest
import torch
from test_batching import _engine, _in_threads, model_calls
from tiny_models import build_tiny_model

from playground.batching import SharingSettings
from playground.config import DecodingConfig
from playground.engine import Engine
from playground.prefills import PrefillCache, cache_bytes, copy_cache

SAMPLE = DecodingConfig(strategy="sample", temperature=1.3, max_new_tokens=12, seed=3)
PROMPT = "Once upon a time there was a small model"


def _prefills(lengths: list[int]) -> int:
    """How many of the model's calls were a prompt's forward (more than one token a row)."""
    return sum(1 for n in lengths if n > 1)


def _run(engine: Engine, config=SAMPLE, prompt=PROMPT):
    session = engine.start(engine.encode(prompt), config)
    for _ in range(config.max_new_tokens):
        if session.done:
            break
        session.step()
    return session


@pytest.fixture
def lengths(tiny_engine):
    """The token count of every call of the tiny model's forward while the test runs."""
    seen: list[int] = []
    inner = tiny_engine.model.forward

    def counted(*args, **kwargs):
        seen.append(kwargs["input_ids"].shape[1])
        return inner(*args, **kwargs)

    tiny_engine.model.forward = counted
    yield seen
    del tiny_engine.model.forward


def test_a_second_run_of_a_prompt_uses_its_kept_prefill_and_is_bitwise_the_run_that_makes_its_own(tiny_engine, lengths):
    kept = _engine(tiny_engine, share=False)  # the default budget
    alone = _engine(tiny_engine, share=False, prefill_mb=0)  # every run makes its own
    first, second = _run(kept), _run(kept, SAMPLE.replace(seed=4))
    assert _prefills(lengths) == 1  # the second run started from the first's prefill
    assert (kept.prefills.hits, kept.prefills.misses) == (1, 1)
    for made, config in ((first, SAMPLE), (second, SAMPLE.replace(seed=4))):
        own = _run(alone, config)
        assert made.token_ids == own.token_ids
        for a, b in zip(made.steps, own.steps):
            assert [(c.token_id, c.logit, c.prob) for c in a.top] == [(c.token_id, c.logit, c.prob) for c in b.top]
        for la, lb in zip(made._batch.cache.layers, own._batch.cache.layers):
            assert torch.equal(la.keys, lb.keys) and torch.equal(la.values, lb.values)
    assert alone.prefills.hits == 0 and len(alone.prefills) == 0


def test_runs_of_one_prompt_share_no_tensor_and_the_kept_prefill_stays_as_made(tiny_engine):
    engine = _engine(tiny_engine, share=False)
    a = engine.start(engine.encode(PROMPT), SAMPLE)
    b = engine.start(engine.encode(PROMPT), DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=12))  # reorders its rows
    (logits, cache, _), = engine.prefills._kept.values()
    before = [layer.keys.clone() for layer in cache.layers], logits.clone()
    for _ in range(4):
        a.step()
        b.step()
    a.rewind(1)
    a.step()
    pointers = {t.data_ptr() for layer in cache.layers for t in (layer.keys, layer.values)}
    for run in (a, b):
        assert not pointers & {t.data_ptr() for layer in run._batch.cache.layers for t in (layer.keys, layer.values)}
    assert all(torch.equal(x, y.keys) for x, y in zip(before[0], cache.layers)) and torch.equal(before[1], logits)
    assert b._batch.cache.layers[0].keys.shape[0] == 3  # the beam run's rows are its own


def test_many_runs_starting_at_once_from_one_prompt_make_one_prefill(tiny_engine, lengths):
    engine = _engine(tiny_engine, share=True)
    gate = threading.Barrier(8)

    def start(i):
        gate.wait(10)
        return _run(engine, SAMPLE.replace(seed=i, max_new_tokens=3))

    runs, errors = _in_threads([lambda i=i: start(i) for i in range(8)])()
    assert errors == [None] * 8
    assert _prefills(lengths) == 1, lengths
    assert (engine.prefills.hits, engine.prefills.misses) == (7, 1)
    alone = _engine(tiny_engine, share=False, prefill_mb=0)
    assert [r.token_ids for r in runs] == [_run(alone, SAMPLE.replace(seed=i, max_new_tokens=3)).token_ids for i in range(8)]


def test_the_budget_keeps_the_latest_prompts_and_a_rebuilt_cache_starts_from_a_kept_prefill(tiny_engine, lengths):
    engine = _engine(tiny_engine, share=False)
    one = engine.start(engine.encode(PROMPT), SAMPLE)
    size = engine.prefills.kept_bytes
    assert size == one._batch.prefill_logits.nbytes + cache_bytes(one._batch.cache) > 0
    engine.prefills = PrefillCache(2 * size + 1)  # room for two prompts of about this size
    for prompt in ("1 2 3 4 5 6 7 8", "Paris is the capital of France", PROMPT):
        engine.start(engine.encode(prompt), SAMPLE)
    assert len(engine.prefills) == 2 and engine.prefills.kept_bytes <= engine.prefills.budget_bytes
    lengths.clear()
    engine.start(engine.encode(PROMPT), SAMPLE)  # kept: the latest
    engine.start(engine.encode("1 2 3 4 5 6 7 8"), SAMPLE)  # dropped first: made again
    assert _prefills(lengths) == 1
    # a session whose cache was dropped rebuilds it from the prompt: the kept prefill, then its fed tokens
    run = _run(engine, SAMPLE.replace(max_new_tokens=4))
    want = [t.clone() for t in (run._batch.cache.layers[0].keys,)]
    lengths.clear()
    run._batch.cache = None
    run._batch.cached = 0
    run.rewind(3)
    run.step()
    assert _prefills(lengths) == 0 and run._batch.cache.layers[0].keys.shape == want[0].shape
    assert PrefillCache(10).get("big", lambda: (torch.zeros(100), None))[0].shape == (100,)  # too big: made, not kept


def test_a_failed_prefill_reaches_its_caller_and_the_next_caller_makes_its_own():
    cache = PrefillCache(1 << 20)
    entered, release = threading.Event(), threading.Event()

    def failing():
        entered.set()
        release.wait(10)
        raise RuntimeError("out of memory")

    join = _in_threads([lambda: cache.get("p", failing)])
    assert entered.wait(10)
    waiter = _in_threads([lambda: cache.get("p", lambda: (torch.ones(2), None))])
    release.set()
    (_,), (error,) = join()
    assert isinstance(error, RuntimeError)
    (logits,), (none,) = waiter()
    assert none is None and torch.equal(logits[0], torch.ones(2))
    assert cache.misses == 2 and cache.hits == 0
    with pytest.raises(ValueError, match="budget_bytes"):
        PrefillCache(-1)
    with pytest.raises(ValueError, match="prefill_mb"):
        SharingSettings(prefill_mb=-2)
    assert SharingSettings.from_env({"PLAYGROUND_SHARE_PREFILL_MB": "0"}).prefill_bytes == 0


def test_a_cache_of_another_layout_is_copied_whole():
    model = build_tiny_model("Llama", vocab_size=50, eos_token_id=0)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=True)
    plain = copy_cache(out.past_key_values)
    assert plain.layers[0].keys.data_ptr() != out.past_key_values.layers[0].keys.data_ptr()
    assert torch.equal(plain.layers[0].keys, out.past_key_values.layers[0].keys)

    class Odd:  # a layer with a tensor of its own besides keys and values
        def __init__(self):
            self.keys, self.values, self.state = torch.ones(2), torch.ones(2), torch.zeros(3)

    class Holder:
        def __init__(self):
            self.layers = [Odd()]

    odd = Holder()
    twin = copy_cache(odd)
    assert twin.layers[0].state.data_ptr() != odd.layers[0].state.data_ptr()


def test_a_prefill_with_nan_logits_is_not_handed_on():
    cache = PrefillCache(1 << 20)
    bad = torch.tensor([0.0, float("nan")])
    assert cache.get("p", lambda: (bad, None))[0] is bad  # its maker gets it (and reports it)
    assert len(cache) == 0
    assert torch.equal(cache.get("p", lambda: (torch.ones(2), None))[0], torch.ones(2))  # the next makes its own
    assert cache.misses == 2
