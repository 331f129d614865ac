"""Faults: the model misbehaves (NaN or infinite logits, out of memory) or a model fails to load, and the app
reports it in one sentence and stays usable.

Faults are simulated on the tiny Llama by wrapping its `forward` (monkeypatch, undone after each test): call 0
is the prefill, call k feeds the token of step k - 1, so a fault on call k surfaces at step k. Every test
compares against an undisturbed run of the same settings, computed first.
"""

from __future__ import annotations

import pytest
from conftest import ui_controls
import torch

from playground.config import DecodingConfig
from playground.engine import Comparison, DecodingError, ModelMemoryError

PROMPT = "Once upon a time there was"


class FaultyForward:
    """Wraps model.forward: on the calls in `at`, return poisoned logits or raise, else run normally."""

    def __init__(self, model, at: set[int], kind: str):
        self.original = model.forward
        self.at, self.kind, self.calls = at, kind, 0

    def __call__(self, *args, **kwargs):
        call, self.calls = self.calls, self.calls + 1
        if call in self.at and self.kind == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        out = self.original(*args, **kwargs)
        if call in self.at:
            logits = out.logits.clone()
            if self.kind == "nan":
                logits[..., 7] = float("nan")  # one NaN is enough to poison the softmax
            elif self.kind == "posinf":
                logits[..., 3] = float("inf")  # a float16 overflow
            elif self.kind == "neginf":
                logits[:] = -float("inf")  # nothing left to pick from
            out.logits = logits
        return out


@pytest.fixture
def faulty(tiny_engine, monkeypatch):
    """faulty(at={k}, kind=...) installs a FaultyForward on the tiny model for the rest of the test. Call k counts
    from the install, the prompt's forward included: the prefills an earlier test left are dropped first (a run
    would start from one without calling the model)."""

    def install(at: set[int], kind: str) -> FaultyForward:
        tiny_engine.prefills.clear()
        wrapper = FaultyForward(tiny_engine.model, at, kind)
        monkeypatch.setattr(tiny_engine.model, "forward", wrapper)
        return wrapper

    return install


CONFIGS = {
    "greedy": DecodingConfig(strategy="greedy", max_new_tokens=8),
    "sample": DecodingConfig(strategy="sample", temperature=1.3, top_k=50, seed=11, max_new_tokens=8),
    "beam": DecodingConfig(strategy="beam", num_beams=4, max_new_tokens=12),
}


def _reference(engine, config) -> list[int]:
    return engine.generate(engine.encode(PROMPT), config).token_ids


# ----------------------------------------------------------------------------------------------------------
# NaN / inf logits


@pytest.mark.parametrize("strategy", list(CONFIGS))
@pytest.mark.parametrize("kind", ["nan", "posinf", "neginf"])
def test_bad_logits_are_reported_not_sampled(tiny_engine, faulty, strategy, kind):
    config = CONFIGS[strategy]
    expected = _reference(tiny_engine, config)
    assert len(expected) >= 4, "the reference run must reach the poisoned step"
    ids = tiny_engine.encode(PROMPT)
    session = tiny_engine.start(ids, config)
    session.step(), session.step()
    faulty(at={1}, kind=kind)  # calls counted from here: call 0 gives step 2 its logits, call 1 step 3
    session.step()
    with pytest.raises(DecodingError) as info:
        session.step()
    message = str(info.value)
    assert "\n" not in message and "NaN or infinite" in message and "step 3" in message, message
    assert len(session.steps) == 3  # the poisoned step left no record
    if strategy != "beam":  # (a beam session's token_ids is the best running beam, which may still change)
        assert session.token_ids == expected[:3]


@pytest.mark.parametrize("strategy", list(CONFIGS))
def test_a_transient_nan_step_can_be_retaken_after_a_rewind(tiny_engine, faulty, strategy):
    """After the error, rewinding to the last good step and going on gives exactly the undisturbed run: the
    failed step left nothing behind (not in the context, the random generator or the beams)."""
    config = CONFIGS[strategy]
    expected = _reference(tiny_engine, config)
    session = tiny_engine.start(tiny_engine.encode(PROMPT), config)
    session.step(), session.step()
    faulty(at={1}, kind="nan")  # step 3's logits
    session.step()
    with pytest.raises(DecodingError):
        session.step()
    with pytest.raises(DecodingError):  # stepping again without a rewind reports it again, never samples NaN
        session.step()
    session.rewind(3)  # recompute step 3's logits (the fault was transient)
    for _ in session.run():
        pass
    assert session.trace().token_ids == expected


def test_nan_in_the_prompt_forward_is_reported_at_step_0(tiny_engine, faulty):
    faulty(at={0}, kind="nan")
    session = tiny_engine.start(tiny_engine.encode(PROMPT), CONFIGS["sample"])
    with pytest.raises(DecodingError, match="step 0"):
        session.step()


def test_nan_in_a_comparison_is_reported_and_the_engine_goes_on(tiny_engine, faulty):
    config = DecodingConfig(num_beams=2, max_new_tokens=5, seed=2)
    expected = tiny_engine.compare(tiny_engine.encode(PROMPT), config, num_samples=2)
    faulty(at={2}, kind="nan")
    comparison = Comparison(tiny_engine, tiny_engine.encode(PROMPT), config, num_samples=2)
    with pytest.raises(DecodingError):
        while not comparison.done:
            comparison.step()
    again = tiny_engine.compare(tiny_engine.encode(PROMPT), config, num_samples=2)  # a new run, unpoisoned calls
    assert {k: t.token_ids for k, t in again.items()} == {k: t.token_ids for k, t in expected.items()}


# ----------------------------------------------------------------------------------------------------------
# Out of memory


def test_out_of_memory_on_the_prefill(tiny_engine, faulty):
    expected = _reference(tiny_engine, CONFIGS["greedy"])
    faulty(at={0}, kind="oom")
    with pytest.raises(ModelMemoryError) as info:
        tiny_engine.start(tiny_engine.encode(PROMPT), CONFIGS["greedy"])
    message = str(info.value)
    assert "\n" not in message and "Out of memory" in message and "fewer beams" in message, message
    assert _reference(tiny_engine, CONFIGS["greedy"]) == expected  # the next session works


@pytest.mark.parametrize("strategy", list(CONFIGS))
@pytest.mark.parametrize("at", [1, 3, 4])
def test_out_of_memory_mid_run_is_reported_and_the_run_can_go_on(tiny_engine, faulty, strategy, at):
    """Guards against a failed forward leaving the batch half-moved (beams reordered twice on the retry)."""
    config = CONFIGS[strategy]
    expected = _reference(tiny_engine, config)
    session = tiny_engine.start(tiny_engine.encode(PROMPT), config)
    session.step(), session.step()
    faulty(at={at}, kind="oom")  # call k gives step k + 2 its logits
    for _ in range(at):
        session.step()
    with pytest.raises(ModelMemoryError) as info:
        session.step()
    assert "Out of memory" in str(info.value) and "\n" not in str(info.value)
    assert len(session.steps) == 2 + at
    for _ in session.run():  # memory is back: stepping again retries the same forward
        pass
    assert session.trace().token_ids == expected
    assert _reference(tiny_engine, config) == expected  # and other sessions were never affected


def test_out_of_memory_in_a_comparison(tiny_engine, faulty):
    config = DecodingConfig(num_beams=4, max_new_tokens=4)
    expected = tiny_engine.compare(tiny_engine.encode(PROMPT), config, num_samples=3)
    faulty(at={2}, kind="oom")
    with pytest.raises(ModelMemoryError):
        tiny_engine.compare(tiny_engine.encode(PROMPT), config, num_samples=3)
    again = tiny_engine.compare(tiny_engine.encode(PROMPT), config, num_samples=3)
    assert {k: t.token_ids for k, t in again.items()} == {k: t.token_ids for k, t in expected.items()}


def test_float16_overflow_is_detected_on_a_real_forward(tiny_model_dir):
    """Not a simulation: a float16 model whose LM head overflows produces inf logits, and the engine says so."""
    from playground.loading import load_engine

    engine = load_engine(tiny_model_dir, device="cpu", dtype="float16")
    with torch.no_grad():
        engine.model.lm_head.weight.mul_(6.0e4)  # logits far past float16's 65504
    session = engine.start(engine.encode(PROMPT), DecodingConfig(strategy="sample", seed=1))
    with pytest.raises(DecodingError, match="float16"):
        session.step()


# ----------------------------------------------------------------------------------------------------------
# The UI: handler errors are one sentence; a failed model load keeps the previous model


@pytest.fixture
def ui_with_tiny(tiny_ui):
    return tiny_ui


def _controls(ui, **overrides):
    return ui_controls(ui, PROMPT, **overrides)


def test_ui_out_of_memory_is_one_sentence_and_the_next_request_works(ui_with_tiny, tiny_engine, faulty):
    ui = ui_with_tiny
    gr = pytest.importorskip("gradio")
    state = ui.api.step(None, *_controls(ui), 1)[-1]
    faulty(at={0}, kind="oom")
    with pytest.raises(gr.Error) as info:
        ui.api.step(state, *_controls(ui), 1)
    assert "Out of memory" in info.value.message and "\n" not in info.value.message
    state = ui.api.step(state, *_controls(ui), 1)[-1]  # memory is back
    assert len(state.steps) == 2


def test_ui_failed_model_load_keeps_the_previous_model(ui_with_tiny, tiny_engine):
    ui = ui_with_tiny
    state = ui.api.step(None, *_controls(ui), 2)[-1]
    for bad in ("/no/such/model/folder", "no-such-org/no-such-model-4242"):
        model_value, status_html, state, *knobs = ui.api.load_model(state, bad, progress=lambda *a, **k: None)
        assert model_value == ui.DEFAULT_MODEL
        assert "still using" in status_html
    assert ui.shared.REGISTRY.cached(ui.DEFAULT_MODEL) is tiny_engine
    state = ui.api.step(state, *_controls(ui), 1)[-1]  # the run goes on with the old model
    assert len(state.steps) == 3


def test_ui_decoding_error_is_one_sentence(ui_with_tiny, faulty):
    ui = ui_with_tiny
    gr = pytest.importorskip("gradio")
    faulty(at={0}, kind="nan")
    with pytest.raises(gr.Error) as info:
        ui.api.step(None, *_controls(ui), 1)
    assert "NaN or infinite" in info.value.message and "\n" not in info.value.message


@pytest.mark.parametrize("strategy", ["sample", "beam"])
def test_out_of_memory_inside_the_model_leaves_a_consistent_cache(tiny_engine, strategy):
    """An OOM raised part-way through a forward (here: in the second of two layers) has already grown the first
    layer's cache; the engine must cut it back, so the retried step equals the undisturbed run."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(strategy=strategy, seed=3, num_beams=3, temperature=1.2, max_new_tokens=6)
    undisturbed = tiny_engine.generate(ids, config)
    expected = undisturbed.token_ids
    layer = tiny_engine.model.model.layers[1]
    session = tiny_engine.start(ids, config)
    session.step()
    session.step()
    real_forward = layer.forward
    fail = {"left": 1}

    def failing(*args, **kwargs):
        if fail["left"]:
            fail["left"] -= 1
            raise torch.OutOfMemoryError("simulated: out of memory in layer 1")
        return real_forward(*args, **kwargs)

    layer.forward = failing
    try:
        with pytest.raises(ModelMemoryError):
            session.step()
    finally:
        layer.forward = real_forward
    list(session.run())
    assert session.trace().token_ids == expected
    for got, want in zip(session.steps, undisturbed.steps):  # the numbers too, not only the picks
        assert [c.logit for c in got.top] == pytest.approx([c.logit for c in want.top], abs=1e-5)
