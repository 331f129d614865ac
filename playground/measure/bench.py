"""The benchmark: the engine against transformers' `generate()`, in one process, on one model and prompt.

`python -m playground bench` measures, alternating the two sides and quoting medians:

    engine_vs_generate          tokens/s of `Engine.generate` (recording the top-20 candidates every step) over
                                tokens/s of `model.generate()`, for greedy, seeded sampling and beam search
                                (the median over rounds of each round's ratio; each round runs both sides)
    compare_vs_three_generates  time of one batched `Engine.compare` (greedy + beam + 1 sample) over the time of
                                the three matching `generate()` calls
    step_latency_ms             one Step of the web UI, server-side (`measure.ui_step.bench_step`: handler in, outputs out)
    time_split_ms               where each side's time goes (every model.forward is timed): the prefill, the
                                forward per generated token, and everything else per token
    cold_start_s / cached_load_s  loading the embedded model in a fresh process: first (GGUF -> cached copy,
                                `--cold` only) and cached
    browser                     `--browser`: Step, Run to the end and the Temperature preview as a person feels
                                them in headless Chromium, against the same through the API (playground.measure.felt)
    peak memory, and the machine it ran on

Both sides get the same settings (generate()'s are passed explicitly: `top_k=0` when off, since its default
is 50), warm-up runs and the same threads; token ids are compared and reported, as the engine should match
generate() token for token. This module knows the engine's public API, `generate()`, `measure.ui_step.bench_step` and
`felt.measure`; it knows nothing about how either decodes.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .stats import alternate, percentile

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
GOALS = {  # name -> (target, "min" (value must reach it) or "max" (must stay under it))
    "engine_vs_generate": (1.0, "min"),
    "compare_vs_three_generates": (0.5, "max"),
    "cached_load_s": (5.0, "max"),
    "step_latency_ms": (300.0, "max"),
    # felt in a real browser (`--browser`, playground.measure.felt): the page against the API doing the same work
    "felt_step_ms": (400.0, "max"),
    "felt_step_vs_api": (1.5, "max"),
    "felt_run_vs_api": (1.3, "max"),
    "felt_preview_ms": (300.0, "max"),
}
STRATEGIES = ("greedy", "sample", "beam")


# ----------------------------------------------------------------------------------------------------------
# Settings: the engine's DecodingConfig and the same thing as generate() kwargs


def engine_config(strategy: str, max_new_tokens: int, seed: int = 1):
    from ..config import DecodingConfig

    return DecodingConfig(
        strategy=strategy,
        temperature=0.8,
        top_k=40,
        top_p=0.95,
        num_beams=4,
        max_new_tokens=max_new_tokens,
        seed=seed,
        top_n=20,
    )


def generate_kwargs(config, pad_token_id: int | None) -> dict:
    """generate() kwargs for a DecodingConfig, every knob explicit (generate()'s own defaults differ)."""
    sample = config.strategy == "sample" and not config.is_greedy
    kwargs = dict(
        max_new_tokens=config.max_new_tokens,
        do_sample=sample,
        num_beams=config.num_beams if config.strategy == "beam" else 1,
        repetition_penalty=config.repetition_penalty,
        pad_token_id=pad_token_id,
    )
    if sample:  # the knobs only sampling uses (generate() warns about them otherwise); 0 / 1 / None = off
        kwargs.update(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p, min_p=config.min_p or None)
    if config.strategy == "beam":
        kwargs.update(length_penalty=config.length_penalty, early_stopping=config.early_stopping)
    return kwargs


# ----------------------------------------------------------------------------------------------------------
# The two sides, each a function returning (seconds, generated token ids)


def run_engine(engine, prompt_ids: list[int], config) -> tuple[float, list[int]]:
    started = time.perf_counter()
    trace = engine.generate(prompt_ids, config)
    return time.perf_counter() - started, trace.token_ids


def run_hf_generate(engine, prompt_ids: list[int], config) -> tuple[float, list[int]]:
    """model.generate() with the same settings; the global RNG seeded as the engine seeds its generator."""
    import torch

    inputs = torch.tensor([prompt_ids], dtype=torch.long, device=engine.device)  # (1, P)
    kwargs = generate_kwargs(config, _pad_id(engine))
    started = time.perf_counter()
    with torch.inference_mode():
        if kwargs["do_sample"]:
            torch.manual_seed(config.seed)
        out = engine.model.generate(inputs, attention_mask=torch.ones_like(inputs), **kwargs)  # (1, P + n)
    elapsed = time.perf_counter() - started
    return elapsed, out[0, len(prompt_ids) :].tolist()


def run_engine_compare(engine, prompt_ids: list[int], config) -> tuple[float, dict[str, list[int]]]:
    started = time.perf_counter()
    traces = engine.compare(prompt_ids, config, num_samples=1)
    return time.perf_counter() - started, {k: traces[k].token_ids for k in ("greedy", "beam", "sample")}


def run_three_generates(engine, prompt_ids: list[int], config) -> tuple[float, dict[str, list[int]]]:
    total, ids = 0.0, {}
    for strategy in ("greedy", "beam", "sample"):
        seconds, ids[strategy] = run_hf_generate(engine, prompt_ids, config.replace(strategy=strategy))
        total += seconds
    return total, ids


class ForwardTimer:
    """Times every call of `model.forward` while active (both sides call the model through it), so that a run
    splits into its prefill, its per-token forwards, and everything else (the decoding loop, and for the engine
    the records it keeps). Same overhead on both sides: one Python call around each forward."""

    def __init__(self, model):
        self.model = model
        self.calls: list[float] = []

    def __enter__(self) -> "ForwardTimer":
        inner = self.model.forward

        @functools.wraps(inner)  # keeps the signature: generate() reads it (logits_to_keep) to decide what to compute
        def forward(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.calls.append(time.perf_counter() - started)

        self.model.forward = forward  # an instance attribute: nn.Module.__call__ finds it first
        return self

    def __exit__(self, *exc) -> None:
        del self.model.forward


def timed_forwards(engine, side: Callable) -> Callable:
    """side() -> (seconds, ids)  becomes  () -> (seconds, ids, seconds of each forward call)."""

    def run():
        with ForwardTimer(engine.model) as timer:
            seconds, ids = side()
        return seconds, ids, timer.calls

    return run


def split_runs(runs: list) -> dict:
    """Where the time of (seconds, ids, forward calls) runs goes, medians in ms: the prefill (the first
    forward), a forward per generated token (the others), and the rest per generated token."""
    return {
        "prefill_ms": statistics.median(calls[0] for _, _, calls in runs) * 1e3,
        "forward_ms_per_token": statistics.median(sum(calls[1:]) / max(len(calls) - 1, 1) for _, _, calls in runs) * 1e3,
        "other_ms_per_token": statistics.median((s - sum(calls)) / max(len(ids), 1) for s, ids, calls in runs) * 1e3,
    }


def _pad_id(engine) -> int | None:
    pad = engine.model.generation_config.pad_token_id
    if pad is None:
        pad = engine.tokenizer.pad_token_id
    if pad is None and engine.vocab.eos_ids:
        pad = engine.vocab.eos_ids[0]
    return pad


# ----------------------------------------------------------------------------------------------------------
# Loading in a fresh process


_LOAD_SCRIPT = """
import json, sys, time
sys.path.insert(0, {repo!r})
import torch, transformers  # imports are not the load
from playground.loading import load_engine
started = time.perf_counter()
engine = load_engine({spec!r}, device={device!r})
print("BENCH_LOAD " + json.dumps({{"load_s": time.perf_counter() - started}}))
"""


def timed_load(spec: str | None, device: str, cache_dir: str | None = None, timeout: float = 600) -> dict:
    """Load `spec` in a subprocess (optionally with its own PLAYGROUND_CACHE_DIR); the load's seconds inside it
    (imports excluded) and the whole process's wall time."""
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"), TOKENIZERS_PARALLELISM="false")
    if cache_dir is not None:
        env["PLAYGROUND_CACHE_DIR"] = cache_dir
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT.format(repo=str(REPO), spec=spec, device=device)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    wall = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH_LOAD ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"loading {spec or 'the embedded model'} in a subprocess failed: {tail[0]}")
    return {"load_s": json.loads(lines[-1][len("BENCH_LOAD ") :])["load_s"], "process_s": wall}


# ----------------------------------------------------------------------------------------------------------
# The machine


def environment(engine=None) -> dict:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if engine is not None:
        env["device"] = str(engine.device)
        env["dtype"] = str(next(engine.model.parameters()).dtype).removeprefix("torch.")
        env["device_name"] = torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else cpu
    return env


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# ----------------------------------------------------------------------------------------------------------
# The run


def run_bench(
    model: str | None = None,
    device: str = "cpu",
    prompt: str = DEFAULT_PROMPT,
    max_new_tokens: int = 32,
    repeats: int = 9,
    quick: bool = False,
    cold: bool = False,
    ui_steps: int = 10,
    loads: bool = True,
    threads: int | None = None,
    browser: bool = False,
    screenshot: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run every measurement and return the result as a JSON-ready dict. `quick` cuts tokens and repeats;
    `browser` adds the felt speed in headless Chromium (under "browser"; its page screenshot at `screenshot`)."""
    import torch

    from ..loading import is_embedded, load_engine
    from ..prefills import PrefillCache

    say = progress or (lambda msg: None)
    if threads:
        torch.set_num_threads(threads)  # both sides run in this process, so they share it
    if quick:
        max_new_tokens, repeats, ui_steps = min(max_new_tokens, 8), 1, min(ui_steps, 4)
    started = time.perf_counter()
    engine = load_engine(model, device=device)
    engine.prefills = PrefillCache(0)  # every run makes its prompt's forward, as generate() does: timed, not kept
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
    prompt_ids = engine.encode(prompt, chat=False)
    result: dict = {
        "model": engine.name,
        "prompt": prompt,
        "prompt_tokens": len(prompt_ids),
        "settings": {
            "max_new_tokens": max_new_tokens,
            "repeats": repeats,
            "quick": quick,
            "engine_config": {s: engine_config(s, max_new_tokens).to_dict() for s in STRATEGIES},
            "generate_kwargs": {
                s: generate_kwargs(engine_config(s, max_new_tokens), _pad_id(engine)) for s in STRATEGIES
            },
        },
        "environment": environment(engine),
    }

    # 1. engine vs generate(), one strategy at a time
    ratios, matched, raw, split = {}, {}, {}, {}
    for strategy in STRATEGIES:
        say(f"engine vs generate(): {strategy} ({repeats} rounds of {max_new_tokens} tokens)...")
        config = engine_config(strategy, max_new_tokens)
        eng_runs, gen_runs = alternate(
            timed_forwards(engine, lambda: run_engine(engine, prompt_ids, config)),
            timed_forwards(engine, lambda: run_hf_generate(engine, prompt_ids, config)),
            repeats,
        )
        eng_ids, gen_ids = eng_runs[-1][1], gen_runs[-1][1]
        eng_tps = statistics.median(len(ids) / s for s, ids, _ in eng_runs)
        gen_tps = statistics.median(len(ids) / s for s, ids, _ in gen_runs)
        # each round's ratio (its two runs are adjacent in time), then the median: robust to load that comes
        # and goes on a shared machine, which a ratio of two medians is not
        ratios[strategy] = statistics.median(
            (len(e[1]) / e[0]) / (len(g[1]) / g[0]) for e, g in zip(eng_runs, gen_runs)
        )
        matched[strategy] = all(e[1] == g[1] for e, g in zip(eng_runs, gen_runs))
        split[strategy] = {"engine": split_runs(eng_runs), "generate": split_runs(gen_runs)}
        raw[strategy] = {
            "engine_s": [s for s, _, _ in eng_runs],
            "generate_s": [s for s, _, _ in gen_runs],
            "engine_forward_s": [calls for _, _, calls in eng_runs],
            "generate_forward_s": [calls for _, _, calls in gen_runs],
            "engine_tokens": len(eng_ids),
            "generate_tokens": len(gen_ids),
            "engine_tok_s": eng_tps,
            "generate_tok_s": gen_tps,
            "ratio_of_medians": eng_tps / gen_tps,
            "engine_token_ids": eng_ids,
            "generate_token_ids": gen_ids,
        }
    result["engine_vs_generate"] = ratios
    result["tokens_match"] = matched
    result["engine_vs_generate_raw"] = raw
    result["time_split_ms"] = split

    # 2. one batched compare vs three generate() calls
    say("compare (greedy + beam + sample, one batch) vs three generate() calls...")
    config = engine_config("sample", max_new_tokens)
    cmp_runs, three_runs = alternate(
        lambda: run_engine_compare(engine, prompt_ids, config), lambda: run_three_generates(engine, prompt_ids, config),
        repeats,
    )  # fmt: skip
    compare_s = statistics.median(s for s, _ in cmp_runs)
    three_s = statistics.median(s for s, _ in three_runs)
    result["compare_vs_three_generates"] = statistics.median(c / t for (c, _), (t, _) in zip(cmp_runs, three_runs))
    result["compare_tokens_match"] = {k: cmp_runs[-1][1][k] == three_runs[-1][1][k] for k in cmp_runs[-1][1]}
    result["compare_raw"] = {
        "compare_s": [s for s, _ in cmp_runs],
        "three_generates_s": [s for s, _ in three_runs],
        "ratio_of_medians": compare_s / three_s,
    }

    # 3. one UI Step, server-side
    result["step_latency_ms"], result["step_latency_p95_ms"], result["step_latency_error"] = None, None, None
    if ui_steps > 0:
        say(f"UI Step latency ({ui_steps} steps)...")
        try:
            from .ui_step import bench_step

            bench_step(engine, prompt, 1)  # warm-up: imports, figure templates
            times_ms = [t * 1000 for t in bench_step(engine, prompt, ui_steps)]
            result["step_latency_ms"] = statistics.median(times_ms)
            result["step_latency_p95_ms"] = percentile(times_ms, 95)
            result["step_latency_raw_ms"] = times_ms
        except (ImportError, AttributeError) as e:
            result["step_latency_error"] = f"playground.measure.ui_step.bench_step is not available: {e}"
    else:
        result["step_latency_error"] = "skipped (ui_steps=0)"

    result["peak_rss_mb"] = peak_rss_mb()
    result["cuda_max_memory_allocated_mb"] = (
        torch.cuda.max_memory_allocated(engine.device) / 2**20 if engine.device.type == "cuda" else None
    )

    # 4. felt in a real browser, `python app.py` in its own process on the same model
    result["browser"] = result["browser_error"] = None
    if browser:
        from . import felt

        try:
            result["browser"] = felt.measure(model, quick=quick, screenshot=screenshot, progress=say)
        except Exception as e:  # noqa: BLE001 - the rest of the run is kept; the reason is reported
            result["browser_error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    del engine

    # 5. loading in a fresh process: cold (embedded only, --cold) and cached
    result["cold_start_s"] = result["cached_load_s"] = None
    result["cold_start_note"] = None
    if loads:
        spec = None if is_embedded(model) else model
        if cold and spec is None:
            say("cold start: converting the embedded GGUF in a fresh cache (~20-30 s)...")
            with tempfile.TemporaryDirectory(prefix="playground-bench-cache-") as tmp:
                first = timed_load(spec, device, cache_dir=tmp)
                say("cached load...")
                cached = timed_load(spec, device, cache_dir=tmp)
            result["cold_start_s"], result["cold_start_process_s"] = first["load_s"], first["process_s"]
        else:
            result["cold_start_note"] = (
                "only the embedded model has a first-load conversion" if spec is not None else "run with --cold"
            )
            say("cached load...")
            cached = timed_load(spec, device)
        result["cached_load_s"], result["cached_load_process_s"] = cached["load_s"], cached["process_s"]

    result["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["goals"] = goals(result)
    result["total_s"] = time.perf_counter() - started
    return result


def goals(result: dict) -> dict:
    """Each goal: target, measured value(s) and whether it is met (None where it was not measured)."""
    out = {}
    felt = result.get("browser") or {}
    for name, (target, kind) in GOALS.items():
        value = felt.get(name) if name.startswith("felt_") else result.get(name)
        values = list(value.values()) if isinstance(value, dict) else [value]
        if any(v is None for v in values):
            met = None
        else:
            met = all(v >= target for v in values) if kind == "min" else all(v <= target for v in values)
        out[name] = {"target": target, "kind": kind, "value": value, "met": met}
    return out


# ----------------------------------------------------------------------------------------------------------
# Output: a compact table, the JSON file, the chart


def format_table(result: dict) -> str:
    env = result["environment"]
    rows = [f"{result['model']} on {env.get('device_name', env['cpu'])} ({env['cores']} cores, torch "
            f"{env['torch']}, transformers {env['transformers']}), {result['settings']['max_new_tokens']} new "
            f"tokens, ratios: median of {result['settings']['repeats']} alternating rounds"]  # fmt: skip
    rows.append(f"{'measure':<34}{'engine':>10}{'generate':>10}{'ratio':>8}  {'goal':<8}{'met':<5}ids")
    for s in STRATEGIES:
        r = result["engine_vs_generate_raw"][s]
        met = result["engine_vs_generate"][s] >= GOALS["engine_vs_generate"][0]
        rows.append(
            f"{s + ' tok/s':<34}{r['engine_tok_s']:>10.1f}{r['generate_tok_s']:>10.1f}"
            f"{result['engine_vs_generate'][s]:>8.2f}  {'>= 1.0':<8}{_yes(met):<5}"
            f"{'same' if result['tokens_match'][s] else 'DIFFER'}"
        )
    split = result.get("time_split_ms")
    if split:
        rows.append(f"  where the time goes, ms (medians){'prefill':>12}{'forward/token':>15}{'other/token':>13}")
        for s in STRATEGIES:
            for side in ("engine", "generate"):
                t = split[s][side]
                rows.append(
                    f"  {(s if side == 'engine' else ''):<8}{side:<24}{t['prefill_ms']:>12.1f}"
                    f"{t['forward_ms_per_token']:>15.2f}{t['other_ms_per_token']:>13.2f}"
                )
    c = result["compare_raw"]
    same = all(result["compare_tokens_match"].values())
    rows.append(
        f"{'compare vs 3 generates (s)':<34}{statistics.median(c['compare_s']):>10.2f}"
        f"{statistics.median(c['three_generates_s']):>10.2f}{result['compare_vs_three_generates']:>8.2f}  "
        f"{'<= 0.5':<8}{_yes(result['goals']['compare_vs_three_generates']['met']):<5}{'same' if same else 'DIFFER'}"
    )
    for key, label, unit, goal in (
        ("step_latency_ms", "UI Step, median (p95) ms", "ms", "<= 300"),
        ("cached_load_s", "cached load (fresh process) s", "s", "<= 5"),
        ("cold_start_s", "cold start (GGUF -> cache) s", "s", ""),
    ):
        value = result.get(key)
        if value is None:
            why = result.get("step_latency_error") if key == "step_latency_ms" else result.get("cold_start_note")
            rows.append(f"{label:<34}{'-':>10}{'':>18}  {goal:<8}{'':<5}{why or ''}")
            continue
        text = f"{value:.0f} ({result['step_latency_p95_ms']:.0f})" if key == "step_latency_ms" else f"{value:.1f}"
        met = result["goals"][key]["met"] if key in result["goals"] else None
        rows.append(f"{label:<34}{text:>10}{'':>18}  {goal:<8}{_yes(met):<5}")
    rows += browser_rows(result)
    mem = f"peak RSS {result['peak_rss_mb']:.0f} MiB"
    if result.get("cuda_max_memory_allocated_mb") is not None:
        mem += f", CUDA max allocated {result['cuda_max_memory_allocated_mb']:.0f} MiB"
    load = env.get("load_average")
    rows.append(mem + (f"; load average at start {load[0]:.1f}" if load else ""))
    return "\n".join(rows)


def browser_rows(result: dict) -> list[str]:
    """The table's rows for `--browser`: page and API medians (ms), felt ÷ API, the goals; none without it."""
    felt, error = result.get("browser"), result.get("browser_error")
    if felt is None:
        return [f"{'felt in Chromium':<34}{'-':>10}{'':>18}  {'':<8}{'':<5}{error}"] if error else []
    met = {name: g["met"] for name, g in goals(result).items()}
    rows = [f"{'felt in Chromium vs API, median ms':<34}{'page':>10}{'API':>10}{'ratio':>8}  {'goal':<8}{'met':<5}"
            f"Chromium {felt.get('chromium', '?')}, {felt.get('viewport', '')}"]  # fmt: skip
    for key, label, goal, goal_met, note in (
        ("step", "Step", "<= 1.5", met["felt_step_vs_api"], f"page median <= 400 ms: {_yes(met['felt_step_ms'])}"),
        ("run", "Run to the end", "<= 1.3", met["felt_run_vs_api"], ""),
        ("preview", "Temperature preview", "<= 300", met["felt_preview_ms"], "goal: page median, ms"),
    ):
        t = felt.get(key)
        if t is None:
            rows.append(f"  {label:<32}{'-':>10}{'-':>10}{'':>8}  {goal:<8}{'-':<5}{felt.get(key + '_error') or ''}")
            continue
        n = len(t["page_ms"])
        p95 = f"p95 {t['page_p95_ms']:.0f} / {t['api_p95_ms']:.0f}" if n > 1 else ""
        label = f"{label} ({n} round{'s' if n > 1 else ''})"
        rows.append(f"  {label:<32}{t['page_median_ms']:>10.0f}{t['api_median_ms']:>10.0f}{t['ratio']:>8.2f}  "
                    f"{goal:<8}{_yes(goal_met):<5}{'; '.join(x for x in (note, p95) if x)}")  # fmt: skip
    return rows


def _yes(met) -> str:
    return "-" if met is None else ("yes" if met else "NO")


def write_json(result: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


GOOD, BAD, INK = "#2a9d8f", "#e76f51", "#333333"  # bar colours (goal met / not met) and the goal lines


def ratio_figure(result: dict):
    """A bar chart of the ratios with their goal lines (1.0: engine at least as fast; 0.5: compare at most half
    the time), as a matplotlib Figure built without pyplot (no global state; text 12 pt and up)."""
    from matplotlib.figure import Figure

    labels = [f"{s}\nengine ÷ generate()" for s in ("greedy", "sample", "beam 4")] + ["compare ÷\n3 generate()"]
    values = [result["engine_vs_generate"][s] for s in STRATEGIES] + [result["compare_vs_three_generates"]]
    good = [v >= 1.0 for v in values[:3]] + [values[3] <= 0.5]
    env = result["environment"]

    fig = Figure(figsize=(9, 5.4), dpi=100, layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(range(4), values, width=0.8, color=[GOOD if g else BAD for g in good])
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], label_type="center", color="white", fontsize=14,
                 fontweight="bold")  # fmt: skip
    # each goal's line spans its own bars; the legend, outside the axes, names them (never over a bar)
    ax.hlines(1.0, -0.45, 2.45, colors=INK, linestyles="dashed", linewidth=1.5,
              label="goal: engine ÷ generate() ≥ 1.0 (tok/s)")
    ax.hlines(0.5, 2.55, 3.45, colors=INK, linestyles=(0, (2, 2)), linewidth=2,
              label="goal: compare ÷ 3 generate() ≤ 0.5 (time)")
    ax.set_xticks(range(4), labels, fontsize=12)
    ax.tick_params(axis="y", labelsize=12)
    ax.set_xlim(-0.6, 3.6)
    ax.set_ylim(0, max(1.3, max(values) * 1.15))
    ax.set_ylabel("ratio", fontsize=13)
    ax.set_title(f"Engine vs generate(): {result['model']}, {env.get('device_name', env['cpu'])}", fontsize=14)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e5e5e5")
    ax.set_axisbelow(True)
    fig.legend(loc="outside lower center", ncols=2, fontsize=12, frameon=False)
    return fig


def write_png(result: dict, path: str | os.PathLike) -> Path:
    """The ratio chart as a PNG at `path` (its folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ratio_figure(result).savefig(path)
    return path


# ----------------------------------------------------------------------------------------------------------
# The command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model folder or Hub id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (default: cpu)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="the prompt both sides continue")
    p.add_argument("--max-new-tokens", type=int, default=32, help="new tokens per run (default: 32; 8 with --quick)")
    p.add_argument("--repeats", type=int, default=9, help="timed rounds per measurement (default: 9; 1 with --quick)")
    p.add_argument("--ui-steps", type=int, default=10, help="UI Steps to time, 0 to skip (default: 10)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for both sides (default: torch's)")
    p.add_argument("--quick", action="store_true", help="few tokens, one round, no cold start: under a minute")
    p.add_argument("--cold", action="store_true", help="also time the first load of the embedded model (~20-30 s)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--out", default=None, help="where to write the JSON (default: bench-results/bench-<time>.json)")
    p.add_argument("--plot", default=None, metavar="PNG", help="also write a bar chart of the ratios (e.g. assets/bench.png)")
    p.add_argument("--browser", action="store_true", help="also time Step, Run and the Temperature preview as felt "
                   "in headless Chromium, against the API (needs playwright and chromium; --quick: a few minutes)")  # fmt: skip


def register(subparsers) -> None:
    """Add the `bench` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench", help="time the engine against transformers' generate()",
        description="Time the engine against transformers' generate() in one process: tokens/s per strategy, "
        "compare vs three generate() calls, UI Step latency, load times and memory.",
    )  # fmt: skip
    add_arguments(p)
    p.set_defaults(func=main)


def main(args) -> int:
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if not args.json else None
    if args.browser:  # before the long part, not after it
        from .felt import BrowserUnavailable, require_browser

        try:
            require_browser()
        except BrowserUnavailable as e:
            print(f"bench --browser: {e}", file=sys.stderr)
            return 2
    out = Path(args.out or REPO / "bench-results" / time.strftime("bench-%Y%m%d-%H%M%S.json"))
    screenshot = out.with_name(out.stem + "-page.png") if args.browser else None  # the page after the felt runs
    result = run_bench(
        model=args.model, device=args.device, prompt=args.prompt, max_new_tokens=args.max_new_tokens,
        repeats=args.repeats, quick=args.quick, cold=args.cold and not args.quick, ui_steps=args.ui_steps,
        threads=args.threads, browser=args.browser, screenshot=screenshot, progress=say,
    )  # fmt: skip
    write_json(result, out)
    if args.plot:
        write_png(result, args.plot)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
        print(f"JSON: {out}" + (f"; chart: {args.plot}" if args.plot else ""))
    return 0


def cli(argv: list[str] | None = None) -> int:
    """Run `bench` on its own (without the playground CLI): `cli(["--quick"])`."""
    parser = argparse.ArgumentParser(prog="python -m playground bench")
    add_arguments(parser)
    return main(parser.parse_args(argv))
