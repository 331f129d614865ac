"""Plotly figures of decoding records: one step's distribution, a run's trajectory, temperatures, knobs, beams.

Each function takes records (`StepRecord`, `Trace`, `Exploration`) and returns a `plotly.graph_objects.Figure`;
none computes model maths, and none trims what the records hold except for display (`max_tokens`). Colours
mean the same thing in every chart:

    RAW    the model's own probabilities           AFTER  after the knobs (penalty, temperature, top-k/p, min-p)
    CUT    a token a truncation knob removed       CHOSEN outline of the token the step took

Token labels come from `views.token_label` (whitespace made visible) and are made unique on each axis. Text
that reaches plotly's HTML-like labels is escaped. This module knows nothing about Gradio, tensors or models.
"""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .records import Candidate, Exploration, StepRecord, Trace
from .views import _pct, token_label

__all__ = [
    "RAW",
    "AFTER",
    "CUT",
    "CHOSEN",
    "axis_labels",
    "distribution_figure",
    "trajectory_figure",
    "temperature_figure",
    "knobs_figure",
    "beam_tree_figure",
    "beam_winner_path",
]

RAW = "#7aa6d8"  # the model's raw probabilities
AFTER = "#f28e2b"  # after the knobs
CUT = "#c7c9cc"  # removed by a truncation knob
CHOSEN = "#1f2937"  # outline of the chosen token
CUMULATIVE = "#7b4fb8"  # top-p's running sum
ENTROPY = "#2a9d8f"
BEAM_COLORS = {"kept": "#4e79a7", "finished": "#59a14f", "pruned": "#c7c9cc"}
WINNER = "#e15759"
KNOB_NAMES = {"top_k": "top-k", "top_p": "top-p", "min_p": "min-p"}
LN2 = math.log(2)
_QUARTERS = [0, 0.25, 0.5, 0.75, 1.0]
HEIGHT = 360
FONT = dict(family="Inter, system-ui, -apple-system, Segoe UI, sans-serif", size=12, color="#1f2937")


def _esc(text: str) -> str:
    """Plotly renders a subset of HTML in labels and hovers: escape what came from the model or the user."""
    return html.escape(text, quote=False)


def axis_labels(candidates: list[Candidate]) -> list[str]:
    """Visible, escaped and unique category labels: tokens that render the same get their token id appended."""
    labels = [_esc(token_label(c.token)) for c in candidates]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    out = []
    for label, c in zip(labels, candidates):
        out.append(f"{label} #{c.token_id}" if counts[label] > 1 else label)
    # a label may still collide with another token's "x #id" form; fall back to numbering
    seen: dict[str, int] = {}
    for i, label in enumerate(out):
        if label in seen:
            seen[label] += 1
            out[i] = f"{label} ({seen[label]})"
        else:
            seen[label] = 1
    return out


def _layout(fig: go.Figure, title: str, height: int = HEIGHT, **kwargs) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=14)),
        height=height,
        margin=dict(l=50, r=50, t=60, b=90),
        font=FONT,
        plot_bgcolor="white",
        paper_bgcolor="white",
        # below the plot: above it, a wrapped legend runs into two-line titles in narrow columns
        legend=dict(orientation="h", yanchor="top", y=-0.28, xanchor="left", x=0.0, font=dict(size=11)),
        hoverlabel=dict(font=dict(family=FONT["family"], size=12)),
        bargap=0.2,
        **kwargs,
    )
    fig.update_xaxes(showgrid=False, linecolor="#9ca3af", tickfont=dict(family="ui-monospace, Menlo, monospace"))
    fig.update_yaxes(gridcolor="#eef0f3", zerolinecolor="#d1d5db")
    return fig


def _dual_axis_figure() -> go.Figure:
    """A figure with a second y axis on the right, overlaying the first (make_subplots' secondary_y does the
    same in ~13 ms a call; this takes ~1 ms, and two such figures are rebuilt on every Step)."""
    return go.Figure(layout=dict(yaxis2=dict(overlaying="y", side="right", anchor="x")))


def _empty(title: str, note: str, height: int = 240) -> go.Figure:
    fig = go.Figure()
    _layout(fig, title, height=height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=_esc(note), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=13, color="#6b7280"))
    return fig


def _entropy_text(nats: float) -> str:
    return f"{nats:.2f} nats ({nats / LN2:.2f} bits)" if math.isfinite(nats) else "n/a"


def _cut_name(cut_by: str | None) -> str:
    return KNOB_NAMES.get(cut_by, cut_by or "")


# ----------------------------------------------------------------------------------------------------------


def _displayed_candidates(record: StepRecord, max_tokens: int) -> list[Candidate]:
    """The top `max_tokens` by raw rank, plus the chosen token when it ranks lower (or outside the record's
    top-N, from the record's own numbers)."""
    ranked = sorted(record.top, key=lambda c: c.rank)
    shown = ranked[:max_tokens]
    if all(c.token_id != record.token_id for c in shown):
        extra = next((c for c in ranked if c.token_id == record.token_id), None)
        if extra is None:
            extra = Candidate(
                token_id=record.token_id, token=record.token, rank=len(ranked), logit=float("nan"),
                raw_prob=record.raw_prob, shaped_prob=record.prob, prob=record.prob, kept=True, cut_by=None,
            )
        shown.append(extra)
    return shown


def distribution_figure(record: StepRecord, max_tokens: int = 15) -> go.Figure:
    """One step's candidates by raw rank: raw probability and probability after the knobs side by side; tokens
    the knobs cut drawn grey and hatched at the height they had before the cut; top-p's cumulative line on the
    right axis with its cut-off; the chosen token outlined."""
    if not record.top:
        return _empty(f"Step {record.step}", "This step recorded no candidates.")
    cands = _displayed_candidates(record, max(1, int(max_tokens)))
    x = axis_labels(cands)
    cfg = record.config
    chosen = [c.token_id == record.token_id for c in cands]
    outline = dict(color=[CHOSEN if ch else "rgba(0,0,0,0)" for ch in chosen], width=[2.5 if ch else 0 for ch in chosen])

    fig = _dual_axis_figure()
    raw_hover = [
        f"<b>{lab}</b><br>rank {c.rank + 1} · id {c.token_id}<br>logit {c.logit:.2f}<br>raw {_pct(c.raw_prob)}"
        for lab, c in zip(x, cands)
    ]
    fig.add_trace(
        go.Bar(x=x, y=[c.raw_prob for c in cands], name="raw model", marker=dict(color=RAW, line=outline),
               hovertext=raw_hover, hoverinfo="text", offsetgroup="raw"),
    )
    after_y, after_color, after_pattern, after_hover, after_text = [], [], [], [], []
    for lab, c in zip(x, cands):
        if c.kept:
            after_y.append(c.prob)
            after_color.append(AFTER)
            after_pattern.append("")
            after_hover.append(f"<b>{lab}</b><br>after knobs {_pct(c.prob)}<br>(raw {_pct(c.raw_prob)})")
            after_text.append("")
        else:
            name = _cut_name(c.cut_by)
            after_y.append(c.shaped_prob)  # its height before the cut, so the cut is visible
            after_color.append(CUT)
            after_pattern.append("/")
            after_hover.append(
                f"<b>{lab}</b><br>cut by {name}: 0% after knobs<br>({_pct(c.shaped_prob)} before the cut, "
                f"raw {_pct(c.raw_prob)})"
            )
            after_text.append(f"✂ {name}")
    fig.add_trace(
        go.Bar(x=x, y=after_y, name="after knobs", offsetgroup="after",
               marker=dict(color=after_color, pattern=dict(shape=after_pattern, fgcolor="#6b7280", size=6), line=outline),
               text=after_text, textposition="outside", textfont=dict(size=10, color="#6b7280"), cliponaxis=False,
               hovertext=after_hover, hoverinfo="text",
               customdata=[[c.token_id, c.cut_by or ""] for c in cands]),
    )
    if any(not c.kept for c in cands):  # a legend entry for the grey bars
        fig.add_trace(go.Bar(x=[None], y=[None], name="cut by a knob", marker=dict(color=CUT, pattern=dict(shape="/")),
                             showlegend=True, hoverinfo="skip"))

    cumulative, total = [], 0.0
    for c in cands:
        total += c.shaped_prob
        cumulative.append(min(total, 1.0))
    fig.add_trace(
        go.Scatter(x=x, y=cumulative, name="cumulative (top-p)", mode="lines+markers", yaxis="y2",
                   line=dict(color=CUMULATIVE, width=1.5, shape="hv"), marker=dict(size=4),
                   hovertemplate="cumulative %{y:.1%}<extra></extra>"),
    )
    if cfg.strategy == "sample" and not cfg.is_greedy and cfg.top_p < 1:
        fig.add_shape(type="line", xref="paper", x0=0, x1=1, yref="y2", y0=cfg.top_p, y1=cfg.top_p,
                      line=dict(color=CUMULATIVE, dash="dash", width=1))
        fig.add_annotation(xref="paper", x=1, xanchor="right", yref="y2", y=cfg.top_p, yanchor="bottom",
                           text=f"top-p = {cfg.top_p:g}", showarrow=False, font=dict(size=10, color=CUMULATIVE))

    i = chosen.index(True)
    top_y = max(cands[i].raw_prob, after_y[i])
    fig.add_annotation(x=x[i], y=top_y, text="forced" if record.forced else "chosen", showarrow=True, arrowhead=2,
                       ax=0, ay=-28, font=dict(size=11, color=CHOSEN), bgcolor="rgba(255,255,255,0.85)",
                       yref="y", xref="x")

    title = (
        f"Step {record.step}: {'forced' if record.forced else 'chose'} <b>{_esc(token_label(record.token))}</b> "
        f"({_pct(record.prob)})<br><span style='font-size:11px'>entropy raw {_entropy_text(record.entropy_raw)} → "
        f"after knobs {_entropy_text(record.entropy)}</span>"
    )
    _layout(fig, title)
    fig.update_layout(barmode="group", margin=dict(t=78))
    fig.layout.yaxis.update(title_text="probability", tickformat=".0%", rangemode="tozero")
    fig.layout.yaxis2.update(title_text="cumulative", tickformat=".0%", range=[0, 1.05], tickvals=_QUARTERS, showgrid=False)
    fig.update_xaxes(tickangle=-40 if len(x) > 8 else 0)
    return fig


def trajectory_figure(steps: list[StepRecord]) -> go.Figure:
    """The chosen token's probability (raw and after the knobs) and the entropy, step by step."""
    if not steps:
        return _empty("Trajectory", "No steps yet: take a step to see the run's trajectory.")
    x = [r.step for r in steps]
    labels = [_esc(token_label(r.token)) for r in steps]
    fig = _dual_axis_figure()
    symbols = ["diamond" if r.forced else "circle" for r in steps]
    fig.add_trace(
        go.Scatter(x=x, y=[r.prob for r in steps], name="p(chosen) after knobs", mode="lines+markers",
                   line=dict(color=AFTER, width=2), marker=dict(size=7, symbol=symbols),
                   text=labels, customdata=[["forced" if r.forced else ""] for r in steps],
                   hovertemplate="step %{x}: <b>%{text}</b> %{customdata[0]}<br>after knobs %{y:.1%}<extra></extra>"),
    )
    fig.add_trace(
        go.Scatter(x=x, y=[r.raw_prob for r in steps], name="p(chosen) raw", mode="lines+markers",
                   line=dict(color=RAW, width=2), marker=dict(size=6, symbol=symbols), text=labels,
                   hovertemplate="step %{x}: <b>%{text}</b><br>raw %{y:.1%}<extra></extra>"),
    )
    fig.add_trace(
        go.Scatter(x=x, y=[r.entropy_raw for r in steps], name="entropy raw", mode="lines", yaxis="y2",
                   line=dict(color=ENTROPY, width=1.5, dash="dot"),
                   hovertemplate="step %{x}: raw entropy %{y:.2f} nats<extra></extra>"),
    )
    fig.add_trace(
        go.Scatter(x=x, y=[r.entropy for r in steps], name="entropy after knobs", mode="lines", yaxis="y2",
                   line=dict(color=ENTROPY, width=2),
                   hovertemplate="step %{x}: entropy after knobs %{y:.2f} nats<extra></extra>"),
    )
    _layout(fig, "Chosen token probability and entropy per step")
    fig.layout.yaxis.update(title_text="probability", tickformat=".0%", range=[0, 1.05])
    fig.layout.yaxis2.update(title_text="entropy (nats)", rangemode="tozero", tickformat=".1f", nticks=6, showgrid=False)
    fig.update_xaxes(title_text="step", dtick=1 if len(steps) <= 20 else None,
                     tickfont=dict(family=FONT["family"]))
    return fig


# ----------------------------------------------------------------------------------------------------------


def _temperature_colors(n: int) -> list[str]:
    """Cool (low temperature) to warm (high), a fixed ramp."""
    ramp = ["#2c7bb6", "#5aa5c8", "#9cc9b9", "#e0c36b", "#f28e2b", "#d7191c"]
    if n <= 1:
        return ramp[:1]
    return [ramp[round(i * (len(ramp) - 1) / (n - 1))] for i in range(n)]


def temperature_figure(exploration: Exploration) -> go.Figure:
    """The step's candidates at several temperatures at once (one bar group each), with the probability of
    every other token in the vocabulary as its own bar at the end."""
    cands, views_ = exploration.candidates, exploration.temperatures
    if not cands or not views_:
        return _empty("Temperature", "Nothing to explore at this step.")
    x = axis_labels(cands) + ["(all others)"]
    current = exploration.config.temperature
    fig = go.Figure()
    for color, v in zip(_temperature_colors(len(views_)), views_):
        is_current = math.isclose(v.temperature, current) and exploration.config.strategy == "sample"
        name = f"T = {v.temperature:g}" + (" (current)" if is_current else "")
        fig.add_trace(
            go.Bar(x=x, y=list(v.probs) + [v.rest], name=name,
                   marker=dict(color=color, line=dict(color=CHOSEN, width=1.5 if is_current else 0)),
                   customdata=[[v.entropy, v.entropy / LN2]] * len(x),
                   hovertemplate=f"{name}<br><b>%{{x}}</b>: %{{y:.2%}}<br>entropy %{{customdata[0]:.2f}} nats "
                   "(%{customdata[1]:.2f} bits)<extra></extra>")
        )
    entropies = " · ".join(f"T={v.temperature:g}: {v.entropy:.2f}" for v in views_)
    _layout(fig, f"Step {exploration.step} at several temperatures<br><span style='font-size:11px'>entropy (nats) "
                 f"{entropies}</span>")
    fig.update_layout(barmode="group", margin=dict(t=78))
    fig.update_yaxes(title_text="probability", tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(tickangle=-40 if len(x) > 8 else 0)
    return fig


def _knob_title(knob) -> str:
    name = KNOB_NAMES.get(knob.knob, knob.knob)
    off = {"top_k": knob.setting == 0, "top_p": knob.setting >= 1, "min_p": knob.setting <= 0}.get(knob.knob, False)
    setting = f"{int(knob.setting)}" if knob.knob == "top_k" else f"{knob.setting:g}"
    head = f"{name} = {setting}" + (" (off)" if off else "")
    return f"<b>{head}</b><br><span style='font-size:11px'>keeps {knob.kept_count:,} tokens · {knob.kept_mass:.1%} of mass</span>"


def knobs_figure(exploration: Exploration) -> go.Figure:
    """Top-k, top-p and min-p, each alone, on the step's distribution (after penalty and temperature): one
    panel per knob, candidates sorted by that probability, kept ones coloured, cut ones grey and hatched, with
    top-p's cumulative line and cut-off and min-p's threshold drawn."""
    cands, knobs = exploration.candidates, exploration.knobs
    if not cands or not knobs:
        return _empty("Knobs", "Nothing to explore at this step.")
    order = sorted(range(len(cands)), key=lambda i: -cands[i].shaped_prob)  # the order the knobs see
    labels = axis_labels(cands)
    x = [labels[i] for i in order]
    y = [cands[i].shaped_prob for i in order]
    fig = make_subplots(rows=1, cols=len(knobs), subplot_titles=[_knob_title(k) for k in knobs],
                        specs=[[{"secondary_y": k.knob == "top_p"} for k in knobs]], horizontal_spacing=0.09)
    for col, knob in enumerate(knobs, start=1):
        kept = [knob.kept[i] for i in order]
        fig.add_trace(
            go.Bar(x=x, y=y, name=KNOB_NAMES.get(knob.knob, knob.knob), showlegend=False,
                   marker=dict(color=[AFTER if k else CUT for k in kept],
                               pattern=dict(shape=["" if k else "/" for k in kept], fgcolor="#6b7280", size=5)),
                   customdata=[["kept" if k else "cut"] for k in kept],
                   hovertemplate="<b>%{x}</b>: %{y:.2%} — %{customdata[0]}<extra>" + KNOB_NAMES.get(knob.knob, "")
                   + "</extra>"),
            row=1, col=col, **({"secondary_y": False} if knob.knob == "top_p" else {}),
        )
        if knob.knob == "top_p":
            cum = list(exploration.cumulative)[: len(x)]
            fig.add_trace(
                go.Scatter(x=x[: len(cum)], y=cum, mode="lines+markers", showlegend=False, name="cumulative",
                           line=dict(color=CUMULATIVE, width=1.5, shape="hv"), marker=dict(size=4),
                           hovertemplate="cumulative %{y:.1%}<extra></extra>"),
                row=1, col=col, secondary_y=True,
            )
            if knob.threshold is not None and knob.threshold < 1:
                fig.add_hline(y=knob.threshold, line=dict(color=CUMULATIVE, dash="dash", width=1), row=1, col=col,
                              secondary_y=True)
            fig.update_yaxes(range=[0, 1.05], tickformat=".0%", tickvals=_QUARTERS, showgrid=False, row=1, col=col,
                             secondary_y=True)
        elif knob.knob == "min_p" and knob.threshold:
            fig.add_hline(y=knob.threshold, line=dict(color="#b45309", dash="dash", width=1), row=1, col=col,
                          annotation_text=f"{knob.threshold:.1%}", annotation_position="top right",
                          annotation_font=dict(size=10, color="#b45309"))
        elif knob.knob == "top_k" and 0 < sum(kept) < len(kept):
            fig.add_vline(x=sum(kept) - 0.5, line=dict(color="#6b7280", dash="dash", width=1), row=1, col=col)
    for name, color, shape in (("kept", AFTER, ""), ("cut", CUT, "/")):  # legend entries for the bar colours
        fig.add_trace(go.Bar(x=[None], y=[None], name=name, marker=dict(color=color, pattern=dict(shape=shape)),
                             hoverinfo="skip"), row=1, col=1)
    _layout(fig, f"Step {exploration.step}: what each knob keeps on its own", height=HEIGHT)
    fig.update_layout(margin=dict(t=100, b=110))
    fig.update_annotations(font=dict(size=12))
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(range=[0, 1.05], secondary_y=True)
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=9))
    return fig


# ----------------------------------------------------------------------------------------------------------
# Beam search tree


def _beam_nodes(trace: Trace) -> list[list]:
    """Per step, per candidate: (token path, parent node index in the previous step or None for the root)."""
    nodes: list[list[tuple[list[int], int | None]]] = []
    for s, record in enumerate(trace.steps):
        row = []
        prev = trace.steps[s - 1].beams if s else None
        for b in record.beams or []:
            if s == 0:
                row.append(([b.token_id], None))
                continue
            parent_idx = next(
                (j for j, p in enumerate(prev or []) if p.status == "kept" and p.beam == b.parent), None
            )
            path = (nodes[s - 1][parent_idx][0] if parent_idx is not None else []) + [b.token_id]
            row.append((path, parent_idx))
        nodes.append(row)
    return nodes


def _beam_status(trace: Trace, step: int, b) -> str:
    """The status to draw: a candidate that entered the finished set is "finished" even when it is also listed
    as kept (which happens at the last step); a "kept" beam at the last step of a run that ended is "pruned"."""
    if b.normalized_score is not None:
        return "finished"
    if b.status == "kept" and step == len(trace.steps) - 1 and trace.finish_reason != "stopped":
        return "pruned"
    return b.status


def beam_winner_path(trace: Trace) -> list[tuple[int, int]]:
    """The winner's nodes as (step, index in that step's beams), from step 0: the finished hypothesis whose
    tokens are `trace.token_ids`, found by walking parents. Empty when no beam candidate matches."""
    if not trace.steps or not trace.token_ids or any(r.beams is None for r in trace.steps):
        return []
    nodes = _beam_nodes(trace)
    target = list(trace.token_ids)
    last = len(target) - 1
    if last >= len(nodes):
        return []
    matches = [j for j, (path, _) in enumerate(nodes[last]) if path == target]
    if not matches:
        return []
    finished = [j for j in matches if _beam_status(trace, last, trace.steps[last].beams[j]) == "finished"]
    j = (finished or matches)[0]
    path = []
    for s in range(last, -1, -1):
        path.append((s, j))
        j = nodes[s][j][1]
        if j is None and s > 0:
            return []
    return path[::-1]


def beam_tree_figure(trace: Trace) -> go.Figure:
    """Every beam candidate at every step (x = step, y = rank among the step's candidates), joined to the beam
    it extends; coloured by status (kept / finished / pruned); the winner's path highlighted."""
    if trace.strategy != "beam" or any(r.beams is None for r in trace.steps):
        return _empty("Beam search tree", "The beam tree is drawn for beam search runs: choose strategy = beam.")
    if not trace.steps:
        return _empty("Beam search tree", "No steps yet: run beam search to see its tree.")
    nodes = _beam_nodes(trace)
    winner = beam_winner_path(trace)
    on_path = set(winner)
    width = max(len(r.beams) for r in trace.steps)
    root_y = (width - 1) / 2

    def pos(s: int, j: int | None) -> tuple[float, float]:
        return (-1.0, root_y) if j is None else (float(s), float(j))

    edge_x: list = []
    edge_y: list = []
    win_x: list = []
    win_y: list = []
    for s, row in enumerate(nodes):
        for j, (_, parent_idx) in enumerate(row):
            x0, y0 = pos(s - 1, parent_idx) if (s == 0 or parent_idx is not None) else (None, None)
            if x0 is None:
                continue
            xs, ys = (edge_x, edge_y) if (s, j) not in on_path else (win_x, win_y)
            xs += [x0, float(s), None]
            ys += [y0, float(j), None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", line=dict(color="#cbd5e1", width=1),
                             hoverinfo="skip", showlegend=False, name="edges"))
    if win_x:
        fig.add_trace(go.Scatter(x=win_x, y=win_y, mode="lines", line=dict(color=WINNER, width=3),
                                 hoverinfo="skip", showlegend=False, name="winner edges"))
    fig.add_trace(go.Scatter(x=[-1.0], y=[root_y], mode="markers+text", text=["prompt"], textposition="bottom center",
                             marker=dict(size=12, color="#374151", symbol="square"), hoverinfo="text",
                             hovertext=["the prompt"], showlegend=False, name="prompt"))
    for status in ("kept", "finished", "pruned"):
        xs, ys, text, hover = [], [], [], []
        for s, record in enumerate(trace.steps):
            for j, b in enumerate(record.beams):
                if _beam_status(trace, s, b) != status:
                    continue
                label = _esc(token_label(b.token))
                xs.append(s)
                ys.append(j)
                # every kept label fits on short runs; on long ones only the winner's path is written out
                text.append(label if (s, j) in on_path or (status != "pruned" and len(trace.steps) <= 12) else "")
                norm = f"<br>normalised {b.normalized_score:.3f}" if b.normalized_score is not None else ""
                role = f"kept as beam {b.beam}" if b.status == "kept" else b.status
                if status == "pruned" and b.status == "kept":
                    role = "not finished: the run ended at this step"
                hover.append(f"step {s} · <b>{label}</b> (id {b.token_id})<br>{role}, extends beam {b.parent}"
                             f"<br>score {b.score:.3f}{norm}")
        if not xs:
            continue
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers+text", name=status, text=text,
            textposition=["top center" if x % 2 == 0 else "bottom center" for x in xs],  # neighbours alternate
            textfont=dict(size=10, family="ui-monospace, Menlo, monospace",
                          color="#9ca3af" if status == "pruned" else "#1f2937"),
            marker=dict(size=9 if status != "pruned" else 6, color=BEAM_COLORS[status],
                        line=dict(color="white", width=1)),
            hovertext=hover, hoverinfo="text"))
    if winner:
        wx = [float(s) for s, _ in winner]
        wy = [float(j) for _, j in winner]
        tokens = [trace.steps[s].beams[j] for s, j in winner]
        fig.add_trace(go.Scatter(
            x=wx, y=wy, mode="markers", name="winner", marker=dict(size=13, color="rgba(0,0,0,0)",
                                                                   line=dict(color=WINNER, width=2.5)),
            text=[_esc(token_label(b.token)) for b in tokens], customdata=[b.token_id for b in tokens],
            hovertemplate="winner · <b>%{text}</b><extra></extra>"))
    note = "" if winner else " (no finished winner among the candidates)"
    score = f" · beam score {trace.beam_score:.3f}" if trace.beam_score is not None else ""
    _layout(fig, f"Beam search: {trace.config.num_beams} beams, {len(trace.steps)} steps{score}{note}",
            height=max(HEIGHT, 48 * width + 100))
    fig.update_yaxes(autorange="reversed", title_text="rank at step", dtick=1, showgrid=False, zeroline=False)
    n = len(trace.steps)
    ticks = list(range(0, n, 1 if n <= 24 else max(1, n // 12)))
    fig.update_xaxes(title_text="step", tickvals=ticks, zeroline=False, range=[-1.9, n - 0.4],
                     tickfont=dict(family=FONT["family"]))
    return fig
