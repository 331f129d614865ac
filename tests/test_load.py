"""Many users at once: the real app (`app.py` in a subprocess, loopback only) driven by `gradio_client`.

A small version of `scripts/loadtest.py` (20 sessions x 3 requests, ~1-2 minutes on 2 cores): every response
equals what the same request gives alone (computed with the engine directly, in this process, on the same
model folder), no session sees another's state, the server answers throughout, its memory stays bounded.
Alongside the load: a session that switches model, and a run cancelled mid-stream. Separately: the app
restarted mid-session. No timed assertions: latencies are printed, not checked, but for the bounds issue 11
names (another visitor answered "within a few seconds" of a flood).

Then the attacks (`loadtest.attack_*`) on the app in hosted mode, on a tiny model whose KV cache is large:
a flood from one session, /run and /step_n at once on one session, long prompts and hostile permalinks, 300
sessions that never come back, an upload. ~3-4 minutes on 2 busy cores, the 300 sessions most of it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")
pytest.importorskip("psutil")

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("loadtest", REPO / "scripts" / "loadtest.py")
loadtest = importlib.util.module_from_spec(_spec)
sys.modules["loadtest"] = loadtest  # dataclasses look their module up by name
_spec.loader.exec_module(loadtest)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def second_model_dir(tmp_path_factory):
    from conftest import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama-2"), seed=1)


@pytest.fixture(scope="module")
def app(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("app-log") / "app.log"
    running = loadtest.App(tiny_model_dir, log_path=str(log)).start()
    yield running
    running.stop()


def _client(app):
    from gradio_client import Client

    return Client(app.url, verbose=False)


def test_twenty_sessions_each_get_what_they_get_alone(app, tiny_engine, second_model_dir):
    from playground.loading import load_engine

    other_engine = load_engine(second_model_dir, device="cpu")
    switch_plan = loadtest.Plan(index=99, endpoint="/step", prompt="Paris is the capital of", strategy="sample",
                                seed=5, requests=3, model=second_model_dir)  # fmt: skip
    switch_expected = loadtest.expected_results(other_engine, switch_plan)
    assert switch_expected != loadtest.expected_results(tiny_engine, switch_plan), "the two models must differ"
    outcome: dict = {}

    def switch_model():
        """One user loads another model while everyone else keeps stepping on the default one."""
        client = _client(app)
        loaded = client.predict(model=second_model_dir, api_name="/load_model")
        outcome["loaded"] = loaded[0]
        outcome["switch"] = [client.predict(**switch_plan.controls(), n_steps=1, api_name="/step")[0]["token_ids"]
                             for _ in range(switch_plan.requests)]  # fmt: skip

    def cancel_a_run():
        """One user starts a long streamed run and presses Stop after the first tokens."""
        client = _client(app)
        plan = loadtest.Plan(index=98, endpoint="/step", prompt="The quick brown fox", strategy="greedy", seed=0,
                             requests=1, max_new_tokens=200)  # fmt: skip
        job = client.submit(**plan.controls(), api_name="/run")
        deadline = time.monotonic() + 120
        while not job.outputs() and not job.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        job.cancel()
        outcome["streamed_before_cancel"] = len(job.outputs())
        after = client.predict(**plan.controls(), n_steps=1, api_name="/step")[0]  # the same user goes on
        outcome["after_cancel"] = after

    extra = [threading.Thread(target=switch_model), threading.Thread(target=cancel_a_run)]
    report = loadtest.run_load(app, tiny_engine, sessions=20, requests=3, extra=extra)
    print("\n" + report.summary())
    assert report.errors == []
    assert report.mismatches == []
    assert report.requests == 60
    assert report.probes > 0 and report.probe_failures == 0  # the server answered throughout
    assert report.rss_peak - report.rss_start < 1024 * MiB, report.summary()  # bounded: no per-request blow-up

    assert outcome["switch"] == switch_expected  # the switching user got the other model's tokens...
    assert outcome["loaded"] == second_model_dir
    assert outcome["streamed_before_cancel"] >= 1
    after = outcome["after_cancel"]
    greedy = tiny_engine.generate(tiny_engine.encode("The quick brown fox"),
                                  loadtest.Plan(0, "/step", "", "greedy", 0, 1, max_new_tokens=200).config())
    assert after["n_steps"] >= 1 and after["token_ids"] == greedy.token_ids[: after["n_steps"]]  # a clean run
    assert app.answers()


def test_memory_does_not_grow_with_repeated_load(app, tiny_engine):
    """A second and third wave of the same load must not keep adding memory (a leak of sessions or caches)."""
    first = loadtest.run_load(app, tiny_engine, sessions=10, requests=3, seed0=10_000)
    second = loadtest.run_load(app, tiny_engine, sessions=10, requests=3, seed0=20_000)
    third = loadtest.run_load(app, tiny_engine, sessions=10, requests=3, seed0=30_000)
    for r in (first, second, third):
        print("\n" + r.summary())
        assert r.errors == [] and r.mismatches == []
    assert third.rss_end - first.rss_end < 200 * MiB, (first.summary(), third.summary())


def test_app_restarted_mid_session(tiny_model_dir, tiny_engine, tmp_path):
    from gradio_client import Client

    plan = loadtest.Plan(index=0, endpoint="/step", prompt="Once upon a time there was", strategy="sample",
                         seed=3, requests=3)  # fmt: skip
    expected = loadtest.expected_results(tiny_engine, plan)
    first = loadtest.App(tiny_model_dir, log_path=str(tmp_path / "app1.log")).start()
    try:
        old = Client(first.url, verbose=False)
        assert old.predict(**plan.controls(), n_steps=1, api_name="/step")[0]["token_ids"] == expected[0]
    finally:
        first.stop()
    with pytest.raises(Exception):  # the server is gone: the old client is told so, it does not hang
        old.predict(**plan.controls(), n_steps=1, api_name="/step")
    second = loadtest.App(tiny_model_dir, port=first.port, log_path=str(tmp_path / "app2.log")).start()
    try:
        fresh = Client(second.url, verbose=False)
        got = [fresh.predict(**plan.controls(), n_steps=1, api_name="/step")[0]["token_ids"] for _ in range(3)]
        assert got == expected  # a fresh client works from the start
        try:  # the old client: its session died with the first server, so it may not continue that run
            result = old.predict(**plan.controls(), n_steps=1, api_name="/step")[0]
        except Exception as e:  # noqa: BLE001 - an error is fine if it says something
            assert str(e).strip()
        else:
            assert result["n_steps"] == 1 and result["token_ids"] == expected[0]  # a new run, never a mix
    finally:
        second.stop()


# ----------------------------------------------------------------------------------------------------------
# A stranger on a public Space (issue 11): the app in hosted mode under attack, one attack per test


@pytest.fixture(scope="module")
def kv_model_dir(tmp_path_factory):
    """A tiny model whose KV cache is large for its compute (4 layers of 4 heads of 256 dims: 32 KB a token),
    so that what sessions hold shows in the server's memory while their requests stay cheap."""
    import torch
    from conftest import build_tiny_model_dir
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = build_tiny_model_dir(tmp_path_factory.mktemp("kv-heavy"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=256, max_position_embeddings=1024,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.eos_token_id)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    return path


IDLE_S, TTL_S = 2, 6  # the hosted app below parks a session idle this long, and forgets it after TTL_S


@pytest.fixture(scope="module")
def hosted_app(kv_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("hosted-log") / "app.log"
    env = {"PLAYGROUND_HOSTED": "1", "PLAYGROUND_SESSION_IDLE_S": str(IDLE_S), "PLAYGROUND_SESSION_TTL_S": str(TTL_S),
           "OMP_NUM_THREADS": "1"}  # this model's ops are tiny: on 2 busy cores, torch's thread pool only spins
    running = loadtest.App(kv_model_dir, log_path=str(log), env=env).start()
    yield running
    running.stop()


def test_a_flood_from_one_session_leaves_another_visitor_answered(hosted_app):
    """One session queued 120 /step_n jobs in 1.8 s and left; the next visitor's Step waited 85 s."""
    report = loadtest.attack_flood(hosted_app, jobs=120, api_name="step")  # the visitor's own queue, on the old app
    print("\nflood:", report)
    assert report["visitor's Step answered"], report
    assert report["visitor's Step latency s"] < 10, report  # "within a few seconds", on 2 busy cores
    assert report["queued"] <= 6  # the rest were refused at the door, in one sentence
    assert all("queued or running" in sentence for sentence in report["refused at the door"])


def test_run_and_step_n_at_once_on_one_session_of_the_running_app(hosted_app, kv_model_dir):
    """/run and /step_n at once on one session raised AttributeError in the engine (5 of 5 tries)."""
    from playground.loading import load_engine

    report = loadtest.attack_race(hosted_app, load_engine(kv_model_dir, device="cpu"), tries=4, max_new_tokens=60)
    print("\nrace:", report)
    assert report["other errors"] == [] and report["runs that are not the seeded run"] == 0, report


def test_long_prompts_and_hostile_permalinks_cost_nothing(hosted_app):
    """A 100k-character prompt was tokenized and prefilled (40-100 s of both cores); a 13 KB permalink carried a
    10 MB prompt; a 544 KB one unpacked to 400 MB."""
    report = loadtest.attack_long_prompts(hosted_app)
    print("\nlong prompts:", report)
    seconds, answer = report["100k-character prompt"]
    assert answer == "The prompt is 100,000 characters long; this playground takes at most 8,000." and seconds < 10
    for name, outcome in report.items():
        if name.startswith("permalink"):  # a link that cannot be opened is ignored: a fresh run, at once
            assert outcome[1] == "a fresh run of n_steps=1" and outcome[0] < 10, (name, outcome)
    assert report["server RSS growth MiB"] < 50, report


def test_memory_falls_back_once_300_sessions_expire(hosted_app):
    """Sessions of API clients were never expired (RSS 0.5 GB -> 7.1 GB): 300 short sessions, each holding a KV
    cache of ~3 MB, must leave the server's RSS within 100 MB of where it started once they expire (parked
    after IDLE_S, forgotten after TTL_S)."""
    loadtest.attack_many_sessions(hosted_app, sessions=8, prompt_words=18, top_n=2)  # one-time allocations
    time.sleep(TTL_S + 2)
    report = loadtest.attack_many_sessions(hosted_app, sessions=300, prompt_words=18, top_n=2,
                                           settle=(("parked", IDLE_S + 2.0), ("expired", TTL_S + 2.0)))  # fmt: skip
    print("\nmany sessions:", report)
    assert report["n failures"] == 0, report
    assert report["last - start MiB"] < 100, report


def test_uploads_are_refused(app):
    """The page has no upload, yet /gradio_api/upload accepted 100 MiB."""
    report = loadtest.attack_upload(app, mib=20)
    assert report["status"] == 413, report
