"""The Gradio web app, one idea per module, each importing only those above it:

  controls.py         the page's decoding controls as one typed, frozen record (`Controls`), their defaults
  shared.py           what every browser shares: the loaded models (REGISTRY) and the hosting policy (POLICY)
  state.py            one browser's run (PlaygroundState), started or continued from the controls (`prepare`),
                      and any failure as one sentence (`friendly`)
  permalink.py        a run's recipe packed into the page's query string, read back, and replayed
  gradio_internals.py what the app borrows from Gradio beyond its public API, in one place
  sessions.py         each session's turn and latest state, and the memory sessions hold, bounded
  exports.py          where downloads are written, pruned
  outputs.py          the outputs every step-like handler returns, by name, made from a run
  page.py             the run controls the page shows beside a run (Step off when it has finished, Carry on)
  handlers.py         one short, plain function per event: a run and the controls in, outputs by name out
  requests.py         one request's life, the same for every endpoint (`serve`): turn, recovery, controls,
                      refusals as one sentence
  endpoints.py        the endpoints' table (API and page events as data) and `wire`, its one loop
  layout.py           the page's components (build_demo) and launch options

This package knows nothing about how a token is chosen (engine), how a figure is drawn (plots) or how a
table or HTML fragment is built (views). The names below are its public face, for app.py, the CLI's
benchmark and the tests; `api` holds each named endpoint as an API client calls it (`api.step(state, prompt=…)`)
and `page_api` each page event as the page calls it.
"""

from types import SimpleNamespace

from . import endpoints as _endpoints
from .controls import CONTROL_NAMES, DEFAULT_MODEL, DEFAULT_PROMPT, DEFAULTS, KNOBS, Controls
from .endpoints import ENDPOINTS
from .handlers import parse_temperatures, restore
from .layout import build_demo, launch_options
from .page import run_controls
from .permalink import PERMALINK_PARAM, decode_permalink, permalink_query, replay
from .requests import RECOVERED, serve
from .shared import ModelRegistry
from .state import PlaygroundState, UserError, friendly

api = SimpleNamespace(**{e.name: serve(e) for e in _endpoints.ENDPOINTS})
page_api = SimpleNamespace(**{e.name: serve(e, for_page=True) for e in _endpoints.ENDPOINTS})

__all__ = [
    "CONTROL_NAMES", "DEFAULTS", "DEFAULT_MODEL", "DEFAULT_PROMPT", "ENDPOINTS", "KNOBS", "PERMALINK_PARAM",
    "RECOVERED", "Controls", "ModelRegistry", "PlaygroundState", "UserError", "api", "build_demo",
    "decode_permalink", "friendly", "launch_options", "page_api", "parse_temperatures", "permalink_query",
    "replay", "restore", "run_controls", "serve",
]  # fmt: skip
