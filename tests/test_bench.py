"""The benchmark's machinery on the tiny model: the JSON it writes, the CLI around it, the settings it gives
generate(). No assertion on speed: timings belong to the benchmark, not to tests."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from playground import bench

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
