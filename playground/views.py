"""Text views of decoding records: HTML fragments, pandas tables and JSON exports, ready for any front end.

Everything here is a pure function of `records` objects (StepRecord, Trace) and plain strings:

    token_label        a token with its whitespace made visible ("␣the", "↵"): the one label every view uses
    prob_color         a probability's colour (a colour-blind-safe amber-cream-blue scale)
    colored_text_html  the prompt and each generated token coloured by its probability, with tooltips
    step_table         the notebook's step table: one row per step, the chosen token, the top choices (display)
    step_table_data    the same rows as data: whole input, real tokens, numeric probabilities (the CSV)
    compare_html       one card per strategy: continuation, log-probability, perplexity, speed, finish reason
    final_beams        beam search's final hypotheses (generate()'s returned sequences), best first, with their paths
    final_beams_table  the same as a table: rank, text, length, score, sum log-probability, winner
    distribution_chart_data  one step's distribution as the data the page's live chart draws (JSON-ready)
    trace_json         the full export of one or more traces

Every string the model or the user produced (prompt, tokens, model names, errors) is passed through
`html.escape` before it reaches HTML. Styling lives in `assets/style.css` (classes prefixed `dp-`); the colours
that carry meaning are inline so a fragment reads correctly without the stylesheet. This module knows nothing
about Gradio, tensors or models.
"""

from __future__ import annotations

import csv
import html
import json
import math
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import pandas as pd

from .records import Candidate, StepRecord, Trace
from .tokens import Spelling, bytes_text, spell

__all__ = [
    "token_label",
    "prob_color",
    "token_accessible_name",
    "colored_text_html",
    "step_table",
    "step_table_csv",
    "step_table_data",
    "compare_html",
    "FinalBeam",
    "beam_parents",
    "final_beams",
    "final_beams_table",
    "chart_legend_html",
    "short_label",
    "axis_labels",
    "chart_candidates",
    "after_knobs",
    "distribution_title",
    "distribution_chart_data",
    "distribution_chart_json",
    "trace_json",
]

# Visible stand-ins for whitespace and control characters, so " the" and "the" never look alike.
# Each has a glyph in the charts' monospace font (DejaVu Sans Mono has no ␍, so a carriage return reads \r).
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "\\r", "\u00a0": "⍽"}
INPUT_WIDTH = 60  # characters of context shown in the step table's "Input" column


def token_label(token: str) -> str:
    """A token as a short, unambiguous label: spaces as ␣, newlines as ↵, tabs as ⇥, carriage returns as \\r,
    other control characters as \\xNN, and the empty string as ∅. Not escaped for HTML: callers escape where
    they build markup."""
    if token == "":
        return "∅"
    if token.isprintable() and " " not in token:  # nothing to stand in for (most tokens): quick
        return token
    out = []
    for ch in token:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


# The probability palette: amber (unlikely) through cream to blue (likely), light enough for dark text (8:1 and
# more). Blue against amber stays apart for the red-green colour-blind (deuteranopia, protanopia), where the old
# red-amber-green turned amber and green into one colour; tests/test_views.py checks it with Machado's simulation.
PROB_STOPS = ((0.0, (0xF5, 0x9E, 0x0B)), (0.5, (0xFE, 0xF3, 0xC7)), (1.0, (0x93, 0xC5, 0xFD)))
# Colour is never the only cue: a token less likely than this has a dotted underline (the legend says so).
UNLIKELY_BELOW = 0.10
_UNLIKELY_STYLE = "border-bottom:2px dotted currentColor"  # a token's colour is dark; the legend's, the page's


def prob_color(p: float) -> str:
    """Background colour for a probability in [0, 1] as #rrggbb: PROB_STOPS' amber (unlikely) through cream to
    blue (likely), light enough for dark text. Non-finite values are grey."""
    if p is None or not math.isfinite(p):
        return "#d9d9d9"
    p = min(max(p, 0.0), 1.0)
    (p0, c0), (p1, c1) = next((a, b) for a, b in zip(PROB_STOPS, PROB_STOPS[1:]) if p <= b[0])
    t = (p - p0) / (p1 - p0)
    return "#" + "".join(f"{round(a + t * (b - a)):02x}" for a, b in zip(c0, c1))


def token_accessible_name(token: str, p: float, forced: bool = False) -> str:
    """What a screen reader says for a token of the coloured text: the token as shown, in quotes, and how likely
    it was ("“ time”, 42% likely"), and whether you forced it."""
    shown = "".join(ch if ch == " " else token_label(ch) for ch in token) if token else "∅"
    if p is None or not math.isfinite(p):
        likely = "probability unknown"
    else:
        likely = (f"{100 * p:.0f}%" if p >= 0.01 else f"{100 * p:.1g}%") + " likely"
    return f"“{shown}”, {likely}" + (", forced by you" if forced else "")


def _pct(p: float, digits: int = 2) -> str:
    return f"{100 * p:.{digits}f}%" if p is not None and math.isfinite(p) else "n/a"


def _legend_html(what: str) -> str:
    stops = ", ".join(prob_color(p / 10) for p in range(11))
    return (
        '<div class="dp-legend" style="display:flex;flex-wrap:wrap;align-items:center;gap:6px;font-size:12px;'
        f'margin-top:6px"><span>{html.escape(what)}:</span><span>0%</span>'
        f'<span class="dp-legend-bar" style="display:inline-block;width:140px;height:10px;border-radius:3px;'
        f'background:linear-gradient(to right, {stops})"></span><span>100%</span>'
        f'<span class="dp-legend-unlikely"><span style="{_UNLIKELY_STYLE}">dotted underline</span> = under '
        f"{100 * UNLIKELY_BELOW:.0f}% likely</span></div>"
    )


def _token_span(
    token: str, p: float, alternatives: dict, *, step: int | None = None, forced: bool = False, selected: bool = False
) -> str:
    """One token as a coloured span. Spaces stay spaces (the container is pre-wrap); a newline shows as ↵ and
    then breaks the line; other whitespace and control characters show as their labels. `alternatives` rides
    along as JSON in `data-alts` (escaped), for the popover a click, a tap or Enter opens (layout.py)."""
    classes = ["dp-tok"]
    style = [f"background:{prob_color(p)}", "color:#111827", "border-radius:3px", "cursor:pointer"]
    if p is not None and math.isfinite(p) and p < UNLIKELY_BELOW:
        classes.append("dp-unlikely")
        style.append(_UNLIKELY_STYLE)
    if forced:
        classes.append("dp-forced")
        style.append("text-decoration:underline dashed #7c3aed")
    if selected:
        classes.append("dp-selected")
        style.append("outline:2px solid #111827;outline-offset:1px")
    parts = []
    for line_no, line in enumerate(token.split("\n")):
        if line_no:
            parts.append('<span class="dp-nl">↵</span><br>')
        visible = "".join(ch if ch == " " else token_label(ch) for ch in line)
        parts.append(html.escape(visible))
    body = "".join(parts) if token else '<span class="dp-empty">∅</span>'
    data = f' data-step="{step}"' if step is not None else ""
    alts = html.escape(json.dumps(alternatives, ensure_ascii=False, separators=(",", ":")), quote=True)
    return (
        f'<span class="{" ".join(classes)}"{data} tabindex="0" role="button" style="{";".join(style)}" '
        f'aria-label="{html.escape(token_accessible_name(token, p, forced), quote=True)}" '
        f'data-alts="{alts}">{body}</span>'
    )


def step_alternatives(record: StepRecord, n_alternatives: int = 5, spelled: Spelling | None = None) -> dict:
    """What a token's popover shows: a heading (the step, the token, forced or not; for a token that is part of a
    character, the character its group of tokens makes, `spelled`), the entropy, and the top alternatives by the
    model's probability as rows [token, model %, after-knobs %, which knob cut it, chosen]."""
    rows = [
        [token_label(c.token), _pct(c.raw_prob), _pct(c.prob), (c.cut_by or "").replace("_", "-"),
         c.token_id == record.token_id]
        for c in sorted(record.top, key=lambda c: c.rank)[:n_alternatives]
    ]  # fmt: skip
    head = f"step {record.step}: {token_label(record.token)}" + (" (forced)" if record.forced else "")
    if record.token_bytes is not None:
        head += " · " + _part_of(spelled)
    return {
        "head": head,
        "sub": f"{_pct(record.prob)} after the knobs, {_pct(record.raw_prob)} by the model · "
               f"entropy {record.entropy_raw:.2f} → {record.entropy:.2f} nats",
        "rows": rows,
    }  # fmt: skip


def _part_of(spelled: Spelling | None) -> str:
    """What a token that is part of a character says of it: which character, with which steps."""
    if spelled is None or not spelled.joined:
        return "part of a character (its bytes shown in hex)"
    return f"steps {spelled.start}–{spelled.end - 1} make {token_label(spelled.text)}"


def _spellings(steps: list[StepRecord]) -> list[Spelling]:
    """The steps' tokens grouped where their bytes make whole characters together (`tokens.spell`), by step."""
    groups = spell([(r.token, r.token_bytes) for r in steps])
    if not steps or (steps[0].step == 0 and steps[-1].step == len(steps) - 1):  # a run's steps: index = step
        return groups
    return [replace(g, start=steps[g.start].step, end=steps[g.end - 1].step + 1) for g in groups]


def _joined_html(group: Spelling, spans: str) -> str:
    """Tokens whose bytes make whole characters together: the characters over the tokens (ruby, never split
    across lines), so the text reads as text and each token stays its own coloured, clickable span.
    `data-group` is the first step's, for the page's script that replaces tokens from a step on."""
    chars = token_label_text(group.text)
    title = f"{chars}: steps {group.start}–{group.end - 1} together"
    return (
        f'<ruby class="dp-char" data-group="{group.start}" title="{html.escape(title, quote=True)}" '
        f'style="ruby-position:over;white-space:nowrap">{spans}<rt style="font-size:1em;line-height:1.2;'
        f'color:#111827">{html.escape(chars)}</rt></ruby><wbr>'  # whole on one line; a line may break after it
    )


def token_spans_html(steps: list[StepRecord], selected_step: int | None = None, start: int | None = None,
                     made: dict | None = None) -> str:  # fmt: skip
    """Each generated token of `steps` as its coloured span (what the coloured text shows after the prompt); tokens
    that are parts of characters and together make whole ones wrapped with those characters (`_joined_html`).
    `start` (a step): only the tokens from the group holding that step on. `made`: a dict the caller keeps
    beside the run, where each group's markup is kept and reused while it is made of the same records (a
    streamed run's update then makes only its new tokens, not every token again)."""
    by_step = {r.step: r for r in steps}
    if made is not None and len(made) > 2 * len(steps) + 64:  # what no longer belongs to the run goes
        made.clear()
    out = []
    for group in _spellings(steps):
        if start is not None and group.end <= start:
            continue
        records = tuple(by_step[s] for s in range(group.start, group.end))
        chosen = selected_step if selected_step is not None and group.start <= selected_step < group.end else None
        key = (tuple(map(id, records)), chosen, group.joined, group.text)
        kept = made.get(key) if made is not None else None
        if kept is not None and all(a is b for a, b in zip(kept[0], records)):
            out.append(kept[1])
            continue
        spans = "".join(
            _token_span(r.token, r.prob, step_alternatives(r, spelled=group), step=r.step, forced=r.forced,
                        selected=r.step == chosen)  # fmt: skip
            for r in records
        )
        markup = _joined_html(group, spans) if group.joined else spans
        if made is not None:
            made[key] = (records, markup)
        out.append(markup)
    return "".join(out)


# A streamed run's part of the coloured text: the page drops its tokens from step K on and puts these instead.
TEXT_FROM_MARK = "<!--dp-from:{}-->"


def text_from_step(steps: list[StepRecord], from_step: int) -> int:
    """Where an update of the coloured text from `from_step` on must start: the first step of the group of tokens
    that holds `from_step` (a character whose bytes began before it is redrawn whole)."""
    return next((g.start for g in _spellings(steps) if g.start <= from_step < g.end), from_step)


def colored_text_increment(steps: list[StepRecord], from_step: int, selected_step: int | None = None,
                           made: dict | None = None) -> str:  # fmt: skip
    """The coloured text's tokens from step `from_step` on (from the start of the character that step is part of,
    `text_from_step`), marked (TEXT_FROM_MARK): what a streamed run sends instead of the whole text, which the
    page has up to there. Each one holds every token from there, so it stands alone (an update the page merged
    with the next loses nothing), and, unselected, each is the one before it with the new tokens appended (but
    where tokens complete a character), which Gradio's stream sends as just those."""
    start = text_from_step(steps, from_step)
    return TEXT_FROM_MARK.format(start) + token_spans_html(steps, selected_step, start=start, made=made)


def colored_text_html(prompt_text: str, steps: list[StepRecord], selected_step: int | None = None,
                      made: dict | None = None) -> str:  # fmt: skip
    """The prompt (muted) followed by each generated token coloured by its probability after the knobs; each
    token carries `data-step`, its alternatives for the popover (`step_alternatives`), a mark when forced and
    an outline when selected. `made`: as `token_spans_html` takes it."""
    prompt = html.escape(prompt_text or "")
    spans = [token_spans_html(steps, selected_step, made=made)]
    if not steps:
        spans.append('<span class="dp-hint" style="opacity:.6"> (no tokens yet: take a step)</span>')
    return (
        '<div class="dp-text">'
        '<div class="dp-tokens" style="white-space:pre-wrap;word-break:break-word;line-height:1.8;'
        'font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:14px">'
        f'<span class="dp-prompt" style="opacity:.75">{prompt}</span>{"".join(spans)}</div>'
        f"{_legend_html('probability of the chosen token after the knobs')}"
        '<div class="dp-legend-note" style="font-size:12px;opacity:.7">click or tap a token for its alternatives '
        "and to inspect its step; dashed underline = forced by you</div></div>"
    )


# ----------------------------------------------------------------------------------------------------------
# The step table (as in the teaching notebooks)


def _choice(token: str, p: float) -> str:
    return f"{token_label(token)} ({_pct(p)})"


def step_table(prompt_text: str, steps: list[StepRecord], n_choices: int = 5, made: list | None = None) -> pd.DataFrame:
    """The step table the page shows, read as seed 001's notebook table: one row per step with the input so far
    (its last INPUT_WIDTH characters, so its end is visible), the chosen token (marked when forced) with its
    model and after-knobs probabilities, then the top `n_choices` candidates by the model's probability as
    "token (12.34%)". Text for display; `step_table_data` has the same rows as numbers and real text.

    `made`: a list the caller keeps beside the run; the rows are kept there as they are made and reused while
    their steps are the same records, so a Step makes one row, not the whole table again."""
    _check_n_choices(n_choices)
    made = [] if made is None else made
    key = (prompt_text, n_choices)
    kept = 0
    for (record, made_for, _, _), r in zip(made, steps):
        if record is not r or made_for != key:
            break
        kept += 1
    del made[kept:]
    generated = made[-1][2] if made else b""  # the tokens' bytes so far (as step_table_data joins them)
    for r in steps[kept:]:
        row = _table_row(r, (prompt_text or "") + bytes_text(generated), n_choices)
        generated += r.raw_bytes
        made.append((r, key, generated, row))
    columns = ["Step", "Input", "Chosen", "Model", "After knobs", *(f"Choice {i + 1}" for i in range(n_choices))]
    return pd.DataFrame([row for *_, row in made], columns=columns)


def _table_row(r: StepRecord, input_text: str, n_choices: int) -> dict:
    # the last INPUT_WIDTH characters are all a row can show (a label is never shorter than its character), so
    # only they are labelled: a long prompt costs each row nothing more
    tail = input_text[-INPUT_WIDTH:]
    context = token_label_text(tail)
    if len(context) > INPUT_WIDTH or len(tail) < len(input_text):
        context = "…" + context[-(INPUT_WIDTH - 1) :]
    row = {"Step": r.step, "Input": context, "Chosen": token_label(r.token) + (" ✎ forced" if r.forced else ""),
           "Model": _pct(r.raw_prob), "After knobs": _pct(r.prob)}  # fmt: skip
    for i, c in enumerate(_choices(r, n_choices)):
        row[f"Choice {i + 1}"] = _choice(c.token, c.raw_prob) if c is not None else ""
    return row


def _choices(r: StepRecord, n_choices: int) -> list:
    """The step's top `n_choices` candidates by the model's probability (its rank), None where it recorded fewer."""
    ranked = sorted(r.top, key=lambda c: c.rank)
    return [ranked[i] if i < len(ranked) else None for i in range(n_choices)]


def _check_n_choices(n_choices) -> None:
    if isinstance(n_choices, bool) or not isinstance(n_choices, int) or n_choices < 1:
        raise ValueError(f"n_choices must be an integer >= 1, got {n_choices!r}.")


def step_table_data(prompt_text: str, steps: list[StepRecord], n_choices: int = 5) -> pd.DataFrame:
    """The step table as data (what the CSV holds): per step the whole input so far and every token as real
    text (a token that is part of a character as its bytes, "⟨E5 96⟩"; the input joins the bytes, so a character
    split across tokens reads whole), the chosen token's id and its bytes in hex ("E5 96"), its model and
    after-knobs probabilities as numbers in [0, 1], whether it was forced, then the top `n_choices` candidates by
    the model's probability and their probabilities (None where the run recorded fewer)."""
    _check_n_choices(n_choices)
    choice_cols = [c for i in range(n_choices) for c in (f"choice_{i + 1}", f"choice_{i + 1}_prob")]
    columns = ["step", "input", "token", "token_id", "token_bytes", "model_prob", "after_knobs_prob", "forced",
               *choice_cols]  # fmt: skip
    rows = []
    generated = b""  # the tokens' bytes so far: a character split across tokens reads whole once complete
    for r in steps:
        row = {"step": r.step, "input": (prompt_text or "") + bytes_text(generated), "token": r.token,
               "token_id": r.token_id, "token_bytes": r.raw_bytes.hex(" ").upper(), "model_prob": r.raw_prob,
               "after_knobs_prob": r.prob, "forced": bool(r.forced)}  # fmt: skip
        for i, c in enumerate(_choices(r, n_choices)):
            row[f"choice_{i + 1}"] = c.token if c is not None else None
            row[f"choice_{i + 1}_prob"] = c.raw_prob if c is not None else None
        rows.append(row)
        generated += r.raw_bytes
    return pd.DataFrame(rows, columns=columns)


def finish_words(reason: str | None, n_steps: int, max_new_tokens: int, text: str = "",
                 stop_strings: tuple[str, ...] = ()) -> str:  # fmt: skip
    """What happened to a run, in plain words, from its finish reason (records.FINISH_REASONS; None: not finished):
    its `n_steps` tokens of `max_new_tokens`, and for a stop string the one its `text` holds."""
    if reason is None:
        return f"not finished: {n_steps} of {max_new_tokens} tokens"
    if reason == "stop_string":
        hit = next((s for s in stop_strings if s and s in text), None)
        return "a stop string appeared" + (f": “{token_label_text(hit)}”" if hit else "")
    return {
        "eos": "the model ended its answer (end-of-sequence token)",
        "length": f"reached max new tokens ({max_new_tokens})",  # the setting (a run may go past one lowered)
        "context": "the model's context is full",
        "stopped": f"you pressed Stop after {n_steps} token{'s' if n_steps != 1 else ''}",
    }.get(reason, reason)


def token_label_text(text: str) -> str:
    """Running text for one-line display: newlines and tabs visible, spaces kept as spaces."""
    if text.isprintable():  # spaces are printable; newlines, tabs and control characters are not
        return text
    return "".join(ch if ch == " " else token_label(ch) for ch in text)


def step_table_csv(df: pd.DataFrame) -> str:
    """A table as CSV text (UTF-8, no index): text quoted, so a token's leading or trailing space survives any
    reader; numbers bare."""
    return df.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)


# ----------------------------------------------------------------------------------------------------------
# Strategy comparison


def _num(x: float | None, fmt: str) -> str:
    return format(x, fmt) if x is not None and math.isfinite(x) else "n/a"


def _trace_tokens_html(trace: Trace) -> str:
    spans = []
    n = len(trace.token_strings)
    raws = trace.token_bytes if len(trace.token_bytes) == n else [None] * n  # a trace that recorded no bytes
    for group in spell(list(zip(trace.token_strings, raws))):
        tokens = []
        for i in range(group.start, group.end):
            token, logprob = trace.token_strings[i], trace.token_logprobs[i]
            p = math.exp(logprob) if math.isfinite(logprob) else 0.0
            title = f"token {i}: {token_label(token)} — {_pct(p)} under the model"
            stepped = i < len(trace.steps) and trace.steps[i].token_id == trace.token_ids[i]
            if trace.strategy not in ("beam", "beam-sample") and stepped:
                title += f", {_pct(trace.steps[i].prob)} after the knobs"
            tokens.append(_token_span(token, p, title, step=i))
        spans.append(_joined_html(group, "".join(tokens)) if group.joined else "".join(tokens))
    if not spans:
        spans.append('<span class="dp-hint" style="opacity:.6">(no tokens)</span>')
    return "".join(spans)


def _card_html(trace: Trace) -> str:
    c = trace.config
    if trace.strategy == "beam-sample":
        settings = f"{c.num_beams} beams sampled at T={c.temperature:g}, length penalty {c.length_penalty:g}"
    elif trace.strategy == "beam":
        settings = f"{c.num_beams} beams, length penalty {c.length_penalty:g}"
    elif c.is_greedy:
        settings = "argmax" + (f", repetition penalty {c.repetition_penalty:g}" if c.repetition_penalty != 1 else "")
    else:
        knobs = [f"T={c.temperature:g}"]
        knobs += [f"top-k={c.top_k}"] if c.top_k else []
        knobs += [f"top-p={c.top_p:g}"] if c.top_p < 1 else []
        knobs += [f"min-p={c.min_p:g}"] if c.min_p > 0 else []
        knobs += [f"rep={c.repetition_penalty:g}"] if c.repetition_penalty != 1 else []
        settings = ", ".join(knobs) + f", seed {c.seed}"
    metrics = [
        ("tokens", str(len(trace.token_ids))),
        ("log-prob", _num(trace.sequence_logprob, ".2f")),
        ("perplexity", _num(trace.perplexity, ".2f")),
        ("batch tok/s", _num(trace.tokens_per_s, ".1f")),  # the lanes share one forward a step, so one rate
        ("finish", finish_words(trace.finish_reason, len(trace.steps), trace.config.max_new_tokens, trace.text,
                                trace.config.stop_strings)),  # fmt: skip
    ]
    if trace.beam_score is not None:
        metrics.insert(3, ("beam score", _num(trace.beam_score, ".3f")))
    metrics_html = "".join(
        f'<div class="dp-metric"><span class="dp-metric-name" style="opacity:.65">{html.escape(k)}</span> '
        f'<b>{html.escape(v)}</b></div>'
        for k, v in metrics
    )
    notices = "".join(
        f'<div class="dp-notice" style="font-size:12px;color:#b45309">⚠ {html.escape(n)}</div>' for n in trace.notices
    )
    return (
        f'<div class="dp-card" data-label="{html.escape(trace.label, quote=True)}" style="flex:1 1 260px;'
        'min-width:240px;border:1px solid #d1d5db;border-radius:8px;padding:10px">'
        f'<div class="dp-card-head"><b>{html.escape(trace.label)}</b> '
        f'<span style="opacity:.65;font-size:12px">{html.escape(settings)}</span></div>'
        '<div class="dp-tokens" style="white-space:pre-wrap;word-break:break-word;line-height:1.8;margin:8px 0;'
        f'font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px">{_trace_tokens_html(trace)}</div>'
        f'<div class="dp-metrics" style="display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px">{metrics_html}</div>'
        f"{notices}</div>"
    )


def compare_html(traces: Mapping[str, Trace]) -> str:
    """Side-by-side cards, one per strategy: the continuation coloured by each token's raw model probability
    (comparable across strategies; beam steps' records follow the best running beam, so the trace's own
    per-token log-probabilities are used), then sequence log-probability, perplexity, speed and finish reason."""
    if not traces:
        return '<div class="dp-cards dp-empty" style="opacity:.7">Nothing to compare yet: run a comparison.</div>'
    first = next(iter(traces.values()))
    cards = "".join(_card_html(t) for t in traces.values())
    return (
        '<div class="dp-compare">'
        f'<div class="dp-compare-model" style="font-size:12px;opacity:.7">model: {html.escape(first.model)}</div>'
        f'<div class="dp-cards" style="display:flex;flex-wrap:wrap;gap:10px">{cards}</div>'
        f"{_legend_html('probability of each token under the model (raw)')}</div>"
    )


# ----------------------------------------------------------------------------------------------------------
# Beam search's final hypotheses


def beam_parents(trace: Trace) -> list[list[int | None]]:
    """Per step, per beam candidate: the index (in the previous step's `beams`) of the running beam it extends;
    None at step 0 (it extends the prompt) or when no kept candidate of the previous step has its `parent` slot."""
    out: list[list[int | None]] = []
    prev: dict[int, int] = {}  # running-beam slot -> its index in the previous step's beams
    for record in trace.steps:
        beams = record.beams or []
        out.append([prev.get(b.parent) if out else None for b in beams])
        prev = {b.beam: j for j, b in enumerate(beams) if b.status == "kept" and b.beam is not None}
    return out


@dataclass(frozen=True)
class FinalBeam:
    """One hypothesis beam search returns (one row of generate()'s `sequences` with num_return_sequences=num_beams)."""

    rank: int  # 1 = the output (generate()'s sequences[0])
    path: list[tuple[int, int]]  # its nodes as (step, index in that step's beams), from step 0
    token_ids: list[int]
    tokens: list[str]
    score: float  # generate()'s sequences_scores: sum_logprob / len(token_ids) ** length_penalty
    sum_logprob: float  # the sum of its tokens' log-probabilities as beam search scored them (penalised)
    finished: bool  # False only for a running beam of a run stopped before any hypothesis finished
    winner: bool  # its tokens are the trace's: the text the run produced

    @property
    def step(self) -> int:
        """The step of its last token."""
        return self.path[-1][0]


def _path(parents: list[list[int | None]], step: int, index: int) -> list[tuple[int, int]] | None:
    path = [(step, index)]
    for s in range(step, 0, -1):
        index = parents[s][index]
        if index is None:
            return None  # a broken record: no kept parent to extend
        path.append((s - 1, index))
    return path[::-1]


def final_beams(trace: Trace) -> list[FinalBeam]:
    """Beam search's final hypotheses, best first: generate()'s returned sequences for num_return_sequences =
    num_beams. A candidate recorded as "finished" entered the set of num_beams best finished hypotheses when it
    ended; a later, better one may push it out, and that set, by length-penalised score, is what generate()
    returns. A run stopped before any hypothesis finished returns its running beams instead (finished=False, each
    scored as if it ended now). Empty for a trace with no beam records."""
    if not trace.steps or any(r.beams is None for r in trace.steps):
        return []
    parents = beam_parents(trace)
    ended = [(b.normalized_score, s, j) for s, r in enumerate(trace.steps) for j, b in enumerate(r.beams)
             if b.status == "finished" and b.normalized_score is not None]  # fmt: skip
    ended.sort(key=lambda e: (-e[0], e[1], e[2]))  # earlier entries win ties, as in the finished set's merge
    finished = bool(ended)
    if finished:
        chosen = [(s, j) for _, s, j in ended[: trace.config.num_beams]]
    else:  # stopped early: the running beams, best first
        last = len(trace.steps) - 1
        kept = [(b.beam, j) for j, b in enumerate(trace.steps[last].beams) if b.status == "kept" and b.beam is not None]
        chosen = [(last, j) for _, j in sorted(kept)]
    out: list[FinalBeam] = []
    for s, j in chosen:
        path = _path(parents, s, j)
        if path is None:
            continue
        beams = [trace.steps[ps].beams[pj] for ps, pj in path]
        end = beams[-1]
        score = end.normalized_score if finished else end.score / len(path) ** trace.steps[s].config.length_penalty
        ids = [b.token_id for b in beams]
        out.append(FinalBeam(rank=len(out) + 1, path=path, token_ids=ids, tokens=[b.token for b in beams],
                             score=float(score), sum_logprob=float(end.score), finished=finished,
                             winner=False))  # fmt: skip
    win = next((i for i, f in enumerate(out) if f.token_ids == list(trace.token_ids)), None)
    if win is not None:
        out[win] = replace(out[win], winner=True)
    return out


FINAL_BEAMS_COLUMNS = ["Rank", "Winner", "Text", "Tokens", "Score", "Sum log-prob", "Finished"]


def final_beams_table(trace: Trace, decode: Callable[[list[int]], str] | None = None) -> pd.DataFrame:
    """One row per final hypothesis (`final_beams`), best first: `Rank` (1 = the output), `Winner` (True on the
    row whose tokens the run produced), `Text` (`decode(token_ids)` when given, e.g. `engine.decode`, which skips
    special tokens; otherwise its tokens joined as the model wrote them), `Tokens` (its length), `Score`
    (generate()'s sequences_scores: sum log-prob / length ** length_penalty), `Sum log-prob` (as beam search
    scored it: with the repetition penalty, when set) and `Finished` (False for a stopped run's running beams).
    Numbers stay numbers: formatting is the page's job."""
    rows = [
        {
            "Rank": f.rank,
            "Winner": f.winner,
            "Text": decode(f.token_ids) if decode is not None else "".join(f.tokens),
            "Tokens": len(f.token_ids),
            "Score": f.score,
            "Sum log-prob": f.sum_logprob,
            "Finished": f.finished,
        }
        for f in final_beams(trace)
    ]
    return pd.DataFrame(rows, columns=FINAL_BEAMS_COLUMNS)


_MARKS = {  # how a legend entry's swatch is drawn, by mark
    "bar": "width:18px;height:10px;background:{c}",
    "shade": "width:18px;height:10px;background:{c};opacity:.35",
    "line": "width:18px;height:0;border-top:3px solid {c}",
    "dotted": "width:18px;height:0;border-top:3px dotted {c}",
    "outline": "width:14px;height:10px;border:2px solid {c}",
    "diamond": "width:9px;height:9px;background:{c};transform:rotate(45deg)",
}


def chart_legend_html(entries: Iterable[tuple[str, str, str]]) -> str:
    """A chart's legend as one line of HTML: (label, colour, mark) per entry, mark one of bar, shade, line,
    dotted, outline, diamond. The page shows it once beside the chart it explains."""
    items = "".join(
        f'<span class="dp-key" style="display:inline-flex;align-items:center;gap:5px;margin-right:14px">'
        f'<span style="display:inline-block;{_MARKS[mark].format(c=html.escape(color, quote=True))}"></span>'
        f"{html.escape(label)}</span>"
        for label, color, mark in entries
    )
    return f'<div class="dp-chart-legend" style="font-size:13px;line-height:1.9">{items}</div>'


# ----------------------------------------------------------------------------------------------------------
# One step's distribution, as data: what the page's live chart and plots.distribution_figure draw

LABEL_CHARS = 18  # a token label longer than this is shortened in the middle
# Each cut a record names (processors.CUT_BY's labels): its knob's name, its colour, and what a cut row says
KNOB_NAMES = {"top_k": "top-k", "top_p": "top-p", "min_p": "min-p", "top_h": "top-h", "typical": "typical",
              "epsilon": "ε", "eta": "η", "ngram": "no-repeat n-gram", "banned": "bad words",
              "min_new_tokens": "min new tokens", "suppress": "suppress tokens"}  # fmt: skip
CUT_STYLE = {  # cut label -> colour: the cuts stay distinguishable in every chart
    "top_k": "#6b7280", "top_p": "#7b4fb8", "min_p": "#b45309", "top_h": "#0e7490", "typical": "#be185d",
    "epsilon": "#4d7c0f", "eta": "#1d4ed8", "ngram": "#92400e", "banned": "#b91c1c", "min_new_tokens": "#475569",
    "suppress": "#334155",
}  # fmt: skip
# What a cut row says: "cut by <knob>", except where a plainer word says it better.
CUT_PHRASES = {"banned": "banned", "suppress": "suppressed", "ngram": "repeats an n-gram",
               "min_new_tokens": "EOS before min new tokens"}  # fmt: skip


def cut_phrase(label: str) -> str:
    """What a chart says of a token cut by `label` (a record's cut_by): "cut by typical", "cut by ε", "banned"."""
    return CUT_PHRASES.get(label, f"cut by {KNOB_NAMES.get(label, label)}")


# The colours that carry meaning, the same in every chart (plots.py exports them under its own names)
CHART_COLORS = {
    "raw": "#5b8fd0",  # the model's own probabilities
    "after": "#f28e2b",  # after the knobs
    **CUT_STYLE,  # a row cut by that knob (top-p's colour is also its running sum's)
    "chosen": "#111827",  # outline of the token the step took
    "forced": "#7c3aed",  # ... when the user forced it
}
LOG_FLOOR = 1e-4  # the log scale's left edge
# What the visible stand-ins of token_label mean, for a chart's legend
STAND_INS = (("␣", "a space"), ("↵", "a new line"), ("⇥", "a tab"), ("∅", "an empty token"),
             ("⟨E5⟩", "bytes (hex) of a character split across tokens"))  # fmt: skip


def short_label(text: str, max_chars: int = LABEL_CHARS) -> str:
    """`text` shortened in the middle ("␣extraordin…arily") when longer than `max_chars`: its start and end
    both stay visible. The full token stays on the record (and in the tables and tooltips)."""
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def axis_labels(candidates, max_chars: int = LABEL_CHARS) -> list[str]:
    """Visible, shortened and unique labels: tokens that label the same get their token id appended."""
    labels = [short_label(token_label(c.token), max_chars) for c in candidates]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    out = [f"{label} #{c.token_id}" if counts[label] > 1 else label for label, c in zip(labels, candidates)]
    seen: dict[str, int] = {}  # a label may still collide with another token's "x #id" form: number it
    for i, label in enumerate(out):
        if label in seen:
            seen[label] += 1
            out[i] = f"{label} ({seen[label]})"
        else:
            seen[label] = 1
    return out


def chart_candidates(record: StepRecord, max_tokens: int) -> list[Candidate]:
    """The record's candidates in the order the truncation knobs see them (probability after penalty and
    temperature; for sampling with no penalty this is the model's own order), the first `max_tokens`, plus the
    chosen token when it ranks lower (or outside the record's candidates, from the record's own numbers)."""
    ranked = sorted(record.top, key=lambda c: (-c.shaped_prob, c.rank))
    shown = ranked[:max_tokens]
    if all(c.token_id != record.token_id for c in shown):
        extra = next((c for c in ranked if c.token_id == record.token_id), None)
        if extra is None:
            extra = Candidate(
                token_id=record.token_id, token=record.token, rank=len(ranked), logit=float("nan"),
                raw_prob=record.raw_prob, shaped_prob=record.prob, prob=record.prob, kept=True, cut_by=None,
            )  # fmt: skip
        shown.append(extra)
    return shown


def after_knobs(record: StepRecord, candidates: list[Candidate]) -> list[float]:
    """Each candidate's probability after the knobs, as the charts draw it: what the sampler draws from (0 where
    cut); for a greedy step (or temperature 0) the choice itself, 1 on the argmax and 0 elsewhere, whatever was
    forced."""
    if record.config.is_greedy:
        pick = max(record.top, key=lambda c: (c.prob, -c.rank)).token_id if record.top else record.token_id
        return [1.0 if c.token_id == pick else 0.0 for c in candidates]
    return [c.prob if c.kept else 0.0 for c in candidates]


def top_p_applies(config) -> bool:
    """Top-p shapes the step: sampling or beam sampling (above temperature 0) with p below 1."""
    return config.is_sampling and config.top_p < 1  # sampling or beam sampling


def distribution_title(record: StepRecord, pending: bool = False) -> tuple[str, str]:
    """A distribution chart's title as two lines: what the step took (or, `pending`, would take) and with what
    probability, then the entropy before and after the knobs."""
    greedy = record.config.is_greedy
    token = short_label(token_label(record.token), 24)
    prob = f"model {_pct(record.raw_prob, 1)}" if greedy else f"{_pct(record.prob, 1)} after knobs"
    if pending:
        head = f"Next step ({record.step}, not taken yet): {'will pick' if greedy else 'would draw'} {token} ({prob})"
    else:
        head = f"Step {record.step}: {'forced' if record.forced else 'chose'} {token} ({prob})"
    if greedy:
        return head, f"entropy {_num(record.entropy_raw, '.2f')} → 0 nats (raw → after knobs: greedy takes the top token)"
    return head, f"entropy {_num(record.entropy_raw, '.2f')} → {_num(record.entropy, '.2f')} nats (raw → after knobs)"


def _chart_legend(record: StepRecord, rows: list[dict], top_p: float | None, forceable: bool) -> list[dict]:
    """The legend of one step's chart, worded for the strategy in use: each entry {key, label, color, mark}."""
    cfg = record.config
    mode = cfg.generation_mode
    c = CHART_COLORS
    after = {
        "greedy": "after the knobs: greedy takes the most likely token (100 %)",
        "sample": "after the knobs: what the draw picks from",
        "beam": "after the repetition penalty: what beam search scores",
        "beam-sample": "after the knobs: what each beam's draw picks from",
    }[mode]
    legend = [{"key": "raw", "label": "the model's own probability", "color": c["raw"], "mark": "bar"},
              {"key": "after", "label": after, "color": c["after"], "mark": "bar"}]  # fmt: skip
    sampling = mode in ("sample", "beam-sample")
    on = {"top_k": cfg.top_k > 0, "top_p": cfg.top_p < 1, "min_p": cfg.min_p > 0} if sampling else {}
    setting = {"top_k": f" (k = {cfg.top_k})", "top_p": f" (p = {cfg.top_p:g})", "min_p": f" (min-p = {cfg.min_p:g})"}
    for knob in CUT_STYLE:  # the sampling knobs that are on, and every cut a row shows (bans, typical, ε ...)
        if on.get(knob) or any(r["cut_by"] == knob for r in rows):
            legend.append({"key": f"cut:{knob}", "label": f"shaded: {cut_phrase(knob)}{setting.get(knob, '')}",
                           "color": c[knob], "mark": "shade"})  # fmt: skip
    if top_p is not None:
        legend.append({"key": "cumulative", "label": "purple steps: top-p's running sum (what top-p sees); "
                       f"dashed: p = {top_p:g}, a row is kept while the sum above it is below p",
                       "color": c["top_p"], "mark": "line"})  # fmt: skip
    legend.append({"key": "chosen", "label": "outlined: the token the step took", "color": c["chosen"],
                   "mark": "outline"})  # fmt: skip
    if record.forced or forceable:
        legend.append({"key": "forced", "label": "violet outline: a token you forced", "color": c["forced"],
                       "mark": "outline"})  # fmt: skip
    return legend


def distribution_chart_data(record: StepRecord, top_n: int = 15, log_scale: bool = False, pending: bool = False,
                            force_words: str | None = None) -> dict:  # fmt: skip
    """What the page's live distribution chart draws for one step, as JSON-ready data (every number is the
    record's; only the choice of rows and the words are made here):

    rows        the first `top_n` candidates in the order the truncation knobs see them, then the chosen token
                when it ranks lower ("extra": true). Each: token (the real text), text (its `token_label`),
                label (the same shortened in the middle, unique among the rows), token_id, rank (by the model's logit, 0 = its favourite), raw
                (the model's probability), after (after the knobs; greedy: 1 on the argmax, else 0), kept,
                cut_by ("top_k", "top_p", "min_p" or null), cumulative_start and cumulative (top-p's running sum
                before and at this token, over the distribution top-p sees; null when top-p is off), chosen,
                forced, extra
    rest        the probability of every token not in the rows: {"raw": ..., "after": ...}
    title       [what the step took, the entropy line]; step, pending, forced, strategy (generate()'s mode:
                greedy, sample or beam), greedy
    top_p       the threshold of the dashed line, or null when top-p does not apply
    log_scale   and log_floor (the log axis' left edge)
    legend      [{key, label, color, mark}], worded for the strategy, plus stand_ins: what ␣, ↵ ... mean
    force       {"enabled", "words"}: whether a click on a row may take that token (not for beam search), and
                what it does ("Use this token as the next step"; `force_words` overrides)
    colors      the colours that carry meaning (CHART_COLORS)
    """
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ValueError(f"top_n must be an integer >= 1, got {top_n!r}.")
    cfg = record.config
    cands = chart_candidates(record, top_n) if record.top else []
    after = after_knobs(record, cands)
    labels = axis_labels(cands)
    top_p = cfg.top_p if top_p_applies(cfg) else None
    ordered = sorted(record.top, key=lambda c: (-c.shaped_prob, c.rank))  # top-p's order: the running sum's
    before = {c.token_id: (ordered[i - 1].cumulative if i else 0.0) for i, c in enumerate(ordered)}
    rows = []
    for i, (c, label, a) in enumerate(zip(cands, labels, after)):
        cumulative = c.cumulative if top_p is not None else None
        rows.append({
            "token": c.token, "label": label, "text": token_label(c.token), "token_id": c.token_id, "rank": c.rank, "raw": c.raw_prob,
            "after": a, "kept": bool(c.kept), "cut_by": None if c.kept else c.cut_by,
            "cut": None if c.kept or not c.cut_by else cut_phrase(c.cut_by),
            "cumulative_start": before.get(c.token_id) if cumulative is not None else None,
            "cumulative": cumulative,
            "chosen": c.token_id == record.token_id, "forced": bool(record.forced and c.token_id == record.token_id),
            "extra": i >= min(top_n, len(record.top)),  # the chosen token, appended below the rows shown
        })  # fmt: skip
    head, entropy = distribution_title(record, pending)
    forceable = not cfg.is_beam  # beam search and beam sampling keep beams: no step of theirs can be forced
    used = {ch for r in rows for ch in r["label"]}
    stand_ins = [{"mark": m, "means": means} for m, means in STAND_INS if m in ("␣", "↵") or m[0] in used]
    return _json_safe({
        "step": record.step,
        "pending": bool(pending),
        "forced": bool(record.forced),
        "strategy": cfg.generation_mode,
        "greedy": cfg.is_greedy,
        "title": [head, entropy],
        "entropy": {"raw": record.entropy_raw, "after": 0.0 if cfg.is_greedy else record.entropy},
        "rows": rows,
        "rest": {"raw": max(0.0, 1.0 - sum(r["raw"] for r in rows)),
                 "after": max(0.0, 1.0 - sum(r["after"] for r in rows))},
        "top_p": top_p,
        "log_scale": bool(log_scale),
        "log_floor": LOG_FLOOR,
        "legend": _chart_legend(record, rows, top_p, forceable),
        "stand_ins": stand_ins,
        "force": {"enabled": forceable,
                  "words": force_words or ("Use this token as the next step" if pending
                                           else f"Replace step {record.step} with this token")},
        "colors": dict(CHART_COLORS),
    })  # fmt: skip


def distribution_chart_json(record: StepRecord | None, top_n: int = 15, log_scale: bool = False,
                            pending: bool = False, force_words: str | None = None) -> str:  # fmt: skip
    """`distribution_chart_data` as the JSON string the page's live chart takes as its value ("" before any
    step: the chart shows a hint)."""
    if record is None:
        return ""
    data = distribution_chart_data(record, top_n, log_scale=log_scale, pending=pending, force_words=force_words)
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def error_html(message: str) -> str:
    """A user-facing error or notice box, escaped."""
    return (
        '<div class="dp-error" style="border:1px solid #fca5a5;background:#fef2f2;color:#991b1b;'
        f'border-radius:6px;padding:8px">{html.escape(str(message))}</div>'
    )


# ----------------------------------------------------------------------------------------------------------
# JSON export


def _json_safe(x):
    """Replace non-finite floats (JSON has none) by their string names, recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def trace_json(traces_or_trace: Trace | Mapping[str, Trace] | Iterable[Trace], extra: dict | None = None) -> str:
    """The full export as pretty JSON: one trace ({"trace": ...}) or several ({"traces": {label: ...}}), each
    with its settings, seed and every step (`Trace.to_dict()`); `extra` keys (prompt, app version ...) go first."""
    doc: dict = {}
    if extra:
        doc.update(extra)
    if isinstance(traces_or_trace, Trace):
        doc["trace"] = traces_or_trace.to_dict()
    elif isinstance(traces_or_trace, Mapping):
        doc["traces"] = {str(k): t.to_dict() for k, t in traces_or_trace.items()}
    else:
        doc["traces"] = {t.label: t.to_dict() for t in traces_or_trace}
    return json.dumps(_json_safe(doc), indent=2, ensure_ascii=False, allow_nan=False)
