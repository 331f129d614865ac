"""The GPU a Space lends (playground/gpu.py): the `spaces.GPU` stand-in, ZeroGPU's emulation, and runs that travel
without their model.

Under emulation every operation that runs the model (step ×N, preview, prepare, run, compare, force, undo,
explore, carry on) gets its arguments and gives its results through a pickle round trip, as a ZeroGPU call does
in its own process: each must give exactly the tokens and numbers it gives without emulation. Each test names
the slip it guards against: a change made to an argument and not returned, a generator state lost on the way, a
forward left outside a GPU call, a model or a CUDA tensor sent along. The CUDA tests run where a GPU is present
and are skipped otherwise.
"""

from __future__ import annotations

import pickle
import threading

import pytest
import torch

from playground import gpu
from playground.config import DecodingConfig
from playground.engine import Engine

PROMPT = "Once upon a time"
SAMPLE = DecodingConfig(strategy="sample", temperature=1.2, top_k=40, top_p=0.95, seed=5, max_new_tokens=12, top_n=5)
GREEDY = DecodingConfig(strategy="greedy", repetition_penalty=1.3, max_new_tokens=12, top_n=5)
BEAM = DecodingConfig(strategy="beam", num_beams=3, length_penalty=0.8, max_new_tokens=10, top_n=5)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.fixture
def emulate():
    """ZeroGPU's emulation for the test (and the call log emptied), then off again."""
    gpu.clear_calls()
    with gpu.emulating():
        yield
    gpu.clear_calls()


# ----------------------------------------------------------------------------------------------------------
# The stand-in decorator


def test_the_stand_in_calls_the_function_as_it_is_bare_or_with_a_duration():
    """Off ZeroGPU and without emulation, `GPU` changes nothing: the same objects in and out (so the app's
    dedicated-GPU path costs no copy), whichever way it is written."""
    seen = []

    @gpu.GPU
    def bare(x):
        seen.append(x)
        return x

    @gpu.GPU(duration=7)
    def fixed(x):
        return x

    @gpu.GPU(duration=lambda x, n=1: 3 * n)
    def sized(x, n=1):
        x.append(n)
        return x

    box = []
    assert bare(box) is box and seen[0] is box
    assert fixed(box) is box and fixed.duration == 7
    assert sized(box, n=4) is box and box == [4]  # a change made to an argument is seen by the caller
    assert sized.duration(box, n=4) == 12
    assert bare.__name__ == "bare"  # functools.wraps: Gradio and the logs see the real name


def test_emulation_is_a_pickle_round_trip_with_the_duration_it_declares(emulate):
    """Under emulation the call gets copies (a change made to an argument is lost unless returned, as on
    ZeroGPU), and its declared duration is the callable's answer for those arguments."""

    @gpu.GPU(duration=lambda x, n=1: 10 * n)
    def grow(x, n=1):
        x.append(n)
        return len(x)

    box = [0]
    assert grow(box, n=3) == 2
    assert box == [0]  # the change was made to a copy
    (call,) = gpu.calls()
    assert call.name == "grow" and call.duration_s == 30 and call.args_bytes > 0 and call.result_bytes > 0


def test_the_switch_follows_the_emulation():
    """`gpu.ZEROGPU` is what a cross-session batcher reads to stay off: on under emulation, off after it."""
    before = gpu.ZEROGPU
    with gpu.emulating():
        assert gpu.ZEROGPU and gpu.EMULATE
    assert gpu.ZEROGPU == before


def test_a_model_or_a_lock_never_travels_in_a_call(emulate, tiny_engine):
    """A model (any torch module), a lock or an open file sent to a GPU call is refused, in one sentence."""

    @gpu.GPU(duration=5)
    def echo(x):
        return x

    for bad in (tiny_engine.model, threading.Lock()):
        with pytest.raises(pickle.PicklingError, match="cannot cross a GPU call"):
            echo(bad)
    assert echo(tiny_engine) is tiny_engine  # an engine travels as its key and comes back as itself


def test_a_forward_outside_a_gpu_call_raises_under_emulation(emulate, tiny_engine):
    """On ZeroGPU there is no CUDA outside a decorated call: emulation makes such a forward fail here too, so a
    handler that still calls the session directly is caught by the tests, not by a Space."""
    ids = tiny_engine.encode(PROMPT)
    with pytest.raises(gpu.OutsideGPUCall, match="outside a GPU call"):
        tiny_engine.start(ids, GREEDY)  # the prefill
    session = gpu.new_session(tiny_engine, ids, GREEDY)  # no model call: fine
    with pytest.raises(gpu.OutsideGPUCall):
        session.step()
    with pytest.raises(gpu.OutsideGPUCall):
        session.explore()
    session, records = gpu.step(session, GREEDY)  # inside a call: fine
    assert len(records) == 1 and len(session.steps) == 1


# ----------------------------------------------------------------------------------------------------------
# Runs that pickle without their model


def test_a_session_pickles_as_its_key_and_comes_back_to_the_same_engine(tiny_engine):
    """A session carries its engine as a key: a fraction of the model's size, and unpickled in this process it
    is the very engine (the one its Space loaded), so reading the run needs no call."""
    session = tiny_engine.start(tiny_engine.encode(PROMPT), SAMPLE)
    for _ in range(4):
        session.step()
    blob = pickle.dumps(session)
    model_bytes = sum(p.numel() * p.element_size() for p in tiny_engine.model.parameters())
    assert len(blob) < model_bytes / 2
    back = pickle.loads(blob)
    assert back.engine is tiny_engine and back.lane.vocab is tiny_engine.vocab
    assert back.steps == session.steps and back.trace().text == session.trace().text
    assert [r.token_id for r in back.run()] == [r.token_id for r in session.run()]  # the draws go on the same


def test_a_run_whose_model_is_gone_says_so(tiny_engine, tiny_model_dir):
    from playground.loading import load_engine

    other = load_engine(tiny_model_dir, device="cpu")
    blob = pickle.dumps(gpu.new_session(other, other.encode(PROMPT), GREEDY))
    key = other.key
    del other
    import gc

    gc.collect()
    with pytest.raises(ValueError, match="no longer loaded") as info:
        pickle.loads(blob)
    assert "\n" not in str(info.value) and key.rsplit("#", 1)[0] in str(info.value)


def _scenario(engine: Engine, config: DecodingConfig) -> list:
    """Every operation the page makes, through the gpu module, and everything it returns, in order."""
    seen = []
    ids = engine.encode(PROMPT)
    s = gpu.new_session(engine, ids, config)
    s, p0 = gpu.preview(s, config)  # the page's first preview (the prefill is made here)
    seen.append(p0)
    s, r = gpu.step(s, config, n=3)  # Step ×3: the first takes the previewed token
    seen += [r, r[0].token_id == p0.token_id]
    hotter = config.replace(temperature=0.7) if config.strategy == "sample" else config
    s, p = gpu.preview(s, hotter)  # a knob's preview
    s = gpu.prepare(s)
    s, r = gpu.step(s, hotter)
    seen += [p, r, r[0].token_id == p.token_id]
    seen.append(gpu.explore(s, 1, temperatures=(0.5, 1.5), top_n=5))
    seen.append(gpu.explore(s, None, temperatures=(1.0,), top_n=5, config=config))
    if config.strategy != "beam":
        replaced = [(rec.config, rec.token_id if rec.forced else None) for rec in s.steps[2:]]
        s, forced = gpu.force(s, 2, s.steps[2].top[1].token_id, config)  # "use this token instead" at step 2
        seen += [forced, len(s.steps)]
        s, back = gpu.replay(s, 2, replaced)  # Undo right after the force: the replaced steps come back
        seen += [back, [rec.token_id for rec in s.steps]]
        s, forced = gpu.force(s, len(s.steps), s.steps[-1].top[0].token_id, config)  # the pending step, forced
        seen.append(forced)
    s.rewind(len(s.steps) - 1)  # Undo: bookkeeping only, no model call
    s.rewind(2)  # Rewind
    for s, records in gpu.run(s, config, chunk=3):  # Run to the end, three tokens a call
        seen.append(records)
    seen += [s.done, s.finish_reason, s.trace().token_ids]
    if config.strategy != "beam" and s.finish_reason == "length":
        s, more = gpu.step(s, config.replace(max_new_tokens=config.max_new_tokens + 3))  # Carry on
        seen.append(more)
    c = gpu.new_comparison(engine, ids, config.replace(num_beams=2), num_samples=2)
    c, first = gpu.compare(c, 2)
    c, rest = gpu.compare(c)
    seen += [first, rest, {k: t.token_ids for k, t in c.traces().items()}]
    return seen


@pytest.mark.parametrize("config", [GREEDY, SAMPLE, BEAM], ids=["greedy", "sample", "beam"])
def test_emulation_gives_exactly_what_the_direct_calls_give(tiny_engine, config):
    """Step ×N, preview, prepare, explore, force, Undo, Rewind, Run, Carry on and Compare under ZeroGPU's
    emulation (each a pickle round trip; the run on the CPU between calls) give the same tokens and the same
    numbers as without it. Guards against a change made in a call and lost (not returned), and a sampled run's
    generator state lost on the way."""
    direct = _scenario(tiny_engine, config)
    gpu.clear_calls()
    with gpu.emulating():
        emulated = _scenario(tiny_engine, config)
        calls = gpu.calls()
    assert emulated == direct
    names = {c.name for c in calls}
    assert {"step", "preview", "prepare", "explore", "compare"} <= names
    assert config.strategy == "beam" or "replay" in names


def test_a_run_rebuilt_from_its_prompt_in_every_call_gives_the_same_tokens(tiny_engine, monkeypatch):
    """The other way to keep a run between calls (no cache: each call rebuilds it, the prompt's prefill then each
    token as it was fed) is measured in docs/zerogpu.md; it must give the same tokens too."""
    direct = _scenario(tiny_engine, SAMPLE)
    monkeypatch.setattr(gpu, "KEEP_CACHE", False)
    with gpu.emulating():
        assert _scenario(tiny_engine, SAMPLE) == direct


def test_a_32_token_run_sends_little_to_each_call(emulate, tiny_engine):
    """The pickled arguments of each call of a 32-token run: the run's records, tokens, generator states and
    cache, never the model; reported per call (gpu.calls()) and bounded here. (docs/zerogpu.md has the embedded
    model's figures.)"""
    config = SAMPLE.replace(max_new_tokens=32, top_n=10)
    session = gpu.new_session(tiny_engine, tiny_engine.encode(PROMPT), config)
    for _ in range(32):
        session, _ = gpu.step(session, config)
    sizes = [c.args_bytes for c in gpu.calls()]
    assert len(sizes) == 32 and session.done
    model_bytes = sum(p.numel() * p.element_size() for p in tiny_engine.model.parameters())
    assert sizes[0] < 12_000  # the recipe and a seeded generator: no model, no tokenizer
    assert max(sizes) < min(model_bytes, 400_000)
    per_step = (sizes[-1] - sizes[0]) / 31
    # each step adds its record (10 candidates), its generator state (5 KB on the CPU) and its cache column
    assert per_step < 12_000, per_step


def test_durations_grow_with_the_tokens_asked_for(tiny_engine):
    """A call asks ZeroGPU for time in proportion to its forwards (shorter calls queue ahead), within ZeroGPU's
    longest call."""
    session = gpu.new_session(tiny_engine, tiny_engine.encode(PROMPT), GREEDY)
    one = gpu.step.duration(session, GREEDY, 1)
    many = gpu.step.duration(session, GREEDY, 64)
    assert gpu.BASE_S <= one < many <= gpu.MAX_DURATION_S
    assert gpu.seconds_for(10_000) == gpu.MAX_DURATION_S


def test_device_map_auto_loads_on_what_is_there(tiny_model_dir, tiny_engine, monkeypatch):
    """PLAYGROUND_DEVICE_MAP=auto loads through accelerate's device map (here: all on the CPU) and decodes the
    same tokens; a map it does not know is one sentence."""
    from playground.loading import ModelLoadError, load_engine, pick_device_map

    monkeypatch.setenv("PLAYGROUND_DEVICE_MAP", "auto")
    engine = load_engine(tiny_model_dir, device="cpu")
    ids = engine.encode(PROMPT)
    assert engine.generate(ids, GREEDY).token_ids == tiny_engine.generate(ids, GREEDY).token_ids
    assert pick_device_map("none") is None
    with pytest.raises(ModelLoadError, match="Unknown device map"):
        pick_device_map("everywhere")


# ----------------------------------------------------------------------------------------------------------
# On a GPU (skipped without one)


@cuda
@pytest.mark.parametrize("config", [SAMPLE, BEAM], ids=["sample", "beam"])
def test_cuda_emulation_equals_a_run_left_on_the_gpu(tiny_model_dir, config):
    """Under emulation with the model on CUDA, each call brings the run to the GPU and sends it back on the CPU
    (the pickler refuses any CUDA tensor), and a sampled run's CUDA generator state survives the trip."""
    from playground.loading import load_engine

    engine = load_engine(tiny_model_dir, device="cuda", dtype="float32")
    direct = _scenario(engine, config)
    with gpu.emulating():
        emulated = _scenario(engine, config)
        session = gpu.new_session(engine, engine.encode(PROMPT), config)
        session, _ = gpu.step(session, config, n=3)
    assert emulated == direct
    tensors = [session._batch.fed, session._batch.prompt, *session._batch.cache.layers[0].__dict__.values()]
    assert all(t.device.type == "cpu" for t in tensors if isinstance(t, torch.Tensor))


@cuda
def test_cuda_session_moved_off_and_back_goes_on_the_same(tiny_model_dir):
    from playground.loading import load_engine

    engine = load_engine(tiny_model_dir, device="cuda", dtype="bfloat16")
    ids = engine.encode(PROMPT)
    expected = [r.token_id for r in engine.start(ids, SAMPLE).run()]
    session = engine.start(ids, SAMPLE, prefill=False, device="cpu")
    got = []
    while not session.done:
        session.to(None)
        got.append(session.step().token_id)
        session.to("cpu")
        if len(got) == 4:
            session.rewind(2)  # on the CPU, with the generator's state waiting aside
            got = got[:2]
    assert got == expected


def test_the_app_takes_a_device_and_a_dtype(monkeypatch):
    """`python app.py --device cuda --dtype float16`, or PLAYGROUND_DEVICE / PLAYGROUND_DTYPE on a Space (where no
    flags can be given); auto by default."""
    import app

    monkeypatch.delenv("PLAYGROUND_DEVICE", raising=False)
    monkeypatch.delenv("PLAYGROUND_DTYPE", raising=False)
    assert (app.parse_args([]).device, app.parse_args([]).dtype) == ("auto", "auto")
    args = app.parse_args(["--device", "cuda:1", "--dtype", "float16"])
    assert (args.device, args.dtype) == ("cuda:1", "float16")
    monkeypatch.setenv("PLAYGROUND_DEVICE", "cpu")
    monkeypatch.setenv("PLAYGROUND_DTYPE", "bfloat16")
    assert (app.parse_args([]).device, app.parse_args([]).dtype) == ("cpu", "bfloat16")


# -- the web app under ZeroGPU's rules (issue 21, point 3) ----------------------------------------------------


def _the_apps_api_walk(ui) -> dict:
    """A visitor's walk through the named API on the tiny model: every endpoint that runs the model, and what
    each gave (token ids, the preview's candidates, Compare's lanes, the Knobs view's summary)."""
    from conftest import ui_controls

    got = {}
    hot = ui_controls(ui, strategy="sample", temperature=1.3, seed=8, max_new_tokens=10)
    cool = ui_controls(ui, strategy="sample", temperature=0.7, seed=8, max_new_tokens=10)
    out = ui.api.preview(None, *hot)
    got["preview"] = [c["token_id"] for c in out[0]["last_step"]["top"]] if out[0]["last_step"] else None
    state = out[-1]
    got["preview_pending"] = [c.token_id for c in state.preview.top]
    state = ui.api.step(state, *hot, 3)[-1]
    ui.api.prepare(state)
    state = ui.api.step(state, *cool, 2)[-1]
    got["steps"] = list(state.session.token_ids)
    token = sorted(state.steps[1].top, key=lambda c: c.rank)[2].token_id
    state = ui.api.force(state, *cool, 1, token)[-1]
    got["forced"] = list(state.session.token_ids)
    state = ui.api.undo(state)[-1]
    got["undone"] = list(state.session.token_ids)
    *_, last = ui.api.run(state, *cool)
    state = last[-1]
    got["run"] = list(state.session.token_ids)
    out = ui.api.carry_on(state, *cool)
    got["carry_on"] = out[1]["token_ids"]
    got["explore"] = ui.api.explore(out[-1], *cool, "0.5, 1")[2]
    *_, cmp = ui.api.compare(*hot, 2)
    got["compare"] = {label: lane["token_ids"] for label, lane in cmp[0].items()}
    beam = ui.api.step(None, *ui_controls(ui, strategy="beam", num_beams=3, max_new_tokens=5), 5)[-1]
    got["beam"] = list(beam.session.token_ids)
    return got


def test_under_emulation_the_apps_api_gives_exactly_its_tokens(tiny_ui):
    """Each model call of the app goes through playground.gpu: under ZeroGPU's emulation (every call a pickle
    round trip, a forward outside a call refused) the API gives exactly what it gives without it."""
    from playground import gpu

    direct = _the_apps_api_walk(tiny_ui)
    gpu.clear_calls()
    with gpu.emulating():
        emulated = _the_apps_api_walk(tiny_ui)
    assert emulated == direct
    names = {c.name for c in gpu.calls()}
    assert {"step", "preview", "prepare", "replay", "explore", "compare"} <= names


def test_under_emulation_a_32_token_run_through_the_api_sends_little_to_each_call(tiny_ui):
    """What each GPU call of a 32-token run receives, pickled: the run (its tokens, records, generator state and
    KV cache on the CPU), never the model. Reported, and bounded."""
    from conftest import ui_controls

    from playground import gpu

    with gpu.emulating():
        gpu.clear_calls()
        *_, last = tiny_ui.api.run(None, *ui_controls(tiny_ui, strategy="sample", max_new_tokens=32, seed=6))
    sizes = [c.args_bytes for c in gpu.calls() if c.name == "step"]
    assert last[0]["n_steps"] == 32 and len(sizes) == 32
    print(f"\npickled arguments per /run call (tiny model): first {sizes[0]:,} B, last {sizes[-1]:,} B")
    # the run travels (its KV cache is most of it: ~6.5 KB a token here), never the model; docs/zerogpu.md has
    # the embedded model's figures (~1.5 MB by the 32nd call)
    assert max(sizes) < 512 * 1024 and all(b > a for a, b in zip(sizes, sizes[1:]))
