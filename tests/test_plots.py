"""Tests for playground/plots.py: each figure's data (bar lengths, line points, marked tokens) equals the record's,
one test per knob; the figures are matplotlib Figures built without pyplot, legible, and safe with any token."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text

from playground import plots, views
from playground.config import DecodingConfig
from playground.records import Candidate

PROMPT = "Once upon a time"


def bars(fig: Figure, label: str) -> list[float]:
    """The lengths of the distribution chart's bars of the series labelled `label`, top row first."""
    found = [c for ax in fig.axes for c in ax.collections if c.get_label() == label]
    assert len(found) == 1, f"expected one bar series {label!r}, found {[c.get_label() for a in fig.axes for c in a.collections]}"
    return [float(p.vertices[:, 0].max() - p.vertices[:, 0].min()) for p in found[0].get_paths()]


def by_gid(fig: Figure, gid: str) -> list:
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


def token_labels(fig: Figure) -> list[Text]:
    return by_gid(fig, "token-label")


def tick_labels(fig: Figure) -> list[str]:
    return [t.get_text() for t in token_labels(fig)]


def run(engine, **settings):
    """A sampled run of a few steps with `settings`."""
    config = DecodingConfig(**{"strategy": "sample", "seed": 1, "max_new_tokens": 4, "top_n": 15, **settings})
    session = engine.start(engine.encode(PROMPT, chat=False), config)
    for _ in session.run():
        pass
    return session


@pytest.fixture(scope="module")
def session(tiny_engine):
    """top-k and top-p both cut some of the recorded candidates."""
    return run(tiny_engine, temperature=1.5, top_k=6, top_p=0.5)


@pytest.fixture(scope="module")
def beam_trace(tiny_engine):
    ids = tiny_engine.encode("The quick brown fox", chat=False)
    return tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=7))


# -- the distribution chart: its data against the record, one knob at a time ----------------------------------


def test_bars_are_the_records_raw_and_after_knob_probabilities(session):
    record = session.steps[0]
    fig = plots.distribution_figure(record, max_tokens=12)
    d = plots.distribution_data(record, max_tokens=12)
    order = sorted(record.top, key=lambda c: (-c.shaped_prob, c.rank))[:12]  # the order the knobs see
    assert [c.token_id for c in d.candidates] == [c.token_id for c in order]
    assert tick_labels(fig) == d.labels == plots.axis_labels(order)
    assert bars(fig, "model (raw)") == pytest.approx([c.raw_prob for c in order])
    assert bars(fig, "after knobs") == pytest.approx([c.prob if c.kept else 0.0 for c in order])
    assert sum(bars(fig, "after knobs")) <= 1 + 1e-6
    assert fig.axes[0].get_xlim() == (0.0, 1.0)  # one 0-100 % scale for bars and the cumulative line


def _cut_rows(fig: Figure, knob: str) -> set[int]:
    rows = set()
    for span in by_gid(fig, f"cut:{knob}"):
        y0, y1 = span.get_y(), span.get_y() + span.get_height()  # rows y0 + 0.5 ... y1 - 0.5
        rows |= set(range(round(y0 + 0.5), round(y1 - 0.5) + 1))
    return rows


@pytest.mark.parametrize(
    "knob, settings",
    [("top_k", dict(top_k=3)), ("top_p", dict(top_p=0.3)), ("min_p", dict(min_p=0.2))],
)
def test_each_knobs_cut_rows_are_shaded_and_named(tiny_engine, knob, settings):
    """A cut token is shown whatever its height: its row shaded in the knob's colour, the knob named on it."""
    record = run(tiny_engine, temperature=1.0, **settings).steps[0]
    fig = plots.distribution_figure(record, max_tokens=15)
    d = plots.distribution_data(record, max_tokens=15)
    cut = {i for i, k in enumerate(d.cut_by) if k == knob}
    assert cut, f"the settings {settings} should cut some shown candidates"
    assert _cut_rows(fig, knob) == cut
    assert all(to_hex(s.get_facecolor()) == plots.CUT_STYLE[knob] for s in by_gid(fig, f"cut:{knob}"))
    assert f"✂ cut by {plots.KNOB_NAMES[knob]}" in texts(fig)
    assert all(bars(fig, "after knobs")[i] == 0 for i in cut)
    for other in set(plots.CUT_STYLE) - {knob}:
        assert not by_gid(fig, f"cut:{other}")


def test_cumulative_line_is_what_top_p_sees_after_top_k(tiny_engine):
    """The issue's case: at T 1.5 and top-k 10 the line runs over the top-k survivors, renormalised, so it
    reaches the threshold exactly where top-p starts cutting, and reaches 100 % by the last top-k token."""
    record = run(tiny_engine, temperature=1.5, top_k=10, top_p=0.6, top_n=15).steps[0]
    fig = plots.distribution_figure(record, max_tokens=15)
    d = plots.distribution_data(record, max_tokens=15)
    (line,) = by_gid(fig, "cumulative")
    assert list(line.get_xdata())[1:] == pytest.approx([c.cumulative for c in d.candidates])
    assert list(line.get_ydata())[1:] == list(range(len(d.candidates)))
    (threshold,) = by_gid(fig, "top_p")
    assert list(threshold.get_xdata()) == pytest.approx([0.6, 0.6])
    kept_by_top_k = [i for i, c in enumerate(d.candidates) if c.cut_by != "top_k"]
    assert d.candidates[kept_by_top_k[-1]].cumulative == pytest.approx(1.0, abs=1e-5)
    for i in kept_by_top_k:  # top-p cuts a token exactly when the mass above it already reaches p
        above = d.candidates[i - 1].cumulative if i else 0.0
        assert (d.cut_by[i] == "top_p") == (above >= 0.6 - 1e-6)
    assert "top_p" in d.cut_by and "top_k" in d.cut_by


def test_no_top_p_line_where_top_p_does_not_apply(session, tiny_engine):
    record = session.steps[0]
    greedy = dataclasses.replace(record, config=record.config.replace(strategy="greedy"))
    assert not by_gid(plots.distribution_figure(greedy), "cumulative")
    off = run(tiny_engine, temperature=1.0, top_p=1.0).steps[0]
    assert not by_gid(plots.distribution_figure(off), "top_p")


def test_temperature_reshapes_the_after_knobs_bars(tiny_engine):
    """Temperature alone cuts nothing: every after-knobs bar is the record's tempered probability."""
    hot = run(tiny_engine, temperature=2.0).steps[0]
    cold = run(tiny_engine, temperature=0.5).steps[0]
    for record in (hot, cold):
        fig = plots.distribution_figure(record)
        d = plots.distribution_data(record)
        assert bars(fig, "after knobs") == pytest.approx([c.prob for c in d.candidates])
        assert not any(d.cut_by)
    assert max(plots.distribution_data(cold).after) > max(plots.distribution_data(hot).after)


@pytest.mark.parametrize("config", [dict(strategy="greedy"), dict(strategy="sample", temperature=0)])
def test_greedy_and_temperature_zero_show_the_one_hot_choice(tiny_engine, config):
    record = run(tiny_engine, **config).steps[0]
    fig = plots.distribution_figure(record)
    d = plots.distribution_data(record)
    after = bars(fig, "after knobs (greedy: the argmax)")
    assert sorted(after) == [0.0] * (len(after) - 1) + [1.0]
    assert d.candidates[after.index(1.0)].token_id == record.token_id == record.top[0].token_id


def test_repetition_penalty_orders_rows_as_the_knobs_see_them(tiny_engine):
    record = run(tiny_engine, temperature=1.0, repetition_penalty=1.8, max_new_tokens=6).steps[-1]
    d = plots.distribution_data(record, max_tokens=15)
    shaped = [c.shaped_prob for c in d.candidates]
    assert shaped == sorted(shaped, reverse=True)
    assert bars(plots.distribution_figure(record, max_tokens=15), "model (raw)") == pytest.approx([c.raw_prob for c in d.candidates])


def test_the_chosen_token_stands_out(session):
    record = session.steps[1]
    fig = plots.distribution_figure(record)
    d = plots.distribution_data(record)
    (note,) = by_gid(fig, "chosen")
    assert note.get_text() == "◀ chosen" and note.xy[1] == d.chosen
    label = token_labels(fig)[d.chosen]
    assert label.get_fontweight() == "bold" and to_hex(label.get_color()) == plots.CHOSEN
    for series in ("model (raw)", "after knobs"):
        (collection,) = [c for c in fig.axes[0].collections if c.get_label() == series]
        assert [i for i, w in enumerate(collection.get_linewidths()) if w > 0] == [d.chosen]
    title = fig.axes[0].get_title(loc="left")
    assert f"entropy {record.entropy_raw:.2f} → {record.entropy:.2f} nats (raw → after knobs)" in title


def test_a_forced_token_is_marked_and_kept_in_view(session):
    record = session.steps[2]
    lowest = max(record.top, key=lambda c: c.shaped_prob == 0 or -c.shaped_prob)
    forced = dataclasses.replace(record, token_id=lowest.token_id, token=lowest.token, forced=True)
    fig = plots.distribution_figure(forced, max_tokens=3)
    d = plots.distribution_data(forced, max_tokens=3)
    assert len(d.candidates) == 4 and d.candidates[-1].token_id == lowest.token_id and d.chosen == 3
    (note,) = by_gid(fig, "chosen")
    assert note.get_text() == "◀ forced"
    assert to_hex(token_labels(fig)[3].get_color()) == plots.FORCED


def test_pending_and_log_scale(session):
    fig = plots.distribution_figure(session.steps[0], log_scale=True, pending=True)
    assert fig.axes[0].get_xscale() == "log"
    assert fig.axes[0].get_title(loc="left").startswith("Next step (0, not taken yet): would draw")
    assert "◀ would draw" in texts(fig)


def test_labels_are_shortened_in_the_middle_and_unique():
    def cand(token_id, token):
        return Candidate(token_id, token, 0, 0.0, 0.1, 0.1, 0.1, True, None)

    long = " extraordinarily_long_token_name"
    labels = plots.axis_labels([cand(1, " the"), cand(2, "\ufffd"), cand(3, "\ufffd"), cand(4, "\n"), cand(5, long)])
    assert labels[:4] == ["␣the", "\ufffd #2", "\ufffd #3", "↵"]
    assert labels[4].startswith("␣extraor") and labels[4].endswith("en_name") and "…" in labels[4]
    assert len(labels[4]) == plots.LABEL_CHARS
    assert plots.short_label("short") == "short"


def test_any_token_renders_and_every_text_is_legible(session):
    """'$' would start mathtext and '\\x00' has no glyph: neither may break a chart; no text under 12 pt."""
    record = session.steps[0]
    odd = [dataclasses.replace(c, token=t) for c, t in zip(record.top, ["$x^2$", "a$b", "\x00", "\\frac", "_{", "<b>"])]
    record = dataclasses.replace(record, top=odd + record.top[len(odd) :], token=odd[0].token, token_id=odd[0].token_id)
    for fig in (plots.distribution_figure(record), plots.trajectory_figure(session.steps), plots.knobs_figure(session.explore(0))):
        fig.savefig(io.BytesIO(), format="png")
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
        assert sizes and min(sizes) >= 12
    assert "$x^2$" in tick_labels(plots.distribution_figure(record))


def test_every_stand_in_for_whitespace_has_a_glyph_in_the_token_font():
    """A '\\r' token drew as a box: ␍ is not in DejaVu Sans Mono (matplotlib only warned)."""
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    first = plots.TOKEN_FONT[0]  # the family every label starts in; the fallbacks are for CJK and emoji
    glyphs = TTFont(font_manager.findfont(first)).getBestCmap()
    for ch in "".join(views._VISIBLE.values()) + "∅…⟨⟩":
        assert ord(ch) in glyphs, f"{ch!r} has no glyph in {first}"


def test_figures_need_no_pyplot_and_render_the_same_from_many_threads(session):
    """pyplot's global figure state would mix up concurrent sessions: plots.py must not import it, and figures
    built in parallel threads render byte for byte as one built alone."""
    code = "import sys, playground.plots; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

    def png(record):
        out = io.BytesIO()
        plots.distribution_figure(record).savefig(out, format="png")
        return out.getvalue()

    alone = [png(r) for r in session.steps]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(png, session.steps * 2)) == alone * 2


def pixels(fig: Figure) -> bytes:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return bytes(canvas.buffer_rgba())


@pytest.mark.parametrize("log_scale", [False, True])
def test_a_chart_drawn_into_an_earlier_one_is_the_same_picture(session, tiny_engine, log_scale):
    """The page draws each step in a chart kept from the last one (`into`): nothing of the earlier step may be
    left over (bars, shading, notes, the top-p line, the figure's height), whatever either step showed."""
    plain = run(tiny_engine, top_k=0, top_p=1.0)  # no cut, no cumulative line: another height and other artists
    record = session.steps[2]
    lowest = max(record.top, key=lambda c: c.shaped_prob == 0 or -c.shaped_prob)
    forced = dataclasses.replace(record, token_id=lowest.token_id, token=lowest.token, forced=True)  # one row more
    records = [*session.steps, plain.steps[0], forced, plain.steps[1], session.steps[0]]
    fig = None
    for i, record in enumerate(records):
        pending = i % 3 == 0
        fresh = plots.distribution_figure(record, max_tokens=5, log_scale=log_scale, pending=pending, legend=False)
        reused = plots.distribution_figure(record, max_tokens=5, log_scale=log_scale, pending=pending, legend=False,
                                           into=fig)  # fmt: skip
        assert fig is None or reused is fig
        assert pixels(reused) == pixels(fresh), f"record {i} differs when drawn into the chart of record {i - 1}"
        assert by_gid(reused, "chosen") and len(token_labels(reused)) == len(token_labels(fresh))
        fig = reused


def test_a_chart_of_another_kind_is_not_drawn_into(session):
    """A log-scale chart (or one with its legend) is left alone when a linear one is asked for: a new one comes."""
    log = plots.distribution_figure(session.steps[0], log_scale=True, legend=False)
    before = pixels(log)
    linear = plots.distribution_figure(session.steps[1], legend=False, into=log)
    assert linear is not log and linear.axes[0].get_xscale() == "linear" and pixels(log) == before
    with_legend = plots.distribution_figure(session.steps[1], legend=True, into=linear)
    assert with_legend is not linear and with_legend.legends


def test_the_real_model_shows_paris_with_its_space(smol_engine):
    """SmolLM2 continues 'The capital of France is' with ' Paris': the label must show its leading space."""
    ids = smol_engine.encode("The capital of France is", chat=False)
    record = smol_engine.start(ids, DecodingConfig(strategy="greedy", max_new_tokens=1, top_n=10)).step()
    assert record.token == " Paris"
    fig = plots.distribution_figure(record)
    assert tick_labels(fig)[0] == "␣Paris" and bars(fig, "model (raw)")[0] == pytest.approx(record.raw_prob)
    assert "␣Paris" in fig.axes[0].get_title(loc="left")


# -- trajectory ---------------------------------------------------------------------------------------------


def test_trajectory_follows_the_steps(session):
    steps = session.steps
    fig = plots.trajectory_figure(steps)
    for gid, value in (("prob", lambda r: r.prob), ("raw_prob", lambda r: r.raw_prob), ("entropy", lambda r: r.entropy),
                       ("entropy_raw", lambda r: r.entropy_raw)):  # fmt: skip
        (line,) = by_gid(fig, gid)
        assert list(line.get_xdata()) == [r.step for r in steps]
        assert list(line.get_ydata()) == pytest.approx([value(r) for r in steps])
    assert any("No steps yet" in t for t in texts(plots.trajectory_figure([])))


# -- temperature and knobs (the real Session.explore) --------------------------------------------------------


def test_temperature_panels_hold_each_temperatures_probabilities(session):
    ex = session.explore(2, temperatures=(0.5, 1.5, 2.0), top_n=20)
    fig = plots.temperature_figure(ex)
    n = plots.TEMPERATURE_TOKENS
    for view in ex.temperatures:
        (container,) = [c for ax in fig.axes for c in ax.containers if c.patches[0].get_gid() == f"T={view.temperature:g}"]
        widths = [p.get_width() for p in container.patches]
        assert widths == pytest.approx(list(view.probs[:n]) + [view.rest + sum(view.probs[n:])])
        assert sum(widths) == pytest.approx(1.0, abs=1e-4)
    assert tick_labels(fig) == plots.axis_labels(ex.candidates[:n], max_chars=14) + ["(all others)"]
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[:3] == [f"T = 0.5\nentropy {ex.temperatures[0].entropy:.2f} nats",
                          f"T = 1.5 (current)\nentropy {ex.temperatures[1].entropy:.2f} nats",
                          f"T = 2\nentropy {ex.temperatures[2].entropy:.2f} nats"]  # fmt: skip


def test_knobs_panels_colour_what_each_knob_keeps(session):
    ex = session.explore(1, top_n=15, config=session.config.replace(temperature=1.0, top_p=0.12))
    fig = plots.knobs_figure(ex)
    order = sorted(range(len(ex.candidates)), key=lambda i: -ex.candidates[i].shaped_prob)
    for knob in ex.knobs:
        (container,) = [c for ax in fig.axes for c in ax.containers if c.patches[0].get_gid() == knob.knob]
        kept = [knob.kept[i] for i in order]
        colours = [to_hex(p.get_facecolor()) for p in container.patches]
        assert colours == [plots.AFTER if k else plots.CUT_STYLE[knob.knob] for k in kept]
        assert [p.get_width() for p in container.patches] == pytest.approx([ex.candidates[i].shaped_prob for i in order])
    assert not all(ex.knobs[0].kept) and not all(ex.knobs[1].kept)  # top-k=6 and top-p=0.12 both cut here
    titles = " ".join(ax.get_title(loc="left") for ax in fig.axes)
    for knob in ex.knobs:
        assert f"keeps {knob.kept_count:,} ({knob.kept_mass:.0%})" in titles
    (cum,) = by_gid(fig, "cumulative")
    assert list(cum.get_xdata())[1:] == pytest.approx(ex.cumulative[: len(order)])
    assert any(list(t.get_xdata()) == pytest.approx([0.12, 0.12]) for t in by_gid(fig, "threshold"))


# -- beam tree ----------------------------------------------------------------------------------------------


def drawn_texts(fig: Figure) -> list[Text]:
    """Every text the renderer draws: visible, not empty, and for tick labels only those of ticks in view."""
    skipped = set()
    for ax in fig.axes:
        for axis, (lo, hi) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    skipped.update({id(tick.label1), id(tick.label2)})
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text() and id(t) not in skipped]


def rendered(fig: Figure):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


COLUMN_PX = plots.WIDTH * plots.DPI  # the page's main column, which shows a figure 1:1


def texts_outside(fig: Figure) -> list[str]:
    """The drawn texts (or their boxes) that extend past the figure's edge, or past the 800 px the page's column
    shows: cut off on the page."""
    renderer = rendered(fig)
    right = min(fig.bbox.x1, COLUMN_PX)
    out = []
    for t in drawn_texts(fig):
        extents = [t.get_window_extent(renderer)]
        if t.get_bbox_patch() is not None:
            extents.append(t.get_bbox_patch().get_window_extent(renderer))
        if any(e.x0 < -0.5 or e.y0 < -0.5 or e.x1 > right + 0.5 or e.y1 > fig.bbox.y1 + 0.5 for e in extents):
            out.append(t.get_text())
    return out


@pytest.fixture(scope="module")
def long_beam_run(tiny_engine):
    """A 12-token beam run of a longer prompt at a given beam count (the issue's 16-beam tree)."""
    ids = tiny_engine.encode("Once upon a time there was", chat=False)
    return lambda k: tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=k, max_new_tokens=12))


@pytest.fixture(scope="module")
def beam_runs(tiny_engine):
    """20-token beam runs at 4, 8 and 16 beams (the app allows up to 16)."""
    ids = tiny_engine.encode("Once upon a time", chat=False)
    return {k: tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=k, max_new_tokens=20))
            for k in (4, 8, 16)}  # fmt: skip


def test_beam_tree_winner_path_is_the_traces_tokens(beam_trace):
    path = plots.beam_winner_path(beam_trace)
    assert [s for s, _ in path] == list(range(len(beam_trace.token_ids)))
    assert [beam_trace.steps[s].beams[j].token_id for s, j in path] == beam_trace.token_ids
    for (s, j), (s_next, j_next) in zip(path, path[1:]):  # each node extends the previous one, as kept
        parent = beam_trace.steps[s].beams[j]
        assert parent.status == "kept" and parent.beam == beam_trace.steps[s_next].beams[j_next].parent
    fig = plots.beam_tree_figure(beam_trace)
    d = plots.beam_tree_data(beam_trace)
    (winner,) = by_gid(fig, "winner")
    assert [tuple(p) for p in winner.get_offsets()] == [d.node(s, j) for s, j in path]
    (line,) = by_gid(fig, "winner-edge")  # from the prompt through every node of the path
    assert list(zip(line.get_xdata(), line.get_ydata())) == [(d.root_x, -1.0)] + [d.node(s, j) for s, j in path]


def test_beam_tree_draws_every_candidate_by_status(beam_trace):
    fig = plots.beam_tree_figure(beam_trace)
    counts = {status: sum(len(c.get_offsets()) for c in by_gid(fig, status)) for status in ("kept", "finished", "pruned")}
    assert sum(counts.values()) == sum(len(r.beams) for r in beam_trace.steps)
    assert counts["kept"] == sum(b.status == "kept" for r in beam_trace.steps[:-1] for b in r.beams)
    assert counts["finished"] >= 1
    (edges,) = by_gid(fig, "edge")
    (final_edges,) = by_gid(fig, "final-edge")
    assert len(edges.get_segments()) + len(final_edges.get_segments()) == sum(counts.values())  # one into each


def test_beam_tree_is_an_ordered_tree_whose_edges_never_cross(beam_runs):
    """Each step's candidates sit grouped under the beam they extend, so the drawing has no crossing edges."""
    trace = beam_runs[16]
    d = plots.beam_tree_data(trace)
    for s in range(1, len(trace.steps)):
        edges = sorted((d.columns[s][j], d.columns[s - 1][p]) for j, p in enumerate(d.parents[s]) if p is not None)
        assert [parent for _, parent in edges] == sorted(parent for _, parent in edges)  # parents in child order
        assert sorted(d.columns[s]) == list(range(len(trace.steps[s].beams)))


@pytest.mark.parametrize("num_beams", [4, 8, 16])
def test_beam_tree_never_cuts_a_label(beam_runs, num_beams):
    """The issue: at 16 beams the tree was a 1,637 px tangle whose late labels were cut at the column's edge.
    Every text drawn must lie inside the figure and the page's 800 px column, every token label inside the plot,
    and no two labels overlap."""
    trace = beam_runs[num_beams]
    fig = plots.beam_tree_figure(trace)
    assert texts_outside(fig) == []
    renderer = rendered(fig)
    labels = by_gid(fig, "winner-label") + by_gid(fig, "final-label")
    plot = fig.axes[0].get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in labels]
    for t, box in zip(labels, boxes):
        assert plot.x0 <= box.x0 and box.x1 <= plot.x1 and plot.y0 <= box.y0 and box.y1 <= plot.y1, t.get_text()
        assert t.get_fontsize() >= 12 and t.get_fontfamily() == plots.TOKEN_FONT
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), "two labels overlap"


def node_markers(fig: Figure) -> list[tuple[float, float, float]]:
    """Every node the beam tree draws (its dots, the output's rings, the prompt's square) as a circle (x, y,
    radius) in pixels, its white edge included."""
    circles = []
    for c in by_gid(fig, "kept") + by_gid(fig, "finished") + by_gid(fig, "pruned") + by_gid(fig, "winner") + by_gid(fig, "prompt"):
        sizes, widths = c.get_sizes(), c.get_linewidths()
        square = math.sqrt(2) if c.get_gid() == "prompt" else 1.0  # a square's corners
        for i, (x, y) in enumerate(c.get_offset_transform().transform(c.get_offsets())):
            radius_pt = math.sqrt(sizes[i % len(sizes)]) / 2 * square + widths[i % len(widths)] / 2
            circles.append((x, y, radius_pt * fig.dpi / 72))
    return circles


def _covers(box, circle) -> bool:
    """Whether a box (a Bbox, pixels) and a circle (x, y, r) share any point."""
    x, y, r = circle
    dx, dy = x - min(max(x, box.x0), box.x1), y - min(max(y, box.y0), box.y1)
    return dx * dx + dy * dy < r * r


@pytest.mark.parametrize("num_beams", [4, 8, 16])
def test_beam_tree_labels_never_overlap_or_hide_a_node(beam_runs, long_beam_run, num_beams):
    """At the bottom of a 16-beam tree the labels ran into one another, and each label's white box hid the dots
    beside its node (the output's rings half covered). Measured as drawn: no two labels (the prompt's and the
    output's column too) or their white boxes share a pixel, and none of them touches a node's marker."""
    for trace in (beam_runs[num_beams], long_beam_run(num_beams)):
        fig = plots.beam_tree_figure(trace)
        renderer = rendered(fig)
        (column,) = by_gid(fig, "output-tokens")
        labels = by_gid(fig, "winner-label") + by_gid(fig, "final-label") + by_gid(fig, "prompt-label")
        labels += [t for t in column.get_yticklabels() if t.get_text()]  # the output's tokens, beside the tree
        (white,) = by_gid(fig, "label-boxes")
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
        boxes += [("a white box", p.get_extents(white.get_transform())) for p in white.get_paths()]
        assert len(labels) > 3
        for i, (a, box_a) in enumerate(boxes):
            for b, box_b in boxes[i + 1 :]:
                if a == "a white box" or b == "a white box":
                    continue  # a label on its own box; boxes against boxes below
                assert not box_a.overlaps(box_b), f"labels {a!r} and {b!r} overlap"
        white_boxes = [box for name, box in boxes if name == "a white box"]
        for i, a in enumerate(white_boxes):
            assert not any(a.overlaps(b) for b in white_boxes[i + 1 :]), "two labels' white boxes overlap"
        nodes = node_markers(fig)
        for name, box in boxes:
            hidden = [n for n in nodes if _covers(box, n)]
            assert not hidden, f"{name} {box} covers the node(s) at {hidden}"


def output_column(fig: Figure) -> list[str]:
    """The output's tokens in the column right of the beam tree, top to bottom."""
    (column,) = by_gid(fig, "output-tokens")
    return [t.get_text() for _, t in sorted(zip(column.get_yticks(), column.get_yticklabels()), key=lambda p: p[0])]


@pytest.mark.parametrize("num_beams", [4, 8, 16])
def test_beam_tree_labels_the_whole_winner_path_and_only_the_best_paths(beam_runs, num_beams):
    trace = beam_runs[num_beams]
    fig = plots.beam_tree_figure(trace)
    d = plots.beam_tree_data(trace)
    label = lambda token: plots.short_label(plots.token_label(token), plots.BEAM_LABEL_CHARS)  # noqa: E731
    path = plots.beam_winner_path(trace)
    expected = [label(trace.steps[s].beams[j].token) for s, j in path]
    assert len(expected) == len(trace.token_ids) and output_column(fig) == expected  # every token, row by row
    on_path = {(d.node(s, j), label(trace.steps[s].beams[j].token)) for s, j in path}
    drawn = {(t.get_position(), t.get_text()) for t in by_gid(fig, "winner-label")}
    assert drawn <= on_path and (drawn or num_beams == 16)  # beside the tree, those that fit clear of every node
    best = {node for f in views.final_beams(trace) for node in f.path}
    finals = [(label.step, label.index) for label in d.labels if label.role == "final"]
    assert set(finals) <= best  # the other labels lie on final hypotheses' paths
    assert finals or num_beams == 16
    assert len(by_gid(fig, "final-label")) == len(finals)
    unlabelled = sum(len(r.beams) for r in trace.steps) - len(d.labels)
    assert unlabelled > len(d.labels)  # most nodes are plain dots


def test_beam_tree_is_800_px_wide_and_its_height_is_capped(tiny_engine, beam_runs):
    """The figure keeps the page's width at any beam count, and grows with the steps only up to a cap."""
    ids = tiny_engine.encode("Once upon a time", chat=False)
    short = tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=16, max_new_tokens=4))
    long = tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=16, max_new_tokens=64))
    assert len(long.steps) == 64
    sizes = {k: tuple(plots.beam_tree_figure(t).get_size_inches() * plots.DPI) for k, t in beam_runs.items()}
    heights = [plots.beam_tree_figure(t).get_size_inches()[1] * plots.DPI for t in (short, beam_runs[16], long)]
    assert {w for w, _ in sizes.values()} == {800}
    assert len({h for _, h in sizes.values()}) == 1  # more beams: the same size, denser rows
    assert heights[0] < heights[1] < heights[2] <= 1000  # grows gently with the steps, capped
    fig = plots.beam_tree_figure(long)
    assert texts_outside(fig) == []
    assert len(output_column(fig)) >= len(long.token_ids) // 2  # rows close up: the column thins out


def test_beam_tree_handles_empty_and_non_beam_traces(beam_trace, session):
    empty = dataclasses.replace(beam_trace, steps=[], token_ids=[], token_strings=[], token_logprobs=[])
    assert any("No steps yet" in t for t in texts(plots.beam_tree_figure(empty)))
    assert any("beam search runs" in t for t in texts(plots.beam_tree_figure(session.trace())))
    assert plots.beam_winner_path(session.trace()) == []


def test_beam_tree_of_a_stopped_run_and_of_one_beam(tiny_engine):
    ids = tiny_engine.encode("Once upon a time", chat=False)
    session = tiny_engine.start(ids, DecodingConfig(strategy="beam", num_beams=5, max_new_tokens=12))
    session.step()
    session.step()
    stopped = session.trace()  # no hypothesis finished yet: the best running beam is the output
    path = plots.beam_winner_path(stopped)
    assert [stopped.steps[s].beams[j].token_id for s, j in path] == stopped.token_ids
    fig = plots.beam_tree_figure(stopped)
    assert texts_outside(fig) == [] and len(output_column(fig)) == len(stopped.token_ids)
    one = tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=1, max_new_tokens=6))
    assert one.strategy == "greedy"  # one beam is greedy search, as in generate(num_beams=1): no tree to draw
    notes = [t.get_text() for t in plots.beam_tree_figure(one).findobj(lambda a: hasattr(a, "get_text"))]
    assert any("One beam is greedy search" in n for n in notes)


# -- the seed notebooks' figures, live on the embedded model -----------------------------------------------------


def test_temperature_comparison_of_seed_002_is_softmax_of_logits_over_t(smol_engine):
    """Seed 002 draws P(y_i) = exp(z_i / T) / sum_j exp(z_j / T) at several temperatures: the panels hold
    exactly that, computed here the notebook's way from one forward pass of the embedded model."""
    import torch

    ids = smol_engine.encode("The capital of France is", chat=False)
    session = smol_engine.start(ids, DecodingConfig(strategy="sample", temperature=1.0, top_n=10))
    exploration = session.explore(None, temperatures=(0.5, 1.0, 2.0), top_n=20)
    with torch.no_grad():
        logits = smol_engine.model(torch.tensor([ids])).logits[0, -1].float()
    fig = plots.temperature_figure(exploration)
    top = [c.token_id for c in exploration.candidates][: plots.TEMPERATURE_TOKENS]
    assert top == torch.topk(logits, len(top)).indices.tolist()
    for t in (0.5, 1.0, 2.0):
        p = torch.softmax(logits / t, dim=-1)
        (container,) = [c for ax in fig.axes for c in ax.containers if c.patches[0].get_gid() == f"T={t:g}"]
        widths = [patch.get_width() for patch in container.patches]
        assert widths[:-1] == pytest.approx(p[top].tolist(), abs=1e-4)
        assert widths[-1] == pytest.approx(1 - float(p[top].sum()), abs=1e-4)  # every other token
    assert tick_labels(fig)[0] == "␣Paris"


def test_a_chosen_token_ranked_lower_keeps_top_ps_line_in_the_figure(tiny_engine):
    """The surprising draw a teacher wants on a slide: forced from below the rows shown, its row is appended and
    top-p's line is still drawn, over the rows above and, apart, on the extra row (issue 19)."""
    settings = dict(temperature=1.5, top_k=6, top_p=0.5)
    ranked = sorted(run(tiny_engine, **settings).steps[0].top, key=lambda c: (-c.shaped_prob, c.rank))
    config = DecodingConfig(strategy="sample", seed=1, max_new_tokens=1, top_n=15, **settings)
    record = tiny_engine.start(tiny_engine.encode(PROMPT, chat=False), config).step(force_token=ranked[12].token_id)
    d = plots.distribution_data(record, max_tokens=8)
    assert d.extra and d.candidates[-1].token_id == ranked[12].token_id
    fig = plots.distribution_figure(record, max_tokens=8)
    (line,) = by_gid(fig, "cumulative")
    assert list(line.get_xdata())[1:] == pytest.approx([c.cumulative for c in ranked[:8]])
    (extra,) = by_gid(fig, "cumulative-extra")
    assert list(extra.get_xdata()) == pytest.approx([ranked[11].cumulative, ranked[12].cumulative])
    assert list(extra.get_ydata()) == [8, 8]
    outside = dataclasses.replace(record, token_id=99_999, token="zz", forced=True)
    assert by_gid(plots.distribution_figure(outside, max_tokens=8), "cumulative")  # the rows shown keep it


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_a_steps_chart_saves_for_slides(session, tmp_path, suffix):
    record = session.steps[0]
    path = tmp_path / f"step.{suffix}"
    assert plots.save_distribution(record, path) == suffix
    data = path.read_bytes()
    if suffix == "png":
        assert data.startswith(b"\x89PNG")
        from PIL import Image

        assert Image.open(path).size[0] == 1600  # 8 in at 200 dpi: sharp on a projector
    else:
        text = data.decode("utf-8")
        assert text.lstrip().startswith("<?xml") and "<svg" in text
        for label in plots.distribution_data(record).labels:  # text kept as text
            assert f">{label.replace('&', '&amp;').replace('<', '&lt;')}<" in text
    with pytest.raises(ValueError, match="png or .svg"):
        plots.save_distribution(record, tmp_path / "step.jpg")


# -- every script: CJK and emoji labels draw with real glyphs --------------------------------------------------

WHOLE_CHARACTERS = ["我", "喜欢", "🍎", "吃", "😀", "，", "可以", "🙂"]  # tokens of a vocabulary with CJK merges (Qwen's)


def _fonts_or_skip():
    """The CJK and emoji fonts scripts/setup.sh and packages.txt install; without them the test skips, unless
    PLAYGROUND_REQUIRE_BROWSER=1 (CI), where a missing font fails it."""
    missing = [kind for kind, names in (("CJK", plots.CJK_FONTS), ("emoji", plots.EMOJI_FONTS))
               if not plots._installed(names)]  # fmt: skip
    if missing:
        message = f"no {' or '.join(missing)} font installed (scripts/setup.sh --dev installs them)"
        if os.environ.get("PLAYGROUND_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _in_script(items, field="token"):
    """`items` (candidates or beam candidates) with their tokens as whole CJK characters and emoji."""
    return [dataclasses.replace(c, **{field: WHOLE_CHARACTERS[i % len(WHOLE_CHARACTERS)] + "·" * (i // 8)})
            for i, c in enumerate(items)]  # fmt: skip


def test_figures_draw_cjk_and_emoji_without_a_missing_glyph(session, beam_trace, tmp_path):
    """Issue 20: the figures drew CJK as empty boxes, with a "Glyph ... missing from font(s)" warning for each
    character. Every figure with Chinese and emoji tokens (titles, token labels, beam labels, both saved formats)
    now draws with no such warning."""
    _fonts_or_skip()
    steps = [dataclasses.replace(r, token=WHOLE_CHARACTERS[i % 8], top=_in_script(r.top))
             for i, r in enumerate(session.steps)]  # fmt: skip
    ex = session.explore(1, temperatures=(0.5, 1.0, 2.0), top_n=8)
    ex = dataclasses.replace(ex, candidates=_in_script(ex.candidates))
    beams = dataclasses.replace(beam_trace, steps=[dataclasses.replace(r, token="我", beams=_in_script(r.beams))
                                                   for r in beam_trace.steps])  # fmt: skip
    figures = [plots.distribution_figure(steps[1]), plots.trajectory_figure(steps), plots.temperature_figure(ex),
               plots.knobs_figure(ex), plots.beam_tree_figure(beams)]  # fmt: skip
    assert any("我" in t for fig in figures for t in texts(fig)) and any("🍎" in t for t in texts(figures[0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fig in figures:
            FigureCanvasAgg(fig).draw()
        for suffix in ("png", "svg"):
            plots.save_distribution(steps[1], tmp_path / f"step.{suffix}")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, missing[:3]
