"""The page: `build_demo()` lays out the components and wires each event to its handler; `launch_options()` is
the theme and CSS `demo.launch` takes. The texts people read beside the controls live here too.

Event wiring only: every handler is a plain function in `handlers`, and nothing here decodes, draws or
builds a table. Models are shared by every browser (`shared.REGISTRY`); each browser's run is its `gr.State`.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import gradio as gr

from .. import plots, views
from ..config import MAX_BEAMS
from ..hosting import HostingPolicy
from ..loading import EMBEDDED_NAME
from . import sessions, shared
from .handlers import (on_compare, on_explore, on_export, on_force, on_inspect, on_load_model, on_model_defaults,
                       on_new_seed, on_page_load, on_prepare, on_preview, on_reset, on_rewind, on_run, on_scale,
                       on_step, on_stop, on_strategy, on_token_click, on_trajectory_view, on_undo)  # fmt: skip
from .outputs import N_TABLE_CHOICES, PLOT_FORMAT, status_html
from .page import CARRY_ON_TOKENS, for_page, on_carry_on
from .shared import DEFAULT_MODEL
from .state import PlaygroundState

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
DEFAULT_PROMPT = "Once upon a time, in a small village by the sea,"

# The step table's columns (views.step_table: Step, Input, Chosen, Model, After knobs, then 5 choices): the
# chosen token and its probabilities fit beside the input at 1280 px, the choices scroll.
TABLE_COLUMN_WIDTHS = ["64px", "300px", "130px", "84px", "100px"] + ["150px"] * N_TABLE_CHOICES

# A click, a tap or Enter on a generated token (delegated from the text's root, which survives re-renders):
# a popover of its alternatives (built from the span's data-alts as text, never as markup; it lives on
# <body> so a re-render leaves it open), and the server is told which step to inspect. A click elsewhere or
# Escape closes it.
TOKEN_JS = """
let pop = document.getElementById('dp-popover');
if (!pop) {
  pop = document.createElement('div');
  pop.id = 'dp-popover'; pop.setAttribute('role', 'dialog'); pop.hidden = true;
  pop.style.cssText = 'position:absolute;z-index:1000;max-width:min(420px,92vw);background:#fff;color:#111827;' +
    'border:1px solid #94a3b8;border-radius:8px;box-shadow:0 6px 24px rgba(0,0,0,.18);padding:10px 12px;' +
    'font:15px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace';
  document.body.appendChild(pop);
  document.addEventListener('click', (e) => {
    if (!pop.contains(e.target) && !e.target.closest('[data-alts]')) { pop.hidden = true; }
  });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') { pop.hidden = true; } });
}
const cell = (row, text, css) => { const td = document.createElement('td'); td.textContent = text;
  td.style.cssText = 'padding:2px 8px;' + (css || ''); row.appendChild(td); };
function show(t) {
  const d = JSON.parse(t.dataset.alts);
  pop.replaceChildren();
  const head = document.createElement('div'); head.textContent = d.head; head.style.fontWeight = '700';
  const sub = document.createElement('div'); sub.textContent = d.sub; sub.style.cssText = 'font-size:13px;opacity:.75';
  const table = document.createElement('table'); table.style.cssText = 'border-collapse:collapse;margin-top:6px';
  const top = document.createElement('tr');
  ['', 'token', 'model', 'after knobs', ''].forEach((h) => cell(top, h, 'font-size:12px;opacity:.7'));
  table.appendChild(top);
  d.rows.forEach(([tok, raw, after, cut, chosen]) => {
    const tr = document.createElement('tr');
    if (chosen) { tr.style.fontWeight = '700'; tr.style.background = '#eef2ff'; }
    cell(tr, chosen ? '▶' : ''); cell(tr, tok); cell(tr, raw, 'text-align:right'); cell(tr, after, 'text-align:right');
    cell(tr, cut ? 'cut by ' + cut : '', 'font-size:13px;opacity:.75');
    table.appendChild(tr);
  });
  pop.append(head, sub, table);
  pop.hidden = false;
  const r = t.getBoundingClientRect();
  const left = Math.max(8, Math.min(r.left, document.documentElement.clientWidth - pop.offsetWidth - 8));
  pop.style.left = (left + window.scrollX) + 'px';
  pop.style.top = (r.bottom + window.scrollY + 6) + 'px';
}
element.addEventListener('click', (e) => {
  const t = e.target.closest('[data-step]');
  if (t) { show(t); trigger('click', {step: Number(t.dataset.step)}); }
});
element.addEventListener('keydown', (e) => {
  const t = e.target.closest('[data-step]');
  if (t && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); t.click(); }
});
"""

# The permalink box gets the whole address: the page's own origin and path, with the run's query.
PERMALINK_JS = "(q) => { if (q) { window.history.replaceState(null, '', q); } return q ? location.origin + location.pathname + q : ''; }"



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
/* the step-like events' progress is Gradio's "minimal" timer on the coloured text, which an HTML output would
   clip to nothing: shown at the text's top edge ("processing | 1.5s"), so a slow model's Step is seen working */
#dp-text .wrap.minimal { overflow: visible; }
.dp-status { font-size: 14px; padding: 4px 2px; }
.dp-notice { font-size: 13px; padding: 4px 8px; margin: 4px 0; border-left: 3px solid #f59e0b;
             background: rgba(245, 158, 11, .08); }
#dp-title h1 { margin-bottom: 0; }
.dp-end { font-size: 14px; padding: 6px 10px; border-left: 3px solid #6366f1; background: rgba(99, 102, 241, .08); }
/* a phone: the views (Step controls first) come right after the prompt, the settings after them */
@media (max-width: 760px) {
  #dp-main { order: -1; }
  #dp-step-bar { flex-wrap: wrap; gap: 6px; }
  #dp-step-bar > * { flex: 1 1 28% !important; min-width: 96px !important; }
}
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
    """The whole page. Event wiring only: every handler is a plain function (handlers.py); the buttons call
    their page variants (page.py) and the named API endpoints are registered apart, on a hidden trigger."""
    policy = policy or shared.POLICY
    max_tokens = policy.max_new_tokens if policy.hosted else 512
    max_beams = policy.max_beams if policy.hosted else MAX_BEAMS
    max_samples = policy.max_samples if policy.hosted else 8
    examples = load_examples()
    default_label = f"{EMBEDDED_NAME}" if shared.REGISTRY.default_spec is None else f"{shared.REGISTRY.default_spec} (default)"
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
        # the prompt spans the page, so that on a phone it is followed by the Step controls, not by every setting
        prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", lines=2, max_lines=12, elem_id="dp-prompt",
                            info="The text the model continues (or, in chat mode, your message).")  # fmt: skip
        chat = gr.Checkbox(False, label="Use the chat template", render=False,
                           info="Wrap the prompt as a user message, the way chat models were trained.")  # fmt: skip
        if examples:
            example_prompts = gr.Examples(
                examples=[[e["prompt"], bool(e.get("chat", False))] for e in examples],
                inputs=[prompt, chat],
                example_labels=[str(e.get("title") or e["prompt"][:40]) for e in examples],
                label="Example prompts",
            )
        with gr.Row(equal_height=False, elem_id="dp-columns"):
            with gr.Column(scale=1, min_width=330, elem_id="dp-settings"):
                chat.render()
                system = gr.Textbox("", label="System message", lines=2, visible=False,
                                    info="Chat mode only: instructions the model sees before your message.")  # fmt: skip
                with gr.Group():
                    model = gr.Dropdown(model_choices, value=DEFAULT_MODEL, label="Model", allow_custom_value=not policy.hosted,
                                        info="The embedded default, or type a Hugging Face Hub id or a local folder.",
                                        elem_id="dp-model")  # fmt: skip
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
                    model_defaults_btn = gr.Button("Model’s defaults", size="sm", elem_id="dp-model-defaults")
                with gr.Accordion("Beam search", open=False):
                    num_beams = gr.Slider(1, max_beams, value=min(4, max_beams), step=1, label="Beams",
                                          info=_INFO["num_beams"], interactive=False)  # fmt: skip
                    length_penalty = gr.Slider(-2, 3, value=1.0, step=0.1, label="Length penalty",
                                               info=_INFO["length_penalty"], interactive=False)  # fmt: skip
                max_new_tokens = gr.Slider(1, max_tokens, value=min(32, max_tokens), step=1, label="Max new tokens",
                                           info=_INFO["max_new_tokens"], elem_id="dp-max-new")  # fmt: skip
                top_n = gr.Slider(2, 50, value=10, step=1, label="Candidates shown", info=_INFO["top_n"],
                                  elem_id="dp-top-n")  # fmt: skip
                with gr.Row():
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, info=_INFO["seed"], scale=3)
                    new_seed = gr.Button("New seed", size="sm", scale=1)

            with gr.Column(scale=2, elem_id="dp-main"):
                with gr.Tabs(elem_id="dp-views"):
                    with gr.Tab("Step by step", id="step"):
                        with gr.Row(elem_id="dp-step-bar"):
                            step_btn = gr.Button("Step", variant="primary", elem_id="dp-step")
                            n_box = gr.Number(5, label="N", precision=0, minimum=1, maximum=1000, min_width=70,
                                              scale=0, container=False, elem_id="dp-n")  # fmt: skip
                            step_n_btn = gr.Button("Step ×N", elem_id="dp-step-n")
                            run_btn = gr.Button("Run to the end", elem_id="dp-run")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="dp-stop")
                            undo_btn = gr.Button("Undo", elem_id="dp-undo")
                            reset_btn = gr.Button("Reset", elem_id="dp-reset")
                        with gr.Row(equal_height=True):
                            end_note = gr.HTML("", visible=False, elem_id="dp-end")
                            carry_btn = gr.Button(f"Carry on (+{CARRY_ON_TOKENS} tokens)", visible=False, scale=0,
                                                  min_width=200, elem_id="dp-carry-on")  # fmt: skip
                        text_html = gr.HTML(views.colored_text_html(DEFAULT_PROMPT, []), elem_id="dp-text",
                                            js_on_load=TOKEN_JS)
                        status = gr.HTML(status_html(PlaygroundState()), elem_id="dp-status")
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
                                force_btn = gr.Button("Use this token as the next step", elem_id="dp-force")
                            with gr.Column(min_width=220):
                                rewind_to = gr.Number(0, label="Rewind: keep the first N tokens", precision=0, minimum=0,
                                                      info="0 = back to the prompt.", elem_id="dp-rewind-to")  # fmt: skip
                                rewind_btn = gr.Button("Rewind", size="sm", elem_id="dp-rewind")
                        # the whole run's two views, one at a time: only the one on screen is redrawn at each Step
                        with gr.Tabs(elem_id="dp-run-views"):
                            with gr.Tab("Step table", id="table", elem_id="dp-table-tab") as table_tab:
                                table = gr.Dataframe(label="Step table (the chosen token, then the top choices by the "
                                                     "model's own probability)", interactive=False, wrap=True,
                                                     elem_id="dp-table", max_height=420,
                                                     column_widths=TABLE_COLUMN_WIDTHS)  # fmt: skip
                            with gr.Tab("Trajectory", id="trajectory", elem_id="dp-traj-tab") as traj_tab:
                                traj_plot = gr.Plot(label="Trajectory: probability and entropy per step", elem_id="dp-traj",
                                                    format=PLOT_FORMAT, show_label=False)  # fmt: skip
                                gr.HTML(views.chart_legend_html(plots.TRAJECTORY_LEGEND), elem_id="dp-traj-legend")
                        with gr.Accordion("Share and export", open=False, elem_id="dp-share"):
                            permalink = gr.Textbox("", visible=False)  # the run's "?run=..." query: handlers' input
                            permalink_url = gr.Textbox("", label="Permalink (the address bar is updated too)",
                                                       buttons=["copy"], elem_id="dp-permalink",
                                                       info="Opening this link replays the run token for token.")  # fmt: skip
                            export_btn = gr.Button("Prepare downloads", size="sm")
                            with gr.Row():
                                csv_file = gr.File(label="Step table (CSV)", interactive=False)
                                json_file = gr.File(label="Full trace (JSON)", interactive=False)
                        result = gr.JSON(visible=False)

                    with gr.Tab("Compare", id="compare"):
                        gr.Markdown("Greedy, beam search and sampled runs of the same prompt, with the settings below "
                                    "(prompt, model, repetition penalty, max new tokens and seed from the page). Each "
                                    "card shows the text coloured by the model's probability of each token.")  # fmt: skip
                        with gr.Row(equal_height=False):
                            with gr.Column(min_width=240):
                                num_samples = gr.Slider(0, max_samples, value=min(2, max_samples), step=1,
                                                        label="Samples", elem_id="dp-c-samples",
                                                        info="How many sampled runs (seeds seed, seed+1, …).")  # fmt: skip
                                c_temperature = gr.Slider(0, 3, value=0.8, step=0.05, label="Temperature (samples)",
                                                          elem_id="dp-c-temperature")  # fmt: skip
                                c_top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k (samples)", elem_id="dp-c-top-k")
                                c_top_p = gr.Slider(0.01, 1, value=0.95, step=0.01, label="Top-p (samples)",
                                                    elem_id="dp-c-top-p")  # fmt: skip
                                c_min_p = gr.Slider(0, 1, value=0.0, step=0.01, label="Min-p (samples)", elem_id="dp-c-min-p")
                            with gr.Column(min_width=240):
                                c_beams = gr.Slider(1, max_beams, value=min(4, max_beams), step=1, label="Beams",
                                                    info=_INFO["num_beams"], elem_id="dp-c-beams")  # fmt: skip
                                c_length_penalty = gr.Slider(-2, 3, value=1.0, step=0.1, label="Length penalty",
                                                             info=_INFO["length_penalty"], elem_id="dp-c-length-penalty")  # fmt: skip
                                with gr.Row():
                                    compare_btn = gr.Button("Compare", variant="primary", elem_id="dp-compare")
                                    compare_stop = gr.Button("Stop", variant="stop")
                        compare_cards = gr.HTML("", elem_id="dp-compare-cards")
                        # side by side where the page is wide enough for the 800 px tree and the table, else stacked
                        with gr.Row(equal_height=False):
                            with gr.Column(scale=3, min_width=800):
                                beam_plot = gr.Plot(label="Beam search tree", elem_id="dp-beam-tree", format=PLOT_FORMAT,
                                                    show_label=False)  # fmt: skip
                            with gr.Column(scale=2, min_width=320):
                                final_beams = gr.Dataframe(label="Final beams (what generate() returns, best first)",
                                                           interactive=False, wrap=True, elem_id="dp-final-beams",
                                                           column_widths=["64px", "84px", "76px", "360px", "120px",
                                                                          "90px", "84px"])  # fmt: skip
                        compare_result = gr.JSON(visible=False)

                    with gr.Tab("Knobs", id="teach"):
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
        compare_controls = [prompt, model, chat, system, strategy, c_temperature, c_top_k, c_top_p, c_min_p,
                            repetition_penalty, c_beams, c_length_penalty, max_new_tokens, top_n, seed, num_samples]  # fmt: skip
        step_out = [result, text_html, dist_plot, table, traj_plot, status, inspect, candidates, permalink, state]
        page_out = [*step_out, step_btn, step_n_btn, run_btn, end_note, carry_btn, force_btn]  # page.RUN_CONTROLS
        one = gr.Number(1, visible=False)
        compare_out = [compare_result, compare_cards, beam_plot, final_beams]
        explore_in = [state, *controls, temps]
        explore_out = [temp_plot, knobs_plot, explore_status, state]

        # The named API endpoints, on a trigger no one sees: API clients get the plain handlers, whose refusals
        # are errors. The page's buttons (below) call the page variants, whose refusals are one warning that
        # leaves every output as it was.
        api = gr.Button(visible=False)
        api.click(on_step, [state, *controls, one, permalink], step_out, api_name="step")
        api.click(on_step, [state, *controls, n_box, permalink], step_out, api_name="step_n")
        api.click(on_run, [state, *controls, permalink], step_out, api_name="run")
        api.click(on_preview, [state, *controls, permalink], step_out, api_name="preview")
        api.click(on_prepare, [state], None, api_name="prepare")
        api.click(on_force, [state, *controls, inspect, candidates, permalink], step_out, api_name="force")
        api.click(on_undo, [state, top_n, permalink], step_out, api_name="undo")
        api.click(on_rewind, [state, rewind_to, top_n, permalink], step_out, api_name="rewind")
        api.click(on_reset, [state], step_out, api_name="reset")
        api.click(on_inspect, [state, inspect, top_n], step_out, api_name="inspect")
        api.click(on_compare, compare_controls, compare_out, api_name="compare")
        api.click(on_explore, explore_in, explore_out, api_name="explore")
        api.click(on_export, [state, top_n], [csv_file, json_file], api_name="export")
        knobs = [strategy, temperature, top_k, top_p, min_p, repetition_penalty, num_beams, length_penalty]  # KNOBS
        api.click(on_load_model, [state, model], [model, model_status, state, *knobs], api_name="load_model")

        def page(handler, n_outputs=len(step_out), controls=True):  # the page's variant of a handler
            return for_page(handler, n_outputs, controls=controls)

        private = dict(api_visibility="private")
        # progress is a timer on the coloured text only: a timer ticking on all ten outputs, or Gradio's spinner
        # (a third of a core while it turns, in a software-rendered browser), kept the browser repainting the
        # page while the server worked, and competing with it for a 2-core machine's CPU
        busy = dict(show_progress="minimal", show_progress_on=[text_html], **private)
        # after each step-like action the next step's forward is made while the person reads, so the next Step
        # (or a knob's preview) needs no model call; queued like any model work, nothing on the page waits on it
        ahead = dict(fn=on_prepare, inputs=[state], outputs=None, show_progress="hidden", **private)
        step_btn.click(page(on_step), [state, *controls, one, permalink], page_out, trigger_mode="always_last",
                       **busy).then(**ahead)  # fmt: skip
        step_n_btn.click(page(on_step), [state, *controls, n_box, permalink], page_out, **busy).then(**ahead)
        run_btn.click(page(on_run), [state, *controls, permalink], page_out, **busy).then(**ahead)
        # Stop asks the running Run or Step ×N to end after its current step (off the queue, so it is heard at
        # once); the run then sends its last update as usual
        stop_btn.click(on_stop, [state], None, queue=False, **private)
        carry_btn.click(page(on_carry_on, len(step_out) + 1), [state, *controls, permalink],
                        [max_new_tokens, *page_out], **busy).then(**ahead)  # fmt: skip
        force_btn.click(page(on_force), [state, *controls, inspect, candidates, permalink], page_out,
                        **busy).then(**ahead)  # fmt: skip
        undo_btn.click(page(on_undo), [state, top_n, permalink], page_out, **busy).then(**ahead)
        rewind_btn.click(page(on_rewind), [state, rewind_to, top_n, permalink], page_out, **busy).then(**ahead)
        reset_btn.click(page(on_reset), [state], page_out, **busy)
        inspect.release(page(on_inspect), [state, inspect, top_n], page_out, **busy)
        text_html.click(page(on_token_click), [state, top_n], page_out, **busy)
        strategy.change(on_strategy, [strategy], [temperature, top_k, top_p, min_p, num_beams, length_penalty, force_btn],
                        queue=False, **private)  # fmt: skip
        chat.change(lambda c: gr.Textbox(visible=bool(c)), [chat], [system], queue=False, **private)
        new_seed.click(on_new_seed, None, [seed], queue=False, **private)
        compare_evt = compare_btn.click(page(on_compare, len(compare_out), controls=False), compare_controls, compare_out, **private)
        compare_stop.click(None, None, None, cancels=[compare_evt], **private)
        explore_btn.click(page(on_explore, len(explore_out), controls=False), explore_in, explore_out, **private)
        export_btn.click(page(on_export, 2, controls=False), [state, top_n], [csv_file, json_file], **private)
        # the box shows the whole address (which only the page knows), and the address bar follows the run
        permalink.change(None, [permalink], [permalink_url], js=PERMALINK_JS, **private)
        demo.load(page(on_page_load, len(controls) + len(step_out)), [state, *controls], [*controls, *page_out], **private)

        # live knobs: the pending step redrawn as a knob moves (its forward is made once and reused by Step)
        preview_evt = dict(fn=page(on_preview), inputs=[state, *controls, permalink], outputs=page_out,
                           trigger_mode="always_last", show_progress="minimal", show_progress_on=[dist_plot], **private)  # fmt: skip
        for knob in (temperature, top_k, top_p, min_p, repetition_penalty, top_n):
            knob.input(**preview_evt)
        for control in (strategy, chat, prompt):  # a person's edits only: a permalink that sets them keeps its chart
            control.input(**preview_evt)
        if examples:  # a picked example prompt is previewed like a typed one
            example_prompts.load_input_event.then(**preview_evt)
        # a loaded model's generation_config sets the knobs it names (the strategy's .change greys out what it
        # ignores); the chart follows the knobs
        load_btn.click(on_load_model, [state, model], [model, model_status, state, *knobs], **private).then(**preview_evt)
        model_defaults_btn.click(page(on_model_defaults, len(knobs), controls=False), [model], knobs,
                                 **private).then(**preview_evt)  # fmt: skip
        traj_tab.select(on_trajectory_view, [state, gr.State(True)], [traj_plot, state], **private)
        table_tab.select(on_trajectory_view, [state, gr.State(False)], [traj_plot, state], **private)
        log_scale.change(on_scale, [state, log_scale, top_n], [dist_plot, state], show_progress="hidden", **private)
    sessions.configure(demo, policy)  # one concurrency limit for every model-using event, queue bounds, sweeper
    # What is built by now (the models, the page) lives as long as the process: moved out of the collector's
    # scans, it no longer makes the occasional full collection (~0.45 s with a model loaded) land in a Step.
    gc.freeze()
    return demo
