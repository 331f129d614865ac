"""Tests for playground/plots.py: the figures hold the records' real tokens and numbers, marks and paths."""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import pytest

from playground import plots
from playground.config import DecodingConfig
from playground.records import Candidate
from playground.views import token_label


def by_name(fig: go.Figure, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, f"expected one trace named {name!r}, found {[t.name for t in fig.data]}"
    return matches[0]


def annotation_texts(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


@pytest.fixture(scope="module")
def session(tiny_engine):
    """A sampled run whose top-k and top-p both cut some of the recorded candidates."""
    ids = tiny_engine.encode("Once upon a time", chat=False)
    cfg = DecodingConfig(strategy="sample", temperature=1.0, top_k=6, top_p=0.12, seed=1, max_new_tokens=6, top_n=15)
    s = tiny_engine.start(ids, cfg)
    for _ in s.run():
        pass
    return s


@pytest.fixture(scope="module")
def beam_trace(tiny_engine):
    ids = tiny_engine.encode("The quick brown fox", chat=False)
    return tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=7))


# -- distribution -------------------------------------------------------------------------------------------


def test_distribution_figure_shows_raw_and_after_knobs(session):
    record = session.steps[0]
    fig = plots.distribution_figure(record, max_tokens=12)
    shown = sorted(record.top, key=lambda c: c.rank)[:12]
    raw, after = by_name(fig, "raw model"), by_name(fig, "after knobs")
    assert list(raw.x) == plots.axis_labels(shown) == list(after.x)
    assert list(raw.y) == pytest.approx([c.raw_prob for c in shown])
    for c, y, color, shape, text in zip(shown, after.y, after.marker.color, after.marker.pattern.shape, after.text):
        if c.kept:
            assert (y, color, shape, text) == (pytest.approx(c.prob), plots.AFTER, "", "")
        else:  # drawn grey and hatched at its height before the cut, and labelled with the knob that cut it
            assert y == pytest.approx(c.shaped_prob)
            assert (color, shape) == (plots.CUT, "/")
            assert text == "✂ " + {"top_k": "top-k", "top_p": "top-p", "min_p": "min-p"}[c.cut_by]
    assert {c.cut_by for c in shown} >= {"top_p", "top_k"}, "the fixture's knobs should cut some candidates"
    hover_of_cut = [h for h, c in zip(after.hovertext, shown) if c.cut_by == "top_p"]
    assert all("cut by top-p" in h for h in hover_of_cut)


def test_distribution_figure_highlights_the_chosen_token(session):
    record = session.steps[1]
    fig = plots.distribution_figure(record)
    after = by_name(fig, "after knobs")
    i = [d[0] for d in after.customdata].index(record.token_id)
    widths = list(after.marker.line.width)
    assert widths[i] > 0 and sum(w > 0 for w in widths) == 1
    assert "chosen" in annotation_texts(fig)
    chosen_note = next(a for a in fig.layout.annotations if a.text == "chosen")
    assert chosen_note.x == after.x[i]
    title = fig.layout.title.text
    assert f"{record.entropy_raw:.2f} nats" in title and f"{record.entropy / 0.6931471805599453:.2f} bits" in title


def test_distribution_figure_draws_the_top_p_cutoff_and_cumulative(session):
    record = session.steps[0]
    fig = plots.distribution_figure(record)
    cum = by_name(fig, "cumulative (top-p)")
    shown = sorted(record.top, key=lambda c: c.rank)[:15]
    running = [sum(c.shaped_prob for c in shown[: i + 1]) for i in range(len(shown))]
    assert list(cum.y) == pytest.approx([min(r, 1.0) for r in running])
    assert cum.yaxis == "y2"
    assert any(s.y0 == pytest.approx(0.12) and s.y1 == pytest.approx(0.12) for s in fig.layout.shapes)
    greedy = dataclasses.replace(record, config=record.config.replace(strategy="greedy"))
    assert not plots.distribution_figure(greedy).layout.shapes  # no top-p line where top-p does not apply


def test_distribution_figure_marks_forced_and_out_of_view_tokens(session):
    record = session.steps[2]
    lowest = max(record.top, key=lambda c: c.rank)
    forced = dataclasses.replace(record, token_id=lowest.token_id, token=lowest.token, forced=True)
    fig = plots.distribution_figure(forced, max_tokens=3)
    after = by_name(fig, "after knobs")
    assert len(after.x) == 4 and after.customdata[-1][0] == lowest.token_id  # appended so it stays visible
    assert "forced" in annotation_texts(fig) and "chosen" not in annotation_texts(fig)


def test_axis_labels_are_visible_and_unique():
    def cand(token_id, token):
        return Candidate(token_id, token, 0, 0.0, 0.1, 0.1, 0.1, True, None)

    cands = [cand(1, " the"), cand(2, "\ufffd"), cand(3, "\ufffd"), cand(4, "<b>"), cand(5, "\n")]
    labels = plots.axis_labels(cands)
    assert labels == ["␣the", "\ufffd #2", "\ufffd #3", "&lt;b&gt;", "↵"]
    assert len(set(labels)) == len(labels)


def test_distribution_figure_on_the_real_model(smol_engine):
    """SmolLM2 continues 'The capital of France is' with ' Paris': the label must show its leading space."""
    ids = smol_engine.encode("The capital of France is", chat=False)
    s = smol_engine.start(ids, DecodingConfig(strategy="greedy", max_new_tokens=1, top_n=10))
    record = s.step()
    assert record.token == " Paris"
    fig = plots.distribution_figure(record)
    raw = by_name(fig, "raw model")
    assert raw.x[0] == "␣Paris" and raw.y[0] == pytest.approx(record.raw_prob)
    assert "␣Paris" in fig.layout.title.text


# -- trajectory ---------------------------------------------------------------------------------------------


def test_trajectory_figure_follows_the_steps(session):
    steps = session.steps
    fig = plots.trajectory_figure(steps)
    after, raw = by_name(fig, "p(chosen) after knobs"), by_name(fig, "p(chosen) raw")
    assert list(after.x) == [r.step for r in steps]
    assert list(after.y) == pytest.approx([r.prob for r in steps])
    assert list(raw.y) == pytest.approx([r.raw_prob for r in steps])
    assert list(after.text) == [token_label(r.token).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                                for r in steps]
    assert list(by_name(fig, "entropy after knobs").y) == pytest.approx([r.entropy for r in steps])
    assert list(by_name(fig, "entropy raw").y) == pytest.approx([r.entropy_raw for r in steps])
    assert "No steps yet" in annotation_texts(plots.trajectory_figure([]))[0]


# -- temperature and knobs (the real Session.explore) --------------------------------------------------------


def test_temperature_figure_draws_each_temperature(session):
    ex = session.explore(2, temperatures=(0.5, 1.0, 2.0), top_n=12)
    fig = plots.temperature_figure(ex)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [b.name for b in bars] == ["T = 0.5", "T = 1 (current)", "T = 2"]
    for bar, view in zip(bars, ex.temperatures):
        assert list(bar.x) == plots.axis_labels(ex.candidates) + ["(all others)"]
        assert list(bar.y) == pytest.approx(list(view.probs) + [view.rest])
    assert bars[0].y[0] > bars[2].y[0]  # a lower temperature sharpens the favourite


def test_knobs_figure_colours_what_each_knob_keeps(session):
    ex = session.explore(1, top_n=15)
    fig = plots.knobs_figure(ex)
    order = sorted(range(len(ex.candidates)), key=lambda i: -ex.candidates[i].shaped_prob)
    panels = [t for t in fig.data if isinstance(t, go.Bar) and t.x[0] is not None]
    assert [p.name for p in panels] == ["top-k", "top-p", "min-p"] == [plots.KNOB_NAMES[k.knob] for k in ex.knobs]
    for panel, knob in zip(panels, ex.knobs):
        kept = [knob.kept[i] for i in order]
        assert list(panel.marker.color) == [plots.AFTER if k else plots.CUT for k in kept]
        assert list(panel.y) == pytest.approx([ex.candidates[i].shaped_prob for i in order])
    assert not all(ex.knobs[0].kept) and not all(ex.knobs[1].kept)  # top-k=6 and top-p=0.12 both cut here
    titles = annotation_texts(fig)
    for knob in ex.knobs:
        assert any(f"keeps {knob.kept_count:,} tokens" in t for t in titles)
    cum = next(t for t in fig.data if t.name == "cumulative")
    assert list(cum.y) == pytest.approx(ex.cumulative[: len(order)])
    assert any(s.y0 == pytest.approx(0.12) for s in fig.layout.shapes)  # the top-p cut-off


# -- beam tree ----------------------------------------------------------------------------------------------


def test_beam_tree_winner_path_is_the_traces_tokens(beam_trace):
    path = plots.beam_winner_path(beam_trace)
    assert [s for s, _ in path] == list(range(len(beam_trace.token_ids)))
    assert [beam_trace.steps[s].beams[j].token_id for s, j in path] == beam_trace.token_ids
    for (s, j), (s_next, j_next) in zip(path, path[1:]):  # each node extends the previous one, as kept
        parent = beam_trace.steps[s].beams[j]
        assert parent.status == "kept" and parent.beam == beam_trace.steps[s_next].beams[j_next].parent
    fig = plots.beam_tree_figure(beam_trace)
    winner = by_name(fig, "winner")
    assert list(winner.customdata) == beam_trace.token_ids
    assert list(winner.x) == [float(s) for s, _ in path]


def test_beam_tree_draws_every_candidate_by_status(beam_trace):
    fig = plots.beam_tree_figure(beam_trace)
    n_nodes = sum(len(t.x) for t in fig.data if t.name in ("kept", "finished", "pruned"))
    assert n_nodes == sum(len(r.beams) for r in beam_trace.steps)
    assert len(by_name(fig, "kept").x) == sum(
        b.status == "kept" for r in beam_trace.steps[:-1] for b in r.beams
    )
    assert len(by_name(fig, "finished").x) >= 1
    edges = [v for t in fig.data if t.name in ("edges", "winner edges") for v in t.x]
    assert sum(v is None for v in edges) == n_nodes  # one edge into every candidate


def test_beam_tree_handles_empty_and_non_beam_traces(beam_trace, session):
    empty = dataclasses.replace(beam_trace, steps=[], token_ids=[], token_strings=[], token_logprobs=[])
    assert "No steps yet" in annotation_texts(plots.beam_tree_figure(empty))[0]
    assert "beam search runs" in annotation_texts(plots.beam_tree_figure(session.trace()))[0]
    assert plots.beam_winner_path(session.trace()) == []
