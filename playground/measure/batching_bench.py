"""Micro-benchmark of shared forwards (batching.py): N runs stepping at once, sharing on and off, and how far a
shared forward's logits drift from a lone one's.

    python -m playground.measure.batching_bench [--sessions 1 8 16 32] [--steps 16] [--threads 2]
    python -m playground.measure.batching_bench --run-all 30 --threads 1     # a class pressing Run, engine alone

`concurrent_steps` starts N threads, each with its own greedy `Session` of a different prompt, and lets them step
together: forwards made per second, steps served per second, the per-step latency (p50/p95/max) and the
process's CPU time per step (the fair figure on a machine shared with other jobs, where more threads get more
of the cores). `lone_step`
times one run stepping with nobody else, sharing on and off: what the batcher adds when a visitor is alone.
`logit_drift` makes the same next forwards of B runs (prompts of different lengths) alone and shared, and reports
the largest logit difference and whether the argmax moved. `run_all` is the classroom benchmark's Run all
(measure/classroom.py) without the app: the class's runs (its mix of strategies and prompts), each in its own
thread, start at one moment and run to the end; it says when the first, median and last ended and how long the
model was held by shared forwards, which bounds what the app can do (to match a hosted app's process, run it
with OMP_NUM_THREADS=1 MKL_DISABLE_FAST_MM=1 MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=8388608). The figures
are indicative on a shared machine.

Measurement beside the product: nothing in the app imports this module. It knows nothing of Gradio.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import threading
import time

import torch

from ..config import DecodingConfig

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a land far far away, there lived a",
    "1 2 3 4",
    "Write a short poem about the sea.",
    "def fibonacci(n):",
    "The three primary colours are",
    "In 1969, the first person to walk on the Moon was",
    "Photosynthesis is the process by which plants",
]


def _prompt(engine, i: int) -> list[int]:
    """Prompt i: one of PROMPTS, made longer by a number of words every eighth, so lengths all differ."""
    text = PROMPTS[i % len(PROMPTS)] + " and so on" * (i // len(PROMPTS))
    return engine.encode(text)


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": 1e3 * statistics.median(ordered),
        "p95_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max_ms": 1e3 * ordered[-1],
    }


def concurrent_steps(engine, sessions: int, steps: int = 16, share: bool = True) -> dict:
    """`sessions` threads, each stepping its own greedy run `steps` times at once -> forwards/s, steps/s and the
    per-step latency. The prefills are made first, one at a time, and are not timed."""
    config = DecodingConfig(max_new_tokens=steps)
    runs = [engine.start(_prompt(engine, i), config) for i in range(sessions)]
    latencies: list[float] = []
    lock = threading.Lock()
    gate = threading.Barrier(sessions)
    saved = engine.share_forwards
    engine.share_forwards = share
    engine.batcher.reset_stats()

    def step_all(run) -> None:
        gate.wait()
        mine = []
        for _ in range(steps):
            if run.done:
                break
            start = time.perf_counter()
            run.step()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=step_all, args=(run,)) for run in runs]
    cpu = time.process_time()  # CPU seconds of this process: on a machine shared with other jobs, more threads
    start = time.perf_counter()  # get a bigger share of the cores, so wall time alone flatters sharing off
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        engine.share_forwards = saved
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    stats = engine.batcher.stats()
    forwards = stats.forwards if share else len(latencies)
    return {
        "sessions": sessions, "share": share, "steps": len(latencies), "wall_s": wall,
        "forwards": forwards, "forwards_per_s": forwards / wall, "steps_per_s": len(latencies) / wall,
        "rows_per_forward": stats.rows_per_forward if share else 1.0,
        "mean_wait_ms": stats.mean_wait_ms if share else 0.0,
        "cpu_ms_per_step": 1e3 * cpu / max(len(latencies), 1),
        **_quantiles(latencies),
    }


def lone_step(engine, steps: int = 24, repeats: int = 4) -> dict:
    """One run alone stepping `steps` times, sharing switched on and off at alternate steps (`repeats` runs, each
    starting with the other setting) -> the median step of each (ms), their difference, and the longest a lone
    request waited in the batcher: what going through it costs a visitor with no company. (Whole runs alternated
    instead pick up whatever the machine does meanwhile: on a shared machine that drowns the difference.)"""
    config = DecodingConfig(max_new_tokens=steps)
    times: dict[bool, list[float]] = {True: [], False: []}
    saved = engine.share_forwards
    engine.batcher.reset_stats()
    try:
        for repeat in range(repeats):
            run = engine.start(_prompt(engine, 0), config)
            i = 0
            while not run.done:
                share = (i + repeat) % 2 == 0
                engine.share_forwards = share
                start = time.perf_counter()
                run.step()
                times[share].append(time.perf_counter() - start)
                i += 1
    finally:
        engine.share_forwards = saved
    on, off = (1e3 * statistics.median(times[s]) for s in (True, False))
    return {"step_ms_sharing_on": on, "step_ms_sharing_off": off, "added_ms": on - off,
            "wait_ms_max": 1e3 * engine.batcher.stats().wait_s_max, "path_overhead_us": path_overhead(engine)}


def path_overhead(engine, calls: int = 5000) -> float:
    """What the batcher's path costs a lone forward, in microseconds, without the forward itself (a step's noise
    on a shared machine hides it): `stackable` on a real cache and the batcher's bookkeeping, around a no-op."""
    from ..batching import ForwardBatcher, stackable

    run = engine.start(_prompt(engine, 0), DecodingConfig(max_new_tokens=4))
    run.step()
    ids, cache = run._batch.pending[:, None], run._batch.cache  # (1, 1) and the real cache
    batcher = ForwardBatcher(lambda i, c: (i, c), lambda *a: None)
    start = time.perf_counter()
    for _ in range(calls):
        if stackable(ids, cache):
            batcher.forward(ids, cache)
    return (time.perf_counter() - start) / calls * 1e6


@torch.inference_mode()
def logit_drift(engine, sizes: tuple[int, ...] = (2, 8, 16, 32), warmup_steps: int = 3) -> list[dict]:
    """For each batch size B: B greedy runs of prompts of different lengths, `warmup_steps` steps each (alone), then
    their next forward made alone (on a copy of each cache) and shared (one forward for all) -> the largest
    absolute logit difference, and how many rows' argmax moved (with the smallest top-2 margin among the rows)."""
    results = []
    for size in sizes:
        config = DecodingConfig(max_new_tokens=warmup_steps + 2)
        runs = [engine.start(_prompt(engine, i), config) for i in range(size)]
        saved = engine.share_forwards
        engine.share_forwards = False
        try:
            for run in runs:
                for _ in range(warmup_steps):
                    if not run.done:
                        run.step()
        finally:
            engine.share_forwards = saved
        runs = [run for run in runs if not run.done]  # a run that ended (EOS) has no next forward
        batches = [run._batch for run in runs]
        items = [(b.pending[:, None], b.cache) for b in batches]  # each run's next forward: (R, 1) after its cache
        alone = [engine._forward_alone(ids, copy.deepcopy(cache))[0] for ids, cache in items]  # (R, V) each
        shared = [logits for logits, _ in engine.batcher.forward_together(items)]
        diff = max((a - s).abs().max().item() for a, s in zip(alone, shared))
        moved = sum(int((a.argmax(-1) != s.argmax(-1)).any()) for a, s in zip(alone, shared))
        margin = min((a.topk(2).values[:, 0] - a.topk(2).values[:, 1]).min().item() for a in alone)
        results.append(
            {"batch": len(runs), "max_abs_logit_diff": diff, "argmax_moved": moved, "smallest_margin": margin}
        )
    return results


def run_all(engine, students: int, tokens: int = 32, rounds: int = 2) -> list[dict]:
    """`students` of the classroom's class (`classroom.make_class`) start a fresh run at one moment, each in its
    own thread, and run `tokens` tokens: per round, when the first, median and last ended, the forwards made and
    the seconds the model was held by shared forwards (each round's runs have new seeds)."""
    from .classroom import make_class

    class_ = make_class(students)
    prompts = [engine.encode(s.prompt, chat=s.chat) for s in class_]
    held = [0.0]
    shared = engine.batcher._shared

    def timed_shared(batch):
        start = time.perf_counter()
        try:
            return shared(batch)
        finally:
            held[0] += time.perf_counter() - start

    engine.batcher._shared = timed_shared
    results = []
    try:
        for r in range(rounds):
            ended, gate = [0.0] * students, threading.Barrier(students + 1)

            def run(i, r=r):
                s = class_[i]
                config = DecodingConfig(
                    strategy=s.strategy, max_new_tokens=tokens, seed=s.seed + 1000 * (r + 1), top_n=10,
                    **({"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                        "repetition_penalty": s.repetition_penalty} if s.strategy == "sample" else {}),
                    **({"num_beams": s.num_beams} if s.strategy == "beam" else {}),
                )  # fmt: skip
                gate.wait()
                for _ in engine.start(prompts[i], config).run():
                    pass
                ended[i] = time.perf_counter() - t0

            threads = [threading.Thread(target=run, args=(i,)) for i in range(students)]
            for t in threads:
                t.start()
            engine.batcher.reset_stats()
            held[0] = 0.0
            t0 = time.perf_counter()
            gate.wait()
            for t in threads:
                t.join()
            stats = engine.sharing_stats()
            ends = sorted(ended)
            results.append({"first_s": ends[0], "median_s": statistics.median(ends), "last_s": ends[-1],
                            "forwards": stats.forwards, "rows_per_forward": stats.rows_per_forward,
                            "model_held_s": held[0]})  # fmt: skip
    finally:
        del engine.batcher._shared  # the class's own again
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m playground.measure.batching_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, a free CPU Space)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--drift", type=int, nargs="*", default=[2, 8, 16, 32], help="batch sizes for logit drift")
    parser.add_argument("--run-all", type=int, metavar="N", help="only this: N students of the classroom's class "
                        "press Run (32 tokens) at once, engine alone, two rounds")  # fmt: skip
    args = parser.parse_args(argv)
    from ..loading import load_engine

    torch.set_num_threads(args.threads)
    engine = load_engine(None, device=args.device)
    print(f"{engine.name} on {engine.device}, torch threads {torch.get_num_threads()}, window "
          f"{engine.sharing.window_ms} ms, max rows {engine.sharing.max_rows}")
    if args.run_all:
        for r in run_all(engine, args.run_all):
            print(f"run all ({args.run_all}): first {r['first_s']:.1f} s, median {r['median_s']:.1f} s, last "
                  f"{r['last_s']:.1f} s; {r['forwards']} forwards, {r['rows_per_forward']:.1f} rows each; the model "
                  f"held by shared forwards {r['model_held_s']:.1f} s")
        return
    lone = lone_step(engine)
    print(f"lone step: {lone['step_ms_sharing_off']:.1f} ms sharing off, {lone['step_ms_sharing_on']:.1f} ms on "
          f"({lone['added_ms']:+.2f} ms; longest wait in the batcher {lone['wait_ms_max']:.3f} ms); the batcher's path "
          f"alone {lone['path_overhead_us']:.0f} us a forward")
    print(f"{'sessions':>8} {'share':>5} {'forwards/s':>10} {'steps/s':>8} {'rows/fwd':>8} {'wait ms':>8} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'CPU ms/step':>11}")
    for n in args.sessions:
        for share in (False, True):
            r = concurrent_steps(engine, n, args.steps, share)
            print(f"{n:>8} {'on' if share else 'off':>5} {r['forwards_per_s']:>10.1f} {r['steps_per_s']:>8.1f} "
                  f"{r['rows_per_forward']:>8.1f} {r['mean_wait_ms']:>8.1f} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} "
                  f"{r['max_ms']:>7.0f} {r['cpu_ms_per_step']:>11.1f}")
    if args.drift:
        print(f"{'batch':>5} {'max |logit diff|':>17} {'argmax moved':>12} {'smallest margin':>15}")
        for r in logit_drift(engine, tuple(args.drift)):
            print(f"{r['batch']:>5} {r['max_abs_logit_diff']:>17.2e} {r['argmax_moved']:>12} "
                  f"{r['smallest_margin']:>15.3f}")


if __name__ == "__main__":
    main()
