"""One request's life, the same for every endpoint: `serve(endpoint)` is the function Gradio calls.

For each request it
  1. takes the session's turn, by the endpoint's policy (`sessions.TABLE.turn`): EXCLUSIVE waits its turn,
     AHEAD runs only when the turn is free (work done ahead of the next request), NONBLOCKING runs beside a
     request that holds it (it only reads the run), FREE takes no turn (Stop, the settings' greying);
  2. brings in the session's latest run (rebuilt from its recipe if it was parked) and, where the server lost it
     but the page still shows its permalink, replays it from that link (`recover`), saying so;
  3. builds the request's `Controls` once, from the values by name (the one adapter between Gradio's flat
     parameters and the record), and calls the handler with the run, the controls and its own values;
  4. keeps the run the handler returns as the session's latest, and orders the handler's outputs (a dict by
     name) as the event's components; an output the handler left out is left as the page shows it;
  5. sends a streaming handler's updates to the page at most every `PAGE_STREAM_EVERY_S` (each holds the ones
     before it), to an API client every one;
  6. turns any failure into one sentence: an error for an API client, a warning for the page that leaves every
     output as it was. The page's step-like events also get the run controls (`page.changed_run_controls`).

Gradio reads a function's signature to name an API endpoint's parameters and to hand it a `gr.Request`, a
`gr.Progress` or a `gr.EventData`; `serve` builds that signature from the endpoint's description. This module
knows nothing about decoding, figures, tables or the page's layout.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import gradio as gr

from . import page, sessions
from .controls import CONTROL_NAMES, DEFAULTS, Controls
from .outputs import ENDS_STREAM
from .permalink import PERMALINK_PARAM, decode_permalink, replay
from .state import PlaygroundState, friendly

EXCLUSIVE, AHEAD, NONBLOCKING, FREE = "exclusive", "ahead", "nonblocking", "free"
# A stream's updates reach the page at most this often (the API gets every one): a small model's tokens came
# faster than a browser draws them, and a page busy drawing them heard a click on Stop 30 s late. An update held
# back goes with the next one (its outputs under the next one's: a stream's text is sent from its first streamed
# step on, so the later text holds the earlier); one that sets a run control (the run ended) and the last one
# are always sent.
# Each update holds the text from the run's first streamed step, so it grows with the run: past PAGE_STREAM_CHARS
# characters the updates come less often, in proportion (a page drawing 200 tokens' text ten times a second was
# too busy to hear a click).
PAGE_STREAM_EVERY_S = 0.1  # 10 a second: smooth to read
PAGE_STREAM_CHARS = 30_000  # ~50 tokens' markup
RECOVERED = ("The server had lost this page's run (it restarted, or the session expired), so the run was "
             "replayed from its permalink.")  # fmt: skip
# What Gradio hands a handler that asks for it, by the parameter's name.
_SPECIAL = {"request": gr.Request, "evt": gr.EventData}


@dataclass(frozen=True)
class Trigger:
    """One page event that calls an endpoint: `component`'s `event` (a dotted path for an event of an event,
    e.g. "load_input_event.then"); `fixed` handler values that no component gives; `progress_on` the output
    that shows the request's timer; `options` Gradio's own event options."""

    component: str
    event: str
    fixed: Mapping[str, object] = field(default_factory=dict)
    progress_on: str | None = None
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """A named endpoint: its handler, what feeds it and what it returns, and how a request of it is served."""

    name: str  # the API's name (/name), and the page's name for the event
    handler: Callable
    outputs: tuple[str, ...]  # the names of the components it updates, in order
    inputs: tuple[str, ...] = ()  # the handler's own values, after the run and the controls, by parameter name
    policy: str = EXCLUSIVE
    state: bool = True  # the handler takes the session's run first
    controls: bool = False  # ... and the request's Controls
    recovers: bool = False  # the page's permalink comes last: a run the server lost is replayed from it
    api: bool = True  # a named API endpoint (else the page's alone)
    run_controls: bool = False  # the page's events of it also set the run controls (Step, Run, Carry on, force)
    sources: Mapping[str, str] = field(default_factory=dict)  # parameter -> the component that feeds it, where not its namesake
    page: tuple[Trigger, ...] = ()
    then: str | None = None  # the endpoint each page event of it is followed by

    def parameters(self, fixed: Mapping[str, object] = {}) -> list[str]:  # noqa: B006 - never mutated
        """The values the endpoint is called with, in order, less those a trigger fixes."""
        names = (["state"] if self.state else []) + (list(CONTROL_NAMES) if self.controls else [])
        names += [n for n in self.inputs if n not in fixed] + (["permalink"] if self.recovers else [])
        return names

    def page_outputs(self) -> tuple[str, ...]:
        return self.outputs + (page.RUN_CONTROLS if self.run_controls else ())


def serve(endpoint: Endpoint, for_page: bool = False, fixed: Mapping[str, object] | None = None) -> Callable:
    """The function Gradio calls for `endpoint` (the page's variant with `for_page`; a trigger's `fixed` values
    bound): named parameters as the API documents them, a request served as the module docstring says."""
    fixed = dict(fixed or {})
    names = endpoint.parameters(fixed)
    outputs = endpoint.page_outputs() if for_page else endpoint.outputs
    handler_params = inspect.signature(endpoint.handler).parameters
    specials = [n for n in ("request", "evt") if n in handler_params]
    takes_progress = "progress" in handler_params
    wait, ahead = endpoint.policy == EXCLUSIVE, endpoint.policy == AHEAD

    def arguments(entry, values: dict) -> dict:
        """The handler's keyword arguments: the run brought in (and recovered), the controls, its own values."""
        kwargs = {n: values[n] for n in endpoint.inputs if n in values} | fixed
        if endpoint.state:
            run = sessions.TABLE.bring_in(entry, values.get("state"))
            kwargs["run"] = recover(run, values.get("permalink")) if endpoint.recovers else run
        if endpoint.controls:
            kwargs["controls"] = Controls.from_values(values)
        kwargs.update({n: values.get(n) for n in specials})
        if takes_progress:
            kwargs["progress"] = values.get("progress")
        return kwargs

    def shown(result: dict) -> tuple | object:
        if for_page and "text_increment" in result:  # the page has the text up to there: only what is new
            result = {**result, "text": result["text_increment"]}
        if for_page and endpoint.run_controls and isinstance(result.get("state"), PlaygroundState):
            result = {**result, **page.changed_run_controls(result["state"])}
            if result.get(ENDS_STREAM):  # every run control, not only those that changed: see ENDS_STREAM
                result.update(page.run_controls(result["state"]))
        return _ordered(result, outputs)

    def refused(e: Exception):
        refusal = friendly(e)
        if not for_page:
            raise refusal from e
        gr.Warning(refusal.message)
        return _ordered({}, outputs)

    def turn(values: dict):
        key = getattr(values.get("request"), "session_hash", None) if endpoint.policy != FREE else None
        return sessions.TABLE.turn(key, wait=wait, ahead=ahead)

    if inspect.isgeneratorfunction(endpoint.handler):

        def streaming(*args, **kwargs):
            values = bind(args, kwargs)
            try:
                with turn(values) as entry:
                    held, sent = None, None  # the page's update held back, and when the last one was sent
                    for result in endpoint.handler(**arguments(entry, values)):
                        sessions.TABLE.keep(entry, result.get("state"))
                        update = _merged(held, shown(result))
                        every = PAGE_STREAM_EVERY_S * max(1.0, len(result.get("text_increment") or "") / PAGE_STREAM_CHARS)
                        if for_page and sent is not None and time.perf_counter() - sent < every \
                                and not _sets(update, outputs, page.RUN_CONTROLS):
                            held = update  # sent with the next one
                            continue
                        held, sent = None, time.perf_counter()
                        yield update
                    if held is not None:
                        yield held
            except Exception as e:  # noqa: BLE001 - every failure reaches the person as one sentence
                yield refused(e)

        served = streaming
    else:

        def plain(*args, **kwargs):
            values = bind(args, kwargs)
            try:
                with turn(values) as entry:
                    if entry is None and ahead:  # the session is busy: what was to be done ahead is left to it
                        return _ordered({}, outputs)
                    result = endpoint.handler(**arguments(entry, values))
                    sessions.TABLE.keep(entry, result.get("state"))
            except Exception as e:  # noqa: BLE001
                return refused(e)
            return shown(result)

        served = plain

    signature = _signature(endpoint, names, specials, takes_progress)

    def bind(args, kwargs) -> dict:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    served.__signature__ = signature  # type: ignore[attr-defined]
    served.__annotations__ = {n: _SPECIAL[n] for n in ("request", *specials)}  # how Gradio knows what to hand in
    served.__name__ = served.__qualname__ = f"{endpoint.name}{'_page' if for_page else ''}"
    served.__doc__ = endpoint.handler.__doc__
    served.uses_model = endpoint.policy in (EXCLUSIVE, AHEAD)  # type: ignore[attr-defined] - read by sessions.configure
    return served


def _signature(endpoint: Endpoint, names: list[str], specials: list[str], takes_progress: bool) -> inspect.Signature:
    """The signature Gradio reads: the endpoint's values by name, with the defaults a direct call gets (the
    controls' and the handler's own); then what Gradio hands in (the request always: it names the session)."""
    own = inspect.signature(endpoint.handler).parameters
    empty = inspect.Parameter.empty

    def default(name: str):
        if name == "state":
            return None
        if name == "permalink":
            return ""
        if name in CONTROL_NAMES and endpoint.controls:
            return getattr(DEFAULTS, name)
        return own[name].default if name in own else empty

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind, default=default(n)) for n in names]
    if any(p.default is not empty for p in params):  # a required value after one with a default: give it None
        seen = False
        for i, p in enumerate(params):
            seen = seen or p.default is not empty
            if seen and p.default is empty:
                params[i] = p.replace(default=None)
    for n in dict.fromkeys([*specials, "request"]):
        params.append(inspect.Parameter(n, kind, default=None, annotation=_SPECIAL[n]))
    if takes_progress:
        params.append(inspect.Parameter("progress", kind, default=gr.Progress()))
    return inspect.Signature(params)


def _merged(earlier, later):
    """An update held back (`_ordered`'s values) sent with the next: the next's values, the earlier's where the
    next leaves one as it is."""
    if earlier is None:
        return later
    if not isinstance(later, tuple):
        return earlier if _is_skip(later) else later
    return tuple(a if _is_skip(b) else b for a, b in zip(earlier, later))


def _sets(update, outputs: tuple[str, ...], names: tuple[str, ...]) -> bool:
    """Whether the update (`_ordered`'s values for `outputs`) sets any of the outputs `names`."""
    values = update if isinstance(update, tuple) else (update,)
    return any(n in names and not _is_skip(v) for n, v in zip(outputs, values))


def _is_skip(value) -> bool:
    return isinstance(value, dict) and value == gr.skip()


def _ordered(result: Mapping[str, object], outputs: tuple[str, ...]):
    """The handler's outputs by name, in the event's order (gr.skip() for any it left out); one output alone is
    returned as itself, none as None (as Gradio takes them)."""
    values = tuple(result[n] if n in result else gr.skip() for n in outputs)
    if not outputs:
        return None
    return values[0] if len(values) == 1 else values


def recover(run, permalink: str | None):
    """The page's run, or, when the server no longer has it (after a restart) but the page still shows the run's
    permalink, that run replayed, with a notice saying so. A link that cannot be replayed is ignored: the next
    step starts a fresh run, as it would have anyway."""
    if (isinstance(run, PlaygroundState) and run.session is not None) or not permalink:
        return run
    try:
        replayed, _ = replay(decode_permalink(str(permalink).split(f"{PERMALINK_PARAM}=", 1)[-1]))
    except Exception:  # noqa: BLE001
        return run
    if isinstance(run, PlaygroundState):
        replayed.stop = run.stop  # the page's Stop reaches the replayed run
    run = replayed
    run.session.notices.append(RECOVERED)
    gr.Warning(RECOVERED)
    return run
