"""The Gradio web app: `build_demo()` lays out the page; the handlers are plain module-level functions.

Every handler takes the per-browser `PlaygroundState` (a `gr.State`) and the control values, and returns the
values of its outputs; none does tensor maths (the engine does), none builds a figure or a table itself
(`plots` and `views` do). Models are loaded once, by the module-level `REGISTRY` (at most two engines, shared
by every user); each browser session has its own `Session` in its state. `POLICY` (hosting.py) caps what a
public Space allows, checked in the handlers so API clients meet the same limits.

Named API endpoints (see docs/ui.md): /step, /step_n, /run, /preview, /compare, /force, /undo, /rewind,
/reset, /inspect, /explore, /export, /load_model.

This module knows nothing about how a token is chosen, how a figure is drawn or how HTML is escaped beyond
its own small status fragments.
"""

from __future__ import annotations

import base64
import gc
import html
import io
import json
import logging
import random
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from gradio.components.plot import PlotData
from matplotlib.figure import Figure

from . import plots, views
from .config import MAX_BEAMS, DecodingConfig
from .engine import DecodingError, Engine, ModelMemoryError, Session
from .records import StepRecord
from .hosting import HostingPolicy
from .loading import EMBEDDED_NAME, ModelLoadError, is_embedded, load_engine

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_MODEL = "default"  # the model picker's value for "whatever the app was started with"
DEFAULT_PROMPT = "Once upon a time, in a small village by the sea,"
PERMALINK_PARAM = "run"
N_TABLE_CHOICES = 5
PLOT_FORMAT = "png"  # how the charts reach the page: PNG encodes faster than Gradio's default WebP here
STREAM_CHART_EVERY_S = 0.5  # a streamed run redraws the distribution chart at most this often

# The decoding controls, in the order every step-like handler (and API endpoint) takes them.
CONTROLS = (
    "prompt", "model", "chat", "system", "strategy", "temperature", "top_k", "top_p", "min_p",
    "repetition_penalty", "num_beams", "length_penalty", "max_new_tokens", "top_n", "seed",
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Shared models


class ModelRegistry:
    """Loads each model once and shares it; keeps the `capacity` most recently used engines.

    `loader(spec, progress=...)` is replaceable (tests pass a fake or a preloaded engine with `put`).
    "default" (or "") means `default_spec`, the model the app was started with (None = the embedded model).
    """

    def __init__(self, loader: Callable[..., Engine] = load_engine, default_spec: str | None = None, capacity: int = 2):
        self.loader = loader
        self.default_spec = default_spec
        self.capacity = capacity
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()  # guards _engines
        self._load_lock = threading.Lock()  # one load at a time (memory)

    def resolve(self, spec: str | None) -> str | None:
        """The spec the loader gets: "default"/"" -> default_spec."""
        spec = (spec or "").strip()
        return self.default_spec if spec in ("", DEFAULT_MODEL) else spec

    def key(self, spec: str | None) -> str:
        resolved = self.resolve(spec)
        return "embedded" if is_embedded(resolved) else resolved.strip()

    def put(self, spec: str | None, engine: Engine) -> None:
        with self._lock:
            self._engines[self.key(spec)] = engine
            self._engines.move_to_end(self.key(spec))
            while len(self._engines) > self.capacity:
                self._engines.popitem(last=False)

    def cached(self, spec: str | None) -> Engine | None:
        with self._lock:
            engine = self._engines.get(self.key(spec))
            if engine is not None:
                self._engines.move_to_end(self.key(spec))
            return engine

    def get(self, spec: str | None, progress: Callable[[str], None] | None = None) -> Engine:
        engine = self.cached(spec)
        if engine is not None:
            return engine
        with self._load_lock:
            engine = self.cached(spec)  # another request may have loaded it meanwhile
            if engine is None:
                engine = self.loader(self.resolve(spec), progress=progress)
                self.put(spec, engine)
        return engine


REGISTRY = ModelRegistry()
POLICY = HostingPolicy.from_env()


# ----------------------------------------------------------------------------------------------------------
# Per-browser state


@dataclass
class PlaygroundState:
    """One browser's run: the session, what started it, and which step is being inspected."""

    session: Session | None = None
    run_key: tuple | None = None  # changing any part of it starts a new run
    model: str = DEFAULT_MODEL  # the picker value of the model that last loaded for this browser
    prompt: str = ""
    chat: bool = False
    system: str = ""
    prompt_text: str = ""  # the prompt as the model sees it (chat template included)
    base_config: DecodingConfig | None = None
    selected: int | None = None  # the step whose distribution is shown
    preview: StepRecord | None = None  # the pending step, previewed with the current knobs (shown when nothing is selected)
    log_scale: bool = False  # the distribution chart's probability axis
    show_trajectory: bool = False  # the trajectory's tab is on screen (else it is not redrawn at each step)
    notices: list[str] = field(default_factory=list)

    def changed(self) -> None:
        """The run moved on (a step, a rewind): show its last step, and forget a preview of a step that is gone."""
        self.selected = None
        self.preview = None

    @property
    def steps(self) -> list:
        return self.session.steps if self.session else []


class UserError(gr.Error):
    """A gr.Error whose one-sentence message is escaped (Gradio renders error text as HTML)."""

    def __init__(self, message: str):
        super().__init__(html.escape(str(message), quote=False), print_exception=False)


def _friendly(e: Exception) -> UserError:
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, (ValueError, ModelLoadError, DecodingError, ModelMemoryError)):
        return UserError(str(e).splitlines()[0] if str(e) else type(e).__name__)
    # not the user's doing: the user gets one sentence, the server log gets the traceback
    logging.getLogger("playground.ui").error("unexpected error in a handler", exc_info=e)
    return UserError(f"Something went wrong ({type(e).__name__}); try again or reset.")


def _as_int(name: str, x) -> int:
    if isinstance(x, bool) or x is None:
        raise ValueError(f"{name} must be a whole number, got {x!r}.")
    if isinstance(x, float):
        if not x.is_integer():
            raise ValueError(f"{name} must be a whole number, got {x}.")
        return int(x)
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {x!r}.") from None
    return int(x)


def _as_float(name: str, x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}.") from None


def make_config(strategy, temperature, top_k, top_p, min_p, repetition_penalty, num_beams, length_penalty,
                max_new_tokens, top_n, seed) -> DecodingConfig:  # fmt: skip
    """The controls' values as a validated DecodingConfig (ValueError, one sentence, if one is bad)."""
    return DecodingConfig(
        strategy=(strategy or "greedy").strip().lower(),
        temperature=_as_float("Temperature", temperature),
        top_k=_as_int("Top-k", top_k),
        top_p=_as_float("Top-p", top_p),
        min_p=_as_float("Min-p", min_p),
        repetition_penalty=_as_float("Repetition penalty", repetition_penalty),
        num_beams=_as_int("Beams", num_beams),
        length_penalty=_as_float("Length penalty", length_penalty),
        max_new_tokens=_as_int("Max new tokens", max_new_tokens),
        top_n=_as_int("Candidates shown", top_n),
        seed=_as_int("Seed", seed),
    )


def _engine_for(model: str | None, progress: Callable[[str], None] | None = None) -> Engine:
    if (model or "").strip() not in ("", DEFAULT_MODEL):  # the app's own default is always allowed
        POLICY.check_model(REGISTRY.resolve(model))
    return REGISTRY.get(model, progress=progress)


def _prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
             num_beams, length_penalty, max_new_tokens, top_n, seed) -> tuple[PlaygroundState, DecodingConfig]:  # fmt: skip
    """The state's session, or a new one when the run's identity changed; and the config for the next step."""
    config = make_config(strategy, temperature, top_k, top_p, min_p, repetition_penalty, num_beams, length_penalty,
                         max_new_tokens, top_n, seed)  # fmt: skip
    config, notices = POLICY.apply(config)
    engine = _engine_for(model)
    chat = bool(chat)
    system = (system or "") if chat else ""
    beam = config.strategy == "beam"
    key = (REGISTRY.key(model), prompt, chat, system, config.seed, beam,
           config.num_beams if beam else None, config.max_new_tokens if beam else None)  # fmt: skip
    state = state if isinstance(state, PlaygroundState) else PlaygroundState()
    if state.session is None or state.run_key != key:
        ids = engine.encode(prompt, chat=chat, system=system or None)
        session = engine.start(ids, config)
        state = PlaygroundState(
            session=session,
            run_key=key,
            model=(model or DEFAULT_MODEL),
            prompt=prompt,
            chat=chat,
            system=system,
            prompt_text=engine.tokenizer.decode(session.prompt_ids, skip_special_tokens=False),
            base_config=session.config,
            notices=list(session.notices),
        )
    state.notices = list(state.session.notices) + notices
    return state, config


# ----------------------------------------------------------------------------------------------------------
# Views of a state (the outputs every step-like handler returns)


def _result(state: PlaygroundState) -> dict:
    """The compact, JSON-friendly summary API clients read (output 0 of /step, /run, /force ...)."""
    s = state.session
    if s is None:
        return {"model": None, "prompt": "", "text": "", "token_ids": [], "n_steps": 0, "done": False,
                "finish_reason": None, "last_step": None, "notices": [], "permalink": ""}  # fmt: skip
    last = s.steps[-1] if s.steps else None
    last_d = None
    if last is not None:
        last_d = {k: v for k, v in last.to_dict().items() if k != "top" and k != "beams"}
        last_d["top"] = [{"token": c.token, "token_id": c.token_id, "prob": c.prob, "raw_prob": c.raw_prob}
                         for c in sorted(last.top, key=lambda c: c.rank)[:5]]  # fmt: skip
    token_ids = list(s.token_ids)
    return {
        "model": s.engine.name,
        "prompt": state.prompt_text,
        "text": s.engine.decode(token_ids),
        "token_ids": token_ids,
        "n_steps": len(s.steps),
        "done": s.done,
        "finish_reason": s.finish_reason if s.done else None,
        "last_step": last_d,
        "notices": list(state.notices),
        "permalink": permalink_query(state),
    }


def _status_html(state: PlaygroundState) -> str:
    s = state.session
    if s is None:
        return '<div class="dp-status">Type a prompt and press <b>Step</b> to see the first token\'s distribution.</div>'
    e = html.escape
    n = len(s.steps)
    cfg = s.config
    parts = [f"<b>{n}</b> / {cfg.max_new_tokens} tokens", f"model <code>{e(s.engine.name)}</code>",
             f"strategy <b>{e(cfg.strategy)}</b>"]  # fmt: skip
    if s.steps:
        r = s.steps[-1] if state.selected is None else s.steps[state.selected]
        parts.append(
            f"step {r.step}: <code>{e(views.token_label(r.token))}</code> p={r.prob:.1%} "
            f"(model {r.raw_prob:.1%}) · entropy {r.entropy:.2f} nats (model {r.entropy_raw:.2f})"
        )
    if s.done:
        parts.append(f"finished: <b>{e(_FINISH.get(s.finish_reason, s.finish_reason or ''))}</b>")
    notes = "".join(f'<div class="dp-notice">{e(msg)}</div>' for msg in state.notices)
    return f'<div class="dp-status">{" · ".join(parts)}</div>{notes}'


_FINISH = {
    "eos": "the model ended its answer (end-of-sequence token)",
    "length": "max new tokens reached",
    "stop_string": "a stop string appeared",
    "context": "the model's context is full",
    "stopped": "stopped",
}


def _shown_record(state: PlaygroundState) -> tuple[StepRecord | None, bool]:
    """The record the distribution chart and the candidate list show, and whether it is the pending step's
    preview: the inspected step, else the preview (when one was made since the run last moved), else the last."""
    if state.selected is None and state.preview is not None:
        return state.preview, True
    if not state.steps:
        return None, False
    return state.steps[state.selected if state.selected is not None else -1], False


def _candidate_choices(record: StepRecord | None, top_n: int) -> list[tuple[str, int]]:
    if record is None:
        return []
    return [(f"{views.token_label(c.token)}   {c.prob:.1%} (model {c.raw_prob:.1%})", c.token_id)
            for c in sorted(record.top, key=lambda c: c.rank)[: max(1, top_n)]]  # fmt: skip


def step_outputs(state: PlaygroundState, top_n=10, full: bool = True, figures: bool = True) -> tuple:
    """(result, text_html, distribution, table, trajectory, status, inspect, candidates, permalink, state).

    `full=False` leaves the step table and the trajectory as they are (they did not change, or a streamed run
    sends them at its end); the trajectory is drawn only while its tab is on screen (`show_trajectory`).
    `figures=False` also leaves the distribution chart, the inspector and the permalink: a streamed run's light
    update, the text and the status only."""
    top_n = max(1, _as_int("Candidates shown", top_n or 10))
    steps = state.steps
    if state.selected is not None and state.selected >= len(steps):
        state.selected = None
    record, pending = _shown_record(state)
    sel = state.selected if state.selected is not None else (len(steps) - 1 if steps and not pending else None)
    text = views.colored_text_html(state.prompt_text, steps, selected_step=sel)
    result = _result(state)
    status = _status_html(state)
    if not figures:
        return (result, text, gr.skip(), gr.skip(), gr.skip(), status, gr.skip(), gr.skip(), gr.skip(), state)
    dist = _distribution_chart(state, top_n)
    table = views.step_table(state.prompt_text, steps, n_choices=N_TABLE_CHOICES) if full else gr.skip()
    if not full or (steps and not state.show_trajectory):
        traj = gr.skip()  # unchanged, or off screen: drawn when its tab is opened (on_trajectory_view)
    else:
        traj = _trajectory_chart(state)
    inspect = gr.Slider(minimum=0, maximum=max(1, len(steps) - 1), value=sel if sel is not None else 0,
                        interactive=len(steps) > 1)  # fmt: skip
    choices = _candidate_choices(record, top_n)
    candidates = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)
    dist, traj = rendered(dist, traj)
    return (result, text, dist, table, traj, status, inspect, candidates, result["permalink"], state)


def _distribution_chart(state: PlaygroundState, top_n: int) -> Figure | None:
    """The distribution chart of the shown record (`_shown_record`), as the page draws it; None before any."""
    record, pending = _shown_record(state)
    if record is None:
        return None
    return plots.distribution_figure(record, max_tokens=top_n, log_scale=state.log_scale, pending=pending, legend=False)


def _trajectory_chart(state: PlaygroundState) -> Figure | None:
    return plots.trajectory_figure(state.steps, legend=False) if state.steps else None


def rendered(*values) -> tuple:
    """`values` with each matplotlib Figure rendered to the PNG a gr.Plot shows (anything else passes through),
    here rather than in Gradio so that zlib can use its fastest level: a little larger, ~30 ms quicker a chart.
    (Two charts on two threads were no quicker: drawing holds the GIL.)"""
    return tuple(_png(v) if isinstance(v, Figure) else v for v in values)


def _png(figure: Figure) -> PlotData:
    """What gr.Plot(format="png") makes of a figure, with zlib's fastest level."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=PLOT_FORMAT, pil_kwargs={"compress_level": 1})
    return PlotData(type="matplotlib", plot="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())


def _empty_outputs(state: PlaygroundState | None = None) -> tuple:
    return step_outputs(state if isinstance(state, PlaygroundState) else PlaygroundState())


# ----------------------------------------------------------------------------------------------------------
# Step mode handlers


def on_step(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
            num_beams, length_penalty, max_new_tokens, top_n, seed, n_steps=1, permalink="") -> tuple:  # fmt: skip
    """Take `n_steps` steps (stopping early when the run ends) with the current settings."""
    try:
        state = _recover(state, permalink)
        state, config = _prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                 repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        n = _as_int("Steps", n_steps if n_steps not in (None, "") else 1)
        if not 1 <= n <= 1000:
            raise ValueError(f"Steps must be from 1 to 1000, got {n}.")
        state.session.step(config=config)  # the first always runs: a finished run says so
        for _ in range(n - 1):
            if state.session.done:
                break
            state.session.step(config=config)
        state.changed()
        return step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001 - every failure reaches the user as one sentence
        raise _friendly(e) from e


def on_run(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
           num_beams, length_penalty, max_new_tokens, top_n, seed, permalink="") -> Iterator[tuple]:  # fmt: skip
    """Step to the end of the run, yielding the views after every token (Stop cancels it)."""
    try:
        state = _recover(state, permalink)
        state, config = _prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                 repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        state.changed()
        drawn = 0.0  # when the distribution chart was last sent
        extend = state.session.done  # a finished run: its first step raises its one-sentence message (or extends)
        while extend or not state.session.done:
            extend = False
            state.session.step(config=config)
            # the text streams every token; the chart a few times a second; table and trajectory at the end
            heavy = time.perf_counter() - drawn >= STREAM_CHART_EVERY_S
            yield step_outputs(state, top_n, full=False, figures=heavy)
            if heavy:
                drawn = time.perf_counter()
        yield step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001
        raise _friendly(e) from e


def on_preview(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
               num_beams, length_penalty, max_new_tokens, top_n, seed, permalink="") -> tuple:  # fmt: skip
    """The pending step's distribution with the current settings, without taking it: the chart, candidates and
    status as /step returns them, the run unchanged. Its forward is kept for the next Step (a knob that moves
    costs no model call)."""
    try:
        state = _recover(state, permalink)
        before = state.session if isinstance(state, PlaygroundState) else None
        state, config = _prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                 repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        state.selected = None
        if state.session.done:
            state.preview = None
            state.notices.append(f"The run has finished ({_FINISH.get(state.session.finish_reason, 'done')}): "
                                 "the chart shows its last step. Rewind or reset to go on.")  # fmt: skip
        else:
            state.preview = state.session.preview(config)
        outputs = step_outputs(state, top_n, full=state.session is not before)  # a new run: clear table and trajectory
        if state.session is before:  # the run did not move: its text, inspector and link stay as they are
            result, _, dist, table, traj, status, _, candidates, _, state = outputs
            outputs = (result, gr.skip(), dist, table, traj, status, gr.skip(), candidates, gr.skip(), state)
        return outputs
    except Exception as e:  # noqa: BLE001
        raise _friendly(e) from e


def on_trajectory_view(state, shown) -> tuple:
    """The trajectory's tab opened (draw it) or closed (stop redrawing it at each step); returns (chart, state)."""
    state = state if isinstance(state, PlaygroundState) else PlaygroundState()
    state.show_trajectory = bool(shown)
    if not state.show_trajectory:
        return gr.skip(), state
    return (*rendered(_trajectory_chart(state)), state)


def on_scale(state, log_scale, top_n=10) -> tuple:
    """Switch the distribution chart between a linear and a log probability axis; returns (chart, state)."""
    state = state if isinstance(state, PlaygroundState) else PlaygroundState()
    state.log_scale = bool(log_scale)
    top_n = max(1, _as_int("Candidates shown", top_n or 10))
    return (*rendered(_distribution_chart(state, top_n)), state)


def on_force(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
             num_beams, length_penalty, max_new_tokens, top_n, seed, inspect_step, token_id, permalink="") -> tuple:  # fmt: skip
    """Use `token_id` at step `inspect_step` (0-based, as in the table) instead: rewind to just before it and force the token."""
    try:
        state = _recover(state, permalink)
        if not isinstance(state, PlaygroundState) or state.session is None or not (state.steps or state.preview):
            raise ValueError("Take a step first, then pick one of its candidates to force.")
        if token_id in (None, ""):
            raise ValueError("Pick a candidate token to use instead.")
        at = len(state.steps) if _shown_record(state)[1] else _as_int("Step", inspect_step)
        if not 0 <= at <= len(state.steps):
            raise ValueError(f"There is no step {at}: this run has steps 0 to {len(state.steps) - 1}.")
        config = make_config(strategy, temperature, top_k, top_p, min_p, repetition_penalty, num_beams,
                             length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        config, _ = POLICY.apply(config)
        if at < len(state.steps):  # forcing the pending step needs no rewind (and keeps its previewed forward)
            state.session.rewind(at)
        state.session.step(config=config, force_token=_as_int("Token id", token_id))
        state.changed()
        return step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001
        raise _friendly(e) from e


def on_rewind(state, to_step, top_n=10, permalink="") -> tuple:
    """Keep the first `to_step` generated tokens and drop the rest (0 = back to the prompt)."""
    try:
        state = _recover(state, permalink)
        if not isinstance(state, PlaygroundState) or state.session is None:
            raise ValueError("There is no run to rewind yet: take a step first.")
        state.session.rewind(_as_int("Step", to_step))
        state.changed()
        return step_outputs(state, top_n)
    except Exception as e:  # noqa: BLE001
        raise _friendly(e) from e


def on_undo(state, top_n=10, permalink="") -> tuple:
    """Take back the last step."""
    state = _recover(state, permalink)
    if not isinstance(state, PlaygroundState) or not state.steps:
        raise UserError("There is no step to undo.")
    return on_rewind(state, len(state.steps) - 1, top_n)


def on_reset(state=None) -> tuple:
    """Forget the run (the model stays loaded); the next Step starts from the prompt."""
    model = state.model if isinstance(state, PlaygroundState) else DEFAULT_MODEL
    return _empty_outputs(PlaygroundState(model=model))


def on_inspect(state, inspect_step, top_n=10) -> tuple:
    """Show step `inspect_step` (0-based, as in the table): its distribution, candidates and highlight in the text."""
    try:
        if not isinstance(state, PlaygroundState) or not state.steps:
            return step_outputs(state if isinstance(state, PlaygroundState) else PlaygroundState(), top_n, full=False)
        at = min(max(_as_int("Step", inspect_step), 0), len(state.steps) - 1)
        state.selected = at
        return step_outputs(state, top_n, full=False)
    except Exception as e:  # noqa: BLE001
        raise _friendly(e) from e


def on_token_click(state, top_n, evt: gr.EventData) -> tuple:
    """A click on a generated token in the coloured text inspects its step (the page sends the span's data-step)."""
    step = getattr(evt, "step", None)
    if step is None:
        return tuple(gr.skip() for _ in range(10))  # a click beside the tokens
    return on_inspect(state, step, top_n)


# Clicks anywhere in the coloured text, delegated from its root (which survives re-renders): the token's step.
TOKEN_CLICK_JS = (
    "element.addEventListener('click', (e) => { const t = e.target.closest('[data-step]');"
    " if (t) { trigger('click', {step: Number(t.dataset.step)}); } });"
)


def on_strategy(strategy: str) -> tuple:
    """Grey out the controls the strategy ignores: (temperature, top_k, top_p, min_p, num_beams, length_penalty,
    force button)."""
    sample = strategy == "sample"
    beam = strategy == "beam"
    return (*(gr.Slider(interactive=sample) for _ in range(4)), gr.Slider(interactive=beam), gr.Slider(interactive=beam),
            gr.Button(interactive=not beam))  # fmt: skip


def on_new_seed() -> int:
    return random.randrange(1, 2**31)


def on_load_model(state, model, progress=gr.Progress()) -> tuple:
    """Load `model` (a Hub id, a folder or "default"); on failure warn and keep the previous one.
    Returns (model picker value, model status html, state)."""
    state = state if isinstance(state, PlaygroundState) else PlaygroundState()
    model = (model or DEFAULT_MODEL).strip() or DEFAULT_MODEL
    try:
        started = time.perf_counter()
        progress(0.1, desc=f"Loading {model}…")
        engine = _engine_for(model, progress=lambda msg: progress(0.5, desc=msg))
        progress(1.0, desc="Loaded")
    except Exception as e:  # noqa: BLE001 - a failed load leaves the previous model in place
        msg = str(_friendly(e).message)
        gr.Warning(msg)
        return state.model, f'<div class="dp-notice">Could not load that model; still using {html.escape(state.model)}. {msg}</div>', state
    state.model = model
    chat = "chat template" if engine.has_chat_template else "no chat template"
    return (model, f'<div class="dp-status">Loaded <code>{html.escape(engine.name)}</code> ({engine.vocab_size:,} tokens, '
            f"{chat}) in {time.perf_counter() - started:.1f} s.</div>", state)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Compare and teaching handlers


def on_compare(prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
               num_beams, length_penalty, max_new_tokens, top_n, seed, num_samples=2) -> Iterator[tuple]:  # fmt: skip
    """Greedy, beam and `num_samples` sampled runs side by side, streamed per step.
    Yields (result, cards html, beam tree figure)."""
    from .engine import Comparison

    try:
        config = make_config("sample", temperature, top_k, top_p, min_p, repetition_penalty, num_beams,
                             length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        config, notices = POLICY.apply(config)
        n, more = POLICY.cap_samples(_as_int("Samples", num_samples))
        for msg in notices + more:
            gr.Warning(msg)
        engine = _engine_for(model)
        chat = bool(chat)
        ids = engine.encode(prompt, chat=chat, system=(system or None) if chat else None)
        comparison = Comparison(engine, ids, config, num_samples=n)
        step = 0
        while not comparison.done:
            comparison.step()
            step += 1
            if step % 4 == 0:  # stream every few steps: the cards are cheap, the tree less so
                traces = comparison.traces()
                yield _compare_result(traces), views.compare_html(traces), gr.skip()
        traces = comparison.traces()
        yield _compare_result(traces), views.compare_html(traces), *rendered(plots.beam_tree_figure(traces["beam"]))
    except Exception as e:  # noqa: BLE001
        raise _friendly(e) from e


def _compare_result(traces) -> dict:
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


def on_explore(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
               num_beams, length_penalty, max_new_tokens, top_n, seed, temperatures="0.5, 1, 1.5, 2") -> tuple:  # fmt: skip
    """The teaching views of the inspected step (or the next step, before any): (temperature figure, knobs
    figure, summary html, state)."""
    try:
        temps = parse_temperatures(temperatures)
        state, config = _prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                                 repetition_penalty, num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
        record, pending = _shown_record(state)
        at = None if record is None or pending else record.step
        exploration = state.session.explore(at, temperatures=temps, top_n=20, config=config)
        where = f"step {at}" if at is not None else "the next step"
        knobs = " · ".join(f"{k.knob.replace('_', '-')} = {k.setting:g} keeps {k.kept_count:,} tokens ({k.kept_mass:.1%})"
                           for k in exploration.knobs)  # fmt: skip
        summary = f'<div class="dp-status">Exploring <b>{where}</b>. {html.escape(knobs)}</div>'
        return *rendered(plots.temperature_figure(exploration), plots.knobs_figure(exploration)), summary, state
    except Exception as e:  # noqa: BLE001
        raise _friendly(e) from e


def on_export(state, top_n=10) -> tuple[str, str]:
    """Write the step table (CSV) and the full trace (JSON) to files; returns their paths."""
    if not isinstance(state, PlaygroundState) or state.session is None or not state.steps:
        raise UserError("Take a step first: there is nothing to export yet.")
    folder = Path(tempfile.mkdtemp(prefix="decoding-playground-"))
    csv_path = folder / "steps.csv"
    json_path = folder / "trace.json"
    table = views.step_table(state.prompt_text, state.steps, n_choices=N_TABLE_CHOICES)
    csv_path.write_text(views.step_table_csv(table), encoding="utf-8")
    extra = {"app": "Decoding Playground", "prompt": state.prompt, "chat": state.chat, "system": state.system,
             "prompt_text": state.prompt_text, "permalink": permalink_query(state)}  # fmt: skip
    json_path.write_text(views.trace_json(state.session.trace(), extra=extra), encoding="utf-8")
    return str(csv_path), str(json_path)


# ----------------------------------------------------------------------------------------------------------
# Permalinks: the run's recipe in the query string, replayed token for token on open


def permalink_query(state: PlaygroundState) -> str:
    """"?run=<base64url(zlib(json))>" holding prompt, model, chat, system, the starting settings and, per step,
    any forced token and any settings changed before it; "" when there is no run."""
    if state.session is None or state.base_config is None:
        return ""
    base = state.base_config
    steps, previous = [], base
    for r in state.steps:
        entry = {}
        if r.config != previous:  # frozen dataclasses compare cheaply; diff the fields only when they differ
            before = previous.to_dict()
            entry["c"] = {k: v for k, v in r.config.to_dict().items() if v != before.get(k)}
        if r.forced:
            entry["f"] = r.token_id
        steps.append(entry)
        previous = r.config
    doc = {"v": 1, "prompt": state.prompt, "model": state.model, "chat": state.chat, "system": state.system,
           "config": base.to_dict(), "steps": steps}  # fmt: skip
    packed = zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 9)
    return f"?{PERMALINK_PARAM}=" + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def decode_permalink(value: str) -> dict:
    """The recipe inside a permalink's `run` value (ValueError if it is not one)."""
    try:
        value = value.strip()
        packed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        doc = json.loads(zlib.decompress(packed).decode("utf-8"))
    except Exception:  # noqa: BLE001
        raise ValueError("This link's run could not be read: it may have been cut short when copied.") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("steps"), list):
        raise ValueError("This link was made by another version of the playground and cannot be opened.")
    return doc


def restore(query_value: str) -> tuple:
    """Replay a permalink: (control values in CONTROLS order..., *step_outputs)."""
    state, current, controls = _replay(decode_permalink(query_value))
    values = [controls[k] for k in ("prompt", "model", "chat", "system")] + list(_config_controls(current))
    return (*values, *step_outputs(state, current.top_n))


RECOVERED = ("The server had lost this page's run (it restarted, or the session expired), so the run was "
             "replayed from its permalink.")  # fmt: skip


def _recover(state, permalink: str | None):
    """The page's state, or, when the server no longer has its run (after a restart) but the page still shows
    the run's permalink, that run replayed, with a notice saying so. A link that cannot be replayed is
    ignored: the next step starts a fresh run, as it would have anyway."""
    if (isinstance(state, PlaygroundState) and state.session is not None) or not permalink:
        return state
    try:
        state, _, _ = _replay(decode_permalink(str(permalink).split(f"{PERMALINK_PARAM}=", 1)[-1]))
    except Exception:  # noqa: BLE001
        return state
    state.session.notices.append(RECOVERED)
    gr.Warning(RECOVERED)
    return state


def _replay(doc: dict) -> tuple[PlaygroundState, DecodingConfig, dict]:
    """A permalink's recipe run again: (state, the settings of its last step, its controls)."""
    config = DecodingConfig.from_dict(doc["config"])
    controls = {
        "prompt": str(doc.get("prompt", "")), "model": str(doc.get("model") or DEFAULT_MODEL),
        "chat": bool(doc.get("chat")), "system": str(doc.get("system") or ""),
    }  # fmt: skip
    state, _ = _prepare(None, *controls.values(), *_config_controls(config))
    current = state.session.config
    for entry in doc["steps"][: current.max_new_tokens]:
        if not isinstance(entry, dict):
            raise ValueError("This link's run could not be read: a step is malformed.")
        if entry.get("c"):
            current = DecodingConfig.from_dict({**current.to_dict(), **entry["c"]})
            current, _ = POLICY.apply(current)
        state.session.step(config=current, force_token=entry.get("f"))
        if state.session.done:
            break
    return state, current, controls


def _config_controls(config: DecodingConfig) -> tuple:
    return (config.strategy, config.temperature, config.top_k, config.top_p, config.min_p, config.repetition_penalty,
            config.num_beams, config.length_penalty, config.max_new_tokens, config.top_n, config.seed)  # fmt: skip


def on_page_load(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
                 num_beams, length_penalty, max_new_tokens, top_n, seed, request: gr.Request) -> tuple:  # fmt: skip
    """Open a permalink when the page's URL carries one; otherwise preview the first step of the page's prompt,
    so its distribution is on screen before any Step."""
    controls = (prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
                num_beams, length_penalty, max_new_tokens, top_n, seed)  # fmt: skip
    n_outputs = len(CONTROLS) + 10
    value = dict(request.query_params).get(PERMALINK_PARAM) if request is not None else None
    try:
        if not value:
            return (*(gr.skip() for _ in CONTROLS), *on_preview(state, *controls))
        return restore(value)
    except Exception as e:  # noqa: BLE001
        gr.Warning(str(_friendly(e).message))
        return tuple(gr.skip() for _ in range(n_outputs))


# ----------------------------------------------------------------------------------------------------------
# Benchmark hook


def bench_step(engine: Engine, prompt: str, n_steps: int) -> list[float]:
    """Run the real Step handler `n_steps` times on a fresh session for `engine`; each call's server-side
    latency in seconds (handler in, every output out: figures rendered to PNG as gr.Plot sends them, HTML and
    table included)."""
    spec = f"bench:{engine.name}"
    REGISTRY.put(spec, engine)
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


# ----------------------------------------------------------------------------------------------------------
# The page


def load_examples() -> list[dict]:
    path = ASSETS / "examples.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [{"title": "Story", "prompt": DEFAULT_PROMPT, "chat": False}]
    return [e for e in data if isinstance(e, dict) and isinstance(e.get("prompt"), str)]


def launch_options() -> dict:
    """Keyword arguments for `demo.launch` that style the page (Gradio 6 takes css/theme at launch)."""
    css_path = ASSETS / "style.css"
    css = css_path.read_text(encoding="utf-8") if css_path.is_file() else ""
    return {"css": css + _PAGE_CSS, "theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")}


_PAGE_CSS = """
/* a still accent border while an output waits or streams: Gradio's pulse and flash animations repaint the
   page at 60 frames a second, which in a software-rendered browser took a core from the server */
.generating, .pending { animation: none !important; }
.dp-status { font-size: 14px; padding: 4px 2px; }
.dp-notice { font-size: 13px; padding: 4px 8px; margin: 4px 0; border-left: 3px solid #f59e0b;
             background: rgba(245, 158, 11, .08); }
#dp-title h1 { margin-bottom: 0; }
"""

_TEACHING_MD = """
**How the knobs shape one step.** The model gives every token in its vocabulary a score (a *logit*);
softmax turns the scores into probabilities. Before a token is drawn:

1. **Repetition penalty** lowers tokens already in the text.
2. **Temperature** divides the logits: below 1 the favourite gets even more likely, above 1 the
   distribution flattens (more surprising picks). 0 means always take the favourite (greedy).
3. **Top-k** keeps only the *k* most likely tokens.
4. **Top-p** (nucleus) keeps the smallest set of tokens whose probabilities add up to *p*.
5. **Min-p** drops tokens less likely than *min-p* × the favourite's probability.

The kept probabilities are renormalised and the sampler draws one token. **Greedy** skips the draw and takes
the favourite; **beam search** keeps several partial answers and extends the best-scoring ones.
"""

_INFO = {
    "strategy": "Greedy takes the most likely token; sample draws one at random; beam keeps several candidates.",
    "temperature": "Sampling only. Below 1 = safer, above 1 = more surprising; 0 = greedy.",
    "top_k": "Sampling only. Keep only the k most likely tokens; 0 = off.",
    "top_p": "Sampling only. Keep the fewest tokens whose probabilities add up to p; 1 = off.",
    "min_p": "Sampling only. Drop tokens less likely than min-p × the top token; 0 = off.",
    "repetition_penalty": "All strategies. Above 1 makes tokens already in the text less likely; 1 = off.",
    "num_beams": "Beam search only. How many partial answers are kept at each step.",
    "length_penalty": "Beam search only. Above 1 favours longer finished answers, below 1 shorter ones.",
    "max_new_tokens": "The run stops after this many generated tokens (or earlier at end-of-text).",
    "top_n": "How many candidate tokens the chart and the pick list show.",
    "seed": "Same seed + same settings = the same sampled text. Changing it starts a new run.",
}


def build_demo(policy: HostingPolicy | None = None) -> gr.Blocks:
    """The whole page. Event wiring only: every handler above is a plain function."""
    policy = policy or POLICY
    max_tokens = policy.max_new_tokens if policy.hosted else 512
    max_beams = policy.max_beams if policy.hosted else MAX_BEAMS
    max_samples = policy.max_samples if policy.hosted else 8
    examples = load_examples()
    default_label = f"{EMBEDDED_NAME}" if REGISTRY.default_spec is None else f"{REGISTRY.default_spec} (default)"
    model_choices = [(default_label, DEFAULT_MODEL)]
    if policy.hosted:
        model_choices += [(m, m) for m in policy.allowed_models if policy.is_allowed(m) and m != DEFAULT_MODEL]

    with gr.Blocks(title="Decoding Playground") as demo:
        state = gr.State(None)
        gr.Markdown(
            "# Decoding Playground\nSee how a language model picks its next token: step through a generation, "
            "inspect each step's candidates, force a different token, and compare greedy, sampling and beam search.",
            elem_id="dp-title",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=330):
                prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", lines=3, max_lines=12,
                                    info="The text the model continues (or, in chat mode, your message).")  # fmt: skip
                chat = gr.Checkbox(False, label="Use the chat template",
                                   info="Wrap the prompt as a user message, the way chat models were trained.")  # fmt: skip
                system = gr.Textbox("", label="System message", lines=2, visible=False,
                                    info="Chat mode only: instructions the model sees before your message.")  # fmt: skip
                if examples:
                    example_prompts = gr.Examples(
                        examples=[[e["prompt"], bool(e.get("chat", False))] for e in examples],
                        inputs=[prompt, chat],
                        example_labels=[str(e.get("title") or e["prompt"][:40]) for e in examples],
                        label="Example prompts",
                    )
                with gr.Group():
                    model = gr.Dropdown(model_choices, value=DEFAULT_MODEL, label="Model", allow_custom_value=not policy.hosted,
                                        info="The embedded default, or type a Hugging Face Hub id or a local folder.")  # fmt: skip
                    load_btn = gr.Button("Load model", size="sm")
                model_status = gr.HTML("")
                strategy = gr.Radio(["greedy", "sample", "beam"], value="sample", label="Strategy", info=_INFO["strategy"])
                with gr.Accordion("Sampling knobs", open=True):
                    temperature = gr.Slider(0, 3, value=0.8, step=0.05, label="Temperature", info=_INFO["temperature"],
                                            elem_id="dp-temperature")  # fmt: skip
                    top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k", info=_INFO["top_k"], elem_id="dp-top-k")
                    top_p = gr.Slider(0.01, 1, value=0.95, step=0.01, label="Top-p", info=_INFO["top_p"], elem_id="dp-top-p")
                    min_p = gr.Slider(0, 1, value=0.0, step=0.01, label="Min-p", info=_INFO["min_p"], elem_id="dp-min-p")
                    repetition_penalty = gr.Slider(0.5, 2, value=1.0, step=0.05, label="Repetition penalty",
                                                   info=_INFO["repetition_penalty"], elem_id="dp-rep")  # fmt: skip
                with gr.Accordion("Beam search", open=False):
                    num_beams = gr.Slider(1, max_beams, value=min(4, max_beams), step=1, label="Beams",
                                          info=_INFO["num_beams"], interactive=False)  # fmt: skip
                    length_penalty = gr.Slider(-2, 3, value=1.0, step=0.1, label="Length penalty",
                                               info=_INFO["length_penalty"], interactive=False)  # fmt: skip
                max_new_tokens = gr.Slider(1, max_tokens, value=min(32, max_tokens), step=1, label="Max new tokens",
                                           info=_INFO["max_new_tokens"])  # fmt: skip
                top_n = gr.Slider(2, 50, value=10, step=1, label="Candidates shown", info=_INFO["top_n"],
                                  elem_id="dp-top-n")  # fmt: skip
                with gr.Row():
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, info=_INFO["seed"], scale=3)
                    new_seed = gr.Button("New seed", size="sm", scale=1)

            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Step by step", id="step"):
                        with gr.Row():
                            step_btn = gr.Button("Step", variant="primary", elem_id="dp-step")
                            n_box = gr.Number(5, label="N", precision=0, minimum=1, maximum=1000, min_width=70,
                                              scale=0, container=False, elem_id="dp-n")  # fmt: skip
                            step_n_btn = gr.Button("Step ×N", elem_id="dp-step-n")
                            run_btn = gr.Button("Run to the end", elem_id="dp-run")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="dp-stop")
                            undo_btn = gr.Button("Undo", elem_id="dp-undo")
                            reset_btn = gr.Button("Reset", elem_id="dp-reset")
                        text_html = gr.HTML(views.colored_text_html(DEFAULT_PROMPT, []), elem_id="dp-text",
                                            js_on_load=TOKEN_CLICK_JS)
                        status = gr.HTML(_status_html(PlaygroundState()), elem_id="dp-status")
                        dist_plot = gr.Plot(label="Distribution: the next step as the knobs shape it, or the inspected step",
                                            elem_id="dp-dist", format=PLOT_FORMAT, show_label=False)  # fmt: skip
                        with gr.Row(equal_height=True):
                            gr.HTML(views.chart_legend_html(plots.DISTRIBUTION_LEGEND), elem_id="dp-dist-legend")
                            log_scale = gr.Checkbox(False, label="Log scale", elem_id="dp-log", scale=0, min_width=140,
                                                    info="Spreads out the small probabilities.")  # fmt: skip
                        with gr.Row(equal_height=False):
                            inspect = gr.Slider(0, 1, value=0, step=1, label="Inspect step",
                                                info="Pick a step (0 = the first generated token) to see its distribution.",
                                                interactive=False, elem_id="dp-inspect", min_width=220)  # fmt: skip
                            with gr.Column(min_width=220):
                                candidates = gr.Dropdown([], label="Candidates at this step", elem_id="dp-candidates",
                                                         info="Choose another token for this step…")  # fmt: skip
                                force_btn = gr.Button("Use this token instead", elem_id="dp-force")
                            with gr.Column(min_width=220):
                                rewind_to = gr.Number(0, label="Rewind: keep the first N tokens", precision=0, minimum=0,
                                                      info="0 = back to the prompt.")  # fmt: skip
                                rewind_btn = gr.Button("Rewind", size="sm")
                        # the whole run's two views, one at a time: only the one on screen is redrawn at each Step
                        with gr.Tabs(elem_id="dp-run-views"):
                            with gr.Tab("Step table", id="table", elem_id="dp-table-tab") as table_tab:
                                table = gr.Dataframe(label="Step table (top choices by the model's own probability)",
                                                     interactive=False, wrap=True, elem_id="dp-table", max_height=420)  # fmt: skip
                            with gr.Tab("Trajectory", id="trajectory", elem_id="dp-traj-tab") as traj_tab:
                                traj_plot = gr.Plot(label="Trajectory: probability and entropy per step", elem_id="dp-traj",
                                                    format=PLOT_FORMAT, show_label=False)  # fmt: skip
                                gr.HTML(views.chart_legend_html(plots.TRAJECTORY_LEGEND), elem_id="dp-traj-legend")
                        with gr.Accordion("Share and export", open=False):
                            permalink = gr.Textbox("", label="Permalink (the address bar is updated too)",
                                                   buttons=["copy"], elem_id="dp-permalink",
                                                   info="Opening this link replays the run token for token.")  # fmt: skip
                            export_btn = gr.Button("Prepare downloads", size="sm")
                            with gr.Row():
                                csv_file = gr.File(label="Step table (CSV)", interactive=False)
                                json_file = gr.File(label="Full trace (JSON)", interactive=False)
                        result = gr.JSON(visible=False)

                    with gr.Tab("Compare strategies", id="compare"):
                        gr.Markdown("Greedy, beam search and sampled runs of the same prompt, with the settings on the "
                                    "left. Each card shows the text coloured by the model's probability of each token.")  # fmt: skip
                        with gr.Row():
                            num_samples = gr.Slider(0, max_samples, value=min(2, max_samples), step=1, label="Samples",
                                                    info="How many sampled runs (seeds seed, seed+1, …).")  # fmt: skip
                            compare_btn = gr.Button("Compare", variant="primary", elem_id="dp-compare")
                            compare_stop = gr.Button("Stop", variant="stop")
                        compare_cards = gr.HTML("", elem_id="dp-compare-cards")
                        beam_plot = gr.Plot(label="Beam search tree", elem_id="dp-beam-tree", format=PLOT_FORMAT, show_label=False)
                        compare_result = gr.JSON(visible=False)

                    with gr.Tab("Temperature & knobs", id="teach"):
                        gr.Markdown(_TEACHING_MD)
                        with gr.Row():
                            temps = gr.Textbox("0.5, 1, 1.5, 2", label="Temperatures to compare", scale=3,
                                               info="Comma-separated; the inspected step (or the next one) is shown.")  # fmt: skip
                            explore_btn = gr.Button("Show", variant="primary", scale=1, elem_id="dp-explore")
                        explore_status = gr.HTML("")
                        temp_plot = gr.Plot(label="One step at several temperatures", format=PLOT_FORMAT, show_label=False)
                        knobs_plot = gr.Plot(label="What top-k, top-p and min-p keep", format=PLOT_FORMAT, show_label=False)

        # ---- wiring -------------------------------------------------------------------------------------
        controls = [prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
                    num_beams, length_penalty, max_new_tokens, top_n, seed]  # fmt: skip
        step_out = [result, text_html, dist_plot, table, traj_plot, status, inspect, candidates, permalink, state]
        one = gr.Number(1, visible=False)

        # the page's permalink rides along so that a run the server lost (a restart) is replayed, not dropped
        # progress is shown on the coloured text only: a timer ticking on all ten outputs kept the browser
        # repainting the page while the server worked (and competing with it for a 2-core machine's CPU)
        busy = dict(show_progress_on=[text_html])
        step_btn.click(on_step, [state, *controls, one, permalink], step_out, api_name="step", trigger_mode="always_last",
                       **busy)  # fmt: skip
        step_n_btn.click(on_step, [state, *controls, n_box, permalink], step_out, api_name="step_n", **busy)
        run_evt = run_btn.click(on_run, [state, *controls, permalink], step_out, api_name="run", **busy)
        stop_btn.click(None, None, None, cancels=[run_evt], api_visibility="private")
        force_btn.click(on_force, [state, *controls, inspect, candidates, permalink], step_out, api_name="force", **busy)
        undo_btn.click(on_undo, [state, top_n, permalink], step_out, api_name="undo", **busy)
        rewind_btn.click(on_rewind, [state, rewind_to, top_n, permalink], step_out, api_name="rewind", **busy)
        reset_btn.click(on_reset, [state], step_out, api_name="reset", **busy)
        inspect.release(on_inspect, [state, inspect, top_n], step_out, api_name="inspect", **busy)
        text_html.click(on_token_click, [state, top_n], step_out, api_visibility="private", **busy)
        strategy.change(on_strategy, [strategy], [temperature, top_k, top_p, min_p, num_beams, length_penalty, force_btn],
                        api_visibility="private", queue=False)  # fmt: skip
        chat.change(lambda c: gr.Textbox(visible=bool(c)), [chat], [system], api_visibility="private", queue=False)
        new_seed.click(on_new_seed, None, [seed], api_visibility="private", queue=False)
        load_btn.click(on_load_model, [state, model], [model, model_status, state], api_name="load_model")
        compare_evt = compare_btn.click(on_compare, [*controls, num_samples], [compare_result, compare_cards, beam_plot],
                                        api_name="compare")  # fmt: skip
        compare_stop.click(None, None, None, cancels=[compare_evt], api_visibility="private")
        explore_btn.click(on_explore, [state, *controls, temps], [temp_plot, knobs_plot, explore_status, state],
                          api_name="explore")  # fmt: skip
        export_btn.click(on_export, [state, top_n], [csv_file, json_file], api_name="export")
        permalink.change(None, [permalink], None, api_visibility="private",
                         js="(q) => { if (q) { window.history.replaceState(null, '', q); } return []; }")  # fmt: skip
        demo.load(on_page_load, [state, *controls], [*controls, *step_out], api_visibility="private")

        # live knobs: the pending step redrawn as a knob moves (its forward is made once and reused by Step)
        preview_in = [state, *controls, permalink]
        preview_evt = dict(fn=on_preview, inputs=preview_in, outputs=step_out, trigger_mode="always_last",
                           show_progress="minimal", show_progress_on=[dist_plot])  # fmt: skip
        temperature.input(**preview_evt, api_name="preview")  # the named endpoint; the others are the same call
        for knob in (top_k, top_p, min_p, repetition_penalty, top_n):
            knob.input(**preview_evt, api_visibility="private")
        for control in (strategy, chat, prompt):  # a person's edits only: a permalink that sets them keeps its chart
            control.input(**preview_evt, api_visibility="private")
        if examples:  # a picked example prompt is previewed like a typed one
            example_prompts.load_input_event.then(**preview_evt, api_visibility="private")
        traj_tab.select(on_trajectory_view, [state, gr.State(True)], [traj_plot, state], api_visibility="private")
        table_tab.select(on_trajectory_view, [state, gr.State(False)], [traj_plot, state], api_visibility="private")
        log_scale.change(on_scale, [state, log_scale, top_n], [dist_plot, state], api_visibility="private",
                         show_progress="hidden")  # fmt: skip
    demo.queue(default_concurrency_limit=4)
    # What is built by now (the models, the page) lives as long as the process: moved out of the collector's
    # scans, it no longer makes the occasional full collection (~0.45 s with a model loaded) land in a Step.
    gc.freeze()
    return demo
