"""The classroom benchmark (playground/measure/classroom.py): its class is the mix it promises, its flags reach
it through the CLI, and a short lesson (3 students on the tiny model, ~3 s of Steps) reports real
measurements: counts from the lesson, ordered percentiles, the server's memory read, every run replayed alone.
No timed assertions: the figures depend on the machine. ~30-40 s on 2 busy cores (the app's start most of it).
"""

from __future__ import annotations

import json

import pytest

from playground.cli import build_parser
from playground.measure import classroom
from playground.measure.classroom import MIX, ClassroomSettings, goal_for, make_class

pytest.importorskip("psutil")
pytest.importorskip("httpx")


def test_the_class_is_the_promised_mix_and_is_seeded():
    """Mostly sampled runs, some greedy, a few beam (2-4 beams); the same seed makes the same class, another
    seed another class (prompts and seeds drawn, not fixed)."""
    students = make_class(30, seed=0)
    mix = {k: sum(s.strategy == k for s in students) for k in ("sample", "greedy", "beam")}
    assert mix == {"sample": 21, "greedy": 6, "beam": 3}
    assert all(2 <= s.num_beams <= 4 for s in students if s.strategy == "beam")
    assert {s.strategy for s in make_class(3)} == set(MIX)  # any class of 3 or more has every strategy
    assert make_class(30, seed=0) == students
    other = make_class(30, seed=1)
    assert [s.seed for s in other] != [s.seed for s in students]
    examples = {e["prompt"] for e in classroom.load_examples()}
    assert {s.prompt for s in students} <= examples and len({s.prompt for s in students}) > 1
    assert len({(s.temperature, s.top_k, s.top_p) for s in students if s.strategy == "sample"}) > 1


def test_bad_settings_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="at least one student"):
        ClassroomSettings(students=0)
    with pytest.raises(ValueError, match="min <= max"):
        ClassroomSettings(think_min_s=3, think_max_s=2)


def test_goals_follow_the_class_size():
    """A class is held to the goals of the smallest listed size at least its own."""
    assert goal_for("step_p95_s", 5) == goal_for("step_p95_s", 30) == 1.0
    assert goal_for("step_p95_s", 31) == goal_for("step_p95_s", 100) == 2.5
    assert goal_for("step_p95_s", 101) is None
    assert goal_for("errors", 30) == 0


def test_the_cli_routes_bench_classroom_and_quick():
    parser = build_parser()
    args = parser.parse_args(["bench", "--classroom", "--quick"])
    s = classroom.settings_from(args)
    assert (s.students, s.duration_s) == (5, 15.0)
    args = parser.parse_args(["bench", "--classroom", "12", "--duration", "20", "--think-min", "1", "--think-max",
                              "1.5", "--seed", "7", "--json"])  # fmt: skip
    s = classroom.settings_from(args)
    assert (s.students, s.duration_s, s.think_min_s, s.think_max_s, s.seed) == (12, 20.0, 1.0, 1.5, 7)
    assert args.json
    assert parser.parse_args(["bench"]).classroom is None  # plain `bench` is still the engine benchmark


def test_a_short_lesson_reports_real_measurements(tiny_model_dir, tmp_path, capsys):
    """Through the CLI's `main`, with --json and --out: 3 students (one of each strategy) step for 3 s, then
    Run together; the report's numbers come from that lesson."""
    out = tmp_path / "classroom.json"
    args = build_parser().parse_args([
        "bench", "--classroom", "3", "--duration", "3", "--think-min", "0.2", "--think-max", "0.6",
        "--settle", "1", "--park-after", "1", "--run-tokens", "12", "--model", tiny_model_dir,
        "--json", "--out", str(out), "--log", str(tmp_path / "app.log"),
    ])  # fmt: skip
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    r = json.loads(out.read_text())
    assert printed == r

    step, run_all, server, eq = r["step"], r["run_all"], r["server"], r["tokens_equal_alone"]
    assert r["errors"]["count"] == 0, r["errors"]["first"]
    assert step["count"] >= 3  # every student answered at least once
    assert 0 < step["p50_s"] <= step["p95_s"] <= step["max_s"]
    assert step["per_s"] > 0 and step["prepares_sent"] > 0
    assert run_all["done"] == run_all["students"] == 3
    assert 0 < run_all["first_s"] <= run_all["median_s"] <= run_all["last_s"]
    assert 0 < run_all["first_token_median_s"] <= run_all["last_s"]
    assert 3 <= run_all["tokens"] <= 3 * 12
    rss = server["rss_mb"]
    assert rss["start"] > 0 and rss["peak"] >= max(v for k, v in rss.items() if k != "peak")
    assert set(rss) >= {"start", "warm", "after steps", "after Run", "after 1 s idle", "peak"}
    assert server["answering_after_idle"]
    assert server["cpu_cores"]["steps"] > 0 and r["simulator"]["cpu_s"] > 0
    # every student's runs (the stepped one, the Run-all one) were replayed alone from their permalinks
    assert eq["students_compared"] == 3 and eq["unreadable_permalinks"] == 0
    assert eq["runs"] >= 6 and 0 <= eq["runs_equal"] <= eq["runs"]
    assert 0 <= eq["students_equal"] <= eq["students"] == 3
    assert eq["students_equal"] == 3, eq["mismatches"]  # alone on the server, every run is its recipe's
    assert set(r["goals"]) == {"step_p95_s", "run_last_s", "errors", "rss_growth_mb"}
    # the model's own time for that Run-all, timed in this process: every student's rows, 12 forwards
    floor = r["model_floor"]
    assert floor["rows"] == sum(s.num_beams if s.strategy == "beam" else 1 for s in classroom.make_class(3))
    assert 0 < floor["one_row_forward_s"] and 0 < floor["forward_s"] and floor["threads"] >= 1
    assert floor["run_all_s"] == pytest.approx(12 * floor["forward_s"], abs=0.002)
    assert floor["run_last_x"] == pytest.approx(run_all["last_s"] / floor["run_all_s"], rel=0.01)
    text = classroom.format_report(r)
    assert "p95" in text and "3/3 done" in text and "3/3 students" in text and "its own time" in text
