"""matplotlib figures of decoding records: one step's distribution, a run's trajectory, temperatures, knobs, beams.

Each `*_figure` function takes records (`StepRecord`, `Trace`, `Exploration`) and returns a
`matplotlib.figure.Figure` built without pyplot (no global figure state, so concurrent sessions never share
one; the Agg canvas renders it). What a figure draws is computed first, as plain data (`distribution_data`),
so tests can pin it against the record. None of these functions computes model maths, and none trims what
the records hold except for display (`max_tokens`, labels shortened in the middle). Colours mean the same
thing in every chart:

    RAW    the model's own probabilities           AFTER  after the knobs (penalty, temperature, top-k/p, min-p)
    CUT    a token a truncation knob removed        (each knob its own colour: CUT_STYLE)
    CHOSEN outline of the token the step took       FORCED the same, when the user forced it

Text is drawn at 12 pt or more at the default size (legible on a projector); token labels come from
`views.token_label` (whitespace made visible) and never go through mathtext. This module knows nothing about
Gradio, tensors or models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.collections import PatchCollection
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .records import Candidate, Exploration, StepRecord, Trace
from .views import _num, _pct, token_label

__all__ = [
    "RAW",
    "AFTER",
    "CUT",
    "CUT_STYLE",
    "CHOSEN",
    "FORCED",
    "DISTRIBUTION_LEGEND",
    "TRAJECTORY_LEGEND",
    "short_label",
    "axis_labels",
    "DistributionData",
    "distribution_data",
    "distribution_figure",
    "trajectory_figure",
    "temperature_figure",
    "knobs_figure",
    "beam_tree_figure",
    "beam_winner_path",
]

RAW = "#5b8fd0"  # the model's raw probabilities
AFTER = "#f28e2b"  # after the knobs
CUT = "#9ca3af"  # removed by a truncation knob (grey); each knob has its own colour below
CUT_STYLE = {  # knob -> colour: the three cuts stay distinguishable in every chart
    "top_k": "#6b7280",
    "top_p": "#7b4fb8",
    "min_p": "#b45309",
}
CHOSEN = "#111827"  # outline and label of the chosen token
FORCED = "#7c3aed"  # ... of a token the user forced (the coloured text underlines it in the same colour)
CUMULATIVE = "#7b4fb8"  # top-p's running sum
ENTROPY = "#2a9d8f"
BEAM_COLORS = {"kept": "#4e79a7", "finished": "#59a14f", "pruned": "#c7c9cc"}
WINNER = "#e15759"
KNOB_NAMES = {"top_k": "top-k", "top_p": "top-p", "min_p": "min-p"}
# The page draws these legends once, beside the charts, instead of in every figure: (label, colour, mark)
DISTRIBUTION_LEGEND = [
    ("model (raw)", RAW, "bar"),
    ("after knobs (greedy: its pick)", AFTER, "bar"),
    *((f"cut by {KNOB_NAMES[k]}", c, "shade") for k, c in CUT_STYLE.items()),
    ("cumulative: what top-p sees", CUMULATIVE, "line"),
    ("chosen", CHOSEN, "outline"),
    ("forced", FORCED, "outline"),
]
TRAJECTORY_LEGEND = [
    ("p(chosen) after knobs", AFTER, "line"),
    ("p(chosen) raw", RAW, "line"),
    ("entropy after knobs", ENTROPY, "line"),
    ("entropy raw", ENTROPY, "dotted"),
    ("forced", FORCED, "diamond"),
]

DPI = 100
WIDTH = 8.0  # inches: 800 px, the width of the page's main column on a 1440 px screen (shown 1:1)
FONT = 13  # points: every text at least 12 pt
SMALL = 12
TOKEN_FONT = "DejaVu Sans Mono"  # monospace tokens; it has ␣ ↵ ⇥ ∅ … (one family: a fallback list is slower)
CHAR_IN = FONT * 0.602 / 72  # inches per character of TOKEN_FONT at FONT points
LINE_IN = SMALL * 1.45 / 72  # inches per line of SMALL text
TITLE_IN = 2 * FONT * 1.35 / 72 + 0.2  # a two-line title
AXIS_IN = 0.62  # tick labels and an axis label below the plot
ROW_IN = 0.38  # inches per token row of the distribution chart
LABEL_CHARS = 18  # a token label longer than this is shortened in the middle
LOG_FLOOR = 1e-4  # the log scale's left edge
TEMPERATURE_TOKENS = 12  # tokens per temperature panel (the rest join "all others")


def short_label(text: str, max_chars: int = LABEL_CHARS) -> str:
    """`text` shortened in the middle ("␣extraordin…arily") when longer than `max_chars`: its start and end
    both stay visible. The full token stays on the record (and in the tables and tooltips)."""
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def axis_labels(candidates: list[Candidate], max_chars: int = LABEL_CHARS) -> list[str]:
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


_PERCENT = FuncFormatter(lambda x, _: f"{100 * x:.0f}%" if x >= 0.01 or x == 0 else f"{100 * x:.2g}%")


def _figure(height: float, width: float = WIDTH) -> Figure:
    """A new figure on the Agg canvas (no pyplot). Margins are set by `_place` from the text they must hold:
    a layout engine would measure every label in an extra drawing pass, which costs as much as the drawing."""
    return Figure(figsize=(width, height), dpi=DPI, facecolor="white")


def _place(fig: Figure, left: float, right: float, top: float, bottom: float, **space) -> None:
    """Margins in inches (room for the labels, title and legend), so no text is clipped at any figure size."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h, **space)


def _label_room(labels: list[str]) -> float:
    """Inches the token labels need left of the axis."""
    return CHAR_IN * max((len(x) for x in labels), default=1) + 0.25


def _style(ax, grid_axis: str = "x") -> None:
    ax.tick_params(labelsize=SMALL)
    ax.grid(axis=grid_axis, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _token_labels(ax, labels: list[str]) -> list[Text]:
    """Token labels left of the axis, one per row (y = 0, 1, ...): monospace, plain text (a '$' in a token is
    not mathtext). Drawn as texts rather than tick labels, which cost a tick, two marks and a grid line each."""
    ax.set_yticks([])
    at = ax.get_yaxis_transform()  # x in axes fractions, y in rows
    return [
        ax.text(-0.012, y, label, transform=at, ha="right", va="center", fontsize=FONT, family=TOKEN_FONT,
                parse_math=False, gid="token-label")  # fmt: skip
        for y, label in enumerate(labels)
    ]


def _legend(fig: Figure, handles: list, ncols: int) -> None:
    """The legend below the plot (`_legend_room` inches): above it, a wrapped legend runs into the title."""
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=ncols, fontsize=SMALL,
               frameon=False, borderaxespad=0.3)  # fmt: skip


def _legend_room(n_handles: int, ncols: int) -> float:
    return math.ceil(n_handles / ncols) * LINE_IN * 1.25 + 0.15


def _empty(title: str, note: str, height: float = 2.4) -> Figure:
    fig = _figure(height)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(title, fontsize=FONT + 1, loc="left", parse_math=False)
    ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=FONT, color="#6b7280", wrap=True, parse_math=False)
    return fig


# ----------------------------------------------------------------------------------------------------------
# One step's distribution


@dataclass(frozen=True)
class DistributionData:
    """What the distribution chart draws, row by row (top row first): every number comes from the record."""

    candidates: list[Candidate]  # the rows: by probability before truncation (the order the knobs see)
    labels: list[str]
    raw: list[float]  # the model's probability
    after: list[float]  # after every knob; for a greedy step, 1 on the argmax and 0 elsewhere (what it picks)
    cut_by: list[str | None]  # the knob that removed each token, or None
    cumulative: list[float] | None  # top-p's running sum (over what top-p sees), when top-p was on
    top_p: float | None  # the threshold drawn, when top-p was on
    chosen: int  # the row of the token the step took
    forced: bool
    greedy: bool


def _candidates_shown(record: StepRecord, max_tokens: int) -> list[Candidate]:
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


def distribution_data(record: StepRecord, max_tokens: int = 15) -> DistributionData:
    """The rows, bars, cut marks, cumulative line and highlighted token of `distribution_figure`."""
    cands = _candidates_shown(record, max(1, int(max_tokens)))
    cfg = record.config
    greedy = cfg.is_greedy  # greedy, or sampling at temperature 0
    if greedy:  # after the knobs a greedy step is certain: the token its argmax picks, whatever was forced
        pick = max(record.top, key=lambda c: (c.prob, -c.rank)).token_id if record.top else record.token_id
        after = [1.0 if c.token_id == pick else 0.0 for c in cands]
    else:
        after = [c.prob if c.kept else 0.0 for c in cands]
    top_p_on = cfg.strategy == "sample" and not greedy and cfg.top_p < 1
    cumulative = None
    if top_p_on and all(c.cumulative is not None for c in cands):
        cumulative = [c.cumulative for c in cands]
    return DistributionData(
        candidates=cands,
        labels=axis_labels(cands),
        raw=[c.raw_prob for c in cands],
        after=after,
        cut_by=[None if c.kept else c.cut_by for c in cands],
        cumulative=cumulative,
        top_p=cfg.top_p if top_p_on else None,
        chosen=next(i for i, c in enumerate(cands) if c.token_id == record.token_id),
        forced=record.forced,
        greedy=greedy,
    )


def distribution_figure(record: StepRecord, max_tokens: int = 15, log_scale: bool = False, pending: bool = False,
                        legend: bool = True) -> Figure:  # fmt: skip
    """One step's candidates, one row each: the model's probability (blue) above the probability after the knobs
    (orange); rows a knob cut are shaded in that knob's colour and say which knob; top-p's
    cumulative line on the same 0-100 % axis, with its threshold; the chosen (or forced) token outlined and
    labelled. `log_scale` spreads small probabilities out; `pending` titles it as the next step, not taken yet;
    `legend=False` leaves the legend to the page (`DISTRIBUTION_LEGEND`: drawing it is a third of the cost)."""
    if not record.top:
        return _empty(f"Step {record.step}", "This step recorded no candidates.")
    d = distribution_data(record, max_tokens)
    n = len(d.candidates)
    ncols = 3
    n_handles = 2 + len({k for k in d.cut_by if k}) + (d.cumulative is not None)
    top, bottom = TITLE_IN, AXIS_IN - (0 if log_scale else 0.25) + (_legend_room(n_handles, ncols) if legend else 0)
    fig = _figure(top + bottom + ROW_IN * n + (0.26 if d.cumulative is not None else 0))
    _place(fig, left=_label_room(d.labels), right=0.3, top=top, bottom=bottom)
    ax = fig.subplots()
    if log_scale:
        ax.set_xscale("log")
        ax.set_xlim(LOG_FLOOR, 1.0)
    else:
        ax.set_xlim(0, 1.0)
    _style(ax)
    ys = list(range(n))
    mark = FORCED if d.forced else CHOSEN
    edge = [mark if i == d.chosen else "none" for i in ys]
    width = [2.2 if i == d.chosen else 0 for i in ys]
    after_label = "after knobs (greedy: the argmax)" if d.greedy else "after knobs"
    _bars(ax, [y - 0.2 for y in ys], d.raw, RAW, edge, width, "model (raw)")
    _bars(ax, [y + 0.2 for y in ys], d.after, AFTER, edge, width, after_label)
    handles = [Patch(color=RAW, label="model (raw)"), Patch(color=AFTER, label=after_label)]

    for knob, color in CUT_STYLE.items():  # cut rows are shaded whatever their height: always visible
        for y0, y1 in _runs([k == knob for k in d.cut_by]):
            ax.axhspan(y0 - 0.5, y1 + 0.5, facecolor=color, alpha=0.16, linewidth=0, gid=f"cut:{knob}")
            _bar_note(ax, f"✂ cut by {KNOB_NAMES[knob]}", max(d.raw[y0], d.after[y0]), y0, color, f"cut-label:{knob}")
        if knob in d.cut_by:
            handles.append(Patch(facecolor=color, alpha=0.3, edgecolor=color, label=f"cut by {KNOB_NAMES[knob]}"))

    if d.cumulative is not None:  # a staircase: row i spans from the mass above it to its running sum
        (line,) = ax.plot([0.0, *d.cumulative], [0, *ys], color=CUMULATIVE, marker="o", markersize=4, markevery=slice(1, None),
                          linewidth=1.6, drawstyle="steps-pre", label="cumulative (what top-p sees)", gid="cumulative")  # fmt: skip
        ax.axvline(d.top_p, color=CUMULATIVE, linestyle="--", linewidth=1.2, gid="top_p")
        ax.text(d.top_p, -0.62, f"top-p = {d.top_p:g} ", color=CUMULATIVE, fontsize=SMALL, ha="right", va="bottom")
        handles.append(line)

    # the chosen token: bold label in the mark colour and a note at the end of its longer bar
    chosen_label = _token_labels(ax, d.labels)[d.chosen]
    chosen_label.set_color(mark)
    chosen_label.set_fontweight("bold")
    if pending:
        word = "will pick" if d.greedy else "would draw"
    else:
        word = "forced" if d.forced else "chosen"
    _bar_note(ax, f"◀ {word}", max(d.raw[d.chosen], d.after[d.chosen]), d.chosen, mark, "chosen")

    ax.set_ylim(n - 0.5, -0.5 - (0.6 if d.cumulative is not None else 0))  # top row first
    if log_scale:  # a linear 0-100 % axis needs no label; a log one says so
        ax.set_xlabel("probability (log scale)", fontsize=SMALL)
    ax.xaxis.set_major_formatter(_PERCENT)

    token = short_label(token_label(record.token), 24)
    prob = f"model {_pct(record.raw_prob, 1)}" if d.greedy else f"{_pct(record.prob, 1)} after knobs"
    if pending:
        head = f"Next step ({record.step}, not taken yet): {word} {token} ({prob})"
    else:
        head = f"Step {record.step}: {'forced' if d.forced else 'chose'} {token} ({prob})"
    after_h = "0 (greedy takes the top token)" if d.greedy else _num(record.entropy, ".2f")
    ax.set_title(f"{head}\nentropy {_num(record.entropy_raw, '.2f')} → {after_h} nats (raw → after knobs)", fontsize=FONT,
                 loc="left", parse_math=False)  # fmt: skip
    if legend:
        _legend(fig, handles, ncols)
    return fig


def _bars(ax, ys: list[float], lengths: list[float], color: str, edge: list[str], width: list[float], label: str):
    """Horizontal bars of height 0.38 centred on `ys`, as one collection: `Axes.barh` adds a patch per bar and
    re-measures the data limits for each, a fifth of the chart's cost. Its label names the series."""
    lo = ax.get_xlim()[0] if ax.get_xscale() == "log" else 0.0
    rects = [Rectangle((lo, y - 0.19), max(length - lo, 0.0), 0.38) for y, length in zip(ys, lengths)]
    bars = PatchCollection(rects, facecolors=color, edgecolors=edge, linewidths=width, label=label, gid=label)
    ax.add_collection(bars, autolim=False)
    return bars


def _bar_note(ax, text: str, tip: float, y: float, color: str, gid: str) -> None:
    """A bold note at the end of a row's longest bar: after it, or inside it (in white) when the bar nearly
    fills the axis, so it is never cut off at the right edge."""
    lo, hi = ax.get_xlim()
    tip = max(tip, lo)
    frac = (math.log(tip / lo) / math.log(hi / lo)) if ax.get_xscale() == "log" else (tip - lo) / (hi - lo)
    inside = frac > 0.72
    ax.annotate(text, (tip, y), xytext=(-6 if inside else 6, 0), textcoords="offset points", va="center",
                ha="right" if inside else "left", fontsize=SMALL, fontweight="bold", gid=gid,
                color="white" if inside else color)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# A run's trajectory


def trajectory_figure(steps: list[StepRecord], legend: bool = True) -> Figure:
    """The chosen token's probability (raw and after the knobs; forced steps as diamonds) and the entropy (raw
    and after the knobs, right axis), step by step. `legend=False` leaves it to the page (`TRAJECTORY_LEGEND`)."""
    if not steps:
        return _empty("Trajectory", "No steps yet: take a step to see the run's trajectory.")
    n_handles = 4 + any(r.forced for r in steps)
    top, bottom = TITLE_IN / 2 + 0.1, AXIS_IN - 0.25 + (_legend_room(n_handles, 3) if legend else 0)
    fig = _figure(top + bottom + 2.4)
    _place(fig, left=0.75, right=0.6, top=top, bottom=bottom)
    ax = fig.subplots()
    _style(ax, grid_axis="y")
    x = [r.step for r in steps]
    ax.plot(x, [r.prob for r in steps], color=AFTER, linewidth=2, label="p(chosen) after knobs", gid="prob")
    ax.plot(x, [r.raw_prob for r in steps], color=RAW, linewidth=2, label="p(chosen) raw", gid="raw_prob")
    for series, color in ((lambda r: r.prob, AFTER), (lambda r: r.raw_prob, RAW)):
        plain = [(r.step, series(r)) for r in steps if not r.forced]
        forced = [(r.step, series(r)) for r in steps if r.forced]
        if plain:
            ax.scatter(*zip(*plain), color=color, s=28, zorder=3)
        if forced:
            ax.scatter(*zip(*forced), color=FORCED, marker="D", s=44, zorder=4)
    ax.set_ylim(0, 1.05)
    ax.set_yticks([0, 0.5, 1.0])
    ax.yaxis.set_major_formatter(_PERCENT)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(len(steps), 12)))
    ax2 = ax.twinx()
    ax2.plot(x, [r.entropy_raw for r in steps], color=ENTROPY, linewidth=1.5, linestyle=":", label="entropy raw",
             gid="entropy_raw")  # fmt: skip
    ax2.plot(x, [r.entropy for r in steps], color=ENTROPY, linewidth=2, label="entropy after knobs", gid="entropy")
    ax2.tick_params(labelsize=SMALL, colors=ENTROPY)
    ax2.set_ylim(bottom=0)
    ax2.yaxis.set_major_locator(MaxNLocator(nbins=3))
    ax2.spines["top"].set_visible(False)
    ax.set_title("By step: the chosen token's probability (left) and the entropy in nats (right)", fontsize=FONT,
                 loc="left")  # fmt: skip
    if legend:
        handles = [*ax.lines, *ax2.lines]
        if any(r.forced for r in steps):
            handles.append(ax.scatter([], [], color=FORCED, marker="D", s=44, label="forced"))
        _legend(fig, handles, 3)
    return fig


# ----------------------------------------------------------------------------------------------------------
# Teaching views: temperatures and knobs


def _temperature_colors(n: int) -> list[str]:
    """Cool (low temperature) to warm (high), a fixed ramp."""
    ramp = ["#2c7bb6", "#5aa5c8", "#7fbf9f", "#d9b84a", "#f28e2b", "#d7191c"]
    if n <= 1:
        return ramp[:1]
    return [ramp[round(i * (len(ramp) - 1) / (n - 1))] for i in range(n)]


def temperature_figure(exploration: Exploration) -> Figure:
    """The step's candidates at several temperatures, one panel per temperature (the seed notebook's temperature
    comparison): the same tokens in every panel, with the probability of every other token in the vocabulary
    as the last bar, and each panel's entropy over the whole vocabulary."""
    cands, temps = exploration.candidates, exploration.temperatures
    if not cands or not temps:
        return _empty("Temperature", "Nothing to explore at this step.")
    cands = cands[:TEMPERATURE_TOKENS]
    labels = axis_labels(cands, max_chars=14) + ["(all others)"]
    cols = min(4, len(temps))
    rows = math.ceil(len(temps) / cols)
    panel_title = 2 * SMALL * 1.35 / 72 + 0.1
    panel = 0.3 * len(labels)
    top, bottom = TITLE_IN / 2 + 0.15 + panel_title, 0.45
    fig = _figure(top + bottom + rows * panel + (rows - 1) * (panel_title + 0.45))
    _place(fig, left=_label_room(labels), right=0.4, top=top, bottom=bottom, wspace=0.3,
           hspace=(panel_title + 0.45) / panel)  # fmt: skip
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False)
    current = exploration.config.temperature
    for i, (color, view) in enumerate(zip(_temperature_colors(len(temps)), temps)):
        ax = axes[i // cols][i % cols]
        _style(ax)
        is_current = math.isclose(view.temperature, current) and exploration.config.strategy == "sample"
        values = list(view.probs[: len(cands)]) + [view.rest + sum(view.probs[len(cands) :])]
        ax.barh(range(len(values)), values, color=color, edgecolor=CHOSEN if is_current else "none",
                linewidth=1.5 if is_current else 0, gid=f"T={view.temperature:g}")  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5])  # a 100 % label would run into the next panel's 0 %
        ax.xaxis.set_major_formatter(_PERCENT)
        ax.set_title(f"T = {view.temperature:g}{' (current)' if is_current else ''}\nentropy {view.entropy:.2f} nats",
                     fontsize=SMALL, loc="left")  # fmt: skip
        if i % cols == 0:
            _token_labels(ax, labels)
    for j in range(len(temps), rows * cols):
        axes[j // cols][j % cols].set_axis_off()
    axes[0][0].invert_yaxis()
    fig.suptitle(f"Step {exploration.step} at several temperatures (softmax over the whole vocabulary)",
                 fontsize=FONT, x=0.01, y=0.995, ha="left", va="top")  # fmt: skip
    return fig


def _knob_title(knob) -> str:
    name = KNOB_NAMES.get(knob.knob, knob.knob)
    off = {"top_k": knob.setting == 0, "top_p": knob.setting >= 1, "min_p": knob.setting <= 0}.get(knob.knob, False)
    setting = f"{int(knob.setting)}" if knob.knob == "top_k" else f"{knob.setting:g}"
    return f"{name} = {setting}{' (off)' if off else ''}\nkeeps {knob.kept_count:,} ({knob.kept_mass:.0%})"


def knobs_figure(exploration: Exploration) -> Figure:
    """Top-k, top-p and min-p, each alone, on the step's distribution (after penalty and temperature): one panel
    per knob, the same tokens in the order the knobs see them, kept ones orange, cut ones in the knob's shade
    with their rows shaded; top-k's cut-off rank, top-p's cumulative line and threshold and min-p's threshold drawn."""
    cands, knobs = exploration.candidates, exploration.knobs
    if not cands or not knobs:
        return _empty("Knobs", "Nothing to explore at this step.")
    order = sorted(range(len(cands)), key=lambda i: -cands[i].shaped_prob)  # the order the knobs see
    labels = axis_labels([cands[i] for i in order], max_chars=14)
    values = [cands[i].shaped_prob for i in order]
    panel_title = 2 * SMALL * 1.35 / 72 + 0.1
    n_handles = 2 + len(knobs)
    top, bottom = TITLE_IN / 2 + 0.15 + panel_title, AXIS_IN - 0.2 + _legend_room(n_handles, 3)
    fig = _figure(top + bottom + 0.3 * len(order))
    _place(fig, left=_label_room(labels), right=0.3, top=top, bottom=bottom, wspace=0.15)
    axes = fig.subplots(1, len(knobs), sharey=True, squeeze=False)[0]
    ys = list(range(len(order)))
    top = max(values) if values else 1.0
    for ax, knob in zip(axes, knobs):
        _style(ax)
        color = CUT_STYLE.get(knob.knob, CUT)
        kept = [knob.kept[i] for i in order]
        ax.barh(ys, values, color=[AFTER if k else color for k in kept], gid=knob.knob)
        for y0, y1 in _runs([not k for k in kept]):  # cut rows shaded whatever their height
            ax.axhspan(y0 - 0.5, y1 + 0.5, facecolor=color, alpha=0.14, linewidth=0, gid=f"cut:{knob.knob}")
        ax.set_title(_knob_title(knob), fontsize=SMALL, loc="left")
        if knob.knob == "top_p":
            ax.set_xlim(0, 1.0)
            cum = list(exploration.cumulative)[: len(ys)]
            ax.plot([0.0, *cum], [0, *ys[: len(cum)]], color=CUMULATIVE, marker="o", markersize=3, linewidth=1.4,
                    markevery=slice(1, None), drawstyle="steps-pre", gid="cumulative")  # fmt: skip
            if knob.threshold is not None and knob.threshold < 1:
                ax.axvline(knob.threshold, color=CUMULATIVE, linestyle="--", linewidth=1.2, gid="threshold")
        else:
            ax.set_xlim(0, top * 1.15)
            if knob.knob == "min_p" and knob.threshold:
                ax.axvline(knob.threshold, color=color, linestyle="--", linewidth=1.2, gid="threshold")
            elif knob.knob == "top_k" and 0 < sum(kept) < len(kept):
                ax.axhline(sum(kept) - 0.5, color=color, linestyle="--", linewidth=1.2, gid="threshold")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
        ax.xaxis.set_major_formatter(_PERCENT)
    _token_labels(axes[0], labels)
    axes[0].invert_yaxis()
    fig.suptitle(f"Step {exploration.step}: what each knob keeps on its own", fontsize=FONT, x=0.01, y=0.995, ha="left",
                 va="top")  # fmt: skip
    handles = [Patch(color=AFTER, label="kept")] + [
        Patch(color=CUT_STYLE[k.knob], label=f"cut by {KNOB_NAMES[k.knob]}") for k in knobs if k.knob in CUT_STYLE
    ]
    handles.append(axes[0].plot([], [], color=CUMULATIVE, marker="o", label="cumulative (top-p)")[0])
    _legend(fig, handles, 3)
    return fig


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in `flags`."""
    runs: list[tuple[int, int]] = []
    for i, flag in enumerate(flags):
        if flag and runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        elif flag:
            runs.append((i, i))
    return runs


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


def beam_tree_figure(trace: Trace) -> Figure:
    """Every beam candidate at every step (x = step, y = rank among the step's candidates), joined to the beam it
    extends; coloured by status (kept / finished / pruned); the winner's path drawn thick, its tokens labelled."""
    if trace.strategy != "beam" or any(r.beams is None for r in trace.steps):
        return _empty("Beam search tree", "The beam tree is drawn for beam search runs: choose strategy = beam.")
    if not trace.steps:
        return _empty("Beam search tree", "No steps yet: run beam search to see its tree.")
    nodes = _beam_nodes(trace)
    winner = beam_winner_path(trace)
    on_path = set(winner)
    n = len(trace.steps)
    width = max(len(r.beams) for r in trace.steps)
    root_y = (width - 1) / 2
    top, bottom = TITLE_IN / 2 + 0.1, AXIS_IN + _legend_room(4, 4)
    fig = _figure(top + bottom + 0.4 + 0.36 * width, width=max(WIDTH, 0.75 * n + 2))
    _place(fig, left=0.8, right=0.4, top=top, bottom=bottom)
    ax = fig.subplots()
    for s, row in enumerate(nodes):  # edges, the winner's on top
        for j, (_, parent_idx) in enumerate(row):
            if s > 0 and parent_idx is None:
                continue
            x0, y0 = (-1.0, root_y) if s == 0 else (s - 1.0, float(parent_idx))
            win = (s, j) in on_path
            ax.plot([x0, s], [y0, j], color=WINNER if win else "#cbd5e1", linewidth=3 if win else 1,
                    zorder=2 if win else 1, gid="winner-edge" if win else "edge")  # fmt: skip
    ax.scatter([-1.0], [root_y], marker="s", s=90, color="#374151", zorder=3)
    ax.annotate("prompt", (-1.0, root_y), xytext=(0, -14), textcoords="offset points", ha="center", va="top",
                fontsize=SMALL)  # fmt: skip
    label_all = n <= 12 and width <= 8  # short, narrow runs: every kept or finished token is written out
    for status in ("pruned", "kept", "finished"):
        pts = [(s, j) for s, r in enumerate(trace.steps) for j, b in enumerate(r.beams) if _beam_status(trace, s, b) == status]
        if not pts:
            continue
        ax.scatter([s for s, _ in pts], [j for _, j in pts], s=70 if status != "pruned" else 36,
                   color=BEAM_COLORS[status], edgecolor="white", linewidth=0.8, zorder=4, label=status, gid=status)  # fmt: skip
        for s, j in pts:
            if (s, j) in on_path or (label_all and status != "pruned"):
                b = trace.steps[s].beams[j]
                above = s % 2 == 0  # neighbours alternate above and below
                ax.annotate(short_label(token_label(b.token), 10), (s, j), xytext=(0, 8 if above else -8),
                            textcoords="offset points", ha="center", va="bottom" if above else "top",
                            fontsize=SMALL if (s, j) in on_path else SMALL - 1, family=TOKEN_FONT, parse_math=False,
                            color=CHOSEN if (s, j) in on_path else "#374151", annotation_clip=False)  # fmt: skip
    if winner:
        ax.scatter([s for s, _ in winner], [j for _, j in winner], s=170, facecolor="none", edgecolor=WINNER,
                   linewidth=2.2, zorder=5, label="winner", gid="winner")  # fmt: skip
    ax.set_xlim(-1.6, n - 0.4)
    ax.set_ylim(width - 0.4, -0.9)
    ax.set_xlabel("step", fontsize=SMALL)
    ax.set_ylabel("rank at step", fontsize=SMALL)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(n, 16)))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(width, 10)))
    ax.tick_params(labelsize=SMALL)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    note = "" if winner else " (no finished winner among the candidates)"
    score = f" · beam score {trace.beam_score:.3f}" if trace.beam_score is not None else ""
    ax.set_title(f"Beam search: {trace.config.num_beams} beams, {n} steps{score}{note}", fontsize=FONT, loc="left")
    _legend(fig, ax.collections[1:], 4)
    return fig
