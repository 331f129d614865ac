"""Load test: many users at once on one app, over loopback only, with `gradio_client`.

    python scripts/loadtest.py --model ./my-tiny-model             # start app.py on a free port and drive it
    python scripts/loadtest.py --model ./m --sessions 40 --requests 5 --waves 3
    python scripts/loadtest.py --url http://127.0.0.1:7860/ --model ./m   # an app that is already running

Each session is one `Client` (its own Gradio session, so its own `gr.State`) in its own thread, with its own
prompt, seed and strategy, making a fixed number of /step or /compare requests. Every response is checked
against what the same request gives alone: the expected tokens are computed with the engine directly, in this
process, on the same model folder. A monitor thread keeps asking the server for /gradio_api/info and samples
the server's memory (RSS, psutil). Prints requests/s, p50/p95/max latency, memory and every mismatch.

`tests/test_load.py` imports this file and runs a small version. It knows nothing about the page's layout: it
uses only the named API endpoints documented in docs/ui.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROMPTS = [
    "Once upon a time there was",
    "The quick brown fox",
    "Paris is the capital of",
    "1 2 3 4 5",
    "Temperature, top-k and top-p",
    "Rome is the capital of Italy. Paris",
    "a b c d e f",
    "There was a small model that liked",
]
STRATEGIES = ("greedy", "sample", "beam")
FINISHED = "The run has finished"  # what /step says when the run already ended (EOS or max_new_tokens)


# ----------------------------------------------------------------------------------------------------------
# The app under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python app.py --port P --model M` in a subprocess, on 127.0.0.1 only."""

    def __init__(self, model: str, port: int | None = None, env: dict | None = None, log_path: str | None = None):
        self.model, self.port = model, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.log_path = log_path or os.devnull
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240.0) -> App:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(self.port), "--model", self.model],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with status {self.proc.returncode} (log: {self.log_path}).")
            if self.answers():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"app.py did not answer on {self.url} within {timeout:.0f} s (log: {self.log_path}).")

    def answers(self, timeout: float = 5.0) -> bool:
        import httpx

        try:
            return httpx.get(self.url + "gradio_api/info", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def rss(self) -> int:
        """Resident memory of the server process and its children, in bytes."""
        import psutil

        try:
            proc = psutil.Process(self.proc.pid)
            return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ----------------------------------------------------------------------------------------------------------
# What each request should give, computed with the engine directly


@dataclass(frozen=True)
class Plan:
    """One session's requests: the same settings each time, `requests` calls of `endpoint`."""

    index: int
    endpoint: str  # "/step" or "/compare"
    prompt: str
    strategy: str
    seed: int
    requests: int
    model: str = "default"
    max_new_tokens: int = 8
    num_samples: int = 2

    def controls(self) -> dict:
        return dict(prompt=self.prompt, model=self.model, chat=False, system="", strategy=self.strategy,
                    temperature=1.2, top_k=40, top_p=0.95, min_p=0.0, repetition_penalty=1.1, num_beams=3,
                    length_penalty=1.0, max_new_tokens=self.max_new_tokens, top_n=5, seed=self.seed)  # fmt: skip

    def config(self, strategy: str | None = None):
        from playground.config import DecodingConfig

        c = self.controls()
        return DecodingConfig(strategy=strategy or self.strategy, **{k: c[k] for k in (
            "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "num_beams", "length_penalty",
            "max_new_tokens", "top_n", "seed")})  # fmt: skip


def make_plans(sessions: int, requests: int, seed0: int = 0) -> list[Plan]:
    plans = []
    for i in range(sessions):
        endpoint = "/compare" if i % 5 == 4 else "/step"
        plans.append(Plan(index=i, endpoint=endpoint, prompt=PROMPTS[i % len(PROMPTS)],
                          strategy=STRATEGIES[i % len(STRATEGIES)], seed=seed0 + 1000 + 7 * i,
                          requests=requests))  # fmt: skip
    return plans


def expected_results(engine, plan: Plan) -> list:
    """The response each of the plan's requests must give, by the engine alone (no app, no other users)."""
    ids = engine.encode(plan.prompt)
    if plan.endpoint == "/compare":  # every request is a whole new comparison: all the same
        traces = engine.compare(ids, plan.config("sample"), num_samples=plan.num_samples)
        return [{label: t.token_ids for label, t in traces.items()}] * plan.requests
    session = engine.start(ids, plan.config())
    out = []
    for _ in range(plan.requests):
        if session.done:  # the app answers a step past the end with its "run has finished" message
            out.append(FINISHED)
            continue
        session.step()
        out.append(list(session.token_ids))
    return out


# ----------------------------------------------------------------------------------------------------------
# The load


@dataclass
class Report:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    probe_failures: int = 0
    probes: int = 0
    rss_start: int = 0
    rss_peak: int = 0
    rss_end: int = 0
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

    def summary(self) -> str:
        mib = 1024 * 1024
        return (
            f"{self.requests} requests in {self.wall_s:.1f} s = {self.requests / max(self.wall_s, 1e-9):.2f} req/s | "
            f"latency p50 {self.percentile(0.5):.3f} s, p95 {self.percentile(0.95):.3f} s, "
            f"max {max(self.latencies, default=float('nan')):.3f} s | errors {len(self.errors)}, "
            f"mismatches {len(self.mismatches)}, health probes failed {self.probe_failures}/{self.probes} | "
            f"server RSS {self.rss_start / mib:.0f} -> peak {self.rss_peak / mib:.0f} -> {self.rss_end / mib:.0f} MiB"
        )


def _call(client, plan: Plan):
    if plan.endpoint == "/compare":
        out = client.predict(**plan.controls(), num_samples=plan.num_samples, api_name="/compare")
        return {label: r["token_ids"] for label, r in out[0].items()}
    out = client.predict(**plan.controls(), n_steps=1, api_name="/step")
    return out[0]["token_ids"]


def run_session(url: str, plan: Plan, expected: list, report: Report, lock: threading.Lock, start: threading.Event):
    from gradio_client import Client

    try:
        client = Client(url, verbose=False)
    except Exception as e:  # noqa: BLE001 - recorded, reported
        with lock:
            report.errors.append(f"session {plan.index}: could not connect: {type(e).__name__}: {e}")
        return
    start.wait()
    for r in range(plan.requests):
        t0 = time.perf_counter()
        try:
            got = _call(client, plan)
        except Exception as e:  # noqa: BLE001
            if expected[r] == FINISHED and FINISHED in str(e):  # the right answer, as an error message
                got = FINISHED
            else:
                with lock:
                    report.errors.append(f"session {plan.index} request {r}: {type(e).__name__}: {str(e)[:200]}")
                continue
        elapsed = time.perf_counter() - t0
        with lock:
            report.latencies.append(elapsed)
            if got != expected[r]:
                report.mismatches.append(f"session {plan.index} ({plan.endpoint} {plan.strategy}) request {r}: "
                                         f"got {got}, alone it gives {expected[r]}")  # fmt: skip


def run_load(app: App, engine, sessions: int = 20, requests: int = 3, seed0: int = 0,
             extra: list[threading.Thread] | None = None) -> Report:  # fmt: skip
    """Drive `app` with `sessions` concurrent clients; `extra` threads (other scenarios) run alongside."""
    plans = make_plans(sessions, requests, seed0)
    expected = {p.index: expected_results(engine, p) for p in plans}
    report, lock, start, done = Report(), threading.Lock(), threading.Event(), threading.Event()
    report.rss_start = report.rss_peak = app.rss() if app.proc else 0

    def monitor():
        import httpx

        while not done.is_set():
            ok = False
            try:
                ok = httpx.get(app.url + "gradio_api/info", timeout=30).status_code == 200
            except httpx.HTTPError:
                pass
            with lock:
                report.probes += 1
                report.probe_failures += not ok
                if app.proc:
                    report.rss_peak = max(report.rss_peak, app.rss())
            done.wait(0.5)

    threads = [threading.Thread(target=run_session, args=(app.url, p, expected[p.index], report, lock, start))
               for p in plans]  # fmt: skip
    watcher = threading.Thread(target=monitor, daemon=True)
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    watcher.start()
    start.set()
    for t in extra or []:
        t.start()
    for t in [*threads, *(extra or [])]:
        t.join()
    report.wall_s = time.perf_counter() - t0
    done.set()
    watcher.join()
    report.rss_end = app.rss() if app.proc else 0
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder the app serves (and the expected tokens use)")
    parser.add_argument("--url", default=None, help="an app already running (default: start app.py on a free port)")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--requests", type=int, default=3, help="requests per session")
    parser.add_argument("--waves", type=int, default=2, help="repeat the load; memory should not grow per wave")
    parser.add_argument("--log", default=None, help="where the app's output goes (default: discarded)")
    args = parser.parse_args(argv)

    from playground.loading import load_engine

    engine = load_engine(args.model, device="cpu")
    app = App(args.model, log_path=args.log)
    if args.url:
        app.url = args.url if args.url.endswith("/") else args.url + "/"
    else:
        print(f"starting app.py on {app.url} with {args.model} ...", flush=True)
        app.start()
    failed = False
    try:
        for wave in range(args.waves):
            report = run_load(app, engine, args.sessions, args.requests, seed0=wave * 100_000)
            print(f"wave {wave + 1}: {args.sessions} sessions x {args.requests} requests: {report.summary()}", flush=True)
            for line in report.errors[:10] + report.mismatches[:10]:
                print("  " + line)
            failed |= bool(report.errors or report.mismatches or report.probe_failures)
    finally:
        if not args.url:
            app.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
