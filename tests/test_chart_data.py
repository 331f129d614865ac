"""Tests for views.distribution_chart_data, the data the page's live distribution chart draws: every number is the
record's (rows in the order the knobs see them, raw and after-knobs probabilities, cuts, top-p's running sum, the
mass left out), the chosen token is always a row, and the words fit the strategy. On the tiny random model."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from playground import plots, views
from playground.config import DecodingConfig
from playground.records import Candidate

PROMPT = "Once upon a time"


def first_step(engine, force_token=None, **settings):
    config = DecodingConfig(**{"strategy": "sample", "seed": 1, "max_new_tokens": 4, "top_n": 20, **settings})
    session = engine.start(engine.encode(PROMPT, chat=False), config)
    return session.step(force_token=force_token)


@pytest.fixture(scope="module")
def sampled(tiny_engine):
    """top-k and top-p both cut some of the recorded candidates."""
    return first_step(tiny_engine, temperature=1.5, top_k=6, top_p=0.5)


def knobs_order(record):
    return sorted(record.top, key=lambda c: (-c.shaped_prob, c.rank))


def test_rows_are_the_records_candidates_in_the_order_the_knobs_see_them(sampled):
    d = views.distribution_chart_data(sampled, top_n=12)
    order = knobs_order(sampled)[:12]
    assert [r["token_id"] for r in d["rows"][:12]] == [c.token_id for c in order]
    assert len(d["rows"]) == 12 + (sampled.token_id not in [c.token_id for c in order])
    for r, c in zip(d["rows"], order):
        assert r["token_id"] == c.token_id and r["token"] == c.token and r["rank"] == c.rank
        assert r["raw"] == c.raw_prob
        assert r["after"] == (c.prob if c.kept else 0.0)
        assert r["kept"] == c.kept and r["cut_by"] == (None if c.kept else c.cut_by)
        assert r["cumulative"] == c.cumulative
        assert r["text"] == views.token_label(c.token)
        assert r["chosen"] == (c.token_id == sampled.token_id)
    assert [r["label"] for r in d["rows"]] == views.axis_labels(views.chart_candidates(sampled, 12))
    assert {r["cut_by"] for r in d["rows"]} >= {"top_k", "top_p"}, "the fixture should show both cuts"


def test_top_p_running_sum_runs_from_the_mass_above_each_row(sampled):
    d = views.distribution_chart_data(sampled, top_n=20)
    rows = [r for r in d["rows"] if not r["extra"]]
    assert rows[0]["cumulative_start"] == 0.0
    for above, row in zip(rows, rows[1:]):
        assert row["cumulative_start"] == above["cumulative"]
        assert row["cumulative"] >= row["cumulative_start"]
        if row["cut_by"] != "top_k":  # top-p cuts a row exactly when the sum above it already reaches p
            assert (row["cut_by"] == "top_p") == (row["cumulative_start"] >= 0.5 - 1e-6)
    assert d["top_p"] == 0.5


def test_the_mass_not_shown_is_what_the_rows_leave(sampled):
    d = views.distribution_chart_data(sampled, top_n=5)
    assert d["rest"]["raw"] == pytest.approx(1 - sum(r["raw"] for r in d["rows"]))
    assert d["rest"]["after"] == pytest.approx(1 - sum(r["after"] for r in d["rows"]), abs=1e-6)
    assert 0 < d["rest"]["raw"] < 1
    everything = views.distribution_chart_data(sampled, top_n=20)
    assert everything["rest"]["after"] == pytest.approx(0, abs=1e-5)  # top-k 6 keeps only recorded tokens


def test_a_chosen_token_ranked_lower_is_an_extra_row_with_every_overlay(tiny_engine):
    """The surprising draw a teacher wants to discuss: forced (or drawn) from below the rows shown, it is
    appended, and keeps its cut, its running sum and its mark."""
    low = knobs_order(first_step(tiny_engine, temperature=1.5, top_k=6, top_p=0.5))[15]
    record = first_step(tiny_engine, force_token=low.token_id, temperature=1.5, top_k=6, top_p=0.5)
    d = views.distribution_chart_data(record, top_n=8)
    assert len(d["rows"]) == 9
    extra = d["rows"][-1]
    assert extra["extra"] and extra["chosen"] and extra["forced"] and extra["token_id"] == low.token_id
    assert not any(r["extra"] or r["chosen"] for r in d["rows"][:-1])
    order = knobs_order(record)
    at = [c.token_id for c in order].index(low.token_id)
    assert extra["cumulative"] == order[at].cumulative and extra["cumulative_start"] == order[at - 1].cumulative
    assert extra["cut_by"] == order[at].cut_by == "top_k" and extra["raw"] == order[at].raw_prob
    assert d["forced"] and d["title"][0].startswith("Step 0: forced")


def test_a_chosen_token_outside_the_records_candidates_comes_from_the_records_numbers(sampled):
    outside = dataclasses.replace(sampled, token_id=99_999, token="zz", prob=0.001, raw_prob=0.002, forced=True)
    d = views.distribution_chart_data(outside, top_n=4)
    extra = d["rows"][-1]
    assert (extra["token_id"], extra["raw"], extra["after"], extra["chosen"], extra["extra"]) == (99_999, 0.002, 0.001,
                                                                                                   True, True)  # fmt: skip
    assert extra["cumulative"] is None  # top-p's sum at a token the record does not hold is unknown
    json.loads(views.distribution_chart_json(outside, 4))  # strict JSON: the made-up candidate's NaN logit stays out


@pytest.mark.parametrize("config", [dict(strategy="greedy"), dict(strategy="sample", temperature=0.0)])
def test_greedy_shows_its_pick_at_100_percent_and_says_so(tiny_engine, config):
    record = first_step(tiny_engine, **config)
    d = views.distribution_chart_data(record, top_n=10, pending=True)
    top = max(record.top, key=lambda c: c.prob)
    assert [r["after"] for r in d["rows"]] == [1.0 if r["token_id"] == top.token_id else 0.0 for r in d["rows"]]
    assert d["greedy"] and d["top_p"] is None and all(r["cumulative"] is None for r in d["rows"])
    words = " ".join(e["label"] for e in d["legend"])
    assert "greedy takes the most likely token" in words and "cut by" not in words and "top-p" not in words
    assert d["title"][0].startswith("Next step (0, not taken yet): will pick")
    assert "greedy takes the top token" in d["title"][1]


def test_the_legend_names_the_knobs_in_use_and_the_stand_ins(tiny_engine, sampled):
    keys = [e["key"] for e in views.distribution_chart_data(sampled)["legend"]]
    assert keys[:2] == ["raw", "after"] and {"cut:top_k", "cut:top_p", "cumulative", "chosen"} <= set(keys)
    assert "cut:min_p" not in keys
    min_p = views.distribution_chart_data(first_step(tiny_engine, temperature=1.0, min_p=0.3))
    assert {e["key"] for e in min_p["legend"]} & {"cut:top_k", "cut:top_p", "cumulative", "cut:min_p"} == {"cut:min_p"}
    assert "min-p = 0.3" in " ".join(e["label"] for e in min_p["legend"])
    marks = {s["mark"]: s["means"] for s in min_p["stand_ins"]}
    assert marks["␣"] == "a space" and marks["↵"] == "a new line"


def test_beam_steps_are_scored_not_forced(tiny_engine):
    ids = tiny_engine.encode(PROMPT, chat=False)
    trace = tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=2))
    d = views.distribution_chart_data(trace.steps[0])
    assert d["strategy"] == "beam" and not d["force"]["enabled"]
    assert "beam search scores" in d["legend"][1]["label"]


def test_force_words_say_what_a_click_does(sampled):
    assert views.distribution_chart_data(sampled, pending=True)["force"] == {
        "enabled": True, "words": "Use this token as the next step"}  # fmt: skip
    assert views.distribution_chart_data(sampled)["force"]["words"] == "Replace step 0 with this token"
    words = "Replace step 0 with this token (drops the 3 tokens after it)"
    assert views.distribution_chart_data(sampled, force_words=words)["force"]["words"] == words


def test_the_same_rows_as_the_matplotlib_chart(sampled):
    """The page's chart and the downloadable figure draw the same rows, bars and cuts."""
    d = views.distribution_chart_data(sampled, top_n=12)
    p = plots.distribution_data(sampled, max_tokens=12)
    assert [r["token_id"] for r in d["rows"]] == [c.token_id for c in p.candidates]
    assert [r["label"] for r in d["rows"]] == p.labels
    assert [r["raw"] for r in d["rows"]] == p.raw and [r["after"] for r in d["rows"]] == p.after
    assert [r["cut_by"] for r in d["rows"]] == p.cut_by
    assert d["top_p"] == p.top_p
    colors = {"raw": plots.RAW, "after": plots.AFTER, **plots.CUT_STYLE, "chosen": plots.CHOSEN, "forced": plots.FORCED}
    assert d["colors"] == colors


def test_json_is_strict_and_a_bad_top_n_is_refused(sampled):
    text = views.distribution_chart_json(sampled, 10, log_scale=True)
    d = json.loads(text)
    assert d["log_scale"] is True and d["log_floor"] == plots.LOG_FLOOR
    assert all(math.isfinite(r["raw"]) for r in d["rows"])
    assert views.distribution_chart_json(None) == ""
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            views.distribution_chart_data(sampled, top_n=bad)


def test_labels_stay_unique_and_tokens_keep_their_real_text(sampled):
    twins = [Candidate(token_id=i, token="\ufffd", rank=i, logit=0.0, raw_prob=0.1, shaped_prob=0.1 - i / 100,
                       prob=0.1, kept=True, cut_by=None) for i in range(3)]  # fmt: skip
    record = dataclasses.replace(sampled, top=twins, token_id=0, token="\ufffd")
    d = views.distribution_chart_data(record, top_n=3)
    assert len({r["label"] for r in d["rows"]}) == 3 and all(r["token"] == "\ufffd" for r in d["rows"])


def test_the_chosen_token_below_a_short_record_is_the_extra_row(tiny_engine):
    """A record holds top_n candidates; a chart asked for more rows than that still marks the chosen token, when
    appended below them, as the extra row (its own step of the top-p line): it was taken for a regular row, and
    the whole top-p line was left out (seen with top-k 50 and top_n 10 on the tiny model)."""
    from playground import plots, views
    from playground.config import DecodingConfig

    for seed in range(40):
        s = tiny_engine.start(tiny_engine.encode("The quick"),
                              DecodingConfig(strategy="sample", temperature=1.5, top_p=0.95, top_n=5, seed=seed))  # fmt: skip
        r = s.step()
        if all(c.token_id != r.token_id for c in r.top):
            break
    else:
        pytest.fail("no seed drew a token outside the record's candidates")
    data = views.distribution_chart_data(r, 15)
    assert [row["extra"] for row in data["rows"]] == [False] * 5 + [True]
    assert plots.distribution_data(r, max_tokens=15).cumulative is not None
