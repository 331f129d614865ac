"""One Step of the web UI measured server-side: the real /step endpoint as an API client calls it (the request
wrapper, the handler, every output rendered as it is sent). Knows the web app only through its `api`."""

from __future__ import annotations

import time

from ..engine import Engine


def bench_step(engine: Engine, prompt: str, n_steps: int) -> list[float]:
    """Run the real /step endpoint `n_steps` times on a fresh session for `engine`; each call's server-side
    latency in seconds (request in, every output out: figures rendered to PNG as gr.Plot sends them, HTML and
    table included)."""
    from .. import ui

    spec = f"bench:{engine.name}"
    ui.shared.REGISTRY.put(spec, engine)
    controls = dict(prompt=prompt, model=spec, chat=False, system="", strategy="sample", temperature=0.8, top_k=50,
                    top_p=0.95, min_p=0.0, repetition_penalty=1.0, num_beams=4, length_penalty=1.0,
                    max_new_tokens=max(n_steps, 1), top_n=10, seed=0)  # fmt: skip
    state, times = None, []
    for _ in range(n_steps):
        started = time.perf_counter()
        outputs = ui.api.step(state, **controls)
        times.append(time.perf_counter() - started)
        state = outputs[-1]
    return times
