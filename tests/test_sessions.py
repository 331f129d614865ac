"""Sessions (playground/ui/sessions.py), without a server: a session's requests never interleave (a second waits
its turn, a third is refused), a request that waited works on the session's latest run, and an idle session's
run is parked (KV cache and records dropped, recipe kept) and rebuilt token for token when it returns; sessions
beyond the bounds are parked or forgotten.

A Gradio request is simulated as Gradio makes it: the endpoint is handed a request carrying the session hash a
browser tab or an API client has (`in_session` sets it; `api` and `page_api` hand it in). The real app under attack is tests/test_load.py's.
"""

from __future__ import annotations

import contextvars
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

import gradio as gr
import pytest
from conftest import ui_controls

from playground.hosting import HostingPolicy

BUSY_WORDS = "still busy"


@dataclass
class FakeRequest:
    session_hash: str


_REQUEST: contextvars.ContextVar[FakeRequest | None] = contextvars.ContextVar("request", default=None)


@contextmanager
def in_session(key: str):
    """The calls in the block come from one session (`key`), as Gradio hands each a request naming it."""
    token = _REQUEST.set(FakeRequest(key))
    try:
        yield
    finally:
        _REQUEST.reset(token)


class _Calls:
    """`ui.api` / `ui.page_api` as Gradio calls them: with the session's request handed in."""

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, endpoint: str):
        from playground import ui

        fn = getattr(getattr(ui, self.name), endpoint)
        return lambda *args, **kwargs: fn(*args, request=_REQUEST.get(), **kwargs)


api, page_api = _Calls("api"), _Calls("page_api")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ui(tiny_ui):
    return tiny_ui


@pytest.fixture
def table(ui, monkeypatch):
    """A fresh session table on a clock the test moves, under a local policy."""
    clock = Clock()
    fresh = ui.sessions.SessionTable(clock=clock)
    monkeypatch.setattr(ui.sessions, "TABLE", fresh)
    fresh.clock_ = clock
    return fresh


def policy(**changes) -> HostingPolicy:
    return HostingPolicy(**changes)


@pytest.fixture
def slow_model(tiny_engine, monkeypatch):
    """Every forward takes 30 ms and records how many ran at once (two on one run is the race). After
    `slow_model["armed"].set()`, the next forward holds for up to a second, or until a second one starts: so two
    requests that can run the model at once always do."""
    lock, now = threading.Lock(), {"in": 0, "most": 0, "armed": threading.Event(), "second": threading.Event()}
    forward = tiny_engine.forward

    def slow(*args, **kwargs):
        with lock:
            now["in"] += 1
            now["most"] = max(now["most"], now["in"])
            hold = now["armed"].is_set()
            now["armed"].clear()
            if now["in"] > 1:
                now["second"].set()
        try:
            if hold:
                now["second"].wait(1.0)
            time.sleep(0.03)
            return forward(*args, **kwargs)
        finally:
            with lock:
                now["in"] -= 1

    monkeypatch.setattr(tiny_engine, "forward", slow)
    return now


def run_in_thread(key: str, call, results: list, index: int) -> threading.Thread:
    def target():
        with in_session(key):
            try:
                out = call()
                results[index] = list(out) if hasattr(out, "__next__") else out
            except gr.Error as e:
                results[index] = e

    thread = threading.Thread(target=target)
    thread.start()
    return thread


# ----------------------------------------------------------------------------------------------------------
# Turns: one request of a session at a time


def test_run_and_step_n_at_once_on_one_session_never_interleave(ui, tiny_engine, slow_model):
    """/run and /step_n at once on one session used to raise AttributeError in the engine (5 of 5 tries) and
    leave a run whose tokens were not the seeded run's."""
    controls = ui_controls(ui, strategy="sample", seed=7, max_new_tokens=12)
    expected = tiny_engine.generate(tiny_engine.encode("Once upon a time"),
                                    ui.Controls.from_values(dict(zip(ui.CONTROL_NAMES, controls))).decoding()).token_ids  # fmt: skip
    with in_session("tab-1"):
        state = api.step(None, *controls, 1)[-1]
    results = [None, None]
    slow_model["armed"].set()  # the run's first forward waits for the step's, if the step gets that far
    threads = [run_in_thread("tab-1", lambda: api.run(state, *controls), results, 0)]
    time.sleep(0.05)  # the run has started
    threads.append(run_in_thread("tab-1", lambda: api.step(state, *controls, 3), results, 1))
    for t in threads:
        t.join()
    assert slow_model["most"] == 1, "two requests of one session ran the model at once"
    for r in results:  # each either worked or said in one sentence why not
        assert not isinstance(r, gr.Error) or "finished" in r.message or BUSY_WORDS in r.message, r.message
    assert list(state.session.token_ids) == expected[: len(state.session.token_ids)] and state.session.done


def test_a_second_request_waits_its_turn_and_a_third_is_refused_at_once(ui, table, slow_model, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", policy(session_wait_s=20.0))
    controls = ui_controls(ui, strategy="greedy", max_new_tokens=100)
    results = [None] * 3
    first = run_in_thread("api-1", lambda: api.step(None, *controls, 60), results, 0)  # ~2 s of forwards
    time.sleep(0.2)
    second = run_in_thread("api-1", lambda: api.step(None, *controls, 2), results, 1)
    time.sleep(0.2)
    started = time.perf_counter()
    third = run_in_thread("api-1", lambda: api.step(None, *controls, 2), results, 2)
    third.join()
    assert time.perf_counter() - started < 0.5  # refused at once, not after the others
    assert isinstance(results[2], gr.Error) and BUSY_WORDS in results[2].message
    with in_session("api-1"):  # a request that only reads the run (the log-scale toggle) runs beside it
        page_api.scale(None, True, 10)
    assert first.is_alive() or second.is_alive()
    first.join(), second.join()
    assert results[0][0]["n_steps"] == 60
    assert results[1][0]["n_steps"] == 62  # it waited, then went on with the run the first one left
    assert slow_model["most"] == 1
    other = [None]
    run_in_thread("api-2", lambda: api.step(None, *controls, 1), other, 0).join()  # other sessions: unaffected
    assert other[0][0]["n_steps"] == 1


def test_work_done_ahead_is_skipped_while_busy_and_never_gets_a_request_refused(ui, table, slow_model, monkeypatch):
    """/prepare (the next step's forward, made while the person reads) must not run the model beside a request of
    its session, and must not take the one waiting place: a Step and a knob's preview that come while it runs
    both wait for it, and both work."""
    monkeypatch.setattr(ui.shared, "POLICY", policy(session_wait_s=20.0))
    controls = ui_controls(ui, strategy="greedy", max_new_tokens=100)
    with in_session("tab-3"):
        state = api.step(None, *controls, 1)[-1]
    results = [None] * 4
    busy = run_in_thread("tab-3", lambda: api.step(state, *controls, 30), results, 0)  # ~1 s of forwards
    time.sleep(0.2)
    run_in_thread("tab-3", lambda: api.prepare(state), results, 1).join()  # skipped at once: the session is busy
    assert busy.is_alive()
    busy.join()
    assert results[1] is None and slow_model["most"] == 1
    slow_model["armed"].set()  # the prepare's forward holds (up to a second) while two requests come
    prepare = run_in_thread("tab-3", lambda: api.prepare(state), results, 1)
    time.sleep(0.2)
    waiting = [run_in_thread("tab-3", lambda: api.step(state, *controls, 1), results, 2)]
    time.sleep(0.05)
    waiting.append(run_in_thread("tab-3", lambda: api.preview(state, *controls), results, 3))
    for t in (prepare, *waiting):
        t.join()
    assert not any(isinstance(r, gr.Error) for r in results), [r.message for r in results if isinstance(r, gr.Error)]
    assert slow_model["most"] == 1, "work done ahead ran the model beside a request of its session"
    assert results[2][0]["n_steps"] == 32 and state.session.steps[-1].step == 31


def test_a_request_that_waited_works_on_the_latest_run(ui, table, slow_model):
    """Gradio hands a request its state when the request starts: one that waited for its turn would otherwise
    start a second run from an empty state and throw the first one's steps away."""
    controls = ui_controls(ui, strategy="greedy", max_new_tokens=20)
    results = [None, None]
    a = run_in_thread("tab-2", lambda: api.step(None, *controls, 5), results, 0)
    time.sleep(0.05)
    b = run_in_thread("tab-2", lambda: api.step(None, *controls, 2), results, 1)  # also handed no state
    a.join(), b.join()
    assert results[0][0]["n_steps"] == 5 and results[1][0]["n_steps"] == 7
    assert results[1][-1] is results[0][-1]


def test_undo_within_its_own_turn(ui, table):
    with in_session("tab-3"):
        state = api.step(None, *ui_controls(ui), 3)[-1]
        assert api.undo(state)[0]["n_steps"] == 2  # no wait for a turn it already holds


# ----------------------------------------------------------------------------------------------------------
# Parking: an idle session's run dropped, its recipe kept, the run rebuilt on return


def test_an_idle_session_is_parked_and_rebuilt_token_for_token(ui, table, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", policy(session_idle_s=60.0))
    hot = ui_controls(ui, strategy="sample", temperature=1.3, seed=5, max_new_tokens=12)
    cool = ui_controls(ui, strategy="sample", temperature=0.6, seed=5, max_new_tokens=12)

    def history(state):
        state = api.step(state, *hot, 3)[-1]
        token = sorted(state.steps[2].top, key=lambda c: c.rank)[2].token_id
        state = api.force(state, *cool, 2, token)[-1]  # a forced token and a mid-run change of settings
        return api.step(state, *cool, 2)[-1]

    twin = history(None)  # never parked (no session)
    with in_session("tab-5"):
        state = history(None)
        page_api.scale(state, True, 10)
    assert table.live() == 1
    table.clock_.now += 59
    assert table.sweep() == 0 and state.session is not None
    table.clock_.now += 2
    session = weakref.ref(state.session)
    assert table.sweep() == 1  # idle for over a minute: parked
    assert state.session is None and state.parked and table.live() == 0
    assert session() is None  # freed at once (no cycles to wait for a collection)
    with in_session("tab-5"):
        out = api.step(state, *cool, 3)  # Gradio hands back the same (parked) state object
    expected = api.step(twin, *cool, 3)
    assert out[0]["token_ids"] == expected[0]["token_ids"] and out[0]["n_steps"] == 8
    assert [r.forced for r in out[-1].steps] == [r.forced for r in twin.steps]
    assert out[-1] is state and state.log_scale and state.parked is None  # view settings survive


def test_the_least_recently_used_runs_beyond_the_bound_are_parked(ui, table, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", policy(live_sessions=2))
    states = {}
    for key in ("a", "b", "c"):
        with in_session(key):
            states[key] = api.step(None, *ui_controls(ui, prompt=f"Session {key}"), 2)[-1]
    assert table.live() == 2
    assert states["a"].session is None and states["a"].parked  # the least recently used
    with in_session("a"):
        out = api.step(None, *ui_controls(ui, prompt="Session a"), 1)  # Gradio lost its state: the table has it
    assert out[0]["n_steps"] == 3
    assert states["b"].session is None and table.live() == 2  # now "b" was the least recently used


def test_sessions_are_forgotten_after_their_lifetime_and_beyond_the_bound(ui, table, monkeypatch):
    """Forgotten with Gradio's own record of the session (~150 KB each, kept until Gradio's bound otherwise)."""
    from gradio.state_holder import StateHolder

    monkeypatch.setattr(ui.shared, "POLICY", policy(session_ttl_s=600.0, max_sessions=2))
    holder = StateHolder()
    holder.session_data.update({key: object() for key in ("a", "b", "c", "someone else")})
    table.demo = type("Page", (), {"state_holder": holder})()
    states = {}
    for key in ("a", "b", "c"):
        with in_session(key):
            states[key] = api.step(None, *ui_controls(ui, prompt=f"Session {key}"), 2)[-1]
    assert len(table) == 2 and states["a"].session is None and states["a"].parked is None  # forgotten
    table.clock_.now += 601
    table.sweep()
    assert len(table) == 0 and all(s.session is None and s.parked is None for s in states.values())
    assert set(holder.session_data) == {"someone else"}
    with in_session("b"):  # a forgotten session starts afresh (a page would send its permalink)
        assert api.step(states["b"], *ui_controls(ui, prompt="Session b"), 1)[0]["n_steps"] == 1


def test_a_busy_session_is_never_parked(ui, table, slow_model, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", policy(session_idle_s=1.0, live_sessions=1))
    controls = ui_controls(ui, strategy="greedy", max_new_tokens=30)
    results = [None]
    running = run_in_thread("busy", lambda: api.run(None, *controls), results, 0)
    time.sleep(0.2)
    table.clock_.now += 100
    table.sweep()
    with in_session("other"):
        api.step(None, *controls, 1)  # one live session allowed, and the busy one is not parked for it
    running.join()
    assert not isinstance(results[0], gr.Error) and results[0][-1][0]["n_steps"] == 30
