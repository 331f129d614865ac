"""The benchmark's machinery on the tiny model: the JSON it writes, the CLI around it, the settings it gives
generate(). No assertion on speed: timings belong to the benchmark, not to tests."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from playground.measure import bench

REQUIRED_NUMBERS = ("compare_vs_three_generates", "step_latency_ms", "step_latency_p95_ms", "cached_load_s", "peak_rss_mb")


@pytest.fixture(scope="module")
def tiny_result(tiny_model_dir):
    return bench.run_bench(model=tiny_model_dir, device="cpu", quick=True, max_new_tokens=4, ui_steps=2)


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_result_has_every_required_number(tiny_result):
    """Guards against a key going missing or a measurement silently coming back as 0, NaN or None."""
    assert set(tiny_result["engine_vs_generate"]) == {"greedy", "sample", "beam"}
    assert all(_finite_positive(v) for v in tiny_result["engine_vs_generate"].values())
    for key in REQUIRED_NUMBERS:
        assert _finite_positive(tiny_result[key]), key
    assert tiny_result["cold_start_s"] is None and tiny_result["cold_start_note"]  # a folder has no conversion
    for strategy, raw in tiny_result["engine_vs_generate_raw"].items():
        assert raw["engine_tokens"] >= 1 and all(_finite_positive(s) for s in raw["engine_s"] + raw["generate_s"])
    assert tiny_result["environment"]["cores"] >= 1 and tiny_result["environment"]["torch"]


def test_engine_tokens_equal_generate_in_the_run(tiny_result):
    """The ratio is only fair if both sides produced the same tokens: the engine matches generate()."""
    assert tiny_result["tokens_match"] == {"greedy": True, "sample": True, "beam": True}
    for raw in tiny_result["engine_vs_generate_raw"].values():
        assert raw["engine_token_ids"] == raw["generate_token_ids"]
    assert all(tiny_result["compare_tokens_match"].values())


def test_time_split_accounts_for_every_forward(tiny_result, tiny_engine):
    """Each run's forwards are all timed: one prefill plus one per generated token after the first (greedy and
    sampling; beams forward one batch a step too), and the split's parts are real durations."""
    for strategy, raw in tiny_result["engine_vs_generate_raw"].items():
        for side in ("engine", "generate"):
            for calls, seconds in zip(raw[f"{side}_forward_s"], raw[f"{side}_s"]):
                assert len(calls) == raw[f"{side}_tokens"]  # prefill + (tokens - 1) decode forwards
                assert 0 < sum(calls) < seconds
            split = tiny_result["time_split_ms"][strategy][side]
            assert all(_finite_positive(split[k]) for k in ("prefill_ms", "forward_ms_per_token", "other_ms_per_token"))
    assert "forward/token" in bench.format_table(tiny_result)


def test_forward_timer_restores_the_model(tiny_engine):
    """...and keeps forward's signature, which generate() reads: without `logits_to_keep` in it, generate()
    would compute logits for every prompt position while timed, and the timer itself would slow it down."""
    import inspect

    model = tiny_engine.model
    before = inspect.signature(model.forward)
    with bench.ForwardTimer(model) as timer:
        assert inspect.signature(model.forward) == before and "logits_to_keep" in before.parameters
        tiny_engine.generate(tiny_engine.encode("Hello"), bench.engine_config("greedy", 3))
    assert "forward" not in vars(model) and len(timer.calls) == 3


def test_result_is_json_and_table_renders(tiny_result, tmp_path):
    path = bench.write_json(tiny_result, tmp_path / "r.json")
    assert json.loads(path.read_text())["engine_vs_generate"] == tiny_result["engine_vs_generate"]
    table = bench.format_table(tiny_result)
    assert "greedy tok/s" in table and "compare vs 3 generates" in table and "UI Step" in table


def test_goals_report_met_and_unmet():
    result = {"engine_vs_generate": {"greedy": 1.2, "sample": 0.9, "beam": 1.0}, "compare_vs_three_generates": 0.4,
              "cached_load_s": None, "step_latency_ms": 301.0}  # fmt: skip
    g = bench.goals(result)
    assert g["engine_vs_generate"]["met"] is False  # one strategy below 1.0 fails the goal
    assert g["compare_vs_three_generates"]["met"] is True
    assert g["cached_load_s"]["met"] is None
    assert g["step_latency_ms"]["met"] is False


def test_generate_kwargs_are_explicit():
    """generate()'s default top_k is 50: a sampled run with top_k off must pass top_k=0, or the sides differ."""
    from playground.config import DecodingConfig

    kw = bench.generate_kwargs(DecodingConfig(strategy="sample", top_k=0, temperature=0.7, max_new_tokens=5), 0)
    assert kw["top_k"] == 0 and kw["do_sample"] is True and kw["temperature"] == 0.7 and kw["num_beams"] == 1
    kw = bench.generate_kwargs(DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=5), 0)
    assert kw["num_beams"] == 3 and kw["do_sample"] is False and kw["max_new_tokens"] == 5
    kw = bench.generate_kwargs(DecodingConfig(strategy="sample", temperature=0.0), 0)
    assert kw["do_sample"] is False  # temperature 0 is greedy on both sides


def test_register_adds_the_bench_subcommand():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    bench.register(sub)
    args = parser.parse_args(["bench", "--quick", "--json", "--out", "x.json", "--model", "m", "--device", "cpu"])
    assert args.func is bench.main and args.quick and args.json and args.out == "x.json" and args.model == "m"


def test_alternate_swaps_the_order_and_warms_up():
    calls = []
    a, b = bench.alternate(lambda: calls.append("a") or "A", lambda: calls.append("b") or "B", repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"] and a == ["A"] * 3 and b == ["B"] * 3


# ----------------------------------------------------------------------------------------------------------
# The chart (matplotlib, no pyplot, no browser)

CHART_RESULT = {"engine_vs_generate": {"greedy": 0.97, "sample": 1.03, "beam": 1.25}, "compare_vs_three_generates": 0.44,
                "model": "tiny", "environment": {"cpu": "a CPU", "device_name": "a CPU"}}  # fmt: skip


def test_ratio_figure_bars_are_the_ratios():
    """The bars are the result's ratios, in the order of their labels (greedy, sample, beam, compare), each
    labelled with its value, on a Figure that pyplot does not own."""
    from matplotlib.figure import Figure

    fig = bench.ratio_figure(CHART_RESULT)
    assert isinstance(fig, Figure) and fig.canvas.manager is None  # built without pyplot
    (ax,) = fig.axes
    (bars,) = [c for c in ax.containers if hasattr(c, "patches")]
    expected = [0.97, 1.03, 1.25, 0.44]
    assert [round(p.get_height(), 6) for p in bars.patches] == expected
    assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in expected]
    texts = [t for t in fig.findobj(lambda o: hasattr(o, "get_fontsize") and hasattr(o, "get_text")) if t.get_text()]
    assert texts and min(t.get_fontsize() for t in texts) >= 12


def test_write_png_writes_a_png(tmp_path):
    path = bench.write_png(CHART_RESULT, tmp_path / "sub" / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_bench_has_no_plotly():
    """plotly is leaving the project: the benchmark draws with matplotlib."""
    import inspect

    assert "plotly" not in inspect.getsource(bench)


# ----------------------------------------------------------------------------------------------------------
# Felt speed in a real browser (`--browser`): a smoke test on the tiny model, one round of each


def _browser_or_skip():
    """playwright and chromium, or a skip (a failure when PLAYGROUND_REQUIRE_BROWSER=1, as in CI)."""
    import os

    from playground.measure import felt

    try:
        felt.require_browser()
    except felt.BrowserUnavailable as e:
        if os.environ.get("PLAYGROUND_REQUIRE_BROWSER") == "1":
            pytest.fail(f"PLAYGROUND_REQUIRE_BROWSER=1 but {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def felt_result(tiny_model_dir):
    _browser_or_skip()
    from playground.measure import felt

    return felt.measure(tiny_model_dir, rounds={"step": 1, "run": 1, "preview": 1})


def test_browser_measures_every_action(felt_result):
    """Every timing is a real duration (not 0, NaN or None), the page was seen pending (so a time cannot be the
    page not having reacted yet), and the run streamed every token. The preview is required once the app has
    a preview endpoint; until then it is None with the reason."""
    from playground import ui

    actions = ["step", "run"]
    if hasattr(ui.api, "preview"):
        actions.append("preview")
    else:
        assert felt_result["preview"] is None and felt_result["preview_error"]
    for action in actions:
        t = felt_result[action]
        for key in ("page_median_ms", "page_p95_ms", "api_median_ms", "api_p95_ms", "ratio"):
            assert _finite_positive(t[key]), (action, key)
        assert len(t["page_ms"]) == len(t["api_ms"]) == 1 and all(map(_finite_positive, t["page_ms"] + t["api_ms"]))
        if action != "preview":
            assert t["page_saw_pending"], action
    assert felt_result["run"]["tokens_on_page"] == felt_result["settings"]["max_new_tokens"]
    assert felt_result["page_defaults_differ"] == {}  # the API got the page's own settings
    felt_keys = ["felt_step_ms", "felt_step_vs_api", "felt_run_vs_api"]
    for key in felt_keys + (["felt_preview_ms"] if "preview" in actions else []):
        assert _finite_positive(felt_result[key]), key


def test_browser_numbers_reach_goals_and_table(felt_result, tiny_result):
    result = dict(tiny_result, browser=felt_result)
    g = bench.goals(result)
    assert g["felt_step_ms"]["value"] == felt_result["felt_step_ms"] and g["felt_step_ms"]["met"] in (True, False)
    assert g["felt_run_vs_api"]["met"] in (True, False)
    table = bench.format_table(dict(result, goals=g))
    assert "felt in Chromium vs API" in table and "Step (1 round)" in table and "Run to the end" in table


def test_goals_without_the_browser_are_unmeasured(tiny_result):
    g = bench.goals(tiny_result)
    assert all(g[k]["met"] is None for k in ("felt_step_ms", "felt_step_vs_api", "felt_run_vs_api", "felt_preview_ms"))
    assert "felt in Chromium" not in bench.format_table(tiny_result)


def test_browser_flag_parses_and_a_missing_chromium_is_one_line(monkeypatch, capsys):
    """`--browser` without a browser stops before the long part, with one line saying what is missing."""
    from playground.measure import felt

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert parser.parse_args(["--browser", "--quick"]).browser and not parser.parse_args([]).browser
    monkeypatch.setattr(felt, "CHROMIUM", "/nonexistent/chromium")
    assert bench.cli(["--browser", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "/nonexistent/chromium" in err
