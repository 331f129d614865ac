"""One browser's run (`PlaygroundState`, kept in a `gr.State`), how the page's controls become a validated
`DecodingConfig`, and how any failure becomes the one sentence a person reads.

`prepare()` is where a run starts: it keeps the browser's session while the run's identity (model, prompt,
chat, seed, beams) is unchanged and starts a new one when it changes. This module knows nothing about the
page's layout, figures or tables.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field

import gradio as gr

from ..config import DecodingConfig
from ..engine import DecodingError, ModelMemoryError, Session
from ..loading import ModelLoadError
from ..records import StepRecord
from . import shared
from .shared import DEFAULT_MODEL

# DecodingConfig's settings the page has no control for (a model's generation_config may set them).
UNCONTROLLED = ("early_stopping",)
# The decoding controls, in the order every step-like handler (and API endpoint) takes them.
CONTROLS = (
    "prompt", "model", "chat", "system", "strategy", "temperature", "top_k", "top_p", "min_p",
    "repetition_penalty", "num_beams", "length_penalty", "max_new_tokens", "top_n", "seed",
)  # fmt: skip


# The smallest positive temperature: far below it the logits divided by it overflow float32 (1e-300 did), and
# long before that sampling is greedy in all but name.
MIN_TEMPERATURE = 1e-4


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
    # what the last force replaced, so that Undo brings it back: (step, [(settings, forced token or None)] of the
    # replaced step and every step after it); forgotten as soon as the run moves otherwise
    replaced: tuple[int, list[tuple[DecodingConfig, int | None]]] | None = None
    stop: bool = False  # Stop was pressed: a running Run or Step ×N ends after its current step
    parked: str | None = None  # while the session is dropped for memory: the run's recipe (sessions.park)
    controls_shown: tuple | None = None  # the run controls as the page shows them (page.changed_run_controls)

    def changed(self) -> None:
        """The run moved on (a step, a rewind): show its last step, and forget a preview of a step that is gone
        and what a force replaced."""
        self.selected = None
        self.preview = None
        self.replaced = None

    @property
    def steps(self) -> list:
        return self.session.steps if self.session else []


class UserError(gr.Error):
    """A gr.Error whose one-sentence message is escaped (Gradio renders error text as HTML)."""

    def __init__(self, message: str):
        super().__init__(html.escape(str(message), quote=False), print_exception=False)


def friendly(e: Exception) -> UserError:
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, (ValueError, ModelLoadError, DecodingError, ModelMemoryError)):
        return UserError(str(e).splitlines()[0] if str(e) else type(e).__name__)
    # not the user's doing: the user gets one sentence, the server log gets the traceback
    logging.getLogger("playground.ui").error("unexpected error in a handler", exc_info=e)
    return UserError(f"Something went wrong ({type(e).__name__}); try again or reset.")


def as_int(name: str, x) -> int:
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


def as_float(name: str, x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}.") from None


def make_config(strategy, temperature, top_k, top_p, min_p, repetition_penalty, num_beams, length_penalty,
                max_new_tokens, top_n, seed) -> DecodingConfig:  # fmt: skip
    """The controls' values as a validated DecodingConfig (ValueError, one sentence, if one is bad)."""
    temperature = as_float("Temperature", temperature)
    if 0 < temperature < MIN_TEMPERATURE:  # the logits divided by it overflow: refused here, not as NaN later
        raise ValueError(f"Temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {temperature:g}.")
    return DecodingConfig(
        strategy=(strategy or "greedy").strip().lower(),
        temperature=temperature,
        top_k=as_int("Top-k", top_k),
        top_p=as_float("Top-p", top_p),
        min_p=as_float("Min-p", min_p),
        repetition_penalty=as_float("Repetition penalty", repetition_penalty),
        num_beams=as_int("Beams", num_beams),
        length_penalty=as_float("Length penalty", length_penalty),
        max_new_tokens=as_int("Max new tokens", max_new_tokens),
        top_n=as_int("Candidates shown", top_n),
        seed=as_int("Seed", seed),
    )


def prepare(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
            num_beams, length_penalty, max_new_tokens, top_n, seed) -> tuple[PlaygroundState, DecodingConfig]:  # fmt: skip
    """The state's session, or a new one when the run's identity changed; and the config for the next step."""
    config = make_config(strategy, temperature, top_k, top_p, min_p, repetition_penalty, num_beams, length_penalty,
                         max_new_tokens, top_n, seed)  # fmt: skip
    engine = shared.engine_for(model)
    # settings the page has no control for take the model's value (its generation_config), as in generate()
    config = config.replace(**{k: v for k, v in engine.model_defaults.items() if k in UNCONTROLLED})
    config, notices = shared.POLICY.apply(config)
    chat = bool(chat)
    system = (system or "") if chat else ""
    beam = config.strategy == "beam"
    key = (shared.REGISTRY.key(model), prompt, chat, system, config.seed, beam,
           config.num_beams if beam else None, config.max_new_tokens if beam else None)  # fmt: skip
    state = state if isinstance(state, PlaygroundState) else PlaygroundState()
    if state.session is None or state.run_key != key:
        ids = shared.encode_prompt(engine, prompt, chat=chat, system=system or None)
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

