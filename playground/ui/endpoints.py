"""The endpoints' table: every named API endpoint and every page event, as data (`ENDPOINTS`), and `wire()`, the
one loop that registers each endpoint on the API and each of its page triggers on the page.

A row says which handler serves it, which components feed it (by name: the layout's components are named as
the handler's parameters, or `sources` says which), which components it updates, its session policy (see
`requests`), whether it is a named API endpoint, and which page events call it (and what follows them).
The API's endpoint names, parameter names and defaults are docs/ui.md's. This module knows nothing about
decoding, figures or how the components are laid out.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce

import gradio as gr

from . import handlers as h
from .controls import CONTROL_NAMES, KNOBS, SAMPLING_ONLY, TEXT_KNOBS
from .outputs import STEP_OUTPUTS as STEP
from .permalink import PRESENT_PARAM
from .requests import AHEAD, FREE, NONBLOCKING, Endpoint, Trigger, serve

# The timers a page event shows: step-like events a minimal one on the coloured text (a timer on all ten
# outputs, or Gradio's spinner, kept a software-rendered browser repainting while the server worked); a
# preview a minimal one on the chart.
_STEP_LIKE = dict(progress_on="text", options={"show_progress": "minimal"})
_PREVIEW = dict(progress_on="distribution", options={"show_progress": "minimal", "trigger_mode": "always_last"})
# Compare's sampling knobs, beams and length penalty are its tab's own controls.
_COMPARE_SOURCES = {"temperature": "c_temperature", "top_k": "c_top_k", "top_p": "c_top_p", "min_p": "c_min_p",
                    "num_beams": "c_num_beams", "length_penalty": "c_length_penalty"}  # fmt: skip
# The edits that redraw the pending step's chart (a person's edits only: a permalink that sets them keeps its chart);
# a words/ids box when it is left or Enter is pressed (not at each key: "cake=" is not yet a bias).
_PREVIEWED_BY = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "top_n", "strategy", "chat", "prompt",
                 "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size", "min_new_tokens")
_PREVIEWED_ON_ENTRY = tuple(TEXT_KNOBS)


def _on(component: str, event: str = "click", **kw) -> Trigger:
    return Trigger(component, event, **kw)


ENDPOINTS: tuple[Endpoint, ...] = (
    # -- stepping ----------------------------------------------------------------------------------------
    Endpoint("step", h.on_step, STEP, inputs=("n_steps",), sources={"n_steps": "one"}, controls=True, recovers=True,
             run_controls=True, then="prepare",
             page=(_on("step", progress_on="text", options={"show_progress": "minimal", "trigger_mode": "always_last"}),)),
    Endpoint("step_n", h.on_step_n, STEP, inputs=("n_steps",), sources={"n_steps": "n"}, controls=True, recovers=True,
             run_controls=True, then="prepare", page=(_on("step_n", **_STEP_LIKE),)),
    Endpoint("run", h.on_run, STEP, controls=True, recovers=True, run_controls=True, then="prepare",
             page=(_on("run", **_STEP_LIKE),)),
    Endpoint("preview", h.on_preview, STEP, controls=True, recovers=True, run_controls=True,
             page=(*(_on(k, "input", **_PREVIEW) for k in _PREVIEWED_BY),
                   *(_on(k, event, **_PREVIEW) for k in _PREVIEWED_ON_ENTRY for event in ("submit", "blur")),
                   _on("examples", "load_input_event.then", **_PREVIEW))),  # a picked example, like a typed prompt
    # after each step-like action the next step's forward is made while the person reads (nothing waits on it)
    Endpoint("prepare", h.on_prepare, (), policy=AHEAD),
    Endpoint("force", h.on_force, STEP, inputs=("inspect_step", "token_id"), controls=True, recovers=True,
             sources={"inspect_step": "inspect", "token_id": "candidates"}, run_controls=True, then="prepare",
             page=(_on("force", **_STEP_LIKE),)),
    Endpoint("undo", h.on_undo, STEP, inputs=("top_n",), recovers=True, run_controls=True, then="prepare",
             page=(_on("undo", **_STEP_LIKE),)),
    Endpoint("rewind", h.on_rewind, STEP, inputs=("to_step", "top_n"), sources={"to_step": "rewind_to"},
             recovers=True, run_controls=True, then="prepare", page=(_on("rewind", **_STEP_LIKE),)),
    Endpoint("reset", h.on_reset, STEP, run_controls=True, page=(_on("reset", **_STEP_LIKE),)),
    Endpoint("inspect", h.on_inspect, STEP, inputs=("inspect_step", "top_n"), sources={"inspect_step": "inspect"},
             policy=NONBLOCKING, run_controls=True, page=(_on("inspect", "release", **_STEP_LIKE),)),
    # -- compare, knobs, exports, models ----------------------------------------------------------------
    Endpoint("compare", h.on_compare, ("compare_result", "compare_cards", "beam_tree", "final_beams"), state=False,
             controls=True, inputs=("num_samples",), sources=_COMPARE_SOURCES, page=(_on("compare"),)),
    Endpoint("explore", h.on_explore, ("temperature_plot", "knobs_plot", "explore_status", "state"), controls=True,
             inputs=("temperatures",), page=(_on("explore"),)),
    Endpoint("export", h.on_export, ("csv_file", "json_file"), inputs=("top_n",), policy=NONBLOCKING,
             page=(_on("export"),)),
    Endpoint("load_model", h.on_load_model, ("model", "model_status", "state", *KNOBS), inputs=("model",),
             then="preview", page=(_on("load_model"),)),
    # -- the page's own events ---------------------------------------------------------------------------
    Endpoint("carry_on", h.on_carry_on, ("max_new_tokens", *STEP), controls=True, recovers=True, api=False,
             run_controls=True, then="prepare", page=(_on("carry_on", **_STEP_LIKE),)),
    Endpoint("chart_force", h.on_chart_force, STEP, controls=True, recovers=True, api=False, run_controls=True,
             then="prepare", page=(_on("distribution", "select", **_STEP_LIKE),)),  # a click on a chart's row
    Endpoint("token_click", h.on_token_click, STEP, inputs=("top_n",), policy=NONBLOCKING, api=False,
             run_controls=True, page=(_on("text", **_STEP_LIKE),)),
    Endpoint("page_load", h.on_page_load, (*CONTROL_NAMES, *STEP), controls=True, api=False, run_controls=True,
             page=(_on("demo", "load"),)),
    Endpoint("model_defaults", h.on_model_defaults, KNOBS, state=False, inputs=("model",), api=False,
             then="preview", page=(_on("model_defaults"),)),
    Endpoint("trajectory_view", h.on_trajectory_view, ("trajectory", "state"), inputs=("shown",), policy=NONBLOCKING,
             api=False, page=(_on("trajectory_tab", "select", fixed={"shown": True}),
                              _on("table_tab", "select", fixed={"shown": False}))),
    Endpoint("scale", h.on_scale, ("distribution", "state"), inputs=("log_scale", "top_n"), policy=NONBLOCKING,
             api=False, page=(_on("log_scale", "change", options={"show_progress": "hidden"}),)),
    # Stop asks the running Run or Step ×N to end after its current step: off the queue, so it is heard at once
    Endpoint("stop", h.on_stop, (), policy=FREE, api=False, page=(_on("stop", options={"queue": False}),)),
    Endpoint("strategy", h.on_strategy, (*SAMPLING_ONLY, "num_beams", "length_penalty", "force"), state=False,
             inputs=("strategy",), policy=FREE, api=False,
             page=(_on("strategy", "change", options={"queue": False}),)),
    Endpoint("chat", h.on_chat, ("system",), state=False, inputs=("chat",), policy=FREE, api=False,
             page=(_on("chat", "change", options={"queue": False}),)),
    Endpoint("new_seed", h.on_new_seed, ("seed",), state=False, policy=FREE, api=False,
             page=(_on("new_seed", options={"queue": False}),)),
)  # fmt: skip
OPTIONAL = ("examples",)  # components a page may be without (no example prompts to offer)
BY_NAME: Mapping[str, Endpoint] = {e.name: e for e in ENDPOINTS}

# The permalink box shows the whole address (which only the page knows), and the address bar follows the run
# (keeping ?present=1 while the presenter view is on; the shared link opens the ordinary page).
PERMALINK_JS = f"""(q) => {{
  if (q) {{
    const p = new URLSearchParams(q);
    if (document.body.classList.contains('dp-present')) {{ p.set('{PRESENT_PARAM}', '1'); }}
    window.history.replaceState(null, '', '?' + p);
  }}
  return q ? location.origin + location.pathname + q : '';
}}"""
# The presenter view is the page's own, no request: a class on <body> that the page's CSS reads (layout), the
# address bar's ?present=1 following it, the Step tab shown. Opening the page turns it on where the address asks,
# and below 1000 px folds the settings away (the fold's header opens them).
PRESENT_JS = f"""(on) => {{
  document.body.classList.toggle('dp-present', !!on);
  const u = new URL(location.href);
  if (on) {{ u.searchParams.set('{PRESENT_PARAM}', '1'); }} else {{ u.searchParams.delete('{PRESENT_PARAM}'); }}
  window.history.replaceState(null, '', u.pathname + u.search + u.hash);
  if (on) {{ document.querySelector('#dp-views [role=tab][data-tab-id=step]:not(.selected)')?.click(); }}
  requestAnimationFrame(() => {{  // the text's box changed size: its newest tokens back in view
    const t = document.querySelector('#dp-text .dp-tokens');
    if (t) {{ t.scrollTop = t.scrollHeight; }}
  }});
}}"""
LOAD_JS = f"""() => {{
  const fold = document.querySelector('#dp-settings-fold > .label-wrap');
  if (fold && fold.classList.contains('open') && window.matchMedia('(max-width: 999px)').matches) {{ fold.click(); }}
  const v = new URLSearchParams(location.search).get('{PRESENT_PARAM}');
  return v !== null && !['0', 'false', 'no', 'off'].includes(v.toLowerCase());
}}"""


def wire(demo: gr.Blocks, components: Mapping[str, object]) -> None:
    """Register every endpoint: the named API ones on a trigger no one sees (API clients get refusals as errors),
    and each page trigger with the page's variant (refusals as one warning that leaves the page as it was)."""
    api = gr.Button(visible=False)
    c = dict(components, demo=demo)
    events = {}
    for endpoint in ENDPOINTS:
        if endpoint.api:
            api.click(serve(endpoint), _inputs(endpoint, c), _components(endpoint.outputs, c), api_name=endpoint.name)
        for trigger in endpoint.page:
            if trigger.component in OPTIONAL and trigger.component not in c:
                continue
            listener = reduce(getattr, trigger.event.split("."), c[trigger.component])
            options = dict(trigger.options)
            if trigger.progress_on:
                options["show_progress_on"] = [c[trigger.progress_on]]
            event = listener(serve(endpoint, for_page=True, fixed=trigger.fixed), _inputs(endpoint, c, trigger.fixed),
                             _components(endpoint.page_outputs(), c), api_visibility="private", **options)  # fmt: skip
            if endpoint.then:
                follow = BY_NAME[endpoint.then]
                follow_options = {"show_progress": "hidden"} if follow.policy == AHEAD else dict(_PREVIEW["options"])
                if follow.policy != AHEAD:
                    follow_options["show_progress_on"] = [c["distribution"]]
                event.then(serve(follow, for_page=True), _inputs(follow, c), _components(follow.page_outputs(), c),
                           api_visibility="private", **follow_options)  # fmt: skip
            events[endpoint.name] = event
    # the page's plumbing, no handler: Compare's Stop cancels the comparison; the share box gets the whole address;
    # the presenter view and the settings' fold
    c["compare_stop"].click(None, None, None, cancels=[events["compare"]], api_visibility="private")
    c["permalink"].change(None, [c["permalink"]], [c["permalink_url"]], js=PERMALINK_JS, api_visibility="private")
    c["present"].change(None, [c["present"]], None, js=PRESENT_JS, api_visibility="private")
    demo.load(None, None, [c["present"]], js=LOAD_JS, api_visibility="private")


def _inputs(endpoint: Endpoint, c: Mapping[str, object], fixed: Mapping[str, object] = {}) -> list:  # noqa: B006
    return [c[endpoint.sources.get(name, name)] for name in endpoint.parameters(fixed)]


def _components(names, c: Mapping[str, object]) -> list:
    return [c[name] for name in names]
