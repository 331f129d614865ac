"""Tests for playground/plots.py: each figure's data (bar lengths, line points, marked tokens) equals the record's,
one test per knob; the figures are matplotlib Figures built without pyplot, legible, and safe with any token."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text

from playground import plots
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


def test_beam_tree_winner_path_is_the_traces_tokens(beam_trace):
    path = plots.beam_winner_path(beam_trace)
    assert [s for s, _ in path] == list(range(len(beam_trace.token_ids)))
    assert [beam_trace.steps[s].beams[j].token_id for s, j in path] == beam_trace.token_ids
    for (s, j), (s_next, j_next) in zip(path, path[1:]):  # each node extends the previous one, as kept
        parent = beam_trace.steps[s].beams[j]
        assert parent.status == "kept" and parent.beam == beam_trace.steps[s_next].beams[j_next].parent
    fig = plots.beam_tree_figure(beam_trace)
    (winner,) = by_gid(fig, "winner")
    assert [tuple(p) for p in winner.get_offsets()] == [(float(s), float(j)) for s, j in path]


def test_beam_tree_draws_every_candidate_by_status(beam_trace):
    fig = plots.beam_tree_figure(beam_trace)
    counts = {status: sum(len(c.get_offsets()) for c in by_gid(fig, status)) for status in ("kept", "finished", "pruned")}
    assert sum(counts.values()) == sum(len(r.beams) for r in beam_trace.steps)
    assert counts["kept"] == sum(b.status == "kept" for r in beam_trace.steps[:-1] for b in r.beams)
    assert counts["finished"] >= 1
    edges = by_gid(fig, "edge") + by_gid(fig, "winner-edge")
    assert len(edges) == sum(counts.values())  # one edge into every candidate
    assert len(by_gid(fig, "winner-edge")) == len(beam_trace.token_ids)


def test_beam_tree_handles_empty_and_non_beam_traces(beam_trace, session):
    empty = dataclasses.replace(beam_trace, steps=[], token_ids=[], token_strings=[], token_logprobs=[])
    assert any("No steps yet" in t for t in texts(plots.beam_tree_figure(empty)))
    assert any("beam search runs" in t for t in texts(plots.beam_tree_figure(session.trace())))
    assert plots.beam_winner_path(session.trace()) == []


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
