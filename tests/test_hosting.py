"""A public Space that no single visitor can exhaust (issue 11), checked without a server: prompt caps, permalink
size limits, one spelling per model, the controls' ranges for API clients and links, exports that are cleaned
up, and the queue settings every model-using event shares. The attacks on the running app (a flood, a race,
many sessions, uploads) are in tests/test_load.py; turns and parking in tests/test_sessions.py.
"""

from __future__ import annotations

import base64
import json
import os
import time
import tracemalloc
import zlib

import gradio as gr
import pytest
from conftest import ui_controls

from playground.config import DecodingConfig
from playground.hosting import HostingPolicy


def assert_one_sentence(message: str, *must_contain: str) -> None:
    assert message and "\n" not in message, f"not one line: {message!r}"
    assert message.rstrip().endswith((".", ")")), f"not a sentence: {message!r}"
    assert "Something went wrong" not in message and "Traceback" not in message, message
    for part in must_contain:
        assert part.lower() in message.lower(), f"{part!r} not named in {message!r}"


def ui_error(call) -> str:
    with pytest.raises(gr.Error) as info:
        result = call()
        if hasattr(result, "__next__"):  # a streaming handler raises on iteration
            list(result)
    assert_one_sentence(info.value.message)
    return info.value.message


def link(doc: dict) -> str:
    return base64.urlsafe_b64encode(zlib.compress(json.dumps(doc).encode("utf-8"), 9)).decode("ascii").rstrip("=")


def recipe(**changes) -> dict:
    return {"v": 1, "prompt": "hi", "model": "default", "chat": False, "system": "",
            "config": DecodingConfig(max_new_tokens=4).to_dict(), "steps": [{}], **changes}  # fmt: skip


@pytest.fixture
def ui(tiny_ui):
    return tiny_ui


def hosted_policy(**env) -> HostingPolicy:
    return HostingPolicy.from_env({"PLAYGROUND_HOSTED": "1", **{k: str(v) for k, v in env.items()}})


@pytest.fixture
def spy(tiny_engine, monkeypatch):
    """Counts the tokenizer's and the model's calls: a refused prompt must cost neither."""
    calls = {"encode": 0, "forward": 0}
    encode, forward = tiny_engine.encode, tiny_engine.forward

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(tiny_engine, "encode", counting("encode", encode))
    monkeypatch.setattr(tiny_engine, "forward", counting("forward", forward))
    return calls


# ----------------------------------------------------------------------------------------------------------
# Prompt caps: characters before tokenizing, then tokens before the prefill


def test_hosted_mode_caps_prompts_by_default_and_locally_there_is_no_cap():
    hosted, local = hosted_policy(), HostingPolicy.from_env({})
    assert (hosted.max_prompt_chars, hosted.max_prompt_tokens) == (8000, 1024)
    local.check_prompt("x" * 100_000)  # a local app has no caps: the model's context is the limit
    local.check_prompt_tokens(100_000)
    with pytest.raises(ValueError) as info:
        hosted.check_prompt("x" * 8001)
    assert_one_sentence(str(info.value), "8,001 characters", "8,000")
    off = hosted_policy(PLAYGROUND_MAX_PROMPT_CHARS=0, PLAYGROUND_MAX_PROMPT_TOKENS="off")
    off.check_prompt("x" * 100_000)
    off.check_prompt_tokens(100_000)
    with pytest.raises(ValueError, match="PLAYGROUND_MAX_PROMPT_TOKENS"):
        hosted_policy(PLAYGROUND_MAX_PROMPT_TOKENS="many")


def test_streamed_updates_are_paced_by_a_rate_that_can_be_turned_off():
    from playground.ui.pacing import Pacer

    assert hosted_policy().stream_updates_per_s == 40.0 == HostingPolicy.from_env({}).stream_updates_per_s
    assert hosted_policy(PLAYGROUND_STREAM_UPDATES_PER_S="off").stream_updates_per_s is None
    assert hosted_policy(PLAYGROUND_STREAM_UPDATES_PER_S="12.5").stream_updates_per_s == 12.5
    for bad in ("fast", "-3", "inf"):
        with pytest.raises(ValueError, match="PLAYGROUND_STREAM_UPDATES_PER_S"):
            hosted_policy(PLAYGROUND_STREAM_UPDATES_PER_S=bad)
    pacer = Pacer()
    with pacer.stream() as alone:
        assert pacer.interval_s(40.0) == 0 and alone.due(40.0) and alone.due(40.0)  # alone: every token
        with pacer.stream() as other, pacer.stream():
            assert pacer.interval_s(40.0) == pytest.approx(0.05) and pacer.interval_s(None) == 0
            assert other.due(40.0) and not other.due(40.0)  # its first update goes; the next waits 50 ms
    assert pacer.streaming == 0


def test_a_prompt_with_too_many_characters_is_refused_before_tokenizing(ui, spy, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", hosted_policy(PLAYGROUND_MAX_PROMPT_CHARS=200))
    long = "Once upon a time " * 20  # 340 characters
    for call in (lambda: ui.api.step(None, *ui_controls(ui, prompt=long), 1),
                 lambda: ui.api.run(None, *ui_controls(ui, prompt=long)),
                 lambda: ui.api.preview(None, *ui_controls(ui, prompt=long)),
                 lambda: ui.api.compare(*ui_controls(ui, prompt=long), 2)):  # fmt: skip
        assert_one_sentence(ui_error(call), "340 characters", "at most 200")
    # chat mode counts the system message too
    message = ui_error(lambda: ui.api.step(None, *ui_controls(ui, prompt="hi", chat=True, system="s" * 199), 1))
    assert_one_sentence(message, "system message", "201 characters")
    assert spy == {"encode": 0, "forward": 0}  # never tokenized, never prefilled


def test_a_prompt_with_too_many_tokens_is_refused_before_the_prefill(ui, spy, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", hosted_policy(PLAYGROUND_MAX_PROMPT_TOKENS=20))
    long = "The quick brown fox jumps over the lazy dog. " * 3  # ~30 tokens, 135 characters
    for call in (lambda: ui.api.step(None, *ui_controls(ui, prompt=long), 1),
                 lambda: ui.api.compare(*ui_controls(ui, prompt=long), 2)):  # fmt: skip
        assert_one_sentence(ui_error(call), "tokens long", "at most 20 tokens")
    assert spy["forward"] == 0
    assert ui.api.step(None, *ui_controls(ui, prompt="The quick brown fox"), 1)[0]["n_steps"] == 1


def test_a_permalink_with_a_long_prompt_meets_the_caps(ui, spy, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", hosted_policy(PLAYGROUND_MAX_PROMPT_CHARS=200))
    with pytest.raises(ValueError) as info:
        ui.restore(link(recipe(prompt="a" * 5000)))
    assert_one_sentence(str(info.value), "5,000 characters")
    assert spy == {"encode": 0, "forward": 0}


# ----------------------------------------------------------------------------------------------------------
# Item 7: a lone surrogate, a vanishing temperature, top_n from a link


@pytest.mark.parametrize("prompt", ["a\ud800b", "\udfff", "ok \ud83d"])  # halves of surrogate pairs
def test_a_lone_surrogate_is_one_clear_sentence(ui, prompt):
    """JSON can carry "\\ud800": the tokenizer used to fail with "Something went wrong (TypeError)"."""
    message = ui_error(lambda: ui.api.step(None, *ui_controls(ui, prompt=prompt), 1))
    assert_one_sentence(message, "surrogate", "U+D")
    message = ui_error(lambda: ui.api.step(None, *ui_controls(ui, prompt="hi", chat=True, system=prompt), 1))
    assert_one_sentence(message, "system message", "surrogate")
    assert ui.api.step(None, *ui_controls(ui, prompt="emoji 😀 fine"), 1)[0]["n_steps"] == 1  # a real pair is text


@pytest.mark.parametrize("temperature", [1e-300, 1e-40, 5e-5])
def test_a_vanishing_temperature_is_one_truthful_sentence(ui, temperature):
    """1e-300 used to come back as a float16 overflow, on a float32 model."""
    message = ui_error(lambda: ui.api.step(None, *ui_controls(ui, temperature=temperature), 1))
    assert_one_sentence(message, "temperature", f"{temperature:g}", "0 (greedy)")
    assert "float16" not in message
    with pytest.raises(ValueError) as info:  # a link that turns it down mid-run
        ui.restore(link(recipe(config={**recipe()["config"], "strategy": "sample"},
                               steps=[{}, {"c": {"temperature": temperature}}])))  # fmt: skip
    assert_one_sentence(str(info.value), f"{temperature:g}")
    assert ui.api.step(None, *ui_controls(ui, temperature=0), 1)[0]["n_steps"] == 1  # 0 is greedy


def test_a_permalink_cannot_set_top_n_past_the_slider(ui):
    restored = ui.restore(link(recipe(config={**recipe()["config"], "top_n": 1000}, steps=[{}, {"c": {"top_n": 900}}])))
    state = restored["state"]
    assert restored["top_n"] == 50
    assert all(r.config.top_n <= 50 and len(r.top) <= 50 for r in state.steps)


def test_api_clients_meet_the_top_n_cap_in_hosted_mode(ui, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", hosted_policy())
    result, *_, state = ui.api.step(None, *ui_controls(ui, top_n=1000), 1)
    assert state.session.config.top_n == 50 and len(state.steps[0].top) == 50
    assert any("Candidates shown are capped at 50" in n for n in result["notices"])


# ----------------------------------------------------------------------------------------------------------
# Permalink size limits, packed and unpacked


def test_a_permalink_that_unpacks_to_too_much_is_refused_without_unpacking_it(ui):
    """A 13 KB link carrying a 10 MB prompt, and a zip bomb, used to be unpacked in full (544 KB -> 400 MB)."""
    bomb = link(recipe(prompt="a" * 10_000_000))
    assert len(bomb) < 20_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            ui.decode_permalink(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_one_sentence(str(info.value), "1,000,000 bytes")
    assert peak < 8_000_000, f"unpacking took {peak:,} bytes"
    with pytest.raises(ValueError):
        ui.restore(bomb)


def test_a_permalink_longer_than_any_link_is_refused_at_once_and_a_long_real_one_opens(ui, monkeypatch):
    import random

    noise = base64.urlsafe_b64encode(os.urandom(150_000)).decode("ascii")
    with pytest.raises(ValueError) as info:
        ui.decode_permalink(noise)
    assert_one_sentence(str(info.value), f"{len(noise):,} characters", "100,000")
    # the longest prompt a hosted playground takes makes a link well inside both limits
    monkeypatch.setattr(ui.shared, "POLICY", hosted_policy(PLAYGROUND_MAX_PROMPT_TOKENS=0))
    rng = random.Random(0)
    prompt = "".join(rng.choice("abcdefghij ÄÖÜßéèçñ漢字かな😀") for _ in range(8000))  # barely compressible
    value = link(recipe(prompt=prompt))
    assert len(value) < 100_000
    assert ui.decode_permalink(value)["prompt"] == prompt
    with pytest.raises(ValueError, match="cut short"):  # a truncated link is still the old sentence
        ui.decode_permalink(value[: len(value) // 2])


# ----------------------------------------------------------------------------------------------------------
# One spelling per model, before the allow-list and the registry


def test_one_model_whatever_its_spelling(tiny_engine, tiny_model_dir, monkeypatch):
    """"huggingfacetb/SMOLLM2-135M-instruct" passed the allow-list (which ignores case) and was loaded as a
    second model (the registry did not): on a Space, a second download and a second copy in memory."""
    from playground import ui

    loads = []
    registry = ui.ModelRegistry(loader=lambda spec, progress=None: loads.append(spec) or tiny_engine,
                                default_spec=tiny_model_dir)  # fmt: skip
    monkeypatch.setattr(ui.shared, "REGISTRY", registry)
    monkeypatch.setattr(ui.shared, "POLICY", hosted_policy(PLAYGROUND_ALLOWED_MODELS="Some-Org/Model-1B"))
    for spelling in ["Some-Org/Model-1B", "some-org/MODEL-1b", "  SOME-ORG/model-1b  "]:
        assert ui.shared.engine_for(spelling) is tiny_engine
    assert loads == ["Some-Org/Model-1B"]  # loaded once, in the allow-list's spelling
    assert len({registry.key(s) for s in ["Some-Org/Model-1B", "some-org/MODEL-1b"]}) == 1
    with pytest.raises(ValueError, match="only runs these models"):
        ui.shared.engine_for("Some-Org/Model-2B")

    monkeypatch.setattr(ui.shared, "POLICY", HostingPolicy())  # locally: a folder by its path, however written
    loads.clear()
    for spelling in [tiny_model_dir + "/", tiny_model_dir + "/./", os.path.relpath(tiny_model_dir)]:
        ui.shared.engine_for(spelling)
    assert len(loads) == 1 and registry.key(tiny_model_dir + "/") == registry.key("default")  # the default's folder


# ----------------------------------------------------------------------------------------------------------
# Exports, uploads and the queue


def test_exports_do_not_pile_up_on_disk(ui, tmp_path, monkeypatch):
    """Every /export used to leave its temporary folder behind for good (20 exports, 22.6 MB)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # every temporary folder lands here
    state = ui.api.step(None, *ui_controls(ui), 3)[-1]
    paths = [ui.api.export(state) for _ in range(80)]
    assert all(os.path.isfile(p) for p in paths[-1])
    kept = [d for d, _, files in os.walk(tmp_path) if any(f.endswith("_steps.csv") for f in files)]
    assert len(kept) <= 64, f"{len(kept)} export folders left on disk"
    old = paths[-1][0]
    past = time.time() - ui.exports.KEEP_S - 1
    os.utime(os.path.dirname(old), (past, past))
    ui.api.export(state)
    assert not os.path.exists(old)  # an old export is deleted at the next one


def test_every_model_using_event_shares_one_concurrency_limit_and_the_queue_is_bounded(ui, monkeypatch):
    """"At most 4 handlers" was per event (16 ran at once); the queue had no size and no per-session limit."""
    policy = hosted_policy(PLAYGROUND_CONCURRENCY=3)
    monkeypatch.setattr(ui.shared, "POLICY", policy)
    demo = ui.build_demo(policy)
    fns = {f.api_name: f for f in demo.fns.values() if f.api_name}
    model_events = ["step", "step_n", "run", "preview", "force", "undo", "rewind", "reset", "compare", "explore",
                    "load_model"]  # fmt: skip
    assert {fns[name].concurrency_id for name in model_events} == {"model"}
    assert {fns[name].concurrency_limit for name in model_events} == {3}
    assert demo._queue.max_size == 256
    # places in the queue are told once a second, not to every waiting request whenever one starts (O(queue) a
    # start), and Gradio's monitoring summary is not remade after every event
    assert (demo._queue.live_updates, demo._queue.update_intervals) == (False, 1.0)
    assert demo._queue.ANAYLTICS_CACHE_FREQUENCY == 1000
    assert demo.delete_cache is not None  # Gradio's copies of the exports are deleted too
    assert ui.sessions.server_limits(policy) == {"max_file_size": 0, "state_session_capacity": 2000}
    local = HostingPolicy.from_env({})
    assert (local.queue_size, local.session_queue, local.concurrency, local.live_sessions) == (None, None, 32, 128)


def test_hosted_app_sets_its_threads_and_memory_settings_before_torch_and_a_given_value_wins():
    """Hosted, app.py puts each request's torch work on one thread and turns MKL's per-thread buffer cache off
    (with 40 request threads it kept ~100 MB after every run was parked) and lets OpenMP's helper threads sleep
    between forwards; a local app leaves them to torch."""
    import subprocess
    import sys

    names = ("OMP_NUM_THREADS", "MKL_DISABLE_FAST_MM", "OMP_WAIT_POLICY")
    code = f"import os, app; print(*(os.environ.get(n) for n in {names!r}))"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def settings(**env):
        base = {k: v for k, v in os.environ.items() if k not in (*names, "PLAYGROUND_HOSTED")}
        out = subprocess.run([sys.executable, "-c", code], cwd=root, env={**base, **env}, capture_output=True, text=True,
                             timeout=120, check=True)  # fmt: skip
        return out.stdout.split()

    assert settings(PLAYGROUND_HOSTED="1") == ["1", "1", "PASSIVE"]
    assert settings(PLAYGROUND_HOSTED="1", OMP_NUM_THREADS="2", OMP_WAIT_POLICY="ACTIVE") == ["2", "1", "ACTIVE"]
    assert settings() == ["None", "None", "None"]
