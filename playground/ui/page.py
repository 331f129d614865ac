"""The handlers as the page calls them: a refused action is one warning and leaves every output as it was, and
each step-like action also sets the run's controls (Step, Step ×N and Run are off once the run has finished, a
line says why, and Carry on appears where more tokens can follow).

API clients call the plain handlers (handlers.py) and get a refusal as an error; the page calls the variants
made here by `for_page`. This module knows nothing about decoding, figures or the page's layout beyond the
order of the run controls it returns (`RUN_CONTROLS`).
"""

from __future__ import annotations

import functools
import html
import inspect

import gradio as gr

from . import shared
from .handlers import on_step
from .outputs import FINISH, shown_record
from .sessions import exclusive
from .state import PlaygroundState, as_int

# What `run_controls` returns, in order: the page wires its components in the same order.
RUN_CONTROLS = ("step", "step_n", "run", "end_note", "carry_on", "force")
CARRY_ON_TOKENS = 16  # how many more tokens "Carry on" allows a run that reached max new tokens


def for_page(handler, n_outputs: int, controls: bool = False):
    """`handler` as the page calls it. A refusal (gr.Error) becomes one warning toast and every one of its
    `n_outputs` outputs keeps what it showed (instead of an error badge on each); with `controls`, the handler's
    last output is the state and the run controls follow its outputs (those that changed: `changed_run_controls`).
    Gradio reads the original signature (functools.wraps), so gr.Request, gr.EventData and gr.Progress
    parameters still arrive."""
    n_total = n_outputs + (len(RUN_CONTROLS) if controls else 0)

    def kept() -> tuple:
        return tuple(gr.skip() for _ in range(n_total))

    def with_controls(outputs) -> tuple:
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        if not controls:
            return outputs
        state = outputs[-1]
        shown = changed_run_controls(state) if isinstance(state, PlaygroundState) else kept()[n_outputs:]
        return (*outputs, *shown)

    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def page_generator(*args, **kwargs):
            try:
                for outputs in handler(*args, **kwargs):
                    yield with_controls(outputs)
            except gr.Error as e:
                gr.Warning(e.message)
                yield kept()

        return page_generator

    @functools.wraps(handler)
    def page_handler(*args, **kwargs):
        try:
            return with_controls(handler(*args, **kwargs))
        except gr.Error as e:
            gr.Warning(e.message)
            return kept()

    return page_handler


def run_controls(state: PlaygroundState) -> tuple:
    """(Step, Step ×N, Run, end-of-run note, Carry on, force button) for the run in `state`: once it has finished,
    the step buttons are off and the note says why and what can follow; the force button says what forcing the
    shown step does."""
    return tuple(build(value) for build, value in zip(_RUN_CONTROL_BUILDERS, _run_control_values(state)))


def changed_run_controls(state: PlaygroundState) -> tuple:
    """`run_controls(state)`, with gr.skip() for each control that is as the page shows it already (as the last
    page event of this state left it): a Step mid-run changes only the force button's words, and every control
    updated costs the browser a re-render."""
    values = _run_control_values(state)
    shown, state.controls_shown = state.controls_shown, values
    return tuple(gr.skip() if shown is not None and was == now else build(now)
                 for build, was, now in zip(_RUN_CONTROL_BUILDERS, shown or values, values))  # fmt: skip


def _run_control_values(state: PlaygroundState) -> tuple:
    """What the run controls show, as plain values: (Step, Step ×N and Run on, the note's HTML, Carry on shown,
    the force button's words)."""
    session = state.session
    done = session is not None and session.done
    can_carry_on = done and carry_on_tokens(state) is not None
    note = ""
    if done:
        reason = FINISH.get(session.finish_reason, session.finish_reason or "done")
        if can_carry_on:
            then = f"<b>Carry on</b> for up to {CARRY_ON_TOKENS} more tokens, or <b>Undo</b> / <b>Rewind</b> to go back."
        elif session.config.strategy == "beam" and session.finish_reason == "length":
            then = "Beam search's length is fixed for a run: raise <b>Max new tokens</b> and <b>Reset</b>, or <b>Rewind</b>."
        else:
            then = "<b>Undo</b> or <b>Rewind</b> to choose another path, or <b>Reset</b> to start again."
        note = (f'<div class="dp-end" role="status">The run has finished: {html.escape(reason)} '
                f"({len(session.steps)} tokens). {then}</div>")  # fmt: skip
    return (not done, not done, not done, note, can_carry_on, force_label(state))


# Each run control's update from its value in `_run_control_values`, in RUN_CONTROLS order (only the controls
# that changed are built: a Gradio component costs a fraction of a millisecond to make, at every Step).
_RUN_CONTROL_BUILDERS = (
    *(lambda on: gr.Button(interactive=on) for _ in range(3)),  # Step, Step ×N, Run
    lambda note: gr.HTML(note, visible=bool(note)),
    lambda shown: gr.Button(visible=shown),  # Carry on
    lambda words: gr.Button(value=words),  # the force button
)


def force_label(state: PlaygroundState) -> str:
    """What "use this token instead" does to the shown step: replaces it and drops the tokens after it."""
    record, pending = shown_record(state)
    if record is None or pending:
        return "Use this token as the next step"
    after = len(state.steps) - record.step - 1
    if after == 0:
        return f"Replace step {record.step} with this token"
    return f"Replace step {record.step} with this token (drops the {after} token{'s' if after != 1 else ''} after it)"


def carry_on_tokens(state: PlaygroundState) -> int | None:
    """The max new tokens a finished run may carry on to, or None when it cannot (it ended otherwise than by
    length, it is a beam search, or a public Space's cap is reached)."""
    session = state.session
    if session is None or not session.done or session.finish_reason != "length" or session.config.strategy == "beam":
        return None
    limit = len(session.steps) + CARRY_ON_TOKENS
    if shared.POLICY.hosted:
        limit = min(limit, shared.POLICY.max_new_tokens)
    return limit if limit > len(session.steps) else None


@exclusive
def on_carry_on(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p, repetition_penalty,
                num_beams, length_penalty, max_new_tokens, top_n, seed, permalink="") -> tuple:  # fmt: skip
    """Raise a finished run's max new tokens and take the next step: (max new tokens, *step outputs)."""
    limit = carry_on_tokens(state) if isinstance(state, PlaygroundState) else None
    if limit is None:
        raise gr.Error("This run cannot carry on: it did not stop at its length limit.")
    limit = max(limit, as_int("Max new tokens", max_new_tokens))
    outputs = on_step(state, prompt, model, chat, system, strategy, temperature, top_k, top_p, min_p,
                      repetition_penalty, num_beams, length_penalty, limit, top_n, seed, 1, permalink)  # fmt: skip
    return (limit, *outputs)
