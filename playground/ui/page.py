"""The run controls the page shows beside a run: Step, Step ×N and Run are off once the run has finished, a line
says why, Carry on appears where more tokens can follow, and the force button says what forcing the shown step
does. Each step-like event of the page also sets them (`changed_run_controls`, those that changed).

This module knows nothing about decoding, figures, the page's layout or how a request is served.
"""

from __future__ import annotations

import html

import gradio as gr

from . import shared
from .outputs import finish_text, force_label
from .state import PlaygroundState

# The run controls by output name, in the order `run_controls` returns them.
RUN_CONTROLS = ("step", "step_n", "run", "end_note", "carry_on", "force")
CARRY_ON_TOKENS = 16  # how many more tokens "Carry on" allows a run that reached max new tokens


def run_controls(state: PlaygroundState) -> dict:
    """(Step, Step ×N, Run, end-of-run note, Carry on, force button) for the run in `state`: once it has finished,
    the step buttons are off and the note says why and what can follow; the force button says what forcing the
    shown step does."""
    return {name: build(value) for name, build, value in zip(RUN_CONTROLS, _RUN_CONTROL_BUILDERS, _run_control_values(state))}


def changed_run_controls(state: PlaygroundState) -> dict:
    """`run_controls(state)` without the controls that are as the page shows them already (as the last page
    event of this state left it): a Step mid-run changes only the force button's words, and every control
    updated costs the browser a re-render."""
    values = _run_control_values(state)
    shown, state.controls_shown = state.controls_shown, values
    return {name: build(now) for name, build, was, now in zip(RUN_CONTROLS, _RUN_CONTROL_BUILDERS, shown or values, values)
            if shown is None or was != now}  # fmt: skip


def _run_control_values(state: PlaygroundState) -> tuple:
    """What the run controls show, as plain values: (Step, Step ×N and Run on, the note's HTML, Carry on shown,
    the force button's words)."""
    session = state.session
    done = session is not None and session.done
    can_carry_on = done and carry_on_tokens(state) is not None
    note = ""
    if done:
        reason = finish_text(session)
        if can_carry_on:
            then = f"<b>Carry on</b> for up to {CARRY_ON_TOKENS} more tokens, or <b>Undo</b> / <b>Rewind</b> to go back."
        elif session.is_beam and session.finish_reason == "length":
            then = "Beam search's length is fixed for a run: raise <b>Max new tokens</b> and <b>Reset</b>, or <b>Rewind</b>."
        else:
            then = "<b>Undo</b> or <b>Rewind</b> to choose another path, or <b>Reset</b> to start again."
        n = len(session.steps)
        note = (f'<div class="dp-end" role="status">The run has finished after {n} token{"s" if n != 1 else ""}: '
                f"{html.escape(reason)}. {then}</div>")  # fmt: skip
    return (not done, not done, not done, note, can_carry_on, force_label(state))


# Each run control's update from its value in `_run_control_values`, in RUN_CONTROLS order (only the controls
# that changed are built: a Gradio component costs a fraction of a millisecond to make, at every Step).
_RUN_CONTROL_BUILDERS = (
    *(lambda on: gr.Button(interactive=on) for _ in range(3)),  # Step, Step ×N, Run
    lambda note: gr.HTML(note, visible=bool(note)),
    lambda shown: gr.Button(visible=shown),  # Carry on
    lambda words: gr.Button(value=words),  # the force button
)


def carry_on_tokens(state: PlaygroundState) -> int | None:
    """The max new tokens a finished run may carry on to, or None when it cannot (it ended otherwise than by
    length, it is a beam search, or a public Space's cap is reached)."""
    session = state.session
    if session is None or not session.done or session.finish_reason != "length" or session.is_beam:
        return None
    limit = len(session.steps) + CARRY_ON_TOKENS
    if shared.POLICY.hosted:
        limit = min(limit, shared.POLICY.max_new_tokens)
    return limit if limit > len(session.steps) else None
