"""Load test: many users at once on one app, over loopback only, with `gradio_client`.

    python scripts/loadtest.py --model ./my-tiny-model             # start app.py on a free port and drive it
    python scripts/loadtest.py --model ./m --sessions 40 --requests 5 --waves 3
    python scripts/loadtest.py --url http://127.0.0.1:7860/ --model ./m   # an app that is already running

Each session is one `Client` (its own Gradio session, so its own `gr.State`) in its own thread, with its own
prompt, seed and strategy, making a fixed number of /step or /compare requests. Every response is checked
against what the same request gives alone: the expected tokens are computed with the engine directly, in this
process, on the same model folder. A monitor thread keeps asking the server for /gradio_api/info and samples
the server's memory (RSS, psutil). Prints requests/s, p50/p95/max latency, memory and every mismatch.

`--attacks` runs, instead, what a stranger on a public Space tries, against the app in hosted mode: a flood of
120 requests from one session (and how long another visitor's Step then waits), /run and /step_n at once on
one session, a 100,000-character prompt and hostile permalinks, 300 sessions that never come back (the
server's memory before, at the peak and once they are parked and forgotten), a 100 MiB upload:

    python scripts/loadtest.py --model ~/.cache/decoding-playground/SmolLM2-135M-Instruct-f32 --attacks
    python scripts/loadtest.py --model ./m --attacks flood race

`tests/test_load.py` imports this file and runs a small version of both. It knows nothing about the page's
layout: it uses only the named API endpoints documented in docs/ui.md (the attacks speak the queue's HTTP
protocol directly, as a script on the internet would).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# the app under test, `python app.py` on a free loopback port: shared with the classroom benchmark
from playground.measure.served import App, free_port  # noqa: E402,F401 - after the sys.path line above

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


# ----------------------------------------------------------------------------------------------------------
# Attacks: what a stranger on a public Space tries (docs/robustness.md lists each, with its numbers)


class RawClient:
    """The queue's own HTTP protocol, without gradio_client: POST /gradio_api/queue/join, then read the session's
    event stream. Cheap enough to drive hundreds of sessions, and able to queue requests without waiting for
    them (a flood), which gradio_client's 40 worker threads would pace."""

    def __init__(self, url: str):
        import httpx

        self.url = url
        self.http = httpx.Client(timeout=httpx.Timeout(300.0, connect=30.0))
        config = self.http.get(url + "config").json()
        self.fn_index = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}

    def join(self, api_name: str, data: list, session_hash: str):
        """Queue one request; returns (event id, None) or (None, (HTTP status, the server's sentence))."""
        r = self.http.post(self.url + "gradio_api/queue/join", json={
            "data": data, "fn_index": self.fn_index[api_name], "session_hash": session_hash,
            "event_data": None, "trigger_id": None})  # fmt: skip
        if r.status_code != 200:
            return None, (r.status_code, r.json().get("detail", r.text) if r.text.startswith("{") else r.text)
        return r.json()["event_id"], None

    def results(self, session_hash: str, event_ids: set[str]) -> dict:
        """Read the session's stream until every event in `event_ids` completed: {event id: (ok, data or error)}."""
        import json as _json

        out = {}
        with self.http.stream("GET", self.url + "gradio_api/queue/data", params={"session_hash": session_hash}) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = _json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") in event_ids:
                    output = msg.get("output") or {}
                    out[msg["event_id"]] = (msg.get("success", False), output.get("data") or output.get("error"))
                    if len(out) == len(event_ids):
                        break
                elif msg.get("msg") == "close_stream":
                    break
        return out

    def call(self, api_name: str, data: list, session_hash: str):
        """One request, waited for: (ok, data or the error's sentence)."""
        event_id, refused = self.join(api_name, data, session_hash)
        if refused:
            return False, refused[1]
        return self.results(session_hash, {event_id}).get(event_id, (False, "no answer"))


def step_data(plan: Plan, n_steps: int = 1, permalink: str = "") -> list:
    """/step's and /step_n's inputs in the page's order: the state (the server's), the controls, N, the link."""
    from playground.ui.controls import CONTROL_NAMES, DEFAULTS

    c = plan.controls()  # the controls a plan sets; the rest (the More knobs) as the page's defaults
    return [None, *(c.get(k, getattr(DEFAULTS, k)) for k in CONTROL_NAMES), n_steps, permalink]


def _session() -> str:
    import uuid

    return uuid.uuid4().hex[:12]


def attack_flood(app: App, jobs: int = 120, n_steps: int = 64, max_new_tokens: int = 64, api_name: str = "step_n") -> dict:
    """One session queues `jobs` requests of `api_name` (N steps each) as fast as it can and never reads an
    answer (it "left"), each with another seed, so each is a new run (prefill and all); right after, another
    visitor presses Step. Measures how long the visitor waited and how the flood was answered."""
    raw = RawClient(app.url)
    flooder = Plan(0, "/step", " ".join(["The quick brown fox jumps over the lazy dog."] * 20), "sample", 0, 1,
                   max_new_tokens=max_new_tokens)  # fmt: skip
    visitor = Plan(1, "/step", "Paris is the capital of", "sample", 5, 1)
    hog = _session()
    t0 = time.perf_counter()
    queued, refused = 0, {}
    for i in range(jobs):
        _, no = raw.join(api_name, step_data(replace(flooder, seed=i), n_steps), hog)
        queued += no is None
        if no:
            refused[no[1]] = refused.get(no[1], 0) + 1
    submit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    ok, data = RawClient(app.url).call("step", step_data(visitor), _session())
    wait_s = time.perf_counter() - t1
    return {"jobs": f"{jobs} x /{api_name}", "submitted in s": round(submit_s, 2), "queued": queued, "refused at the door": refused,
            "visitor's Step answered": ok, "visitor's Step latency s": round(wait_s, 2),
            "visitor's answer": (data[0]["token_ids"] if ok else data)}  # fmt: skip


def attack_race(app: App, engine, tries: int = 5, max_new_tokens: int = 16) -> dict:
    """A Step, then /run and /step_n sent at once on the same session, `tries` times (a fresh session each): every
    answer must be a run's or one sentence, and the session's run must still be the seeded run, token for
    token."""
    raw = RawClient(app.url)
    plan = Plan(0, "/step", "Once upon a time there was", "sample", 11, 1, max_new_tokens=max_new_tokens)
    expected = engine.generate(engine.encode(plan.prompt), plan.config()).token_ids
    outcomes, errors, mismatches = {}, [], 0
    for _ in range(tries):
        hog = _session()
        raw.call("step", step_data(plan), hog)  # the session has a run: both requests below share it
        run_id, _ = raw.join("run", [*step_data(plan)[:-2], ""], hog)  # /step's inputs less n_steps
        step_id, _ = raw.join("step_n", step_data(plan, 4), hog)
        answers = raw.results(hog, {run_id, step_id})
        for name, event in (("run", run_id), ("step_n", step_id)):
            ok, data = answers.get(event, (False, "no answer"))
            kind = "answered" if ok else str(data).split(":")[0][:60]
            outcomes[f"{name}: {kind}"] = outcomes.get(f"{name}: {kind}", 0) + 1
            if not ok and not any(w in str(data) for w in ("still busy", "has finished")):
                errors.append(str(data)[:200])
        ok, data = raw.call("inspect", [None, 0, 5], hog)  # the session's run, as the server keeps it
        tokens = data[0]["token_ids"] if ok else None
        mismatches += tokens is None or tokens != expected[: len(tokens)] or not tokens
    return {"tries": tries, "outcomes": outcomes, "other errors": errors, "runs that are not the seeded run": mismatches}


def attack_long_prompts(app: App) -> dict:
    """A 100,000-character prompt, a permalink carrying a 10 MB prompt in 13 KB, a 544 KB zip bomb: each must be
    refused (or ignored) at once, in one sentence, without the server's memory growing."""
    import base64
    import json as _json
    import zlib

    raw = RawClient(app.url)
    plan = Plan(0, "/step", "", "greedy", 0, 1)
    out = {}
    before = app.rss()
    t = time.perf_counter()
    ok, data = raw.call("step", step_data(plan)[:1] + ["x " * 50_000] + step_data(plan)[2:], _session())
    out["100k-character prompt"] = (round(time.perf_counter() - t, 2), "answered" if ok else data)

    def link(doc_bytes: bytes) -> str:
        return base64.urlsafe_b64encode(zlib.compress(doc_bytes, 9)).decode().rstrip("=")

    doc = {"v": 1, "prompt": "a" * 10_000_000, "model": "default", "chat": False, "system": "",
           "config": plan.config().to_dict(), "steps": []}  # fmt: skip
    ten_mb = link(_json.dumps(doc).encode())
    packer = zlib.compressobj(9)  # 400 MB of JSON, packed without ever holding it
    packed = packer.compress(b'{"v":1,"prompt":"') + b"".join(packer.compress(b"a" * 2**20) for _ in range(400))
    bomb = base64.urlsafe_b64encode(packed + packer.compress(b'"}') + packer.flush()).decode().rstrip("=")
    for name, value in ((f"permalink, {len(ten_mb) / 1000:.0f} KB, carrying a 10 MB prompt", ten_mb),
                        (f"permalink bomb, {len(bomb) / 1000:.0f} KB", bomb)):  # fmt: skip
        t = time.perf_counter()
        short = Plan(0, "/step", "Hello", "greedy", 0, 1)
        ok, data = raw.call("step", step_data(short, permalink="?run=" + value), _session())
        note = f"a fresh run of n_steps={data[0]['n_steps']}" if ok else data
        out[name] = (round(time.perf_counter() - t, 2), note)
    out["server RSS growth MiB"] = round((app.rss() - before) / 2**20) if app.proc else None
    return out


def attack_many_sessions(app: App, sessions: int = 300, prompt_words: int = 120, threads: int = 4,
                         settle: tuple[tuple[str, float], ...] = (), top_n: int = 5) -> dict:  # fmt: skip
    """`sessions` sessions, each one /step on a prompt of `prompt_words` words, and never seen again; the server's
    RSS before, at the peak, right after, and at each (label, seconds after the load) of `settle` (the app parks
    a session idle for PLAYGROUND_SESSION_IDLE_S and forgets it after PLAYGROUND_SESSION_TTL_S)."""
    raw_clients = [RawClient(app.url) for _ in range(threads)]
    prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * (prompt_words // 9 + 1))
    rss = {"start": app.rss(), "peak": 0}
    failures: list[str] = []
    done = threading.Event()

    def drive(k: int):
        for i in range(k, sessions, threads):
            plan = Plan(i, "/step", f"{prompt} {i}", "greedy", 0, 1, max_new_tokens=4)
            data = step_data(plan)
            data[14] = top_n  # CONTROLS' "top_n", after the state
            ok, data = raw_clients[k].call("step", data, _session())
            if not ok:
                failures.append(str(data)[:200])

    def watch():
        while not done.is_set():
            rss["peak"] = max(rss["peak"], app.rss())
            done.wait(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    workers = [threading.Thread(target=drive, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    rss["after the load"] = app.rss()
    done.set()
    watcher.join()
    ended = time.perf_counter()
    for label, seconds in settle:
        time.sleep(max(0.0, ended + seconds - time.perf_counter()))
        rss[label] = app.rss()
    mib = {k: round(v / 2**20) for k, v in rss.items()}
    return {"sessions": sessions, "wall s": round(wall, 1), "failures": failures[:5], "n failures": len(failures),
            "RSS MiB": mib, "last - start MiB": list(mib.values())[-1] - mib["start"]}  # fmt: skip


def attack_upload(app: App, mib: int = 100) -> dict:
    """POST a `mib` MiB file to /gradio_api/upload (the page has no upload)."""
    import httpx

    t = time.perf_counter()
    r = httpx.post(app.url + "gradio_api/upload", files={"files": ("big.bin", b"0" * (mib * 2**20))}, timeout=120)
    return {"status": r.status_code, "answer": r.text[:120], "s": round(time.perf_counter() - t, 2)}


ATTACKS = ("flood", "race", "long-prompts", "many-sessions", "upload")


# the app the attacks run against: hosted mode, with sessions parked after 5 s idle and forgotten after 15 s, so
# that the many-sessions attack sees memory fall back within a minute
ATTACK_ENV = {"PLAYGROUND_HOSTED": "1", "PLAYGROUND_SESSION_IDLE_S": "5", "PLAYGROUND_SESSION_TTL_S": "15"}


def run_attacks(app: App, engine, names=ATTACKS, sessions: int = 300) -> dict:
    out = {}
    if "flood" in names:
        out["flood /step_n"] = attack_flood(app, api_name="step_n")
        time.sleep(5)
        out["flood /step"] = attack_flood(app, api_name="step")
        time.sleep(5)
    if "race" in names:
        out["race"] = attack_race(app, engine)
    if "long-prompts" in names:
        out["long-prompts"] = attack_long_prompts(app)
    if "many-sessions" in names:
        settle = (("parked (idle 5 s)", 8.0), ("forgotten (15 s)", 19.0))
        out["many-sessions"] = attack_many_sessions(app, sessions=sessions, settle=settle)
    if "upload" in names:
        out["upload"] = attack_upload(app)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder the app serves (and the expected tokens use)")
    parser.add_argument("--url", default=None, help="an app already running (default: start app.py on a free port)")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--requests", type=int, default=3, help="requests per session")
    parser.add_argument("--waves", type=int, default=2, help="repeat the load; memory should not grow per wave")
    parser.add_argument("--log", default=None, help="where the app's output goes (default: discarded)")
    parser.add_argument("--attacks", nargs="*", choices=ATTACKS, default=None,
                        help="instead of the load, the attacks (all when none is named), on an app started in "
                             "hosted mode with sessions parked after 5 s idle and forgotten after 15 s")  # fmt: skip
    parser.add_argument("--sessions-attack", type=int, default=300, help="sessions of the many-sessions attack")
    args = parser.parse_args(argv)

    from playground.loading import load_engine

    engine = load_engine(args.model, device="cpu")
    env = ATTACK_ENV if args.attacks is not None else None
    app = App(args.model, log_path=args.log, env=env)
    if args.url:
        app.url = args.url if args.url.endswith("/") else args.url + "/"
    else:
        print(f"starting app.py on {app.url} with {args.model} ...", flush=True)
        app.start()
    failed = False
    try:
        if args.attacks is not None:
            import json

            report = run_attacks(app, engine, tuple(args.attacks) or ATTACKS, sessions=args.sessions_attack)
            print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
            return 0
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
