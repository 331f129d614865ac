"""The app as a server, seen from outside: `python app.py` started on a loopback port, its memory and CPU read
with psutil, and its named API spoken over the Gradio queue's HTTP protocol by one light client per visitor.

    App          `python app.py --host 127.0.0.1 --port P --model M` in a subprocess (env added to ours)
    NamedApi     each named endpoint's inputs, read once from the app's /config and /gradio_api/info, so that a
                 request is built from keyword arguments as gradio_client builds it (state inputs sent as None,
                 the server keeps them; anything not given takes the page's default)
    QueueClient  one browser session (its own session hash and HTTP connection): `send` queues a request
                 without waiting, `wait` reads the session's event stream until the given requests completed

Why not gradio_client: one `Client` per visitor costs a thread pool, a /config and an /info per visitor, and
paces a visitor's requests; a class of 100 students then spends more of a 2-core machine on the simulator
than this does. This module knows nothing about what the endpoints do: names in, Gradio's data out.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python app.py --port P --model M` in a subprocess, on 127.0.0.1 only."""

    def __init__(self, model: str | None, port: int | None = None, env: dict | None = None, log_path: str | None = None):
        self.model, self.port = model, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.log_path = log_path or os.devnull
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240.0) -> App:
        log = open(self.log_path, "ab")
        model = ["--model", self.model] if self.model else []  # none: the embedded model
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(self.port), *model],
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

    def _processes(self) -> list:
        import psutil

        if self.proc is None:  # an app this process did not start
            return []
        try:
            proc = psutil.Process(self.proc.pid)
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        """Resident memory of the server process and its children, in bytes (0 for an app not started here)."""
        import psutil

        try:
            return sum(p.memory_info().rss for p in self._processes())
        except psutil.Error:
            return 0

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process and its children have used so far."""
        import psutil

        try:
            return sum(t.user + t.system for t in (p.cpu_times() for p in self._processes()))
        except psutil.Error:
            return 0.0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NamedApi:
    """The app's named endpoints: for each, its fn_index and its inputs in order (a state input as None, every
    other one as (parameter name, default)), read once from a running app."""

    def __init__(self, url: str, timeout: float = 30.0):
        import httpx

        self.url = url if url.endswith("/") else url + "/"
        config = httpx.get(self.url + "config", timeout=timeout).json()
        info = httpx.get(self.url + "gradio_api/info", timeout=timeout).json()["named_endpoints"]
        kinds = {c["id"]: c.get("type") for c in config["components"]}
        self.fn_index: dict[str, int] = {}
        self.inputs: dict[str, list[tuple[str, object] | None]] = {}
        for dep in config["dependencies"]:
            name = dep.get("api_name")
            if not name or f"/{name}" not in info:
                continue
            params = iter(info[f"/{name}"]["parameters"])
            self.fn_index[name] = dep["id"]
            self.inputs[name] = [None if kinds.get(i) == "state" else _named(next(params)) for i in dep["inputs"]]

    def data(self, api_name: str, kwargs: dict) -> list:
        """The request's data list for `api_name` from keyword arguments (ValueError for a name it does not take)."""
        name = api_name.lstrip("/")
        layout = self.inputs[name]
        known = {p[0] for p in layout if p}
        if unknown := set(kwargs) - known:
            raise ValueError(f"/{name} takes no input named {', '.join(sorted(unknown))}.")
        return [None if p is None else kwargs.get(p[0], p[1]) for p in layout]


def _named(param: dict) -> tuple[str, object]:
    return param["parameter_name"], param.get("parameter_default")


class Refused(Exception):
    """The queue refused a request at the door (HTTP status and the server's sentence)."""


class QueueClient:
    """One browser session over the queue's HTTP protocol (POST /gradio_api/queue/join, then the session's
    event stream at /gradio_api/queue/data)."""

    def __init__(self, api: NamedApi, timeout: float = 600.0):
        import httpx

        self.api = api
        self.session_hash = uuid.uuid4().hex[:12]
        self.http = httpx.Client(timeout=httpx.Timeout(timeout, connect=30.0))

    def send(self, api_name: str, **kwargs) -> str:
        """Queue one request without waiting for it; its event id (Refused if the queue will not take it)."""
        name = api_name.lstrip("/")
        r = self.http.post(self.api.url + "gradio_api/queue/join", json={
            "data": self.api.data(name, kwargs), "fn_index": self.api.fn_index[name],
            "session_hash": self.session_hash, "event_data": None, "trigger_id": None})  # fmt: skip
        if r.status_code != 200:
            detail = r.json().get("detail", r.text) if r.text.startswith("{") else r.text
            raise Refused(f"HTTP {r.status_code}: {detail}")
        return r.json()["event_id"]

    def wait(self, event_ids: set[str], on_update: Callable[[str, list], None] | None = None) -> dict:
        """Read this session's stream until every event in `event_ids` completed: {event id: (ok, data or the
        error's sentence)}. `on_update(event id, data)` is called for each streamed (generator) update. Other
        events' messages (say a /prepare sent earlier and not waited for) pass by."""
        out: dict[str, tuple[bool, object]] = {}
        with self.http.stream("GET", self.api.url + "gradio_api/queue/data",
                              params={"session_hash": self.session_hash}) as r:  # fmt: skip
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                kind, event = msg.get("msg"), msg.get("event_id")
                if kind == "process_generating" and event in event_ids and on_update:
                    on_update(event, (msg.get("output") or {}).get("data"))
                elif kind == "process_completed" and event in event_ids:
                    output = msg.get("output") or {}
                    ok = bool(msg.get("success", False))
                    out[event] = (ok, output.get("data") if ok else (output.get("error") or "failed, no message"))
                    if len(out) == len(event_ids):
                        break
                elif kind == "close_stream":
                    break
        for event in event_ids - out.keys():
            out[event] = (False, "the stream closed before the request completed")
        return out

    def call(self, api_name: str, on_update: Callable[[str, list], None] | None = None, **kwargs) -> tuple[bool, object]:
        """One request, waited for: (ok, data or the error's sentence); refused at the door: (False, sentence)."""
        try:
            event = self.send(api_name, **kwargs)
        except Refused as e:
            return False, str(e)
        return self.wait({event}, on_update)[event]

    def close(self) -> None:
        self.http.close()
