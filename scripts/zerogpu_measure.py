"""How a run should wait between ZeroGPU calls: its KV cache kept (moved to the CPU) or dropped (rebuilt inside
each call). Times a 32-token run made one GPU call per Step under ZeroGPU's emulation, each way, beside the
same run without emulation, and reports per call the time and the bytes pickled each way. docs/zerogpu.md quotes
its output.

    .venv/bin/python scripts/zerogpu_measure.py [--model SPEC] [--device cpu] [--tokens 32] [--json]

Measurement beside the product: this script knows the gpu module's API and nothing of the page.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playground import gpu  # noqa: E402
from playground.config import DecodingConfig  # noqa: E402
from playground.loading import load_engine  # noqa: E402

PROMPT = "Write a short story about a robot who learns to paint."  # the page's default prompt kind of length


def run_once(engine, config: DecodingConfig, emulate: bool, keep_cache: bool) -> dict:
    gpu.KEEP_CACHE = keep_cache
    gpu.clear_calls()
    walls, tokens = [], []
    with gpu.emulating(emulate):
        session = gpu.new_session(engine, engine.encode(PROMPT), config)
        while not session.done:
            started = time.perf_counter()
            session, records = gpu.step(session, config)
            walls.append(time.perf_counter() - started)
            tokens += [r.token_id for r in records]
        calls = gpu.calls()
    gpu.KEEP_CACHE = True
    result = {
        "tokens": tokens,
        "ms_per_call_median": 1000 * statistics.median(walls),
        "ms_per_call_last": 1000 * walls[-1],
        "ms_total": 1000 * sum(walls),
    }
    if calls:
        args = [c.args_bytes for c in calls]
        back = [c.result_bytes for c in calls]
        result.update(args_bytes_first=args[0], args_bytes_median=int(statistics.median(args)), args_bytes_last=args[-1],
                      result_bytes_last=back[-1], duration_s_declared=calls[-1].duration_s)  # fmt: skip
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    engine = load_engine(args.model, device=args.device)
    config = DecodingConfig(strategy="sample", temperature=0.8, top_k=50, top_p=0.95, top_n=10, seed=0,
                            max_new_tokens=args.tokens)  # fmt: skip
    rows = {
        "direct (no emulation)": run_once(engine, config, emulate=False, keep_cache=True),
        "emulated, cache kept on the CPU": run_once(engine, config, emulate=True, keep_cache=True),
        "emulated, cache rebuilt in each call": run_once(engine, config, emulate=True, keep_cache=False),
    }
    same = len({tuple(r["tokens"]) for r in rows.values()}) == 1
    env = {"model": engine.name, "device": str(engine.device), "cpu": platform.processor() or platform.machine(),
           "tokens": args.tokens, "same_tokens": same}  # fmt: skip
    if args.json:
        print(json.dumps({"environment": env, "rows": rows}, indent=2))
        return 0 if same else 1
    print(f"{env['model']} on {env['device']}, {args.tokens} tokens, one call per Step; same tokens: {same}")
    print("| way | ms per call, median | last call | whole run, s | args pickled: first / median / last call | "
          "result pickled, last call |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        sizes = (f"{r['args_bytes_first'] / 1e3:.0f} KB / {r['args_bytes_median'] / 1e3:.0f} KB / "
                 f"{r['args_bytes_last'] / 1e3:.0f} KB") if "args_bytes_first" in r else "—"  # fmt: skip
        back = f"{r['result_bytes_last'] / 1e3:.0f} KB" if "result_bytes_last" in r else "—"
        print(f"| {name} | {r['ms_per_call_median']:.0f} | {r['ms_per_call_last']:.0f} | {r['ms_total'] / 1e3:.1f} | "
              f"{sizes} | {back} |")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
