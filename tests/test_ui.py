"""The web app's handlers, called directly (no browser) on the tiny test model, and the hosted-mode policy."""

from __future__ import annotations

import base64
import csv
import io
import json
import re

import gradio as gr
import pytest
from gradio.components.plot import PlotData

from playground import plots, ui, views
from playground.config import DecodingConfig
from playground.hosting import DEFAULT_HUB_MODEL, HostingPolicy
from playground.loading import ModelLoadError

PROMPT = "Once upon a time"


@pytest.fixture
def app(tiny_engine, monkeypatch):
    """A registry whose default model is the tiny engine and whose loader fails for anything else."""
    loads = []

    def loader(spec, progress=None):
        loads.append(spec)
        raise ModelLoadError(f"No model {spec!r} was found.")

    registry = ui.ModelRegistry(loader=loader, default_spec="tiny")
    registry.put("default", tiny_engine)
    monkeypatch.setattr(ui.shared, "REGISTRY", registry)
    monkeypatch.setattr(ui.shared, "POLICY", HostingPolicy())
    return registry, loads


def controls(**changes) -> dict:
    c = dict(prompt=PROMPT, model="default", chat=False, system="", strategy="greedy", temperature=1.0, top_k=0,
             top_p=1.0, min_p=0.0, repetition_penalty=1.0, num_beams=3, length_penalty=1.0, max_new_tokens=8,
             top_n=10, seed=0)  # fmt: skip
    c.update(changes)
    return c


def step(state, n=1, **changes):
    return ui.api.step(state, **controls(**changes), n_steps=n)


def expected_ids(engine, **changes) -> list[int]:
    c = controls(**changes)
    cfg = ui.Controls.from_values(c).decoding()
    return engine.generate(engine.encode(c["prompt"]), cfg).token_ids


def test_trajectory_is_drawn_while_its_tab_is_open(app):
    """The trajectory costs as much as the distribution chart: drawn at each step only while it is on screen,
    and brought up to date when its tab opens."""
    state = step(step(None)[-1])[-1]
    chart, state = ui.page_api.trajectory_view(state, True)
    assert isinstance(chart, PlotData) and state.show_trajectory
    out = step(state)
    assert isinstance(out[4], PlotData)
    chart, state = ui.page_api.trajectory_view(out[-1], False)
    assert chart == gr.skip() and not state.show_trajectory
    assert step(state)[4] == gr.skip()


def chart(value: str) -> dict:
    """The live chart's data, as the page's script reads it."""
    assert isinstance(value, str) and value
    return json.loads(value)


def test_the_page_chart_is_the_shown_steps_data(app):
    """Each Step sends the chart's data, not a picture: the shown record's rows, the knobs' cuts and the force
    button's words, as views.distribution_chart_json makes them (the browser draws them)."""
    state = None
    for _ in range(3):
        out = step(state, strategy="sample", top_k=5)
        state = out[-1]
        record, pending = ui.outputs.shown_record(state)
        assert out[2] == views.distribution_chart_json(record, 10, pending=pending,
                                                       force_words=ui.outputs.force_label(state))  # fmt: skip
        data = chart(out[2])
        assert [r["token_id"] for r in data["rows"] if r["chosen"]] == [record.token_id]
        assert data["force"]["words"] == f"Replace step {record.step} with this token"


def test_a_click_on_a_chart_row_forces_that_token_and_undo_brings_the_step_back(app):
    state = step(None, n=3, strategy="sample", temperature=1.5, seed=2)[-1]
    first = list(state.session.token_ids)
    record = state.steps[-1]
    other = next(c for c in sorted(record.top, key=lambda c: c.rank) if c.token_id != record.token_id)

    class Click:  # what gr.EventData carries for the chart's trigger('select', {...})
        token_id, step, pending = other.token_id, record.step, False

    out = ui.api.chart_force(state, **controls(strategy="sample", temperature=1.5, seed=2), evt=Click())
    assert out[0]["token_ids"] == first[:2] + [other.token_id] and out[-1].steps[-1].forced
    assert ui.api.undo(out[-1])[0]["token_ids"] == first

    class Stale:  # the page was one update behind: the chart showed another step
        token_id, step, pending = other.token_id, 0, False

    with pytest.raises(gr.Error, match="click the token again"):
        ui.api.chart_force(out[-1], **controls(strategy="sample", temperature=1.5, seed=2), evt=Stale())


def test_step_builds_every_view_and_follows_the_engine(app, tiny_engine):
    """One Step returns all views, and stepping reproduces the engine's own greedy run token for token."""
    out = step(None)
    result, text, dist, table, traj, status, _, candidates, permalink, state = out
    assert result["n_steps"] == 1 and len(table) == 1
    assert chart(dist)["rows"] and chart(dist)["title"][0].startswith("Step 0")
    assert traj == gr.skip()  # the trajectory is drawn only while its tab is open
    assert 'data-step="0"' in text
    assert permalink.startswith("?run=")
    for _ in range(3):
        out = step(out[-1])
    assert out[0]["token_ids"] == expected_ids(tiny_engine)[:4]
    assert len(out[3]) == 4
    assert "4</b> / 8" in out[5]


def test_step_n_stops_at_the_end_and_a_finished_run_says_so(app):
    out = step(None, n=50, max_new_tokens=5)
    assert out[0]["n_steps"] <= 5 and out[0]["done"]
    with pytest.raises(gr.Error, match="finished"):
        step(out[-1], max_new_tokens=out[0]["n_steps"])


def test_settings_change_only_the_next_step_and_identity_changes_start_a_new_run(app):
    """A slider change keeps the run (the new step records the new settings); a new seed or prompt restarts it."""
    state = step(None, strategy="sample", temperature=1.0, seed=3)[-1]
    out = step(state, strategy="sample", temperature=0.5, seed=3)
    steps = out[-1].session.steps
    assert len(steps) == 2 and steps[0].config.temperature == 1.0 and steps[1].config.temperature == 0.5
    assert step(out[-1], strategy="sample", temperature=0.5, seed=4)[0]["n_steps"] == 1
    assert step(out[-1], prompt="Paris is", strategy="sample", temperature=0.5, seed=3)[0]["n_steps"] == 1


def test_force_a_candidate_rewinds_to_that_step_and_uses_it(app, tiny_engine):
    state = step(None, n=4)[-1]
    record = state.session.steps[1]
    other = next(c for c in record.top if c.token_id != record.token_id)
    out = ui.api.force(state, **controls(), inspect_step=1, token_id=other.token_id)
    steps = out[-1].session.steps
    assert len(steps) == 2 and steps[1].forced and steps[1].token_id == other.token_id
    assert out[0]["token_ids"][:1] == expected_ids(tiny_engine)[:1]
    assert len(re.findall(r'class="dp-tok[^"]* dp-forced', out[1])) == 1


def test_force_is_refused_for_beam_search_with_one_sentence(app):
    state = step(None, strategy="beam")[-1]
    token = state.session.steps[0].top[1].token_id
    with pytest.raises(gr.Error, match="not beam search"):
        ui.api.force(state, **controls(strategy="beam"), inspect_step=0, token_id=token)


def test_undo_rewind_and_reset(app):
    state = step(None, n=5)[-1]
    ids = list(state.session.token_ids)
    assert ui.api.undo(state)[0]["token_ids"] == ids[:4]
    assert ui.api.rewind(state, 2)[0]["token_ids"] == ids[:2]
    assert step(state)[0]["token_ids"] == ids[:3]  # greedy: stepping again gives the same token back
    with pytest.raises(gr.Error, match="Cannot rewind"):
        ui.api.rewind(state, 10)
    out = ui.api.reset(state)
    assert out[0]["n_steps"] == 0 and out[-1].session is None
    with pytest.raises(gr.Error, match="no step to undo"):
        ui.api.undo(out[-1])


def test_run_streams_one_update_per_token_to_the_same_text_as_generate(app, tiny_engine):
    updates = list(ui.api.run(None, **controls(strategy="sample", temperature=0.9, seed=7)))
    final = updates[-1][0]
    assert final["done"]
    assert final["token_ids"] == expected_ids(tiny_engine, strategy="sample", temperature=0.9, seed=7)
    assert [u[0]["n_steps"] for u in updates[:-1]] == list(range(1, final["n_steps"] + 1))


def test_many_runs_streaming_at_once_send_a_few_tokens_an_update(app, tiny_engine):
    """Issue 19: every streamed update costs the server ~10 ms of its one Python thread, so the updates of the
    runs streaming at once are paced (`HostingPolicy.stream_updates_per_s` in all): with many others streaming,
    a run sends its first update, then several tokens at a time, and its last update holds the whole run."""
    from contextlib import ExitStack

    with ExitStack() as others:
        for _ in range(400):  # 401 runs streaming at 40 updates a second in all: 10 s between one run's updates
            others.enter_context(ui.shared.STREAMS.stream())
        updates = list(ui.api.run(None, **controls(strategy="sample", temperature=0.9, seed=7)))
        page = list(ui.page_api.run(None, **controls(strategy="sample", temperature=0.9, seed=7)))
    assert ui.shared.STREAMS.streaming == 0
    final = updates[-1][0]
    assert final["token_ids"] == expected_ids(tiny_engine, strategy="sample", temperature=0.9, seed=7)
    assert final["n_steps"] > 2 and [u[0]["n_steps"] for u in updates] == [1, final["n_steps"]]
    run = page[-1][9]
    assert page[-1][1] == "<!--dp-from:0-->" + views.token_spans_html(run.steps, len(run.steps) - 1)


def test_inspect_selects_a_step(app):
    state = step(None, n=4)[-1]
    out = ui.api.inspect(state, 1)
    assert out[-1].selected == 1
    assert 'data-step="1"' in out[1]
    choices = [v for _, v in out[7]["choices"]] if isinstance(out[7], dict) else [v for _, v in out[7].choices]
    assert state.session.steps[1].token_id in choices


def test_compare_streams_and_matches_generate(app, tiny_engine):
    updates = list(ui.api.compare(**controls(), num_samples=2))
    result, cards, tree, beams = updates[-1]
    assert set(result) == {"greedy", "beam", "sample", "sample 2"}
    assert result["greedy"]["token_ids"] == expected_ids(tiny_engine, strategy="greedy")
    assert "greedy" in cards and tree is not None
    assert len(beams) == 3 and beams["Winner"].iloc[0]  # the final beams, best (the output) first
    assert beams["Text"].iloc[0] == tiny_engine.decode(result["beam"]["token_ids"])


def test_permalink_replays_the_run_token_for_token(app):
    """Sampled steps, a mid-run temperature change and a forced token all come back from the link."""
    state = step(None, n=2, strategy="sample", temperature=1.2, seed=11)[-1]
    state = step(state, n=2, strategy="sample", temperature=0.4, seed=11)[-1]
    token = state.session.steps[3].top[2].token_id
    out = ui.api.force(state, **controls(strategy="sample", temperature=0.4, seed=11), inspect_step=3, token_id=token)
    state = step(out[-1], n=2, strategy="sample", temperature=0.4, seed=11)[-1]
    link = ui.permalink_query(state)
    restored = ui.restore(link.split("=", 1)[1])
    values = {name: restored[name] for name in ui.CONTROL_NAMES}
    result, new_state = restored["result"], restored["state"]
    assert result["token_ids"] == list(state.session.token_ids)
    assert [r.forced for r in new_state.session.steps] == [r.forced for r in state.session.steps]
    assert values["temperature"] == 0.4 and values["seed"] == 11 and values["prompt"] == PROMPT


def test_a_damaged_permalink_is_one_clear_sentence():
    with pytest.raises(ValueError, match="could not be read"):
        ui.decode_permalink("not-a-link")


def test_bad_settings_become_one_sentence_errors(app):
    with pytest.raises(gr.Error, match="top_p must be in"):
        step(None, top_p=0.0)
    with pytest.raises(gr.Error, match="whole number"):
        step(None, top_k=2.5)
    with pytest.raises(gr.Error, match="prompt is empty"):
        step(None, prompt="   ")


def test_user_text_is_escaped_in_html_and_errors(app):
    out = step(None, prompt="<script>alert(1)</script>")
    assert "<script>" not in out[1] and "&lt;script&gt;" in out[1]
    with pytest.raises(gr.Error) as info:
        step(None, model="<b>evil</b>")
    assert "<b>" not in info.value.message


def test_a_failed_model_load_keeps_the_previous_model(app):
    registry, loads = app
    state = step(None)[-1]
    with pytest.warns(UserWarning):
        value, status, state2, *knobs = ui.api.load_model(state, "no/such-model", progress=lambda *a, **k: None)
    assert value == "default" and "Could not load" in status and loads == ["no/such-model"]
    assert all(k == gr.skip() for k in knobs)  # the knobs stay as they were
    assert step(state2)[0]["n_steps"] == 2  # the old run goes on with the old model


def test_registry_loads_once_and_keeps_two(tiny_engine):
    loads = []
    registry = ui.ModelRegistry(loader=lambda spec, progress=None: loads.append(spec) or tiny_engine, capacity=2)
    for spec in ["a", "b", "a", "c", "a", "b"]:
        assert registry.get(spec) is tiny_engine
    assert loads == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came


def test_hosted_mode_caps_settings_and_models_in_the_handlers(app, monkeypatch):
    policy = HostingPolicy.from_env({"PLAYGROUND_HOSTED": "1", "PLAYGROUND_MAX_NEW_TOKENS": "3",
                                     "PLAYGROUND_MAX_BEAMS": "2"})  # fmt: skip
    monkeypatch.setattr(ui.shared, "POLICY", policy)
    out = step(None, n=100, max_new_tokens=500)
    assert out[0]["n_steps"] == 3 and any("capped" in n for n in out[0]["notices"])
    assert step(None, strategy="beam", num_beams=8)[-1].session.config.num_beams == 2
    with pytest.raises(gr.Error, match="only runs these models"):
        step(None, model="someone/big-model")
    assert policy.is_allowed(DEFAULT_HUB_MODEL) and policy.is_allowed("embedded")


def test_hosting_policy_from_env():
    assert not HostingPolicy.from_env({}).hosted
    p = HostingPolicy.from_env({"PLAYGROUND_HOSTED": "yes", "PLAYGROUND_ALLOWED_MODELS": "a/b, c/d"})
    assert p.allowed_models == ("a/b", "c/d") and p.is_allowed("a/b") and not p.is_allowed("e/f")
    assert not p.is_allowed("default")  # the embedded model is not in this list
    cfg, notes = HostingPolicy().apply(DecodingConfig(max_new_tokens=1000))
    assert cfg.max_new_tokens == 1000 and notes == []  # not hosted: no limits
    with pytest.raises(ValueError, match="PLAYGROUND_MAX_BEAMS"):
        HostingPolicy.from_env({"PLAYGROUND_MAX_BEAMS": "four"})


def test_explore_shows_the_inspected_step(app):
    state = step(None, n=3)[-1]
    temp_fig, knobs_fig, summary, _ = ui.api.explore(state, **controls(), temperatures="0.5, 1, 2")
    assert temp_fig is not None and knobs_fig is not None and "step 2" in summary
    with pytest.raises(gr.Error, match="above 0"):
        ui.api.explore(state, **controls(), temperatures="0, 1")


def test_export_writes_the_table_and_the_trace(app):
    state = step(None, n=3)[-1]
    csv_path, json_path = ui.api.export(state)
    with open(csv_path, encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 3
    with open(json_path, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["prompt"] == PROMPT and len(doc["trace"]["steps"]) == 3


def test_strategy_greys_out_the_controls_it_ignores():
    # the eight sampling-only knobs (temperature .. η), beams, length penalty, the force button
    sample = ui.page_api.strategy("sample")
    beam = ui.page_api.strategy("beam")
    beam_sample = ui.page_api.strategy("beam-sample")
    assert [c.interactive for c in sample] == [True] * 8 + [False, False, True]
    assert [c.interactive for c in beam] == [False] * 8 + [True, True, False]
    assert [c.interactive for c in beam_sample] == [True] * 8 + [True, True, False]


def test_bench_step_times_every_call(tiny_engine):
    from playground.measure.ui_step import bench_step

    times = bench_step(tiny_engine, PROMPT, 3)
    assert len(times) == 3 and all(t > 0 for t in times)


def test_build_demo_names_the_api_endpoints(app):
    demo = ui.build_demo()
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"step", "run", "preview", "compare", "force", "undo", "rewind", "reset", "explore", "export"} <= names


def test_a_run_the_server_lost_is_replayed_from_the_page_permalink(app, tiny_engine):
    """After a restart the server has no state for the page, but the page still shows its permalink: the next
    Step continues the same run (token for token) and says it was replayed, instead of silently starting over."""
    out = step(None, n=3, strategy="sample", temperature=1.3, seed=4)
    permalink, before = out[8], out[0]["token_ids"]
    after = ui.api.step(None, **controls(strategy="sample", temperature=1.3, seed=4), n_steps=2, permalink=permalink)
    result = after[0]
    assert result["token_ids"][:3] == before and result["n_steps"] == 5
    assert result["token_ids"] == expected_ids(tiny_engine, strategy="sample", temperature=1.3, seed=4)[:5]
    assert ui.RECOVERED in result["notices"]
    # a damaged link is ignored: a fresh run starts, as it would have without one
    fresh = ui.api.step(None, **controls(), permalink="?run=not-a-run")[0]
    assert fresh["n_steps"] == 1 and ui.RECOVERED not in fresh["notices"]
    # a live state is never replaced by the link
    state = after[-1]
    assert ui.api.step(state, **controls(strategy="sample", temperature=1.3, seed=4), permalink="?run=x")[0]["n_steps"] == 6


def test_unexpected_errors_are_one_sentence_for_the_user_and_a_traceback_in_the_log(caplog):
    with caplog.at_level("ERROR", logger="playground.ui"):
        err = ui.friendly(KeyError("boom"))
    assert "Something went wrong (KeyError)" in err.message
    assert caplog.records and caplog.records[0].exc_info is not None
    caplog.clear()
    with caplog.at_level("ERROR", logger="playground.ui"):
        ui.friendly(ValueError("top_p must be in (0, 1]."))  # the user's mistake: nothing to log
    assert not caplog.records


def test_clicking_a_token_inspects_its_step(app):
    state = step(None, n=4)[-1]

    class Click:  # what gr.EventData carries for the page's trigger('click', {step: ...})
        step = 1

    out = ui.page_api.token_click(state, 10, Click())
    assert out[9].selected == 1  # the state, before the run controls
    assert out[1].count("dp-selected") == 1 and 'data-step="1"' in out[1].split("dp-selected", 1)[1][:200]
    assert all(isinstance(x, type(gr.skip())) for x in ui.page_api.token_click(state, 10, object()))


# -- live knobs: the pending step's preview ---------------------------------------------------------------------


def preview(state, **changes):
    return ui.api.preview(state, **controls(**changes))


def test_preview_before_any_step_shows_the_first_distribution(app):
    """The page draws the next token's distribution as soon as there is a prompt: no Step needed."""
    result, text, dist, table, traj, status, _, candidates, _, state = preview(None, strategy="sample", seed=3)
    assert result["n_steps"] == 0 and not state.steps and len(table) == 0
    assert chart(dist)["pending"] is True and state.preview is not None and state.preview.step == 0
    assert [value for _, value in candidates.choices] == [c.token_id for c in sorted(state.preview.top, key=lambda c: c.rank)][:10]


def test_preview_follows_the_knobs_without_changing_the_run_and_step_reuses_its_forward(app, tiny_engine, monkeypatch):
    """A knob moved: the pending step is redrawn with it, the run keeps its steps (text, link untouched), and the
    Step that follows takes exactly the previewed token without calling the model again."""
    state = step(None, n=2, strategy="sample", seed=5)[-1]
    link = ui.permalink_query(state)
    cool = preview(state, strategy="sample", seed=5, temperature=0.3)
    state, cool_record = cool[-1], cool[-1].preview
    assert cool[0]["n_steps"] == 2 and len(state.steps) == 2 and ui.permalink_query(state) == link
    assert cool[1] == gr.skip() and cool[8] == gr.skip()  # text and permalink unchanged
    hot = preview(state, strategy="sample", seed=5, temperature=2.0)[-1].preview
    assert (cool_record.step, hot.step) == (2, 2) and hot.config.temperature == 2.0
    assert hot.entropy > cool_record.entropy  # the same pending step, flattened by the hotter knob
    calls = []
    forward = tiny_engine.forward
    monkeypatch.setattr(tiny_engine, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    taken = step(state, strategy="sample", seed=5, temperature=2.0)[-1].steps[-1]
    assert not calls and taken == hot


def test_prepare_makes_the_next_steps_forward_and_changes_nothing_shown(app, tiny_engine, monkeypatch):
    """After each step-like action the page asks for the next step's forward (/prepare) while the person reads:
    the run must not move, and the next Step must take the token it would have taken, with no model call."""
    calls = []
    forward = tiny_engine.forward
    monkeypatch.setattr(tiny_engine, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    state = step(None, strategy="sample", seed=5)[-1]
    link, n = ui.permalink_query(state), len(calls)
    assert ui.api.prepare(state) is None
    assert len(calls) == n + 1 and len(state.steps) == 1 and ui.permalink_query(state) == link
    out = step(state, strategy="sample", seed=5)
    assert len(calls) == n + 1, "the Step after /prepare called the model again"
    assert out[0]["token_ids"] == step(None, n=2, strategy="sample", seed=5)[0]["token_ids"]
    ui.api.prepare(None)  # no run yet, and a finished one: nothing to make, nothing raised
    finished = step(None, n=8)[-1]
    ui.api.prepare(finished)
    assert finished.session.done and len(finished.steps) == 8


def test_force_acts_on_the_previewed_step_without_a_rewind(app):
    state = step(None, n=2)[-1]
    state = preview(state)[-1]
    pick = sorted(state.preview.top, key=lambda c: c.rank)[3].token_id
    out = ui.api.force(state, **controls(), inspect_step=0, token_id=pick)
    steps = out[-1].steps
    assert len(steps) == 3 and steps[2].forced and steps[2].token_id == pick and not steps[0].forced


def test_preview_of_a_finished_run_says_so_and_shows_the_last_step(app):
    state = step(None, n=8)[-1]
    assert state.session.done
    out = preview(state)
    assert out[-1].preview is None and chart(out[2])["rows"]
    assert "finished" in out[5]


def test_log_scale_redraws_the_shown_chart(app):
    state = step(None)[-1]
    shown, state = ui.page_api.scale(state, True, 10)
    assert chart(shown)["log_scale"] is True and state.log_scale
    shown, state = ui.page_api.scale(state, False, 10)
    assert chart(shown)["log_scale"] is False and not state.log_scale


# -- issue 13: forcing, undo, the end of a run, refusals on the page, Stop ------------------------------------


def test_force_uses_the_settings_that_step_used_and_undo_brings_back_what_it_replaced(app):
    """Forcing step 1 of a run sampled at T 0.8 re-scored it with the sliders of the moment (T 2.0), and the
    tokens after it were gone for good. The forced step keeps its own distribution; Undo restores the run."""
    state = step(None, n=6, strategy="sample", temperature=0.8, seed=5)[-1]
    before = [(r.token_id, r.config) for r in state.session.steps]
    original = state.session.steps[1]
    other = next(c for c in original.top if c.token_id != original.token_id)
    out = ui.api.force(state, **controls(strategy="sample", temperature=2.0, seed=5), inspect_step=1,
                      token_id=other.token_id)  # fmt: skip
    forced = out[-1].session.steps[1]
    assert forced.config == original.config and forced.config.temperature == 0.8
    assert [c.raw_prob for c in forced.top] == [c.raw_prob for c in original.top]
    assert [c.token_id for c in forced.top] == [c.token_id for c in original.top]
    assert [c.prob for c in forced.top] == pytest.approx([c.prob for c in original.top], abs=1e-6)
    assert "dropped the 4 tokens after it" in out[5]
    back = ui.api.undo(out[-1])
    assert [(r.token_id, r.config) for r in back[-1].session.steps] == before
    assert not any(r.forced for r in back[-1].session.steps)
    assert ui.api.undo(back[-1])[0]["n_steps"] == 5  # an ordinary Undo after that


def test_the_page_variant_turns_a_refusal_into_one_warning_and_keeps_every_output(app):
    """API clients get a refusal as an error; the page gets one warning and every output left as it was
    (gr.skip), plus the run controls."""
    page_step = ui.page_api.step
    with pytest.raises(gr.Error):
        ui.api.step(None, **controls(model="no-such/model"))
    with pytest.warns(UserWarning, match="no-such/model"):
        out = page_step(None, **controls(model="no-such/model"))
    assert len(out) == 16 and all(x == gr.skip() for x in out)
    run = ui.page_api.run
    with pytest.warns(UserWarning):
        assert [len(o) for o in run(None, **controls(model="no-such/model"))] == [16]


def test_the_run_controls_say_when_a_run_has_finished_and_what_can_follow(app):
    state = step(None, n=3, max_new_tokens=3)[-1]
    step_btn, step_n, run, note, carry, force = ui.run_controls(state).values()
    assert state.session.done and step_btn.interactive is False and run.interactive is False
    assert "finished after 3 tokens: reached max new tokens (3)" in note.value and note.visible and carry.visible
    assert force.value == "Replace step 2 with this token"
    out = ui.api.carry_on(state, **controls(max_new_tokens=3))
    assert out[0] == 3 + ui.page.CARRY_ON_TOKENS and out[1]["n_steps"] == 4
    assert ui.run_controls(out[-1])["step"].interactive is True
    beam = step(None, n=2, strategy="beam", max_new_tokens=2)[-1]
    assert ui.run_controls(beam)["carry_on"].visible is False  # a beam search's length is fixed for its run
    with pytest.raises(gr.Error, match="cannot carry on"):
        ui.api.carry_on(beam, **controls(strategy="beam", max_new_tokens=2))


def test_the_page_sends_only_the_run_controls_that_changed(app):
    """Every control updated costs the browser a re-render at each Step: mid-run only the force button's words
    change, and what the page already shows is skipped; a fresh page (a new state) gets every control."""
    page_step = ui.page_api.step
    first = page_step(None, **controls(max_new_tokens=3))
    assert gr.skip() not in first[-6:]  # a new run: all of them
    second = page_step(first[9], **controls(max_new_tokens=3))
    step_btn, step_n, run, note, carry, force = second[-6:]
    assert (step_btn, step_n, run, note, carry) == (gr.skip(),) * 5
    assert force.value == "Replace step 1 with this token"
    last = page_step(second[9], **controls(max_new_tokens=3))[-6:]  # the run ends: the buttons go off, the note comes
    assert last[0].interactive is False and last[2].interactive is False and "max new tokens" in last[3].value
    assert last[4].visible is True and last[5].value == "Replace step 2 with this token"
    again = ui.page_api.inspect(second[9], 0, 10)[-6:]
    assert again[:5] == (gr.skip(),) * 5 and again[5].value.startswith("Replace step 0 with this token")


def test_stop_ends_a_run_after_the_step_in_progress(app):
    """Stop sets the state's flag; the streaming Run ends after its current step and says so."""
    run = ui.api.run(None, **controls(max_new_tokens=8))
    first = next(run)
    ui.api.stop(first[-1])
    rest = list(run)
    assert rest[-1][0]["n_steps"] == 1 and not rest[-1][-1].session.done
    assert "Stopped after 1 token:" in rest[-1][5]
    assert step(rest[-1][-1])[0]["n_steps"] == 2  # Step carries on; the flag is cleared


# -- issue 10: the model's own generation defaults on the page ------------------------------------------------


@pytest.fixture
def opinionated(tiny_engine, monkeypatch):
    """A registry whose default model's generation_config samples at T 0.7 with top-p 0.9, a repetition penalty
    of 1.3 and early_stopping "never" (a setting the page has no control for)."""
    import copy

    from playground.engine import Engine

    model = copy.deepcopy(tiny_engine.model)
    for name, value in dict(do_sample=True, temperature=0.7, top_p=0.9, repetition_penalty=1.3,
                            early_stopping="never").items():  # fmt: skip
        setattr(model.generation_config, name, value)
    engine = Engine(model, tiny_engine.tokenizer, name="opinionated")
    registry = ui.ModelRegistry(loader=lambda spec, progress=None: engine, default_spec="opinionated")
    registry.put("default", engine)
    monkeypatch.setattr(ui.shared, "REGISTRY", registry)
    monkeypatch.setattr(ui.shared, "POLICY", HostingPolicy())
    return engine


class _Request:
    query_params: dict = {}


def test_loading_a_model_sets_the_knobs_to_its_generation_config_and_says_so(opinionated):
    """generate() starts from the model's generation_config; the page's knobs ignored it. Loading the model
    (and opening the page on it) now sets the knobs it names, says so, and "Model's defaults" puts them back."""
    model, status, _, *knobs = ui.api.load_model(None, "default", progress=lambda *a, **k: None)
    assert knobs[:8] == ["sample", 0.7, 50, 0.9, 0.0, 1.3, 4, 1.0]  # top-k: the model sets none, so generate()'s 50
    assert knobs[8:] == [0.0, 1.0, 0.0, 0.0, 0, 0, "", "", ""]  # More knobs: the model sets none, all off
    assert "generation_config sets" in status and "Model’s defaults" in status
    assert list(ui.api.model_defaults("default")) == knobs
    page = ui.api.page_load(None, **controls(strategy="greedy", temperature=1.0), request=_Request())
    assert list(page[4:12]) == knobs[:8]  # strategy ... length penalty
    assert list(page[15:24]) == knobs[8:]  # top-h ... suppress tokens
    assert page[len(ui.CONTROL_NAMES) + 9].preview.config.temperature == 0.7  # the preview used them
    # the setting with no control on the page takes the model's value too
    state = step(None, strategy="beam", num_beams=2)[-1]
    assert state.session.config.early_stopping == "never"


def test_a_model_that_sets_no_knobs_leaves_them_as_they_are(app):
    _, status, _, *knobs = ui.api.load_model(None, "default", progress=lambda *a, **k: None)
    assert all(k == gr.skip() for k in knobs) and "generation_config" not in status


def test_a_permalink_records_its_tokens_and_a_replay_keeps_them_saying_where_it_would_differ(app, monkeypatch):
    """Issue 19: a forward shared with other visitors (or another machine) can flip a near-tie. The link records
    each chosen token; the replay recomputes every step but keeps the recorded token, and says so in one line."""
    state = step(None, n=4, strategy="sample", temperature=1.4, seed=3)[-1]
    link = ui.permalink_query(state)
    doc = ui.decode_permalink(link.split("=", 1)[1])
    assert [e["t"] for e in doc["steps"]] == list(state.session.token_ids)
    again, _ = ui.replay(doc)
    assert list(again.session.token_ids) == list(state.session.token_ids)
    assert not any(r.recomputed for r in again.steps) and not any("would have chosen" in n for n in again.session.notices)
    # a link made where step 1 came out otherwise: its token is kept, the rest replayed, and it is said once
    other = next(c.token_id for c in sorted(state.steps[1].top, key=lambda c: c.rank) if c.token_id != state.steps[1].token_id)
    doc["steps"][1]["t"] = other
    odd, _ = ui.replay(doc)
    assert odd.session.token_ids[1] == other and not odd.steps[1].forced
    assert odd.steps[1].recomputed == state.steps[1].token_id
    notes = [n for n in odd.session.notices if "would have chosen" in n]
    assert len(notes) == 1 and "step 1" in notes[0]
    assert ui.api.step(odd, **controls(strategy="sample", temperature=1.4, seed=3))[0]["n_steps"] == 5  # it goes on


def test_a_streamed_run_sends_the_page_only_its_new_tokens(app):
    """Issue 19: a streamed Run re-sent the whole coloured text at every token. The page's variant sends the text
    whole once, then the run's tokens from its first step on, each update the one before with the new tokens
    appended (what Gradio's stream sends as just those); the API's /run still gets the whole text."""
    state = step(None, n=2, max_new_tokens=10)[-1]
    updates = list(ui.page_api.run(state, **controls(max_new_tokens=10)))
    texts = [u[1] for u in updates]
    assert "dp-prompt" in texts[0] and all(t.startswith("<!--dp-from:2-->") for t in texts[1:])
    assert all(b.startswith(a) for a, b in zip(texts[1:-2], texts[2:-1]))  # appended to, until the last update
    final, last = updates[-1][9], len(updates[-1][9].steps) - 1
    # what the page's script makes of them (drop its tokens from step 2 on, put the update's): the whole text
    kept = views.token_spans_html(final.steps[:2])
    assert kept in texts[0] and texts[-1] == "<!--dp-from:2-->" + views.token_spans_html(final.steps[2:], last)
    assert kept + views.token_spans_html(final.steps[2:], last) == views.token_spans_html(final.steps, last)
    api = list(ui.api.run(step(None, n=2, max_new_tokens=10)[-1], **controls(max_new_tokens=10)))
    assert all("dp-prompt" in u[1] for u in api)


def test_a_streamed_runs_last_update_holds_every_run_control(app):
    """The page merges stream updates that come together, the later winning: a Run's end-of-run note and its
    Run button turned off, sent one update before the last, were lost in 3 runs of 12 in Chromium (the run done,
    Run still on). The last update now carries every run control, changed or not."""
    updates = list(ui.page_api.run(None, **controls(max_new_tokens=4)))
    assert len(updates) >= 2
    step_btn, step_n, run, note, carry, force = updates[-1][-6:]
    assert gr.skip() not in updates[-1][-6:]
    assert run.interactive is False and "max new tokens" in note.value and note.visible
    assert updates[-2][-6:][2] != gr.skip()  # the update before had them too (the run ended there): both hold them


# ----------------------------------------------------------------------------------------------------------
# Issue 22: the "More knobs" group (generate()'s other knobs) through the page's API


def direct_config(engine, **changes) -> DecodingConfig:
    """The DecodingConfig a step with these controls should run, built without `Controls`: the words through
    the engine's own word lists, the ids as given."""
    from playground.config import parse_token_ids, parse_word_biases, parse_words

    c = controls(**changes)
    fields = {k: v for k, v in c.items() if k in DecodingConfig.__dataclass_fields__}
    fields.update(bad_words_ids=engine.bad_words_ids(parse_words(c.get("bad_words", ""))),
                  sequence_bias=engine.sequence_bias(parse_word_biases(c.get("sequence_bias", ""))),
                  suppress_tokens=parse_token_ids(c.get("suppress_tokens", "")))  # fmt: skip
    return DecodingConfig(**fields)


MORE_KNOB_CASES = [
    dict(strategy="sample", typical_p=0.5, seed=1),
    dict(strategy="sample", top_h=0.5, seed=2),
    dict(strategy="sample", epsilon_cutoff=0.01, seed=3),
    dict(strategy="sample", eta_cutoff=0.01, seed=4),
    dict(no_repeat_ngram_size=1),
    dict(min_new_tokens=8),
    dict(bad_words="t"),
    dict(sequence_bias="t=100"),
    dict(suppress_tokens="143, 7"),
    dict(strategy="beam-sample", num_beams=3, seed=5),
    dict(strategy="sample", typical_p=0.9, epsilon_cutoff=0.001, no_repeat_ngram_size=2, bad_words="t, #",
         sequence_bias="a=2", suppress_tokens="200", top_k=20, seed=6),  # fmt: skip
]


@pytest.mark.parametrize("knobs", MORE_KNOB_CASES, ids=lambda k: ",".join(k))
def test_a_step_with_each_more_knob_through_the_api_equals_the_engine_run(app, tiny_engine, knobs):
    out = step(None, n=8, **knobs)
    config = direct_config(tiny_engine, **knobs)
    assert out[-1].session.config == config  # the knob reached the run as generate() spells it
    expected = tiny_engine.generate(tiny_engine.encode(PROMPT), config).token_ids
    assert out[0]["token_ids"] == expected


def test_the_more_knobs_do_their_work_on_the_page(app, tiny_engine):
    """Not only equal to the engine: a ban, a bias and a suppression change what the page's run writes."""
    greedy = step(None, n=8)[0]["token_ids"]  # the tiny model's greedy run: 143, 7, 7, ... 88 ('t')
    banned = step(None, n=8, bad_words=tiny_engine.decode([greedy[-1]]))[0]["token_ids"]
    assert greedy[-1] not in banned
    suppressed = step(None, n=1, suppress_tokens=str(greedy[0]))[0]["token_ids"]
    assert suppressed[0] != greedy[0]
    boosted = step(None, n=1, sequence_bias="t=100")[0]["token_ids"]
    assert tiny_engine.decode(boosted).strip() == "t"



def test_beam_sampling_is_a_beam_run_on_the_page(app):
    """beam-sample keeps beams: its beams and length are the run's identity (a new length starts a new run), its
    steps cannot be forced, and a finished one cannot carry on (its length is fixed), as for beam search."""
    run = step(None, n=2, strategy="beam-sample", num_beams=2, max_new_tokens=4)[-1]
    assert run.session.is_beam
    assert len(step(run, n=1, strategy="beam-sample", num_beams=2, max_new_tokens=5)[-1].steps) == 1  # a new run
    done = step(None, n=4, strategy="beam-sample", num_beams=2, max_new_tokens=4)[-1]
    assert done.session.done and ui.run_controls(done)["carry_on"].visible is False
    with pytest.raises(gr.Error, match="cannot carry on"):
        ui.api.carry_on(done, **controls(strategy="beam-sample", num_beams=2, max_new_tokens=4))


@pytest.mark.parametrize("bad, sentence", [
    (dict(typical_p=1.5), "typical_p must be in (0, 1]"),
    (dict(typical_p=0), "typical_p must be in (0, 1]"),
    (dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size must be an integer >= 0"),
    (dict(sequence_bias="t=lots"), "The bias for 't' is 'lots', not a number"),
    (dict(sequence_bias="t"), "is not word=bias"),
    (dict(suppress_tokens="13, x"), "'x' is not a token id"),
    (dict(suppress_tokens="99999"), "suppress_tokens names token id 99999"),
    (dict(epsilon_cutoff=1), "epsilon_cutoff must be in [0, 1)"),
])  # fmt: skip
def test_a_bad_more_knob_is_refused_in_one_sentence_and_the_page_keeps_everything(app, bad, sentence):
    state = step(None, n=2)[-1]
    with pytest.raises(gr.Error) as info:
        ui.api.step(state, **controls(**bad))
    message = str(info.value.message)
    one_sentence = message.replace("e.g. ", "").count(". ") == 0 and "\n" not in message
    assert html_unescape(sentence) in html_unescape(message) and one_sentence
    with pytest.warns(UserWarning, match=re_escape(sentence.split(" ")[0])):
        out = ui.page_api.step(state, **controls(**bad))
    assert all(x == gr.skip() for x in out[:10])  # nothing on the page changes
    assert len(state.session.steps) == 2  # nor does the run


def test_a_banned_word_that_tokenizes_to_nothing_is_refused(app, tiny_engine, monkeypatch):
    real = tiny_engine.tokenizer

    class Dropping:  # the tiny tokenizer, except that it drops "∅" altogether (as some tokenizers drop a character)
        def __call__(self, text, **kw):
            return real("", **kw) if text.strip() == "∅" else real(text, **kw)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(tiny_engine, "tokenizer", Dropping())
    with pytest.raises(gr.Error, match="encodes to no tokens"):
        ui.api.step(None, **controls(bad_words="cake, ∅"))
    with pytest.warns(UserWarning, match="encodes to no tokens"):
        ui.page_api.step(None, **controls(sequence_bias="∅=2"))


def test_a_permalink_round_trips_the_more_knobs_words_included(app, tiny_engine):
    knobs = dict(strategy="sample", typical_p=0.8, top_h=0.9, epsilon_cutoff=0.0005, eta_cutoff=0.0009,
                 no_repeat_ngram_size=3, min_new_tokens=2, bad_words="cake, t", sequence_bias="a=2.5, sea=-2",
                 suppress_tokens="200, 201", seed=9)  # fmt: skip
    state = step(None, n=4, **knobs)[-1]
    link = ui.permalink_query(state)
    replayed, shown = ui.permalink.replay(ui.decode_permalink(link.split("=", 1)[1]))
    assert replayed.session.token_ids == state.session.token_ids
    assert replayed.session.config == state.session.config
    for name, value in knobs.items():
        assert getattr(shown, name) == value, name
    # and the page, opened on the link, fills the More knobs boxes
    out = ui.handlers.restore(link.split("=", 1)[1])
    assert (out["bad_words"], out["sequence_bias"], out["suppress_tokens"]) == ("cake, t", "a=2.5, sea=-2", "200, 201")


def test_model_defaults_fill_the_more_knobs(tiny_engine, monkeypatch):
    """A model whose generation_config sets the new knobs: Load model and "Model's defaults" show them, the
    banned and biased words as text."""
    import copy

    from playground.engine import Engine

    model = copy.deepcopy(tiny_engine.model)
    banned, biased = tiny_engine.bad_words_ids(("cake",)), tiny_engine.sequence_bias((("sea", -2.0),))
    for name, value in dict(do_sample=True, num_beams=2, typical_p=0.7, epsilon_cutoff=0.0003, no_repeat_ngram_size=3,
                            min_new_tokens=4, bad_words_ids=[list(i) for i in banned],
                            sequence_bias={tuple(i): b for i, b in biased}, suppress_tokens=[5, 6]).items():  # fmt: skip
        setattr(model.generation_config, name, value)
    engine = Engine(model, tiny_engine.tokenizer, name="knobby")
    registry = ui.ModelRegistry(loader=lambda spec, progress=None: engine, default_spec="knobby")
    registry.put("default", engine)
    monkeypatch.setattr(ui.shared, "REGISTRY", registry)
    monkeypatch.setattr(ui.shared, "POLICY", HostingPolicy())
    knobs = dict(zip(ui.KNOBS, ui.api.model_defaults("default")))
    assert knobs["strategy"] == "beam-sample" and knobs["num_beams"] == 2
    assert (knobs["typical_p"], knobs["epsilon_cutoff"], knobs["no_repeat_ngram_size"], knobs["min_new_tokens"]) == (0.7, 0.0003, 3, 4)
    assert (knobs["bad_words"], knobs["sequence_bias"], knobs["suppress_tokens"]) == ("cake", "sea=-2", "5, 6")
    assert knobs["top_h"] == 0.0 and knobs["eta_cutoff"] == 0.0  # not set: off, as in generate()
    _, status, _, *loaded = ui.api.load_model(None, "default", progress=lambda *a, **k: None)
    assert dict(zip(ui.KNOBS, loaded)) == knobs
    # the controls they fill make the model's own config again
    config = ui.Controls.from_values({**controls(), **knobs}).decoding(engine=engine)
    assert config.bad_words_ids == banned and config.sequence_bias == biased and config.suppress_tokens == (5, 6)


def test_compare_sample_lanes_take_the_more_knobs(app, tiny_engine):
    """Compare's sampled lanes run with the page's More knobs (only temperature .. length penalty are the tab's own)."""
    updates = list(ui.api.compare(**controls(strategy="sample", suppress_tokens="143", min_new_tokens=8, seed=2),
                                  num_samples=2))  # fmt: skip
    result = updates[-1][0]
    for lane in ("greedy", "sample", "sample 2"):
        assert 143 not in result[lane]["token_ids"], lane
    config = direct_config(tiny_engine, strategy="sample", suppress_tokens="143", min_new_tokens=8, seed=2)
    assert result["greedy"]["token_ids"] == tiny_engine.generate(tiny_engine.encode(PROMPT), config.replace(strategy="greedy")).token_ids


def test_the_new_knobs_redraw_the_preview_and_grey_with_the_strategy():
    from playground.ui import endpoints

    triggers = {(t.component, t.event) for t in endpoints.BY_NAME["preview"].page}
    for name in ("top_h", "typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size", "min_new_tokens"):
        assert (name, "input") in triggers
    for name in ("bad_words", "sequence_bias", "suppress_tokens"):
        assert (name, "submit") in triggers and (name, "blur") in triggers


def html_unescape(s: str) -> str:
    import html

    return html.unescape(s)


def re_escape(s: str) -> str:
    import re

    return re.escape(s)


def test_the_knobs_tab_shows_what_each_more_knob_alone_keeps(app):
    status = ui.api.explore(None, **controls(strategy="sample", typical_p=0.5, epsilon_cutoff=0.01, bad_words="t"))[2]
    assert "typical-p = 0.5 keeps" in status and "epsilon-cutoff = 0.01 keeps" in status and "bad-words" in status


def test_hosted_mode_caps_the_words_before_tokenizing_them(app, tiny_engine, monkeypatch):
    monkeypatch.setattr(ui.shared, "POLICY", HostingPolicy(hosted=True, max_word_entries=3))
    words = ", ".join(f"w{i}" for i in range(40))
    out = step(None, bad_words=words, sequence_bias="a=1, b=2, c=3, d=4")
    config = out[-1].session.config
    assert config.bad_words_ids == tiny_engine.bad_words_ids(("w0", "w1", "w2"))[:3]
    assert len(config.sequence_bias) <= 3 and "Bad words are capped at 3 here (asked for 40)" in out[5]
    assert "Sequence-bias words are capped at 3 here (asked for 4)" in out[5]


# -- issue 20: finish reasons that say what happened ----------------------------------------------------------


def test_the_status_says_in_words_how_the_run_ended(app, tiny_engine):
    """The status and the end-of-run note said "max new tokens reached" / "stopped", the same words for a run
    that ran out of tokens and one not yet done: now each says what happened, with its numbers."""
    out = step(None, n=3, max_new_tokens=3)
    assert out[0]["finish_reason"] == "length" and "finished: <b>reached max new tokens (3)</b>" in out[5]
    note = ui.run_controls(out[-1])["end_note"].value
    assert "The run has finished after 3 tokens: reached max new tokens (3)." in note
    mid = step(None, n=2, max_new_tokens=8)
    assert mid[0]["finish_reason"] is None and "finished" not in mid[5] and "stopped" not in mid[5]
    eos = ui.api.force(mid[-1], **controls(), inspect_step=2, token_id=tiny_engine.vocab.eos_ids[0])
    assert eos[0]["finish_reason"] == "eos"
    assert "finished: <b>the model ended its answer (end-of-sequence token)</b>" in eos[5]


def test_a_stopped_run_says_you_stopped_it_until_it_moves_on(app):
    """After Stop the run is not finished, and said "stopped" like any unfinished run: now the status says the
    person pressed Stop, after how many tokens, and /run's result says "stopped"; a Step carries on and clears it."""
    run = ui.api.run(None, **controls(max_new_tokens=8))
    first = next(run)
    ui.api.stop(first[-1])
    last = list(run)[-1]
    assert last[0]["finish_reason"] == "stopped" and not last[0]["done"]
    assert "stopped: <b>you pressed Stop after 1 token</b>" in last[5]
    on = step(last[-1])
    assert on[0]["finish_reason"] is None and "pressed Stop" not in on[5]


def test_the_trace_file_says_whether_the_run_finished(app):
    """An export after 3 steps of 8 said finish_reason "stopped"; now null, with the steps taken, and a finished
    run's file says why it ended."""
    state = step(None, n=3, max_new_tokens=8)[-1]
    with open(ui.api.export(state)[1], encoding="utf-8") as f:
        doc = json.load(f)["trace"]
    assert doc["finish_reason"] is None and doc["n_steps"] == 3 and doc["settings"]["max_new_tokens"] == 8
    state = step(state, n=5, max_new_tokens=8)[-1]
    with open(ui.api.export(state)[1], encoding="utf-8") as f:
        doc = json.load(f)["trace"]
    assert doc["finish_reason"] in ("length", "eos") and doc["n_steps"] == len(doc["steps"])
