"""The page's handlers: plain functions from a browser's state and the control values to the values of their
outputs, so they are tested without a browser (tests/test_ui.py) and exposed as the named API endpoints
(docs/ui.md): /step, /step_n, /run, /preview, /compare, /force, /undo, /rewind, /reset, /inspect, /explore,
/export, /load_model.

Every failure reaches the person as one sentence (`state.friendly`). No handler does tensor maths (the engine
does), draws a figure or builds a table (`plots` and `views` do), or knows the page's layout (`layout`).
"""

from __future__ import annotations

import html
import logging
import random
import time
from collections.abc import Iterator

import gradio as gr

from .. import plots, views
from ..config import DecodingConfig
from ..engine import Comparison, Engine
from . import exports, shared
from .outputs import (FINISH, N_TABLE_CHOICES, STEP_OUTPUTS, distribution_chart, empty_outputs, rendered,
                      shown_record, step_outputs, trajectory_chart)  # fmt: skip
from .permalink import PERMALINK_PARAM, decode_permalink, permalink_query
from .sessions import ahead, exclusive, nonblocking
from .shared import DEFAULT_MODEL
from .state import CONTROLS, PlaygroundState, UserError, as_int, friendly, make_config, prepare

log = logging.getLogger("playground.ui")
STREAM_CHART_EVERY_S = 0.5  # a streamed run redraws the distribution chart at most this often
# The decoding knobs a model's generation_config may set, in CONTROLS order (the page's knob controls).
KNOBS = ("strategy", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "num_beams", "length_penalty")
FINAL_BEAMS_COLUMNS = ["Rank", "Score", "Tokens", "Text", "Sum log-prob", "Finished", "Winner"]  # as shown




@exclusive
def on_step(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
            num_beams, length_penalty, max_new_tokens, top_n, seed, n_steps=1, permalink="") -> tuple:  # fmt: skip
    """Take `n_steps` steps (stopping early when the run ends) with the current settings."""
    try:
        state = recover(state, permalink)
        state, config = prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                 repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        n = as_int("Steps", n_steps if n_steps not in (None, "") else 1)
        if not 1 <= n <= 1000:
            raise ValueError(f"Steps must be from 1 to 1000, got {n}.")
        state.stop = False
        state.session.step(config=config)  # the first always runs: a finished run says so
        for _ in range(n - 1):
            if state.session.done or state.stop:
                break
            state.session.step(config=config)
        state.changed()
        return step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001 - every failure reaches the user as one sentence
        raise friendly(e) from e


@exclusive
def on_run(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
           num_beams, length_penalty, max_new_tokens, top_n, seed, permalink="") -> Iterator[tuple]:  # fmt: skip
    """Step to the end of the run, yielding the views after every token (Stop cancels it)."""
    try:
        state = recover(state, permalink)
        state, config = prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                 repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        state.changed()
        state.stop = False
        drawn = 0.0  # when the distribution chart was last sent
        extend = state.session.done  # a finished run: its first step raises its one-sentence message (or extends)
        while extend or not (state.session.done or state.stop):
            extend = False
            state.session.step(config=config)
            # the text streams every token; the chart a few times a second; table and trajectory at the end
            heavy = time.perf_counter() - drawn >= STREAM_CHART_EVERY_S
            yield step_outputs(state, top_n, full=False, figures=heavy)
            if heavy:
                drawn = time.perf_counter()
        if state.stop and not state.session.done:
            n = len(state.steps)
            state.notices.append(f"Stopped after {n} token{'s' if n != 1 else ''}: Step or Run carries on from here.")
        yield step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


@exclusive
def on_preview(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
               num_beams, length_penalty, max_new_tokens, top_n, seed, permalink="") -> tuple:  # fmt: skip
    """The pending step's distribution with the current settings, without taking it: the chart, candidates and
    status as /step returns them, the run unchanged. Its forward is kept for the next Step (a knob that moves
    costs no model call)."""
    try:
        state = recover(state, permalink)
        before = state.session if isinstance(state, PlaygroundState) else None
        state, config = prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                 repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        state.selected = None
        if state.session.done:
            state.preview = None
            state.notices.append(f"The run has finished ({FINISH.get(state.session.finish_reason, 'done')}): "
                                 "the chart shows its last step. Rewind or reset to go on.")  # fmt: skip
        else:
            state.preview = state.session.preview(config)
        outputs = step_outputs(state, top_n, full=state.session is not before)  # a new run: clear table and trajectory
        if state.session is before:  # the run did not move: its text, inspector and link stay as they are
            result, _, dist, table, traj, status, _, candidates, _, state = outputs
            outputs = (result, gr.skip(), dist, table, traj, status, gr.skip(), candidates, gr.skip(), state)
        return outputs
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


@ahead
def on_prepare(state) -> None:
    """Make the next step's forward now (the page calls this after each step-like action, while the person
    reads): the next Step, or a knob's preview, then needs no model call. Nothing on the page changes. It is
    skipped while the session is busy, and a failure (out of memory, say) is left for the next Step, which
    makes the forward itself and says what went wrong."""
    if isinstance(state, PlaygroundState) and state.session is not None:
        try:
            state.session.prepare()
        except Exception:  # noqa: BLE001 - nothing is shown: the next Step meets it and reports it
            log.debug("preparing the next step failed", exc_info=True)


def on_stop(state) -> None:
    """Ask a running Run or Step ×N to end after its current step (it then sends its last update as usual)."""
    if isinstance(state, PlaygroundState):
        state.stop = True


@nonblocking
def on_trajectory_view(state, shown) -> tuple:
    """The trajectory's tab opened (draw it) or closed (stop redrawing it at each step); returns (chart, state)."""
    state = state if isinstance(state, PlaygroundState) else PlaygroundState()
    state.show_trajectory = bool(shown)
    if not state.show_trajectory:
        return gr.skip(), state
    return (*rendered(trajectory_chart(state)), state)


@nonblocking
def on_scale(state, log_scale, top_n=10) -> tuple:
    """Switch the distribution chart between a linear and a log probability axis; returns (chart, state)."""
    state = state if isinstance(state, PlaygroundState) else PlaygroundState()
    state.log_scale = bool(log_scale)
    top_n = max(1, as_int("Candidates shown", top_n or 10))
    return distribution_chart(state, top_n), state


@exclusive
def on_force(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
             num_beams, length_penalty, max_new_tokens, top_n, seed, inspect_step, token_id, permalink="") -> tuple:  # fmt: skip
    """Use `token_id` at step `inspect_step` (0-based, as in the table) instead: rewind to just before it and force
    the token, with the settings that step used (its distribution stays the one it had). The pending step is
    forced with the current settings. Undo right after brings back what was replaced."""
    try:
        state = recover(state, permalink)
        if not isinstance(state, PlaygroundState) or state.session is None or not (state.steps or state.preview):
            raise ValueError("Take a step first, then pick one of its candidates to force.")
        if token_id in (None, ""):
            raise ValueError("Pick a candidate token to use instead.")
        token = state.session.engine.check_token(as_int("Token id", token_id))
        at = len(state.steps) if shown_record(state)[1] else as_int("Step", inspect_step)
        if not 0 <= at <= len(state.steps):
            raise ValueError(f"There is no step {at}: this run has steps 0 to {len(state.steps) - 1}.")
        replaced = [(r.config, r.token_id if r.forced else None) for r in state.steps[at:]]
        if replaced:  # an earlier step: its own settings, then the steps after it are dropped
            config = replaced[0][0]
            state.session.rewind(at)
        else:  # the pending step needs no rewind (and keeps its previewed forward)
            config = make_config(strategy, temperature, top_k, top_p, min_p, repetition_penalty, num_beams,
                                 length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
            config, _ = shared.POLICY.apply(config)
        state.session.step(config=config, force_token=token)
        state.changed()
        if replaced:
            state.replaced = (at, replaced)
            dropped = len(replaced) - 1
            state.notices.append(f"Replaced step {at}" + (f" and dropped the {dropped} token{'s' if dropped != 1 else ''} "
                                 "after it" if dropped else "") + ": Undo brings back what was there.")  # fmt: skip
        return step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


@exclusive
def on_rewind(state, to_step, top_n=10, permalink="") -> tuple:
    """Keep the first `to_step` generated tokens and drop the rest (0 = back to the prompt)."""
    try:
        state = recover(state, permalink)
        if not isinstance(state, PlaygroundState) or state.session is None:
            raise ValueError("There is no run to rewind yet: take a step first.")
        state.session.rewind(as_int("Step", to_step))
        state.changed()
        return step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


@exclusive
def on_undo(state, top_n=10, permalink="") -> tuple:
    """Take back the last step; right after a force, take back the force instead: the replaced step and the
    tokens it dropped come back (the same settings and, for a sampled run, the same draws)."""
    state = recover(state, permalink)
    if not isinstance(state, PlaygroundState) or not state.steps:
        raise UserError("There is no step to undo.")
    if state.replaced is None or len(state.steps) != state.replaced[0] + 1:
        return on_rewind(state, len(state.steps) - 1, top_n)
    try:
        at, replaced = state.replaced
        state.session.rewind(at)
        for config, forced in replaced:
            state.session.step(config=config, force_token=forced)
        state.changed()
        state.notices.append(f"Undid the force: step {at} and the {len(replaced) - 1} tokens after it are back.")
        return step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


@exclusive
def on_reset(state=None) -> tuple:
    """Forget the run (the model stays loaded); the next Step starts from the prompt."""
    model = state.model if isinstance(state, PlaygroundState) else DEFAULT_MODEL
    return empty_outputs(PlaygroundState(model=model))


@nonblocking
def on_inspect(state, inspect_step, top_n=10) -> tuple:
    """Show step `inspect_step` (0-based, as in the table): its distribution, candidates and highlight in the text."""
    try:
        if not isinstance(state, PlaygroundState) or not state.steps:
            return step_outputs(state if isinstance(state, PlaygroundState) else PlaygroundState(), top_n, full=False)
        at = min(max(as_int("Step", inspect_step), 0), len(state.steps) - 1)
        state.selected = at
        return step_outputs(state, top_n, full=False)
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


def on_token_click(state, top_n, evt: gr.EventData) -> tuple:
    """A click on a generated token in the coloured text inspects its step (the page sends the span's data-step)."""
    step = getattr(evt, "step", None)
    if step is None:
        return tuple(gr.skip() for _ in STEP_OUTPUTS)  # a click beside the tokens
    return on_inspect(state, step, top_n)


def on_strategy(strategy: str) -> tuple:
    """Grey out the controls the strategy ignores: (temperature, top_k, top_p, min_p, num_beams, length_penalty,
    force button)."""
    sample = strategy == "sample"
    beam = strategy == "beam"
    return (*(gr.Slider(interactive=sample) for _ in range(4)), gr.Slider(interactive=beam), gr.Slider(interactive=beam),
            gr.Button(interactive=not beam))  # fmt: skip


def on_new_seed() -> int:
    return random.randrange(1, 2**31)


@exclusive
def on_load_model(state, model, progress=gr.Progress()) -> tuple:
    """Load `model` (a Hub id, a folder or "default"); on failure warn and keep the previous one.
    Returns (model picker value, model status html, state, *the KNOBS' values): where the model's
    generation_config sets decoding settings the knobs take them (saying so), as generate() would; otherwise
    they stay as they are."""
    state = state if isinstance(state, PlaygroundState) else PlaygroundState()
    model = (model or DEFAULT_MODEL).strip() or DEFAULT_MODEL
    try:
        started = time.perf_counter()
        progress(0.1, desc=f"Loading {model}…")
        engine = shared.engine_for(model, progress=lambda msg: progress(0.5, desc=msg))
        progress(1.0, desc="Loaded")
    except Exception as e:  # noqa: BLE001 - a failed load leaves the previous model in place
        msg = str(friendly(e).message)
        gr.Warning(msg)
        return (state.model, f'<div class="dp-notice">Could not load that model; still using {html.escape(state.model)}. '
                f"{msg}</div>", state, *(gr.skip() for _ in KNOBS))  # fmt: skip
    state.model = model
    chat = "chat template" if engine.has_chat_template else "no chat template"
    status = (f'<div class="dp-status">Loaded <code>{html.escape(engine.name)}</code> ({engine.vocab_size:,} tokens, '
              f"{chat}) in {time.perf_counter() - started:.1f} s.</div>")  # fmt: skip
    knobs = model_knobs(engine) if sets_knobs(engine) else tuple(gr.skip() for _ in KNOBS)  # else as they are
    return (model, status + model_defaults_html(engine), state, *knobs)


@exclusive
def on_model_defaults(model) -> tuple:
    """The KNOBS' values as generate() would start for `model`: its generation_config's where it sets them,
    else generate()'s own defaults."""
    try:
        return model_knobs(shared.engine_for(model))
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


def model_knobs(engine: Engine) -> tuple:
    """The KNOBS' values from `engine.default_config()`: the model's where it sets them, else generate()'s."""
    config = engine.default_config()
    return tuple(getattr(config, k) for k in KNOBS)


def sets_knobs(engine: Engine) -> bool:
    """Whether the model's generation_config sets any of the knobs."""
    return any(k in engine.model_defaults for k in KNOBS)


def model_defaults_html(engine: Engine) -> str:
    """What the model's generation_config sets (and what of it the playground leaves out), as status lines."""
    notes = [engine.model_defaults_notice(), *engine.model_defaults_notices]
    if notes[0] is not None:
        notes[0] += " The knobs show them; “Model’s defaults” puts them back."
    return "".join(f'<div class="dp-notice">{html.escape(n)}</div>' for n in notes if n)


# Compare and teaching handlers


@exclusive
def on_compare(prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
               num_beams, length_penalty, max_new_tokens, top_n, seed, num_samples=2) -> Iterator[tuple]:  # fmt: skip
    """Greedy, beam and `num_samples` sampled runs side by side, streamed per step.
    Yields (result, cards html, beam tree figure, final beams table); the tree and the table come at the end."""
    try:
        config = make_config("sample", temperature, top_k, top_p, min_p, repetition_penalty, num_beams,
                             length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        config, notices = shared.POLICY.apply(config)
        n, more = shared.POLICY.cap_samples(as_int("Samples", num_samples))
        for msg in notices + more:
            gr.Warning(msg)
        engine = shared.engine_for(model)
        chat = bool(chat)
        ids = shared.encode_prompt(engine, prompt, chat=chat, system=(system or None) if chat else None)
        comparison = Comparison(engine, ids, config, num_samples=n)
        step = 0
        while not comparison.done:
            comparison.step()
            step += 1
            if step % 4 == 0:  # stream every few steps: the cards are cheap, the tree less so
                traces = comparison.traces()
                yield compare_result(traces), views.compare_html(traces), gr.skip(), gr.skip()
        traces = comparison.traces()
        beams = views.final_beams_table(traces["beam"], decode=engine.decode).round({"Score": 4, "Sum log-prob": 3})
        beams = beams[FINAL_BEAMS_COLUMNS]  # the score beside the rank, the long text after it
        yield (compare_result(traces), views.compare_html(traces), *rendered(plots.beam_tree_figure(traces["beam"])),
               beams)  # fmt: skip
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


def compare_result(traces) -> dict:
    return {
        label: {"text": t.text, "token_ids": list(t.token_ids), "finish_reason": t.finish_reason,
                "sequence_logprob": t.sequence_logprob, "perplexity": t.perplexity, "n_steps": len(t.steps)}
        for label, t in traces.items()
    }  # fmt: skip


def parse_temperatures(text: str) -> tuple[float, ...]:
    """"0.5, 1, 1.5" -> (0.5, 1.0, 1.5); ValueError with one sentence if it is not that."""
    parts = [p for p in (text or "").replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("Give one or more temperatures, e.g. 0.5, 1, 1.5, 2.")
    try:
        temps = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"Temperatures must be numbers separated by commas, got {text!r}.") from None
    if len(temps) > 8:
        raise ValueError("Give at most 8 temperatures.")
    if any(not (t > 0 and t <= 10) for t in temps):
        raise ValueError("Each temperature must be above 0 and at most 10.")
    return temps


@exclusive
def on_explore(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
               num_beams, length_penalty, max_new_tokens, top_n, seed, temperatures="0.5, 1, 1.5, 2") -> tuple:  # fmt: skip
    """The teaching views of the inspected step (or the next step, before any): (temperature figure, knobs
    figure, summary html, state)."""
    try:
        temps = parse_temperatures(temperatures)
        state, config = prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                 repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        record, pending = shown_record(state)
        at = None if record is None or pending else record.step
        exploration = state.session.explore(at, temperatures=temps, top_n=20, config=config)
        where = f"step {at}" if at is not None else "the next step"
        knobs = " · ".join(f"{k.knob.replace('_', '-')} = {k.setting:g} keeps {k.kept_count:,} tokens ({k.kept_mass:.1%})"
                           for k in exploration.knobs)  # fmt: skip
        summary = f'<div class="dp-status">Exploring <b>{where}</b>. {html.escape(knobs)}</div>'
        return *rendered(plots.temperature_figure(exploration), plots.knobs_figure(exploration)), summary, state
    except Exception as e:  # noqa: BLE001
        raise friendly(e) from e


@nonblocking
def on_export(state, top_n=10) -> tuple[str, str]:
    """Write the step table (CSV) and the full trace (JSON) to files; returns their paths."""
    if not isinstance(state, PlaygroundState) or state.session is None or not state.steps:
        raise UserError("Take a step first: there is nothing to export yet.")
    folder = exports.new_folder()
    csv_path = folder / "steps.csv"
    json_path = folder / "trace.json"
    table = views.step_table_data(state.prompt_text, state.steps, n_choices=N_TABLE_CHOICES)
    csv_path.write_text(views.step_table_csv(table), encoding="utf-8")
    extra = {"app": "Decoding Playground", "prompt": state.prompt, "chat": state.chat, "system": state.system,
             "prompt_text": state.prompt_text, "permalink": permalink_query(state)}  # fmt: skip
    json_path.write_text(views.trace_json(state.session.trace(), extra=extra), encoding="utf-8")
    return str(csv_path), str(json_path)



# ----------------------------------------------------------------------------------------------------------
# Opening a permalink: its recipe replayed token for token


def restore(query_value: str) -> tuple:
    """Replay a permalink: (control values in CONTROLS order..., *step_outputs)."""
    state, current, controls = replay(decode_permalink(query_value))
    values = [controls[k] for k in ("prompt", "model", "chat", "system")] + list(config_controls(current))
    return (*values, *step_outputs(state, current.top_n))


RECOVERED = ("The server had lost this page's run (it restarted, or the session expired), so the run was "
             "replayed from its permalink.")  # fmt: skip


def recover(state, permalink: str | None):
    """The page's state, or, when the server no longer has its run (after a restart) but the page still shows
    the run's permalink, that run replayed, with a notice saying so. A link that cannot be replayed is
    ignored: the next step starts a fresh run, as it would have anyway."""
    if (isinstance(state, PlaygroundState) and state.session is not None) or not permalink:
        return state
    try:
        state, _, _ = replay(decode_permalink(str(permalink).split(f"{PERMALINK_PARAM}=", 1)[-1]))
    except Exception:  # noqa: BLE001
        return state
    state.session.notices.append(RECOVERED)
    gr.Warning(RECOVERED)
    return state


def replay(doc: dict) -> tuple[PlaygroundState, DecodingConfig, dict]:
    """A permalink's recipe run again: (state, the settings of its last step, its controls)."""
    config = DecodingConfig.from_dict(doc["config"])
    controls = {
        "prompt": str(doc.get("prompt", "")), "model": str(doc.get("model") or DEFAULT_MODEL),
        "chat": bool(doc.get("chat")), "system": str(doc.get("system") or ""),
    }  # fmt: skip
    state, _ = prepare(None, *controls.values(), *config_controls(config))
    current = state.session.config
    for entry in doc["steps"][: current.max_new_tokens]:
        if not isinstance(entry, dict):
            raise ValueError("This link's run could not be read: a step is malformed.")
        if entry.get("c"):
            current = DecodingConfig.from_dict({**current.to_dict(), **entry["c"]})
            current, _ = shared.POLICY.apply(current)
        state.session.step(config=current, force_token=entry.get("f"))
        if state.session.done:
            break
    return state, current, controls


def config_controls(config: DecodingConfig) -> tuple:
    return (config.strategy, config.temperature, config.top_k, config.top_p, config.min_p, config.repetition_penalty,
            config.num_beams, config.length_penalty, config.max_new_tokens, config.top_n, config.seed)  # fmt: skip


@exclusive
def on_page_load(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
                 num_beams, length_penalty, max_new_tokens, top_n, seed, request: gr.Request) -> tuple:  # fmt: skip
    """Open a permalink when the page's URL carries one; otherwise set the knobs to the default model's
    generation_config where it sets them, and preview the first step of the page's prompt, so its distribution
    is on screen before any Step."""
    controls = dict(zip(CONTROLS, (prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                   repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)))  # fmt: skip
    n_outputs = len(CONTROLS) + len(STEP_OUTPUTS)
    value = dict(request.query_params).get(PERMALINK_PARAM) if request is not None else None
    try:
        if value:
            return restore(value)
        engine = shared.engine_for(model)
        shown = dict.fromkeys(CONTROLS, gr.skip())
        if sets_knobs(engine):
            knobs = dict(zip(KNOBS, model_knobs(engine)))
            shown.update(knobs)
            controls.update(knobs)
        return (*shown.values(), *on_preview(state, *controls.values()))
    except Exception as e:  # noqa: BLE001
        gr.Warning(str(friendly(e).message))
        return tuple(gr.skip() for _ in range(n_outputs))


# ----------------------------------------------------------------------------------------------------------
# Benchmark hook




def bench_step(engine: Engine, prompt: str, n_steps: int) -> list[float]:
    """Run the real Step handler `n_steps` times on a fresh session for `engine`; each call's server-side
    latency in seconds (handler in, every output out: figures rendered to PNG as gr.Plot sends them, HTML and
    table included)."""
    spec = f"bench:{engine.name}"
    shared.REGISTRY.put(spec, engine)
    controls = dict(prompt=prompt, model=spec, chat=False, system="", strategy="sample", temperature=0.8, top_k=50,
                    top_p=0.95, min_p=0.0, repetition_penalty=1.0, num_beams=4, length_penalty=1.0,
                    max_new_tokens=max(n_steps, 1), top_n=10, seed=0)  # fmt: skip
    state, times = None, []
    for _ in range(n_steps):
        started = time.perf_counter()
        outputs = on_step(state, **controls)
        times.append(time.perf_counter() - started)
        state = outputs[-1]
    return times

