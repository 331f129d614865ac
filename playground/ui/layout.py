"""The page's layout: `build_demo()` lays out the components, each named as the endpoints' table knows it, and
hands them to `endpoints.wire`; `launch_options()` is the theme and CSS `demo.launch` takes. The texts people
read beside the controls live here too.

Layout only: which event calls which handler is the endpoints' table's (`endpoints.py`), and nothing here
decodes, draws or builds a table. Models are shared by every browser (`shared.REGISTRY`); each browser's run
is its `gr.State`.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import gradio as gr

from .. import plots, views
from ..config import MAX_BEAMS, generate_fallbacks
from ..hosting import HostingPolicy
from ..loading import EMBEDDED_NAME
from . import accessibility, endpoints, sessions, shared
from .controls import DEFAULT_MODEL, DEFAULT_PROMPT, DEFAULTS, SAMPLING_ONLY
from .live_chart import live_chart
from .outputs import N_TABLE_CHOICES, PLOT_FORMAT, status_html
from .page import CARRY_ON_TOKENS
from .state import PlaygroundState

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"

# The step table's columns (views.step_table: Step, Input, Chosen, Model, After knobs, then 5 choices): the
# chosen token and its probabilities fit beside the input at 1280 px, the choices scroll.
TABLE_COLUMN_WIDTHS = ["64px", "300px", "130px", "84px", "100px"] + ["150px"] * N_TABLE_CHOICES
# The final beams' columns (views.FINAL_BEAMS_COLUMNS) as shares of the table's width, so every column shows at
# any width the table gets (640 px beside the tree, the whole column under it) and the Text wraps in the rest.
_FINAL_BEAMS_SHARES = {"Rank": 8, "Winner": 11, "Text": 34, "Tokens": 10, "Score": 13, "Sum log-prob": 13, "Finished": 11}
FINAL_BEAMS_WIDTHS = [f"{_FINAL_BEAMS_SHARES[c]}%" for c in views.FINAL_BEAMS_COLUMNS]

# A click, a tap or Enter on a generated token (delegated from the text's root, which survives re-renders):
# a popover of its alternatives (built from the span's data-alts as text, never as markup; it lives on
# <body> so a re-render leaves it open), and the server is told which step to inspect. A click elsewhere or
# Escape closes it.
TOKEN_JS = """
// The text is drawn here from the component's value: the whole text, or (a streamed run) the tokens from step K
// on, marked <!--dp-from:K-->, which replace the page's tokens from K (views.colored_text_increment).
const host = element.querySelector('.dp-text-host') || element;
const FROM = /^<!--dp-from:(\\d+)-->/;
let drawn = '';  // the value the page's tokens were last drawn from
function render() {
  const value = props.value || '';
  const m = FROM.exec(value);
  const tokens = host.querySelector('.dp-tokens');
  if (!m || !tokens) { host.innerHTML = value; drawn = value; return; }
  // a streamed update is most often the one before with new tokens appended: only those are drawn
  if (drawn && value.length > drawn.length && value.startsWith(drawn) && FROM.exec(drawn)?.[1] === m[1]) {
    tokens.insertAdjacentHTML('beforeend', value.slice(drawn.length));
    drawn = value;
    return;
  }
  drawn = value;
  const from = Number(m[1]);
  const incoming = document.createElement('template');
  incoming.innerHTML = value.slice(m[0].length);
  // what the page shows from K on: each token, or a character made of several (data-group: its first step),
  // with the line-break hint after it; the ones the update holds unchanged stay, the first that differs and
  // all after it go
  const shown = [...tokens.children].filter((t) => Number(t.dataset.group ?? t.dataset.step ?? -1) >= from);
  const hint = tokens.querySelector('.dp-hint');
  if (hint) { hint.remove(); }
  let same = 0;
  const fresh = [...incoming.content.children];
  while (same < shown.length && same < fresh.length && shown[same].outerHTML === fresh[same].outerHTML) same++;
  for (const t of [...shown.slice(same), ...fresh.slice(0, same)]) {
    if (t.nextSibling && t.nextSibling.nodeName === 'WBR') t.nextSibling.remove();
    t.remove();
  }
  tokens.append(incoming.content);
}
// the text scrolls within a bounded height: the newest tokens stay in view (once a frame: reading the height
// lays the page out)
let following = false;
function follow() {
  if (following) return;
  following = true;
  requestAnimationFrame(() => {
    following = false;
    const t = host.querySelector('.dp-tokens');
    if (t) { t.scrollTop = t.scrollHeight; }
  });
}
watch('value', () => { render(); follow(); });
render();
follow();
let pop = document.getElementById('dp-popover');
if (!pop) {
  pop = document.createElement('div');
  pop.id = 'dp-popover'; pop.setAttribute('role', 'dialog'); pop.setAttribute('aria-label', 'Alternatives');
  pop.hidden = true;
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

def load_examples() -> list[dict]:
    path = ASSETS / "examples.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [{"title": "Story", "prompt": DEFAULT_PROMPT, "chat": False}]
    return [e for e in data if isinstance(e, dict) and isinstance(e.get("prompt"), str)]


def launch_options() -> dict:
    """Keyword arguments for `demo.launch` that style the page and make its controls answer every edit (Gradio 6
    takes css/theme/js at launch): assets/style.css and assets/controls.js."""
    css_path = ASSETS / "style.css"
    css = css_path.read_text(encoding="utf-8") if css_path.is_file() else ""
    return {"css": css + _PAGE_CSS + accessibility.FOCUS_CSS, "theme": accessibility.page_theme(),
            "js": (ASSETS / "controls.js").read_text(encoding="utf-8")}  # fmt: skip


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
/* the explanations under the controls, legible from a seat (14 px, not the theme's 12) */
.gradio-container { --block-info-text-size: 14px; }
.gradio-container .info-text, #dp-teaching-defaults { font-size: 14px; }
#dp-text .dp-legend, #dp-text .dp-legend-note { font-size: 14px !important; }  /* views' inline 12 px */
#dp-present { align-self: center; }
/* below 1000 px (a tablet, a phone, a projector at 150 %): one column, the views (Step controls first) right
   after the prompt, then the settings, folded (endpoints.LOAD_JS) */
@media (max-width: 999px) {
  #dp-columns { flex-direction: column; }
  #dp-columns > * { width: 100%; min-width: 0 !important; }
  #dp-main { order: -1; }
}
@media (max-width: 760px) {
  #dp-step-bar { flex-wrap: wrap; gap: 6px; }
  #dp-step-bar > * { flex: 1 1 28% !important; min-width: 96px !important; }
}
/* The presenter view (endpoints.PRESENT_JS puts dp-present on <body>): the Step tab's bar, text and chart fill
   the screen, nothing else; the step bar and the text on the left, the chart on the right, each scrolling within
   its own box (the text keeps its newest tokens in view), large enough to read from the back of a room. */
/* (never inside an @media block: Gradio scopes those rules under .gradio-container, where <body> is not) */
body.dp-present { overflow: hidden; }
body.dp-present #dp-title, body.dp-present #dp-prompt, body.dp-present #dp-examples, body.dp-present #dp-settings,
body.dp-present #dp-views > .tab-wrapper, body.dp-present footer,
body.dp-present #dp-step-tab > .column > :not(#dp-step-bar, #dp-end-row, #dp-stage) { display: none !important; }
body.dp-present #dp-step-tab > .column {
  position: fixed; inset: 8px 12px; z-index: 50; background: var(--body-background-fill, #fff);
  display: grid !important; gap: 8px 20px; grid-template-columns: minmax(0, 1fr) minmax(0, 1.2fr);
  grid-template-rows: auto auto minmax(0, 1fr); grid-template-areas: "bar chart" "end chart" "text chart";
}
body.dp-present #dp-stage { display: contents; }
body.dp-present #dp-step-bar { grid-area: bar; flex-wrap: wrap; gap: 6px; }
body.dp-present #dp-step-bar > * { flex: 1 1 auto !important; min-width: 0 !important; }
body.dp-present #dp-step-bar > button { padding: 6px 10px; font-size: 15px; }
body.dp-present #dp-step-bar > #dp-n { flex: 0 0 70px !important; }
body.dp-present #dp-step-bar > #dp-present { flex: 0 0 auto !important; padding: 6px 8px; }
body.dp-present #dp-end-row { grid-area: end; }
body.dp-present #dp-end-row:not(:has(> :not(.hidden, [style*="display: none"]))) { display: none; }
body.dp-present #dp-stage-text { grid-area: text; overflow-y: auto; }
body.dp-present #dp-stage-text, body.dp-present #dp-text, body.dp-present #dp-text > .html-container,
body.dp-present #dp-text .prose, body.dp-present .dp-text-host, body.dp-present .dp-text {
  display: flex; flex-direction: column; flex: 1 1 auto; min-height: 0; }
body.dp-present #dp-status { flex: none; }
body.dp-present .dp-text .dp-tokens { flex: 1 1 auto; max-height: none !important; font-size: 22px !important; }
body.dp-present .dp-text > :not(.dp-tokens) { flex: none; }
body.dp-present .dp-status { font-size: 16px; }
body.dp-present #dp-dist { grid-area: chart; min-height: 0; overflow-y: auto; }
body.dp-present .dp-text .dp-tokens { min-height: 4.5em; }
body.dp-present .dp-legend-note { display: none; }  /* the how-to for a student's own screen */
/* a presenter view on a narrow screen: the bar, the text and the chart one above the other (the checked toggle
   says so here, as a body class cannot inside @media) */
@media (max-width: 699px) {
  #dp-step-tab > .column:has(#dp-present input:checked) {
    grid-template-columns: minmax(0, 1fr); grid-template-rows: auto auto minmax(0, 1fr) minmax(0, 1.4fr);
    grid-template-areas: "bar" "end" "text" "chart"; }
}
body.dp-present .dp-lc { font-size: 17px; }
body.dp-present .dp-lc-label { font-size: 18px; }
body.dp-present .dp-lc-head { font-size: 19px; }
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
    "strategy": "Greedy takes the most likely token; sample draws one at random; beam keeps several candidates; "
                "beam-sample draws each beam's next tokens.",
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
    # More knobs (generate()'s kwargs of the same names)
    "top_h": "Sampling only. Keep top tokens while their entropy stays within top-h × the whole entropy; 0 = off.",
    "typical_p": "Sampling only. Keep the tokens whose surprise is closest to the average, up to this mass; 1 = off.",
    "epsilon_cutoff": "Sampling only. Drop tokens whose probability is below ε (e.g. 0.0003); 0 = off.",
    "eta_cutoff": "Sampling only. Drop tokens below min(η, √η × e^−entropy) (e.g. 0.0009); 0 = off.",
    "no_repeat_ngram_size": "All strategies. No run of this many tokens appears twice (the prompt counts); 0 = off.",
    "min_new_tokens": "All strategies. End-of-text is impossible before this many new tokens; 0 = off.",
    "bad_words": "All strategies. Words never written, separated by commas: cake, New York (banned with or without a "
                 "leading space).",
    "sequence_bias": "All strategies. word=bias pairs added to the word's score: dragon=3, sea=-2 (negative = less "
                     "likely).",
    "suppress_tokens": "All strategies. Token ids never generated, separated by commas: 13, 198.",
}


def teaching_defaults_note() -> str:
    """One line: the page's own starting knobs, beside what generate() uses for a knob that neither the person nor
    the model sets (config.generate_fallbacks: top-k 50, every other knob off)."""
    name = lambda k: k.replace("_", "-")  # noqa: E731
    page = ", ".join(f"{name(k)} {getattr(DEFAULTS, k)}" for k in ("temperature", "top_k", "top_p"))
    fallbacks = ", ".join(f"{name(k)} {v}" for k, v in generate_fallbacks().items())
    return (f"The page starts at its own teaching values ({page}); generate() itself, for a knob neither you nor the "
            f"model sets, uses {fallbacks} and leaves the others off: “Model’s defaults” sets what it would use.")


def build_demo(policy: HostingPolicy | None = None) -> gr.Blocks:
    """The whole page: the components, named as the endpoints' table knows them, then wired by it."""
    policy = policy or shared.POLICY
    c: dict[str, object] = {}  # every component an event reads or updates, by name
    with gr.Blocks(title="Decoding Playground") as demo:
        c["state"] = gr.State(None)
        gr.Markdown(
            "# Decoding Playground\nSee how a language model picks its next token: step through a generation, "
            "inspect each step's candidates, force a different token, and compare greedy, sampling and beam search.",
            elem_id="dp-title",
        )
        # the prompt spans the page, so that on a phone it is followed by the Step controls, not by every setting
        c["prompt"] = gr.Textbox(DEFAULTS.prompt, label="Prompt", lines=2, max_lines=12, elem_id="dp-prompt",
                                 info="The text the model continues (or, in chat mode, your message).")  # fmt: skip
        gr.HTML(accessibility.SKIP_LINK_HTML, elem_id="dp-skip", js_on_load=accessibility.SKIP_JS)
        c["chat"] = gr.Checkbox(DEFAULTS.chat, label="Use the chat template", render=False,
                                info="Wrap the prompt as a user message, the way chat models were trained.")  # fmt: skip
        examples = load_examples()
        if examples:
            c["examples"] = gr.Examples(
                examples=[[e["prompt"], bool(e.get("chat", False))] for e in examples],
                inputs=[c["prompt"], c["chat"]],
                example_labels=[str(e.get("title") or e["prompt"][:40]) for e in examples],
                label="Example prompts",
                elem_id="dp-examples",
            )
        with gr.Row(equal_height=False, elem_id="dp-columns"):
            with gr.Column(scale=1, min_width=330, elem_id="dp-settings"):
                # a fold: open beside the views on a wide page, folded under them below 1000 px (endpoints.LOAD_JS)
                with gr.Accordion("Settings", open=True, elem_id="dp-settings-fold"):
                    _settings_column(c, policy)
            with gr.Column(scale=2, elem_id="dp-main"):
                with gr.Tabs(elem_id="dp-views"):
                    with gr.Tab("Step by step", id="step", elem_id="dp-step-tab"):
                        _step_tab(c)
                    with gr.Tab("Compare", id="compare"):
                        _compare_tab(c, policy)
                    with gr.Tab("Knobs", id="teach"):
                        _knobs_tab(c)
        endpoints.wire(demo, c)
    sessions.configure(demo, uses_model=lambda fn: getattr(fn, "uses_model", False), policy=policy)
    # What is built by now (the models, the page) lives as long as the process: moved out of the collector's
    # scans, it no longer makes the occasional full collection (~0.45 s with a model loaded) land in a Step.
    gc.freeze()
    return demo


def _settings_column(c: dict, policy: HostingPolicy) -> None:
    """The left column: chat, model, strategy, the knobs, the run's length, candidates shown and the seed."""
    max_tokens = policy.max_new_tokens if policy.hosted else 512
    max_beams = policy.max_beams if policy.hosted else MAX_BEAMS
    default_label = EMBEDDED_NAME if shared.REGISTRY.default_spec is None else f"{shared.REGISTRY.default_spec} (default)"
    model_choices = [(default_label, DEFAULT_MODEL)]
    if policy.hosted:
        model_choices += [(m, m) for m in policy.allowed_models if policy.is_allowed(m) and m != DEFAULT_MODEL]
    c["chat"].render()
    c["system"] = gr.Textbox(DEFAULTS.system, label="System message", lines=2, visible=False,
                             info="Chat mode only: instructions the model sees before your message.")  # fmt: skip
    with gr.Group():
        c["model"] = gr.Dropdown(model_choices, value=DEFAULTS.model, label="Model", allow_custom_value=not policy.hosted,
                                 info="The embedded default, or type a Hugging Face Hub id or a local folder.",
                                 elem_id="dp-model")  # fmt: skip
        c["load_model"] = gr.Button("Load model", size="sm")
    c["model_status"] = gr.HTML("")
    c["strategy"] = gr.Radio(["greedy", "sample", "beam", "beam-sample"], value=DEFAULTS.strategy, label="Strategy",
                             info=_INFO["strategy"])  # fmt: skip
    with gr.Accordion("Sampling knobs", open=True):
        _knob_sliders(c, "", "dp-")
        c["repetition_penalty"] = gr.Slider(0.5, 2, value=DEFAULTS.repetition_penalty, step=0.05, label="Repetition penalty",
                                            info=_INFO["repetition_penalty"], elem_id="dp-rep")  # fmt: skip
        c["model_defaults"] = gr.Button("Model’s defaults", size="sm", elem_id="dp-model-defaults")
        gr.Markdown(teaching_defaults_note(), elem_id="dp-teaching-defaults")
    with gr.Accordion("Beam search", open=False):
        _beam_sliders(c, "", max_beams, interactive=False)
    with gr.Accordion("More knobs", open=False, elem_id="dp-more-knobs"):
        _more_knobs(c, max_tokens)
    c["max_new_tokens"] = gr.Slider(1, max_tokens, value=min(DEFAULTS.max_new_tokens, max_tokens), step=1,
                                    label="Max new tokens", info=_INFO["max_new_tokens"], elem_id="dp-max-new")  # fmt: skip
    c["top_n"] = gr.Slider(2, 50, value=DEFAULTS.top_n, step=1, label="Candidates shown", info=_INFO["top_n"],
                           elem_id="dp-top-n")  # fmt: skip
    with gr.Row():
        c["seed"] = gr.Number(DEFAULTS.seed, label="Seed", precision=0, minimum=0, info=_INFO["seed"], scale=3)
        c["new_seed"] = gr.Button("New seed", size="sm", scale=1)


def _more_knobs(c: dict, max_tokens: int) -> None:
    """generate()'s less common knobs (controls.MORE_KNOBS), each off by default: the "More knobs" group."""
    d = DEFAULTS
    sampling = DEFAULTS.strategy in ("sample", "beam-sample")
    slider = lambda name, lo, hi, step, label: gr.Slider(lo, hi, value=getattr(d, name), step=step, label=label,  # noqa: E731
                                                          info=_INFO[name], elem_id="dp-" + name.replace("_", "-"),
                                                          interactive=sampling if name in SAMPLING_ONLY else None)  # fmt: skip
    c["top_h"] = slider("top_h", 0, 1, 0.01, "Top-h")
    c["typical_p"] = slider("typical_p", 0.01, 1, 0.01, "Typical-p")
    c["epsilon_cutoff"] = slider("epsilon_cutoff", 0, 0.02, 0.0001, "ε cutoff")
    c["eta_cutoff"] = slider("eta_cutoff", 0, 0.02, 0.0001, "η cutoff")
    c["no_repeat_ngram_size"] = slider("no_repeat_ngram_size", 0, 10, 1, "No-repeat n-gram size")
    c["min_new_tokens"] = slider("min_new_tokens", 0, max_tokens, 1, "Min new tokens")
    text = lambda name, label, placeholder: gr.Textbox(getattr(d, name), label=label, info=_INFO[name],  # noqa: E731
                                                       placeholder=placeholder, elem_id="dp-" + name.replace("_", "-"))  # fmt: skip
    c["bad_words"] = text("bad_words", "Bad words", "cake, New York")
    c["sequence_bias"] = text("sequence_bias", "Sequence bias", "dragon=3, sea=-2")
    c["suppress_tokens"] = text("suppress_tokens", "Suppress tokens", "13, 198")


def _knob_sliders(c: dict, prefix: str, elem_prefix: str, label_suffix: str = "") -> None:
    """Temperature, top-k, top-p and min-p (the Step tab's, or with `prefix` Compare's samples')."""
    info = (lambda k: _INFO[k]) if not label_suffix else (lambda k: None)
    c[prefix + "temperature"] = gr.Slider(0, 3, value=DEFAULTS.temperature, step=0.05, label="Temperature" + label_suffix,
                                          info=info("temperature"), elem_id=elem_prefix + "temperature")  # fmt: skip
    c[prefix + "top_k"] = gr.Slider(0, 200, value=DEFAULTS.top_k, step=1, label="Top-k" + label_suffix,
                                    info=info("top_k"), elem_id=elem_prefix + "top-k")  # fmt: skip
    c[prefix + "top_p"] = gr.Slider(0.01, 1, value=DEFAULTS.top_p, step=0.01, label="Top-p" + label_suffix,
                                    info=info("top_p"), elem_id=elem_prefix + "top-p")  # fmt: skip
    c[prefix + "min_p"] = gr.Slider(0, 1, value=DEFAULTS.min_p, step=0.01, label="Min-p" + label_suffix,
                                    info=info("min_p"), elem_id=elem_prefix + "min-p")  # fmt: skip


def _beam_sliders(c: dict, prefix: str, max_beams: int, interactive: bool = True, elem_prefix: str | None = None) -> None:
    """Beams and length penalty (the Step tab's, or with `prefix` Compare's)."""
    ids = {} if elem_prefix is None else {"num_beams": elem_prefix + "beams", "length_penalty": elem_prefix + "length-penalty"}
    c[prefix + "num_beams"] = gr.Slider(1, max_beams, value=min(DEFAULTS.num_beams, max_beams), step=1, label="Beams",
                                        info=_INFO["num_beams"], interactive=interactive, elem_id=ids.get("num_beams"))  # fmt: skip
    c[prefix + "length_penalty"] = gr.Slider(-2, 3, value=DEFAULTS.length_penalty, step=0.1, label="Length penalty",
                                             info=_INFO["length_penalty"], interactive=interactive,
                                             elem_id=ids.get("length_penalty"))  # fmt: skip


def _step_tab(c: dict) -> None:
    """The Step tab: the step bar, the coloured text, the chart, the inspector, the run's views, sharing."""
    with gr.Row(elem_id="dp-step-bar"):
        c["step"] = gr.Button("Step", variant="primary", elem_id="dp-step")
        c["n"] = gr.Number(5, label="N", precision=0, minimum=1, maximum=1000, min_width=70, scale=0, container=False,
                           elem_id="dp-n")  # fmt: skip
        c["step_n"] = gr.Button("Step ×N", elem_id="dp-step-n")
        c["run"] = gr.Button("Run to the end", elem_id="dp-run")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="dp-stop")
        c["undo"] = gr.Button("Undo", elem_id="dp-undo")
        c["reset"] = gr.Button("Reset", elem_id="dp-reset")
        # the presenter view (also ?present=1): the settings hidden; the step bar, the text and the chart on one screen
        c["present"] = gr.Checkbox(False, label="Presenter view", container=False, scale=0, min_width=150,
                                   elem_id="dp-present")  # fmt: skip
    with gr.Row(equal_height=True, elem_id="dp-end-row"):
        c["end_note"] = gr.HTML("", visible=False, elem_id="dp-end")
        c["carry_on"] = gr.Button(f"Carry on (+{CARRY_ON_TOKENS} tokens)", visible=False, scale=0, min_width=200,
                                  elem_id="dp-carry-on")  # fmt: skip
    # the stage: the text above the chart, side by side in the presenter view
    with gr.Column(elem_id="dp-stage"):
        with gr.Column(elem_id="dp-stage-text"):
            c["text"] = gr.HTML(views.colored_text_html(DEFAULT_PROMPT, []), elem_id="dp-text", js_on_load=TOKEN_JS,
                                html_template='<div class="dp-text-host"></div>')  # the script draws the value
            c["status"] = gr.HTML(status_html(PlaygroundState()), elem_id="dp-status")
        # drawn by the browser from the step's data, its legend worded for the strategy; a click on a row forces it
        c["distribution"] = live_chart(elem_id="dp-dist")
    with gr.Row(equal_height=True):
        c["log_scale"] = gr.Checkbox(False, label="Log scale", elem_id="dp-log", scale=0, min_width=140,
                                     info="Spreads out the small probabilities.")  # fmt: skip
    with gr.Row(equal_height=False):
        c["inspect"] = gr.Slider(0, 1, value=0, step=1, label="Inspect step", interactive=False, elem_id="dp-inspect",
                                 info="Pick a step (0 = the first generated token) to see its distribution.",
                                 min_width=220)  # fmt: skip
        with gr.Column(min_width=220):
            c["candidates"] = gr.Dropdown([], label="Candidates at this step", elem_id="dp-candidates",
                                          info="Choose another token for this step…")  # fmt: skip
            c["force"] = gr.Button("Use this token as the next step", elem_id="dp-force")
        with gr.Column(min_width=220):
            c["rewind_to"] = gr.Number(0, label="Rewind: keep the first N tokens", precision=0, minimum=0,
                                       info="0 = back to the prompt.", elem_id="dp-rewind-to")  # fmt: skip
            c["rewind"] = gr.Button("Rewind", size="sm", elem_id="dp-rewind")
    # the whole run's two views, one at a time: only the one on screen is redrawn at each Step
    with gr.Tabs(elem_id="dp-run-views"):
        with gr.Tab("Step table", id="table", elem_id="dp-table-tab") as c["table_tab"]:
            c["table"] = gr.Dataframe(label="Step table (the chosen token, then the top choices by the model's own "
                                      "probability)", interactive=False, wrap=True, elem_id="dp-table", max_height=420,
                                      column_widths=TABLE_COLUMN_WIDTHS)  # fmt: skip
        with gr.Tab("Trajectory", id="trajectory", elem_id="dp-traj-tab") as c["trajectory_tab"]:
            c["trajectory"] = gr.Plot(label="Trajectory: probability and entropy per step", elem_id="dp-traj",
                                      format=PLOT_FORMAT, show_label=False)  # fmt: skip
            gr.HTML(views.chart_legend_html(plots.TRAJECTORY_LEGEND), elem_id="dp-traj-legend")
    with gr.Accordion("Share and export", open=False, elem_id="dp-share"):
        c["permalink"] = gr.Textbox("", visible=False)  # the run's "?run=..." query: handlers' input
        c["permalink_url"] = gr.Textbox("", label="Permalink (the address bar is updated too)", buttons=["copy"],
                                        elem_id="dp-permalink", info="Opening this link replays the run token for token.")  # fmt: skip
        c["export"] = gr.Button("Prepare downloads", size="sm")
        with gr.Row():
            c["csv_file"] = gr.File(label="Step table (CSV)", interactive=False)
            c["json_file"] = gr.File(label="Full trace (JSON)", interactive=False)
    c["result"] = gr.JSON(visible=False)
    c["one"] = gr.Number(1, visible=False)  # /step's n_steps


def _compare_tab(c: dict, policy: HostingPolicy) -> None:
    """Compare: its own sampling knobs, beams and length penalty; the cards, the beam tree and the final beams."""
    max_beams = policy.max_beams if policy.hosted else MAX_BEAMS
    max_samples = policy.max_samples if policy.hosted else 8
    gr.Markdown("Greedy, beam search and sampled runs of the same prompt, with the settings below (prompt, model, "
                "repetition penalty, max new tokens and seed from the page). Each card shows the text coloured by the "
                "model's probability of each token.")  # fmt: skip
    with gr.Row(equal_height=False):
        with gr.Column(min_width=240):
            c["num_samples"] = gr.Slider(0, max_samples, value=min(2, max_samples), step=1, label="Samples",
                                         elem_id="dp-c-samples", info="How many sampled runs (seeds seed, seed+1, …).")  # fmt: skip
            _knob_sliders(c, "c_", "dp-c-", label_suffix=" (samples)")
        with gr.Column(min_width=240):
            _beam_sliders(c, "c_", max_beams, elem_prefix="dp-c-")
            with gr.Row():
                c["compare"] = gr.Button("Compare", variant="primary", elem_id="dp-compare")
                c["compare_stop"] = gr.Button("Stop", variant="stop")
    c["compare_cards"] = gr.HTML("", elem_id="dp-compare-cards")
    # side by side where the page has room for the 800 px tree and a 640 px table (every column whole, the Text
    # wrapped), else stacked (a 1920 px screen); the columns share the table's width, so none is cut
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=800):
            c["beam_tree"] = gr.Plot(label="Beam search tree", elem_id="dp-beam-tree", format=PLOT_FORMAT, show_label=False)
        with gr.Column(scale=2, min_width=640):
            c["final_beams"] = gr.Dataframe(label="Final beams (what generate() returns, best first)", interactive=False,
                                            wrap=True, elem_id="dp-final-beams", column_widths=FINAL_BEAMS_WIDTHS)  # fmt: skip
    c["compare_result"] = gr.JSON(visible=False)


def _knobs_tab(c: dict) -> None:
    """Knobs: the temperature comparison and what each filter keeps, for the inspected (or next) step."""
    gr.Markdown(_TEACHING_MD)
    with gr.Row():
        c["temperatures"] = gr.Textbox("0.5, 1, 1.5, 2", label="Temperatures to compare", scale=3,
                                       info="Comma-separated; the inspected step (or the next one) is shown.")  # fmt: skip
        c["explore"] = gr.Button("Show", variant="primary", scale=1, elem_id="dp-explore")
    c["explore_status"] = gr.HTML("")
    c["temperature_plot"] = gr.Plot(label="One step at several temperatures", format=PLOT_FORMAT, show_label=False)
    c["knobs_plot"] = gr.Plot(label="What top-k, top-p and min-p keep", format=PLOT_FORMAT, show_label=False)
