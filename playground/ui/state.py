"""One browser's run (`PlaygroundState`, kept in a `gr.State`), how a request's `Controls` start or continue it
(`prepare`), and how any failure becomes the one sentence a person reads (`friendly`).

`prepare()` keeps the browser's session while the run's identity (model, prompt, chat, system, seed, beams) is
unchanged and starts a new one when it changes. This module knows nothing about the page's layout, figures,
tables or how a request is served.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass, field

import gradio as gr

from .. import gpu
from ..config import DecodingConfig, parse_word_biases, parse_words
from ..engine import DecodingError, ModelMemoryError, Session
from ..loading import ModelLoadError
from ..records import StepRecord
from . import shared
from .controls import DEFAULT_MODEL, Controls

# A Stop pressed this long before a Run or Step ×N starts still stops it (it was clicked, then Stop, while the
# request waited its turn); an older press is forgotten.
STOP_KEPT_S = 3.0
# DecodingConfig's settings the page has no control for (a model's generation_config may set them).
UNCONTROLLED = ("early_stopping",)


@dataclass
class StopSignal:
    """A browser's Stop button: pressed while a Run or Step ×N goes, heard between its steps. One per browser,
    handed from run to run (a new run, a reset, a run rebuilt or replayed): the page's Stop reaches the run the
    page holds, which is not the one a request that started a new run is taking steps of. A press made just
    before a Run or Step ×N starts (it was waiting its turn) is kept for it; an older one is forgotten."""

    pressed: bool = False
    pressed_at: float = 0.0  # time.monotonic() of the last press

    def press(self) -> None:
        self.pressed, self.pressed_at = True, time.monotonic()

    def start(self) -> None:
        """A Run or Step ×N starts: a press older than STOP_KEPT_S was meant for an earlier one."""
        if time.monotonic() - self.pressed_at > STOP_KEPT_S:
            self.pressed = False


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
    notices: list[str] = field(default_factory=list)  # the run's and the request's settings' (hosting caps)
    notice: str | None = None  # what the last action said (a force, an Undo, a Stop): the next action's replaces it
    # what the last force replaced, so that Undo brings it back: (step, [(settings, forced token or None)] of the
    # replaced step and every step after it); forgotten as soon as the run moves otherwise
    replaced: tuple[int, list[tuple[DecodingConfig, int | None]]] | None = None
    stop: StopSignal = field(default_factory=StopSignal)  # a running Run or Step ×N ends after its current step
    parked: str | None = None  # while the session is dropped for memory: the run's recipe (sessions.park)
    controls_shown: tuple | None = None  # the run controls as the page shows them (page.changed_run_controls)
    table_rows: list = field(default_factory=list, repr=False, compare=False)  # the step table's rows made so far (views.step_table)
    text_spans: dict = field(default_factory=dict, repr=False, compare=False)  # the coloured text's markup made so far (views.token_spans_html)

    def changed(self) -> None:
        """The run moved on (a step, a rewind): show its last step, and forget a preview of a step that is gone
        and what a force replaced."""
        self.selected = None
        self.preview = None
        self.replaced = None
        self.notice = None

    def say(self, notice: str) -> None:
        """Say what the action did, in one line, in place of whatever the last action said."""
        self.notice = notice

    def shown_notices(self) -> list[str]:
        """The notices the status line shows and the API returns: the run's and its settings', then the last
        action's."""
        return [*self.notices, *([self.notice] if self.notice else [])]

    @property
    def steps(self) -> list:
        return self.session.steps if self.session else []

    def require_steps(self, message: str) -> None:
        """ValueError(`message`) unless the run has taken a step."""
        if self.session is None or not self.steps:
            raise ValueError(message)


def as_run(state) -> PlaygroundState:
    """The browser's run, or a new empty one where there is none yet (a first request, an API client)."""
    return state if isinstance(state, PlaygroundState) else PlaygroundState()


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


def next_config(controls: Controls, strategy: str | None = None) -> tuple[DecodingConfig, list[str]]:
    """The next step's settings from `controls` (words through its model's tokenizer), within the hosting caps,
    and the caps' notices."""
    controls, notices = words_within_caps(controls)
    config, more = shared.POLICY.apply(controls.decoding(strategy, engine=shared.engine_for(controls.model)))
    return config, notices + more


def words_within_caps(controls: Controls) -> tuple[Controls, list[str]]:
    """Hosted: the banned and biased words cut to the policy's number of entries before they are tokenized (a
    box of a million words is not a million tokenizer calls), with a notice each; elsewhere as they are."""
    policy, notices, changes = shared.POLICY, [], {}
    if not policy.hosted:
        return controls, notices
    cap = policy.max_word_entries
    words, biases = parse_words(controls.bad_words), parse_word_biases(controls.sequence_bias)
    if len(words) > cap:
        notices.append(f"Bad words are capped at {cap} here (asked for {len(words)}): the first {cap} are used.")
        changes["bad_words"] = ", ".join(words[:cap])
    if len(biases) > cap:
        notices.append(f"Sequence-bias words are capped at {cap} here (asked for {len(biases)}): the first {cap} are used.")
        changes["sequence_bias"] = ", ".join(f"{w}={b!r}" for w, b in biases[:cap])
    return (controls.replace(**changes) if changes else controls), notices


def prepare(state, controls: Controls) -> tuple[PlaygroundState, DecodingConfig]:
    """The state's session, or a new one when the run's identity changed; and the config for the next step."""
    engine = shared.engine_for(controls.model)
    controls, capped = words_within_caps(controls)
    config = controls.decoding(engine=engine)
    # settings the page has no control for take the model's value (its generation_config), as in generate()
    config = config.replace(**{k: v for k, v in engine.model_defaults.items() if k in UNCONTROLLED})
    config, notices = shared.POLICY.apply(config)
    notices = capped + notices
    chat = controls.chat
    system = controls.system if chat else ""
    beam = config.is_beam  # beam search or beam sampling: its beams and length are the run's
    key = (shared.REGISTRY.key(controls.model), controls.prompt, chat, system, config.seed, beam,
           config.num_beams if beam else None, config.max_new_tokens if beam else None)  # fmt: skip
    state = as_run(state)
    if state.session is None or state.run_key != key:
        ids = shared.encode_prompt(engine, controls.prompt, chat=chat, system=system or None)
        session = gpu.new_session(engine, ids, config)  # no model call: the first GPU call prefills
        state = PlaygroundState(
            session=session,
            run_key=key,
            model=controls.model,
            prompt=controls.prompt,
            chat=chat,
            system=system,
            prompt_text=engine.tokenizer.decode(session.prompt_ids, skip_special_tokens=False),
            base_config=session.config,
            notices=list(session.notices),
            stop=state.stop,  # the browser's Stop reaches the new run
        )
    state.notices = list(state.session.notices) + notices
    state.notice = None  # a new action: what the last one said is gone
    return state, config
