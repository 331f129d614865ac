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
import unicodedata
from functools import lru_cache
from dataclasses import dataclass, replace
from pathlib import Path

from matplotlib import font_manager, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text
from matplotlib.textpath import text_to_path
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import offset_copy

from .records import Candidate, Exploration, StepRecord, Trace
from .views import (CUT_PHRASES, CUT_STYLE, KNOB_NAMES, LABEL_CHARS, cut_phrase, LOG_FLOOR, FinalBeam, after_knobs, axis_labels, beam_parents,
                    chart_candidates, distribution_title, final_beams, short_label, token_label, top_p_applies)  # fmt: skip

__all__ = [
    "RAW",
    "AFTER",
    "CUT",
    "CUT_STYLE",
    "CUT_PHRASES",
    "cut_phrase",
    "CHOSEN",
    "FORCED",
    "DISTRIBUTION_LEGEND",
    "TRAJECTORY_LEGEND",
    "short_label",
    "axis_labels",
    "DistributionData",
    "distribution_data",
    "distribution_figure",
    "save_distribution",
    "trajectory_figure",
    "temperature_figure",
    "knobs_figure",
    "BeamLabel",
    "BeamTreeData",
    "beam_tree_data",
    "beam_tree_figure",
    "beam_winner_path",
]

RAW = "#5b8fd0"  # the model's raw probabilities
AFTER = "#f28e2b"  # after the knobs
CUT = "#9ca3af"  # removed by a truncation knob (grey); each knob has its own colour below
CHOSEN = "#111827"  # outline and label of the chosen token
FORCED = "#7c3aed"  # ... of a token the user forced (the coloured text underlines it in the same colour)
CUMULATIVE = "#7b4fb8"  # top-p's running sum
ENTROPY = "#2a9d8f"
BEAM_COLORS = {"kept": "#4e79a7", "finished": "#59a14f", "pruned": "#c7c9cc"}
WINNER = "#e15759"
# The page draws these legends once, beside the charts, instead of in every figure: (label, colour, mark)
DISTRIBUTION_LEGEND = [
    ("model (raw)", RAW, "bar"),
    ("after knobs (greedy: its pick)", AFTER, "bar"),
    *((cut_phrase(k), CUT_STYLE[k], "shade") for k in ("top_k", "top_p", "min_p")),
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
# Fonts: DejaVu first (it has ␣ ↵ ⇥ ∅ ⟨ ⟩ …), then, for what it lacks, a CJK font and a monochrome emoji font
# (matplotlib cannot draw colour-bitmap emoji). scripts/setup.sh and packages.txt (a Space) install them from
# Debian: fonts-noto-cjk, fonts-symbola. Only the installed ones are listed: a missing family costs a warning.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "Droid Sans Fallback")
CJK_MONO_FONTS = ("Noto Sans Mono CJK SC", "Noto Sans Mono CJK JP", *CJK_FONTS)
EMOJI_FONTS = ("Noto Emoji", "Symbola")


def _installed(*choices: tuple[str, ...]) -> list[str]:
    """The first installed family of each tuple of `choices`."""
    have = {f.name for f in font_manager.fontManager.ttflist}
    return [found for names in choices if (found := next((n for n in names if n in have), None))]


TEXT_FONTS = ["DejaVu Sans", *_installed(CJK_FONTS, EMOJI_FONTS)]  # titles and notes that may hold tokens
TOKEN_FONT = ["DejaVu Sans Mono", *_installed(CJK_MONO_FONTS, EMOJI_FONTS)]  # monospace tokens, with fallbacks
CHAR_IN = FONT * 0.602 / 72  # inches per character (a wide CJK character or emoji: two) at FONT points
LINE_IN = SMALL * 1.45 / 72  # inches per line of SMALL text
TITLE_IN = 2 * FONT * 1.35 / 72 + 0.2  # a two-line title
AXIS_IN = 0.62  # tick labels and an axis label below the plot
ROW_IN = 0.38  # inches per token row of the distribution chart
TEMPERATURE_TOKENS = 12  # tokens per temperature panel (the rest join "all others")


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
    return CHAR_IN * max((text_width(x) for x in labels), default=1) + 0.25


def text_width(text: str) -> int:
    """Columns `text` takes in a monospace font: a wide character (CJK, most emoji) takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


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
    ax.set_title(title, fontsize=FONT + 1, loc="left", parse_math=False, family=TEXT_FONTS)
    ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=FONT, color="#6b7280", wrap=True, parse_math=False,
            family=TEXT_FONTS)  # fmt: skip
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
    # ... and the sum above each row (the start of its step); an extra row the record does not hold has None in both
    cumulative_start: list[float | None] | None
    extra: bool  # the last row is the chosen token, appended because it ranks below `max_tokens`
    top_p: float | None  # the threshold drawn, when top-p was on
    chosen: int  # the row of the token the step took
    forced: bool
    greedy: bool


def distribution_data(record: StepRecord, max_tokens: int = 15) -> DistributionData:
    """The rows, bars, cut marks, cumulative line and highlighted token of `distribution_figure`."""
    cands = chart_candidates(record, max(1, int(max_tokens)))
    cfg = record.config
    greedy = cfg.is_greedy  # greedy, or sampling at temperature 0
    after = after_knobs(record, cands)  # for a greedy step, the one-hot choice its argmax makes
    top_p_on = top_p_applies(cfg)
    extra = len(cands) > min(max(1, int(max_tokens)), len(record.top))  # the chosen token appended below the rows
    cumulative = start = None
    regular = cands[: len(cands) - extra]
    if top_p_on and all(c.cumulative is not None for c in regular):
        cumulative = [c.cumulative for c in cands]
        ordered = sorted(record.top, key=lambda c: (-c.shaped_prob, c.rank))  # the running sum's order
        above = {c.token_id: (ordered[i - 1].cumulative if i else 0.0) for i, c in enumerate(ordered)}
        start = [above.get(c.token_id) if c.cumulative is not None else None for c in cands]
    return DistributionData(
        candidates=cands,
        labels=axis_labels(cands),
        raw=[c.raw_prob for c in cands],
        after=after,
        cut_by=[None if c.kept else c.cut_by for c in cands],
        cumulative=cumulative,
        cumulative_start=start,
        extra=extra,
        top_p=cfg.top_p if top_p_on else None,
        chosen=next(i for i, c in enumerate(cands) if c.token_id == record.token_id),
        forced=record.forced,
        greedy=greedy,
    )


def distribution_figure(record: StepRecord, max_tokens: int = 15, log_scale: bool = False, pending: bool = False,
                        legend: bool = True, into: Figure | None = None) -> Figure:  # fmt: skip
    """One step's candidates, one row each: the model's probability (blue) above the probability after the knobs
    (orange); rows a knob cut are shaded in that knob's colour and say which knob; top-p's
    cumulative line on the same 0-100 % axis, with its threshold; the chosen (or forced) token outlined and
    labelled. `log_scale` spreads small probabilities out; `pending` titles it as the next step, not taken yet;
    `legend=False` leaves the legend to the page (`DISTRIBUTION_LEGEND`: drawing it is a third of the cost).

    `into`: a figure an earlier call returned, to draw this step in instead of a new one (it is changed and
    returned). Its axes, with their ticks, scale and style, are kept and only the step's own artists replaced:
    making the axes and ticks anew is about half of a new chart's cost. The picture is the same as a new
    figure's; a figure that cannot be reused so (another kind, scale or legend) is left alone."""
    if not record.top:
        return _empty(f"Step {record.step}", "This step recorded no candidates.")
    d = distribution_data(record, max_tokens)
    n = len(d.candidates)
    ncols = 3
    n_handles = 2 + len({k for k in d.cut_by if k}) + (d.cumulative is not None)
    top, bottom = TITLE_IN, AXIS_IN - (0 if log_scale else 0.25) + (_legend_room(n_handles, ncols) if legend else 0)
    height = top + bottom + ROW_IN * n + (0.26 if d.cumulative is not None else 0)
    kind = f"distribution:{'log' if log_scale else 'linear'}:{'legend' if legend else 'bare'}"
    if into is not None and into.get_gid() == kind:
        fig, ax = into, _emptied(into, height)
    else:
        fig = _figure(height)
        fig.set_gid(kind)  # what `into` checks before reusing it
        ax = fig.subplots()
        if log_scale:
            ax.set_xscale("log")
            ax.set_xlim(LOG_FLOOR, 1.0)
        else:
            ax.set_xlim(0, 1.0)
        _style(ax)
        ax.xaxis.set_major_formatter(_PERCENT)
        if log_scale:  # a linear 0-100 % axis needs no label; a log one says so
            ax.set_xlabel("probability (log scale)", fontsize=SMALL)
    _place(fig, left=_label_room(d.labels), right=0.3, top=top, bottom=bottom)
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
            _bar_note(ax, f"✂ {cut_phrase(knob)}", max(d.raw[y0], d.after[y0]), y0, color, f"cut-label:{knob}")
        if knob in d.cut_by:
            handles.append(Patch(facecolor=color, alpha=0.3, edgecolor=color, label=cut_phrase(knob)))

    if d.cumulative is not None:  # a staircase: row i spans from the mass above it to its running sum
        k = n - d.extra  # an extra row (the chosen token, ranked lower) gets its own step, apart
        (line,) = ax.plot([0.0, *d.cumulative[:k]], [0, *ys[:k]], color=CUMULATIVE, marker="o", markersize=4,
                          markevery=slice(1, None), linewidth=1.6, drawstyle="steps-pre",
                          label="cumulative (what top-p sees)", gid="cumulative")  # fmt: skip
        if d.extra and d.cumulative[-1] is not None:
            ax.plot([d.cumulative_start[-1], d.cumulative[-1]], [n - 1, n - 1], color=CUMULATIVE, marker="o",
                    markersize=4, markevery=[1], linewidth=1.6, gid="cumulative-extra")  # fmt: skip
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

    head, entropy = distribution_title(record, pending)
    ax.set_title(f"{head}\n{entropy}", fontsize=FONT, loc="left", parse_math=False, family=TEXT_FONTS)
    if legend:
        _legend(fig, handles, ncols)
    return fig


CHART_FORMATS = ("png", "svg")


def save_distribution(record: StepRecord, path, fmt: str | None = None, max_tokens: int = 15, log_scale: bool = False,
                      pending: bool = False, dpi: int = 200) -> str:  # fmt: skip
    """One step's distribution chart, with its legend, written to `path` for a slide or a handout: PNG (at `dpi`,
    sharp on a projector) or SVG (text kept as text, searchable and editable). `fmt` defaults to the path's
    suffix. Returns the format written. A format other than png or svg raises ValueError."""
    if fmt is None:
        fmt = Path(path).suffix
    fmt = fmt.lower().lstrip(".")
    if fmt not in CHART_FORMATS:
        raise ValueError(f"The chart is saved as .png or .svg, not {fmt or 'a file without a suffix'!r}.")
    fig = distribution_figure(record, max_tokens=max_tokens, log_scale=log_scale, pending=pending, legend=True)
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot, no global state
    with rc_context({"svg.fonttype": "none"}):  # SVG text as text (read when saving; PNG ignores it)
        fig.savefig(path, format=fmt, dpi=dpi, facecolor="white")
    return fmt


def _emptied(fig: Figure, height: float):
    """The axes of a distribution chart with the step it showed removed (bars, shading, lines, texts, legend),
    the figure `height` inches tall: ready for `distribution_figure` to draw another step in."""
    (ax,) = fig.axes
    for artist in [*ax.collections, *ax.patches, *ax.lines, *ax.texts, *fig.legends]:
        artist.remove()
    fig.set_size_inches(WIDTH, height)
    return ax


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
                ha="right" if inside else "left", fontsize=SMALL, fontweight="bold", gid=gid, family=TEXT_FONTS,
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
    label = knob.label or knob.knob
    name = KNOB_NAMES.get(label, label)
    off = knob.setting >= 1 if knob.knob in ("top_p", "typical_p") else knob.setting <= 0
    setting = f"{int(knob.setting)}" if isinstance(knob.setting, int) or knob.knob == "top_k" else f"{knob.setting:g}"
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
        color = CUT_STYLE.get(knob.label or knob.knob, CUT)
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
            if knob.knob in ("min_p", "epsilon_cutoff", "eta_cutoff") and knob.threshold:
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
        Patch(color=CUT_STYLE[k.label or k.knob], label=cut_phrase(k.label or k.knob)) for k in knobs
        if (k.label or k.knob) in CUT_STYLE
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

BEAM_ROW_IN = 0.25  # inches per step while the run is short: a label's height, so neighbouring rows never touch
BEAM_TREE_MAX_IN = 7.6  # the tree's height cap: past ~28 steps the rows close up (and fewer labels fit)
BEAM_LABEL_CHARS = 10  # a token label in the tree longer than this is shortened in the middle
BEAM_MARGIN_IN = 0.16  # room above the prompt's row and below the last step's, for their labels
FINAL = "#3b7d2f"  # the other final hypotheses' paths and labels
_LABEL_PAD = 0.12  # the label's white box, in font sizes around the text
LABEL_SPACE_IN = 0.12  # the least room between two labels in a row, so two tokens never read as one word
COLUMN_PAD_IN = 0.12  # from the plot's right edge to the column of the output's tokens
NODE_SPACE_PT = 2.0  # the least room between a label's white box and any node's marker (its own included)


@dataclass(frozen=True)
class BeamLabel:
    """A token label the tree draws, beside its node."""

    step: int
    index: int  # the node: its index in that step's beams (its rank by score among the step's candidates)
    text: str
    side: str  # "right" or "left" of the node
    role: str  # "winner" (the output's path) or "final" (another final hypothesis's path)
    box: tuple[float, float, float, float]  # its white box (x0, y0, x1, y1), inches from the figure's bottom-left
    gap: float = 0.0  # points from its node's centre to the text: clear of the node's marker (a ring is wider)


@dataclass(frozen=True)
class BeamTreeData:
    """What the beam tree draws, in data coordinates (x = a candidate's column, y = step; the prompt at
    (root_x, -1)), with the figure's geometry in inches: every number comes from the trace."""

    status: list[list[str]]  # per step, per candidate: "kept", "finished" or "pruned" as drawn
    parents: list[list[int | None]]  # per step, per candidate: its parent's index in the previous step
    columns: list[list[int]]  # per step, per candidate: its x, grouped under its parent (`_tree_order`)
    winner: list[tuple[int, int]]  # the output's path (step, index), from step 0; empty when none matches
    finals: list[FinalBeam]  # the final hypotheses, best first (the table beside the tree)
    labels: list[BeamLabel]  # the labels that fit, best paths first; every other node is an unlabelled dot
    column: list[tuple[int, str]]  # (step, token) of the output, in a column right of the tree, row by row
    root_x: float
    dot: float  # a node's diameter, points
    size: tuple[float, float]  # figure (width, height)
    margins: tuple[float, float, float, float]  # left, right, top, bottom
    xlim: tuple[float, float]
    ylim: tuple[float, float]  # (bottom, top): the prompt's row at the top

    def to_inches(self, x: float, y: float) -> tuple[float, float]:
        """A data point's position in the figure, in inches from its bottom-left corner."""
        left, right, _, bottom = self.margins
        w = self.size[0] - left - right
        h = self.size[1] - self.margins[2] - bottom
        return (left + (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * w,
                bottom + (self.ylim[0] - y) / (self.ylim[0] - self.ylim[1]) * h)  # fmt: skip

    def node(self, step: int, index: int) -> tuple[float, float]:
        """The data point of candidate `index` of `step` (the prompt for step -1)."""
        return (self.root_x, -1.0) if step < 0 else (float(self.columns[step][index]), float(step))

    def node_inches(self, step: int, index: int) -> tuple[float, float]:
        return self.to_inches(*self.node(step, index))

    def radius(self, step: int, index: int) -> float:
        """The drawn marker's radius in points, its white edge included: a pruned dot is smaller, a node of the
        output's path is ringed, the prompt is a square (the radius reaches its corners)."""
        if step < 0:
            return max(self.dot, 6) / 2 * math.sqrt(2)
        if (step, index) in self.winner:
            return self.dot * 1.7 / 2 + (1.8 if self.dot > 5 else 1.0) / 2
        edge = 0.5 if self.dot > 4 else 0.0
        return self.dot * (0.7 if self.status[step][index] == "pruned" else 1.0) / 2 + edge / 2

    def gap(self, step: int, index: int) -> float:
        """Points from a node's centre to its label's text: past its marker and the label's white pad."""
        return self.radius(step, index) + NODE_SPACE_PT + _LABEL_PAD * SMALL


def _beam_status(trace: Trace, step: int, b) -> str:
    """The status to draw: a candidate that entered the finished set is "finished"; a "kept" beam at the last
    step of a run that ended is "pruned" (the run stopped it)."""
    if b.normalized_score is not None:
        return "finished"
    if b.status == "kept" and step == len(trace.steps) - 1 and trace.finished:
        return "pruned"
    return b.status


def beam_winner_path(trace: Trace) -> list[tuple[int, int]]:
    """The winner's nodes as (step, index in that step's beams), from step 0: the final hypothesis whose tokens
    are `trace.token_ids`, found by walking parents. Empty when no beam candidate matches."""
    winner = next((f for f in final_beams(trace) if f.winner), None)
    return list(winner.path) if winner else []


@lru_cache(maxsize=4096)
def _text_size(text: str, family: tuple[str, ...] | None = tuple(TOKEN_FONT)) -> tuple[float, float]:
    """A label's (width, height) in inches at SMALL points, measured in the font that draws it (a wide glyph or
    a fallback font is measured as drawn); the height at least a line's (ascent + descent)."""
    prop = FontProperties(family=list(family), size=SMALL) if family else FontProperties(size=SMALL)
    w, h, _ = text_to_path.get_text_width_height_descent(text, prop, ismath=False)  # points
    return w / 72, max(h, SMALL * 1.17) / 72


def _label_box(at: tuple[float, float], size: tuple[float, float], side: str, gap_pt: float) -> tuple[float, ...]:
    """The label's box (x0, y0, x1, y1) in inches, white pad included, its text (`size`, inches) drawn `gap_pt`
    points from its node `at` (inches)."""
    x, y = at
    w, h = size
    pad = _LABEL_PAD * SMALL / 72
    gap = gap_pt / 72
    x0 = x + gap - pad if side == "right" else x - gap - w - pad
    return (x0, y - h / 2 - pad, x0 + w + 2 * pad, y + h / 2 + pad)


def _covers(box: tuple[float, ...], circle: tuple[float, float, float]) -> bool:
    """Whether a box (x0, y0, x1, y1) and a circle (x, y, radius) share a point."""
    x, y, r = circle
    dx, dy = x - min(max(x, box[0]), box[2]), y - min(max(y, box[1]), box[3])
    return dx * dx + dy * dy < r * r


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], space: float = 0.0) -> bool:
    """Whether boxes (x0, y0, x1, y1) come closer than `space` horizontally while overlapping vertically."""
    return a[0] < b[2] + space and b[0] < a[2] + space and a[1] < b[3] and b[1] < a[3]


def _tree_order(trace: Trace, parents: list[list[int | None]]) -> list[list[int]]:
    """Per step, per candidate: its column. Each step's candidates are grouped under the beam they extend, in
    the order of those beams' columns, and by score within a group: an ordered tree, so no two edges cross."""
    columns: list[list[int]] = []
    for s, record in enumerate(trace.steps):
        above = columns[-1] if columns else []
        key = [(above[p] if s and p is not None else -1, -b.score, j)
               for j, (b, p) in enumerate(zip(record.beams, parents[s]))]  # fmt: skip
        order = sorted(range(len(key)), key=key.__getitem__)
        col = [0] * len(order)
        for x, j in enumerate(order):
            col[j] = x
        columns.append(col)
    return columns


def beam_tree_data(trace: Trace) -> BeamTreeData:
    """The nodes, edges, highlighted paths and placed labels of `beam_tree_figure`, and its geometry.

    Labels go to the best paths only: the output's tokens first, then each other final hypothesis's, from where
    it leaves the paths above it. Each takes the right of its node, or else the left; a label that would run
    into another label, touch any node's marker (its white box would hide it) or pass the plot's edge is left
    out (its node stays a dot). Labels are measured in the font that draws them. The output's tokens are also
    listed in a column right of the tree, one per row (every k-th once rows are closer than a line), so a
    dense tree (16 beams: no room beside its nodes) still reads."""
    steps = trace.steps
    n = len(steps)
    width = max(len(r.beams) for r in steps)
    parents = beam_parents(trace)
    status = [[_beam_status(trace, s, b) for b in r.beams] for s, r in enumerate(steps)]
    finals = final_beams(trace)
    winner = next((list(f.path) for f in finals if f.winner), [])
    columns = _tree_order(trace, parents)

    # geometry: 800 px wide, a row per step (the prompt's row on top) that shrinks past the height cap; on the
    # right, the output's tokens in a column, one per row (every k-th row once rows are closer than a line)
    tree_h = min(BEAM_ROW_IN * n + 2 * BEAM_MARGIN_IN, BEAM_TREE_MAX_IN)
    row = (tree_h - 2 * BEAM_MARGIN_IN) / n  # inches between two steps' rows
    every = math.ceil(_text_size("Ag")[1] / row - 1e-9)
    column = [(s, short_label(token_label(steps[s].beams[j].token), BEAM_LABEL_CHARS)) for s, j in winner[::every]]
    top, bottom = TITLE_IN + 0.05, 0.3 + _legend_room(5, 3)
    left = 0.8
    right = max([_text_size(t)[0] for _, t in column], default=0.0) + COLUMN_PAD_IN + LINE_IN + 0.1  # + its title
    plot_w = WIDTH - left - right
    col = plot_w / width  # inches between two columns: the tree spans the plot at any beam count
    root_x = (width - 1) / 2
    xlim = (root_x - plot_w / col / 2, root_x + plot_w / col / 2)  # the tree centred (few beams leave room)
    ylim = (n - 1 + BEAM_MARGIN_IN / row, -1 - BEAM_MARGIN_IN / row)
    data = BeamTreeData(status=status, parents=parents, columns=columns, winner=winner, finals=finals, labels=[],
                        column=column, root_x=root_x, dot=_beam_dot(row, col), size=(WIDTH, top + bottom + tree_h),
                        margins=(left, right, top, bottom), xlim=xlim, ylim=ylim)  # fmt: skip

    # the labels, best first: every token of the output's path, then where each other final hypothesis branches
    # off the paths above it and its last token, then the rest of the runner-up's tokens
    wanted: list[tuple[int, int, str]] = [(s, j, "winner") for s, j in winner]
    seen = set(winner)
    rest: list[tuple[int, int, str]] = []
    for f in (f for f in finals if not f.winner):
        own = [node for node in f.path if node not in seen]
        if own:
            wanted += [(*own[0], "final")] + ([(*own[-1], "final")] if len(own) > 1 else [])
            if not rest:  # the runner-up: all its tokens
                rest = [(*node, "final") for node in own[1:-1]]
        seen.update(f.path)
    wanted += rest
    plot = (left, bottom, WIDTH - right, bottom + tree_h)
    space = NODE_SPACE_PT / 72
    markers = [[(*data.node_inches(s, j), data.radius(s, j) / 72 + space) for j in range(len(r.beams))]
               for s, r in enumerate(steps)]  # fmt: skip  # per row: each node's marker, with room around it
    rows_y = [data.to_inches(0, s)[1] for s in range(n)]
    reach = max(m[2] for row_markers in markers for m in row_markers)  # the widest marker
    prompt_at = data.to_inches(root_x, -1)
    taken = [_label_box(prompt_at, _text_size("prompt", None), "right", data.gap(-1, 0))]
    labels: list[BeamLabel] = []
    for s, j, role in wanted:
        text = short_label(token_label(steps[s].beams[j].token), BEAM_LABEL_CHARS)
        at, size, gap_pt = data.node_inches(s, j), _text_size(text), data.gap(s, j)
        near = [m for s2, y in enumerate(rows_y) if abs(y - at[1]) < size[1] + reach for m in markers[s2]]
        for side in ("right", "left"):  # the right of its node, or else the left; else no label
            box = _label_box(at, size, side, gap_pt)
            if box[0] < plot[0] or box[1] < plot[1] or box[2] > plot[2] or box[3] > plot[3]:
                continue
            if any(_overlaps(box, t, LABEL_SPACE_IN) for t in taken) or any(_covers(box, m) for m in near):
                continue
            taken.append(box)
            labels.append(BeamLabel(step=s, index=j, text=text, side=side, role=role, box=box, gap=gap_pt))
            break
    return replace(data, labels=labels)


def _others(n: int) -> str:
    return {0: "no other final hypothesis", 1: "the other final hypothesis"}.get(n, f"the other {n} final hypotheses")


def _beam_dot(row: float, col: float) -> float:
    """A node's diameter in points: at most 9, and at most half the gap between rows or columns."""
    return max(2.0, min(9.0, 0.5 * 72 * min(row, col)))


def beam_tree_figure(trace: Trace) -> Figure:
    """Beam search as a tree growing down from the prompt: a row per step, in it every candidate the step weighed,
    grouped under the beam it extends (best first) and joined to it, so no two edges cross; coloured by status
    (kept / finished / pruned). The output's path is drawn thick in red, the other final hypotheses' paths in
    green, and only their tokens are labelled, never over a node or another label (`beam_tree_data` says which
    fit); the output's tokens are also listed row by row right of the tree. 800 px wide at any beam count;
    its height grows with the steps up to a cap (`BEAM_TREE_MAX_IN`); every label is drawn whole inside the plot."""
    if trace.config.strategy == "beam" and trace.config.num_beams == 1:
        return _empty("Beam search tree", "One beam is greedy search (as in generate()): use 2 or more beams for a tree.")
    if trace.strategy not in ("beam", "beam-sample") or any(r.beams is None for r in trace.steps):
        return _empty("Beam search tree", "The beam tree is drawn for beam search runs: choose strategy = beam.")
    if not trace.steps:
        return _empty("Beam search tree", "No steps yet: run beam search to see its tree.")
    d = beam_tree_data(trace)
    steps = trace.steps
    fig = _figure(d.size[1], width=d.size[0])
    left, right, top, bottom = d.margins
    _place(fig, left=left, right=right, top=top, bottom=bottom)
    ax = fig.subplots()
    ax.set_xlim(*d.xlim)
    ax.set_ylim(*d.ylim)
    n = len(steps)
    dot = d.dot

    # edges: every candidate to the beam it extends (the prompt at step 0), then the final paths, then the output's
    final_nodes = {node for f in d.finals if not f.winner for node in f.path} - set(d.winner)
    grey, green = [], []
    for s, row_parents in enumerate(d.parents):
        for j, p in enumerate(row_parents):
            if s > 0 and p is None:
                continue  # no kept parent recorded: nothing to join it to
            segment = [d.node(s - 1, p or 0), d.node(s, j)]  # step -1: the prompt
            (green if (s, j) in final_nodes else grey).append(segment)
    thin = max(0.4, min(1.0, dot / 8))
    ax.add_collection(LineCollection(grey, colors="#cbd5e1", linewidths=thin, zorder=1, gid="edge"), autolim=False)
    ax.add_collection(LineCollection(green, colors=FINAL, linewidths=2 * thin + 0.4, alpha=0.8, zorder=2,
                                     gid="final-edge"), autolim=False)  # fmt: skip
    if d.winner:
        xs, ys = zip(d.node(-1, 0), *(d.node(s, j) for s, j in d.winner))
        ax.plot(xs, ys, color=WINNER, linewidth=3 * thin + 0.5, solid_capstyle="round", zorder=3, gid="winner-edge")

    # nodes by status, the output's path circled
    for status in ("pruned", "kept", "finished"):
        pts = [d.node(s, j) for s, row_status in enumerate(d.status) for j, st in enumerate(row_status) if st == status]
        size = (dot * (0.7 if status == "pruned" else 1.0)) ** 2
        ax.scatter([x for x, _ in pts], [y for _, y in pts], s=size, color=BEAM_COLORS[status], edgecolor="white",
                   linewidth=0.5 if dot > 4 else 0, zorder=4, label=status, gid=status)  # fmt: skip
    ax.scatter([d.root_x], [-1.0], marker="s", s=max(dot, 6) ** 2, color="#374151", zorder=4, gid="prompt")
    if d.winner:
        ax.scatter(*zip(*(d.node(s, j) for s, j in d.winner)), s=(dot * 1.7) ** 2, facecolor="none",
                   edgecolor=WINNER, linewidth=1.8 if dot > 5 else 1.0, zorder=5, gid="winner")  # fmt: skip

    # labels: monospace, whole, each on its white box (one collection) so the lines behind never cross the letters
    beside = lambda gap: offset_copy(ax.transData, fig=fig, x=gap, y=0, units="points")  # noqa: E731
    ax.text(d.root_x, -1.0, "prompt", transform=beside(d.gap(-1, 0)), ha="left", va="center", fontsize=SMALL,
            color="#374151", clip_on=False, gid="prompt-label")  # fmt: skip
    boxes = [Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1]) for b in (label.box for label in d.labels)]
    ax.add_collection(PatchCollection(boxes, facecolors="white", edgecolors="none", transform=fig.dpi_scale_trans,
                                      zorder=5.5, clip_on=False, gid="label-boxes"), autolim=False)  # fmt: skip
    for label in d.labels:
        win = label.role == "winner"
        right = label.side == "right"
        ax.text(*d.node(label.step, label.index), label.text, transform=beside(label.gap if right else -label.gap),
                ha="left" if right else "right", va="center", fontsize=SMALL, family=TOKEN_FONT, parse_math=False,
                color=CHOSEN if win else FINAL, fontweight="bold" if win else "normal", clip_on=False, zorder=6,
                gid=f"{label.role}-label")  # fmt: skip

    if d.column:  # the output's tokens row by row, beside the tree: legible however dense the tree
        out = ax.secondary_yaxis("right")
        out.set_gid("output-tokens")
        out.set_yticks([s for s, _ in d.column], labels=[t for _, t in d.column])
        out.tick_params(length=0, pad=COLUMN_PAD_IN * 72, labelsize=SMALL, labelcolor=CHOSEN)
        for t in out.get_yticklabels():
            t.set(family=TOKEN_FONT, fontweight="bold", parse_math=False)
        out.spines["right"].set_visible(False)
        out.set_ylabel("the output", fontsize=SMALL, color=CHOSEN, rotation=270, va="bottom")
    ax.set_xlabel("each step's candidates, grouped under the beam they extend, best first", fontsize=SMALL)
    ax.set_ylabel("step", fontsize=SMALL)
    ax.set_xticks([])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(n, 12), min_n_ticks=1))
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t < n])
    ax.tick_params(labelsize=SMALL)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    note = "" if d.winner else " (no finished winner among the candidates)"
    score = f" · the output's score {trace.beam_score:.3f}" if trace.beam_score is not None else ""
    k = trace.config.num_beams
    ax.set_title(f"Beam search: {k} beam{'s' * (k != 1)}, {n} step{'s' * (n != 1)}{score}{note}\n"
                 f"red: the output's path · green: {_others(len(d.finals) - bool(d.winner))}",
                 fontsize=FONT, loc="left", parse_math=False)  # fmt: skip
    dots = [("kept (a running beam)", "kept", 8), ("finished", "finished", 8), ("pruned", "pruned", 6)]
    handles = [
        Line2D([], [], color=WINNER, linewidth=3, label="the output's path"),
        Line2D([], [], color=FINAL, linewidth=2, label="other final hypotheses"),
        *(Line2D([], [], linestyle="none", marker="o", markersize=size, color=BEAM_COLORS[status], label=label)
          for label, status, size in dots),
    ]
    _legend(fig, handles, 3)
    return fig
