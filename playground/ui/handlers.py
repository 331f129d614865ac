"""The handlers: one short, plain function per event, from a browser's run (`PlaygroundState`) and the request's
`Controls` (or the few values it takes) to the values of its outputs, as a dict by output name. An output left
out keeps what the page shows.

Every model call goes through `gpu` (one `spaces.GPU` call on ZeroGPU, the session's own method elsewhere),
and a handler keeps the session it gives back. A handler neither calls another handler nor knows how it is
served: the session's turn, recovering a lost run
from its permalink, refusals turned into one sentence, and the page's run controls are `requests.serve`'s
job, and which components feed it is the endpoints' table's (`endpoints.py`). No handler does tensor maths
(the engine does), draws a figure or builds a table (`plots` and `views` do), or knows the page's layout.
"""

from __future__ import annotations

import html
import logging
import random
import time
from collections.abc import Iterator

import gradio as gr

from .. import gpu, plots, views
from ..engine import Engine
from . import exports, shared
from .controls import CONTROL_NAMES, DEFAULT_MODEL, KNOBS, SAMPLING_ONLY, Controls, as_int, config_field, control_values
from .outputs import ENDS_STREAM, N_TABLE_CHOICES, distribution_chart, empty_outputs, finish_text, rendered, shown_record, step_outputs, trajectory_chart  # fmt: skip
from .page import carry_on_tokens
from .permalink import PERMALINK_PARAM, decode_permalink, permalink_url, replay
from .state import PlaygroundState, UserError, as_run, friendly, next_config, prepare

log = logging.getLogger("playground.ui")
STREAM_CHART_EVERY_S = 0.5  # a streamed run redraws the distribution chart at most this often
MAX_STEPS_A_REQUEST = 1000
COMPARE_STREAM_STEPS = 4  # Compare sends its cards every this many steps (one GPU call each on ZeroGPU)


# ----------------------------------------------------------------------------------------------------------
# Stepping


def on_step(run, controls: Controls, n_steps=1) -> dict:
    """Take `n_steps` steps (stopping early when the run ends) with the current settings, in one answer."""
    run, config = prepare(run, controls)
    _take_steps(run, config, _steps_asked(n_steps))
    return step_outputs(run, controls.top_n)


def on_step_n(run, controls: Controls, n_steps=5) -> Iterator[dict]:
    """Take `n_steps` steps with the current settings, yielding the views after every token, as Run does
    (stopping early when the run ends, or at Stop, after the current step)."""
    n = _steps_asked(n_steps)
    run, config = prepare(run, controls)
    yield from _streamed(run, config, controls.top_n, n)


def _steps_asked(n_steps) -> int:
    n = as_int("Steps", n_steps if n_steps not in (None, "") else 1)
    if not 1 <= n <= MAX_STEPS_A_REQUEST:
        raise ValueError(f"Steps must be from 1 to {MAX_STEPS_A_REQUEST}, got {n}.")
    return n


def on_carry_on(run, controls: Controls) -> dict:
    """Raise a finished run's max new tokens (by CARRY_ON_TOKENS) and take the next step."""
    limit = carry_on_tokens(run) if isinstance(run, PlaygroundState) else None
    if limit is None:
        raise ValueError("This run cannot carry on: it did not stop at its length limit.")
    controls = controls.replace(max_new_tokens=max(limit, controls.max_new_tokens))
    run, config = prepare(run, controls)
    _take_steps(run, config, 1)
    return {**step_outputs(run, controls.top_n), "max_new_tokens": controls.max_new_tokens}


def _take_steps(run: PlaygroundState, config, n: int) -> None:
    """`n` steps (the first always runs: a finished run says so), fewer when the run ends; every `gpu.RUN_CHUNK`
    steps a GPU call of its own (ZeroGPU's calls stay short)."""
    taken = 0
    while taken == 0 or (taken < n and not run.session.done):
        run.session, records = gpu.step(run.session, config, 1 if taken == 0 else min(n - taken, gpu.RUN_CHUNK))
        taken += len(records)
    run.changed()


def on_run(run, controls: Controls) -> Iterator[dict]:
    """Step to the end of the run, yielding the views as it goes (Stop ends it after the current step): every
    token when it streams alone, a few tokens an update when many runs stream at once (`pacing`)."""
    run, config = prepare(run, controls)
    yield from _streamed(run, config, controls.top_n)


def _streamed(run: PlaygroundState, config, top_n: int, limit: int | None = None) -> Iterator[dict]:
    """Step to the end of the run (or `limit` steps), yielding the views as it goes: the text and status after
    every GPU call when the run streams alone, every few tokens when many runs stream at once (`pacing`); the
    chart a few times a second; the inspector, candidates, table and trajectory at the end. The first call
    always runs (a finished run raises its one-sentence message, or extends); Stop is heard between calls."""
    run.changed()
    run.stop.start()
    drawn = 0.0  # when the distribution chart was last sent
    base, shown = len(run.steps), None  # the page's text is sent whole once, then from the run's first step on
    with shared.STREAMS.stream() as stream:
        for run.session, _ in gpu.run(run.session, config, stop=lambda: run.stop.pressed, limit=limit):
            if not stream.due(shared.POLICY.stream_updates_per_s):  # many runs stream: this token waits
                continue
            update = step_outputs(run, top_n, full=False, figures=False, text_from=shown)
            if time.perf_counter() - drawn >= STREAM_CHART_EVERY_S:
                update["distribution"], drawn = distribution_chart(run, top_n), time.perf_counter()
            yield update
            shown = base
    if run.stop.pressed and not run.session.done and (limit is None or len(run.steps) - base < limit):
        n = len(run.steps)
        run.session.stop()  # its finish reason says so ("stopped") until it moves again
        run.say(f"Stopped after {n} token{'s' if n != 1 else ''}: Step or Run carries on from here.")
    run.stop.pressed = False
    yield {**step_outputs(run, top_n, text_from=shown), ENDS_STREAM: True}  # holds all the page ends with


def on_stop(run) -> dict:
    """Ask a running Run or Step ×N to end after its current step (it then sends its last update as usual)."""
    if isinstance(run, PlaygroundState):
        run.stop.press()
    return {}


def on_preview(run, controls: Controls) -> dict:
    """The pending step's distribution with the current settings, without taking it: the chart, candidates and
    status as /step returns them, the run unchanged. Its forward is kept for the next Step (a knob that moves
    costs no model call)."""
    return _preview(run, controls)


def _preview(run, controls: Controls) -> dict:
    before = run if isinstance(run, PlaygroundState) and run.session is not None else None
    run, config = prepare(run, controls)  # the same run, or a new one when its identity changed
    run.selected = None
    if run.session.done:
        run.preview = None
        run.say(f"The run has finished ({finish_text(run.session)}): "
                "the chart shows its last step. Rewind or reset to go on.")  # fmt: skip
    else:
        run.session, run.preview = gpu.preview(run.session, config)
    if run is not before:  # a new run: every view follows (the table and trajectory are cleared)
        return step_outputs(run, controls.top_n)
    out = step_outputs(run, controls.top_n, full=False)  # the run did not move: text and link stay (the inspector
    return {k: v for k, v in out.items() if k not in ("text", "permalink")}  # moves on to the pending step)


def on_prepare(run) -> dict:
    """Make the next step's forward now (the page calls this after each step-like action, while the person
    reads): the next Step, or a knob's preview, then needs no model call. Nothing on the page changes. A failure
    (out of memory, say) is left for the next Step, which makes the forward itself and says what went wrong."""
    if isinstance(run, PlaygroundState) and run.session is not None:
        try:
            run.session = gpu.prepare(run.session)
        except Exception:  # noqa: BLE001 - nothing is shown: the next Step meets it and reports it
            log.debug("preparing the next step failed", exc_info=True)
    return {}


# ----------------------------------------------------------------------------------------------------------
# Going back, forcing, looking


def on_force(run, controls: Controls, inspect_step, token_id) -> dict:
    """Use `token_id` at step `inspect_step` (0-based, as in the table) instead: rewind to just before it and force
    the token, with the settings that step used (its distribution stays the one it had). The pending step is
    forced with the current settings. Undo right after brings back what was replaced."""
    if not isinstance(run, PlaygroundState) or run.session is None or not (run.steps or run.preview):
        raise ValueError("Take a step first, then pick one of its candidates to force.")
    at = len(run.steps) if shown_record(run)[1] else as_int("Step", inspect_step)
    return _forced(run, controls, at, token_id)


def on_chart_force(run, controls: Controls, evt: gr.EventData) -> dict:
    """A click (or Enter) on a row of the distribution chart takes that token at the step the chart shows: a
    force, as the force button makes it (its words are the chart's tip; Undo brings back what it replaced)."""
    record, pending = shown_record(run) if isinstance(run, PlaygroundState) else (None, False)
    if record is None:
        raise ValueError("Take a step first, then pick one of its candidates to force.")
    if bool(getattr(evt, "pending", False)) != pending or (not pending and getattr(evt, "step", None) != record.step):
        raise ValueError("The chart changed as you clicked: click the token again.")
    return _forced(run, controls, len(run.steps) if pending else record.step, getattr(evt, "token_id", None))


def _forced(run: PlaygroundState, controls: Controls, at: int, token_id) -> dict:
    """Force `token_id` at step `at` (`len(steps)`: the pending step, with the current settings)."""
    if token_id in (None, ""):
        raise ValueError("Pick a candidate token to use instead.")
    token = run.session.engine.check_token(as_int("Token id", token_id))
    if not 0 <= at <= len(run.steps):
        raise ValueError(f"There is no step {at}: this run has steps 0 to {len(run.steps) - 1}.")
    replaced = [(r.config, r.token_id if r.forced else None) for r in run.steps[at:]]
    if replaced:  # an earlier step: rewound to, with its own settings; the steps after it are dropped
        run.session, _ = gpu.force(run.session, at, token, replaced[0][0])
    else:  # the pending step needs no rewind (and keeps its previewed forward)
        run.session, _ = gpu.step(run.session, next_config(controls)[0], 1, force_token=token)
    run.changed()
    if replaced:
        run.replaced = (at, replaced)
        dropped = len(replaced) - 1
        run.say(f"Replaced step {at}" + (f" and dropped the {dropped} token{'s' if dropped != 1 else ''} after it"
                if dropped else "") + ": Undo brings back what was there.")  # fmt: skip
    return step_outputs(run, controls.top_n)


def on_rewind(run, to_step, top_n=10) -> dict:
    """Keep the first `to_step` generated tokens and drop the rest (0 = back to the prompt)."""
    if not isinstance(run, PlaygroundState) or run.session is None:
        raise ValueError("There is no run to rewind yet: take a step first.")
    run.session.rewind(as_int("Step", to_step))
    run.changed()
    return step_outputs(run, top_n)


def on_undo(run, top_n=10) -> dict:
    """Take back the last step; right after a force, take back the force instead: the replaced step and the
    tokens it dropped come back (the same settings and, for a sampled run, the same draws)."""
    if not isinstance(run, PlaygroundState) or not run.steps:
        raise UserError("There is no step to undo.")
    replaced = run.replaced if run.replaced is not None and len(run.steps) == run.replaced[0] + 1 else None
    if replaced is None:
        run.session.rewind(len(run.steps) - 1)
    else:
        run.session, _ = gpu.replay(run.session, *replaced)  # the same settings and, sampled, the same draws
    run.changed()
    if replaced is not None:
        run.say(f"Undid the force: step {replaced[0]} and the {len(replaced[1]) - 1} tokens after it are back.")
    return step_outputs(run, top_n)


def on_reset(run) -> dict:
    """Forget the run (the model stays loaded); the next Step starts from the prompt."""
    if not isinstance(run, PlaygroundState):
        return empty_outputs(PlaygroundState())
    return empty_outputs(PlaygroundState(model=run.model, stop=run.stop))  # the page's Stop reaches the next run


def on_inspect(run, inspect_step, top_n=10) -> dict:
    """Show step `inspect_step` (0-based, as in the table): its distribution, candidates and highlight in the text."""
    return _inspected(run, inspect_step, top_n)


def on_token_click(run, top_n, evt: gr.EventData) -> dict:
    """A click on a generated token in the coloured text inspects its step (the page sends the span's data-step);
    a click beside the tokens changes nothing."""
    step = getattr(evt, "step", None)
    return {} if step is None else _inspected(run, step, top_n)


def _inspected(run, step, top_n) -> dict:
    run = as_run(run)
    at = as_int("Step", step)
    if run.preview is not None and at >= len(run.steps):  # the step after the last: the pending step's preview
        run.selected = None
    elif run.steps:
        run.selected = min(max(at, 0), len(run.steps) - 1)
    return step_outputs(run, top_n, full=False)


def on_trajectory_view(run, shown) -> dict:
    """The trajectory's tab opened (draw it) or closed (stop redrawing it at each step)."""
    run = as_run(run)
    run.show_trajectory = bool(shown)
    if not run.show_trajectory:
        return {"state": run}
    (chart,) = rendered(trajectory_chart(run))
    return {"trajectory": chart, "state": run}


def on_scale(run, log_scale, top_n=10) -> dict:
    """Switch the distribution chart between a linear and a log probability axis."""
    run = as_run(run)
    run.log_scale = bool(log_scale)
    return {"distribution": distribution_chart(run, max(1, as_int("Candidates shown", top_n or 10))), "state": run}


# ----------------------------------------------------------------------------------------------------------
# The settings column


def on_strategy(strategy) -> dict:
    """Grey out the controls the strategy ignores (and the force button, which beam search cannot use): beam
    sampling uses the sampling knobs and the beams."""
    sample, beam = strategy in ("sample", "beam-sample"), strategy in ("beam", "beam-sample")
    return {**{k: gr.Slider(interactive=sample) for k in SAMPLING_ONLY},
            **{k: gr.Slider(interactive=beam) for k in ("num_beams", "length_penalty")},
            "force": gr.Button(interactive=not beam)}  # fmt: skip


def on_chat(chat) -> dict:
    """The system message is a chat's: shown in chat mode only."""
    return {"system": gr.Textbox(visible=bool(chat))}


def on_new_seed() -> dict:
    return {"seed": random.randrange(1, 2**31)}


def on_load_model(run, model, progress=None) -> dict:
    """Load `model` (a Hub id, a folder or "default"); on failure warn and keep the previous one. Where the
    model's generation_config sets decoding settings the knobs take them (saying so), as generate() would."""
    run = as_run(run)
    model = (model or DEFAULT_MODEL).strip() or DEFAULT_MODEL
    progress = progress or (lambda *a, **k: None)
    try:
        started = time.perf_counter()
        progress(0.1, desc=f"Loading {model}…")
        engine = shared.engine_for(model, progress=lambda msg: progress(0.5, desc=msg))
        progress(1.0, desc="Loaded")
    except Exception as e:  # noqa: BLE001 - a failed load leaves the previous model in place
        msg = str(friendly(e).message)
        gr.Warning(msg)
        return {"model": run.model, "state": run, "model_status": f'<div class="dp-notice">Could not load that model; '
                f"still using {html.escape(run.model)}. {msg}</div>"}  # fmt: skip
    run.model = model
    chat = "chat template" if engine.has_chat_template else "no chat template"
    status = (f'<div class="dp-status">Loaded <code>{html.escape(engine.name)}</code> ({engine.vocab_size:,} tokens, '
              f"{chat}) in {time.perf_counter() - started:.1f} s.</div>")  # fmt: skip
    knobs = model_knobs(engine) if sets_knobs(engine) else {}  # else as they are
    return {"model": model, "model_status": status + model_defaults_html(engine), "state": run, **knobs}


def on_model_defaults(model) -> dict:
    """The knobs as generate() would start for `model`: its generation_config's where it sets them, else
    generate()'s own defaults."""
    return model_knobs(shared.engine_for(model))


def model_knobs(engine: Engine) -> dict:
    """The KNOBS' values from `engine.default_config()`: the model's where it sets them, else generate()'s
    (banned and biased words as the text their boxes take)."""
    return control_values(engine.default_config(), KNOBS, engine)


def sets_knobs(engine: Engine) -> bool:
    """Whether the model's generation_config sets any of the knobs."""
    return any(config_field(k) in engine.model_defaults for k in KNOBS)


def model_defaults_html(engine: Engine) -> str:
    """What the model's generation_config sets (and what of it the playground leaves out), as status lines."""
    notes = [engine.model_defaults_notice(), *engine.model_defaults_notices]
    if notes[0] is not None:
        notes[0] += " The knobs show them; “Model’s defaults” puts them back."
    return "".join(f'<div class="dp-notice">{html.escape(n)}</div>' for n in notes if n)


# ----------------------------------------------------------------------------------------------------------
# Compare, Knobs, exports


def on_compare(controls: Controls, num_samples=2) -> Iterator[dict]:
    """Greedy, beam and `num_samples` sampled runs side by side, streamed every few steps; the beam tree and
    the final beams table come at the end."""
    config, notices = next_config(controls, strategy="sample")
    n, more = shared.POLICY.cap_samples(as_int("Samples", num_samples))
    for msg in notices + more:
        gr.Warning(msg)
    engine = shared.engine_for(controls.model)
    system = (controls.system or None) if controls.chat else None
    ids = shared.encode_prompt(engine, controls.prompt, chat=controls.chat, system=system)
    comparison = gpu.new_comparison(engine, ids, config, num_samples=n)
    while True:
        comparison, _ = gpu.compare(comparison, COMPARE_STREAM_STEPS)
        if comparison.done:
            break
        traces = comparison.traces()  # streamed every few steps: the cards are cheap, the tree less so
        yield {"compare_result": compare_result(traces), "compare_cards": views.compare_html(traces)}
    traces = comparison.traces()
    beams = views.final_beams_table(traces["beam"], decode=engine.decode).round({"Score": 4, "Sum log-prob": 3})
    (tree,) = rendered(plots.beam_tree_figure(traces["beam"]))
    yield {"compare_result": compare_result(traces), "compare_cards": views.compare_html(traces), "beam_tree": tree,
           "final_beams": beams}  # fmt: skip


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


def on_explore(run, controls: Controls, temperatures="0.5, 1, 1.5, 2") -> dict:
    """The teaching views of the inspected step (or the next step, before any): the temperature figure, the
    knobs figure and a summary."""
    temps = parse_temperatures(temperatures)
    run, config = prepare(run, controls)
    record, pending = shown_record(run)
    at = None if record is None or pending else record.step
    exploration = gpu.explore(run.session, at, temperatures=temps, top_n=20, config=config)
    where = f"step {at}" if at is not None else "the next step"
    knobs = " · ".join(f"{k.knob.replace('_', '-')} = {k.setting:g} keeps {k.kept_count:,} tokens ({k.kept_mass:.1%})"
                       for k in exploration.knobs)  # fmt: skip
    temp_fig, knobs_fig = rendered(plots.temperature_figure(exploration), plots.knobs_figure(exploration))
    return {"temperature_plot": temp_fig, "knobs_plot": knobs_fig, "state": run,
            "explore_status": f'<div class="dp-status">Exploring <b>{where}</b>. {html.escape(knobs)}</div>'}  # fmt: skip


def on_export(run, top_n=10, request: gr.Request = None) -> dict:
    """Write the step table (CSV) and the full trace (JSON) to files named after the run, offered as downloads;
    the trace holds the run's permalink as a whole address."""
    if not isinstance(run, PlaygroundState) or run.session is None or not run.steps:
        raise UserError("Take a step first: there is nothing to export yet.")
    folder = exports.new_folder()
    stem = exports.run_stem(run.prompt, run.session.engine.name, run.session.config.seed)
    csv_path, json_path = folder / f"{stem}_steps.csv", folder / f"{stem}_trace.json"
    table = views.step_table_data(run.prompt_text, run.steps, n_choices=N_TABLE_CHOICES)
    csv_path.write_text(views.step_table_csv(table), encoding="utf-8")
    extra = {"app": "Decoding Playground", "prompt": run.prompt, "chat": run.chat, "system": run.system,
             "prompt_text": run.prompt_text, "permalink": permalink_url(run, request)}  # fmt: skip
    json_path.write_text(views.trace_json(run.session.trace(), extra=extra), encoding="utf-8")
    return {"csv_file": str(csv_path), "json_file": str(json_path)}


# ----------------------------------------------------------------------------------------------------------
# Opening the page, and a permalink


def restore(query_value: str) -> dict:
    """Replay a permalink: the controls that show its last step, and the step outputs, by name."""
    run, controls = replay(decode_permalink(query_value))
    return {**dict(zip(CONTROL_NAMES, controls.values())), **step_outputs(run, controls.top_n)}


def on_page_load(run, controls: Controls, request: gr.Request = None) -> dict:
    """Open a permalink when the page's URL carries one; otherwise set the knobs to the default model's
    generation_config where it sets them, and preview the first step of the page's prompt, so its distribution
    is on screen before any Step."""
    value = dict(request.query_params).get(PERMALINK_PARAM) if request is not None else None
    if value:
        return restore(value)
    engine = shared.engine_for(controls.model)
    knobs = model_knobs(engine) if sets_knobs(engine) else {}
    return {**knobs, **_preview(run, controls.replace(**knobs))}
