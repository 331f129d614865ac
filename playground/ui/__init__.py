"""The Gradio web app, one idea per module:

  shared.py     what every browser shares: the loaded models (REGISTRY) and the hosting policy (POLICY)
  state.py      one browser's run (PlaygroundState), controls -> DecodingConfig, errors as one sentence
  permalink.py  a run's recipe packed into the page's query string, and read back
  outputs.py    the outputs every step-like handler returns, made from a state
  handlers.py   the handlers: plain functions, the named API endpoints (docs/ui.md)
  page.py       the handlers as the page calls them: refusals as one warning, the run controls' states
  layout.py     the page: components and event wiring (build_demo, launch_options)

This package knows nothing about how a token is chosen (engine), how a figure is drawn (plots) or how a
table or HTML fragment is built (views). The names below are its public face, for app.py, the CLI's
benchmark and the tests.
"""

from .handlers import (RECOVERED, bench_step, on_compare, on_explore, on_export, on_force, on_inspect,
                       on_load_model, on_model_defaults, on_new_seed, on_page_load, on_prepare, on_preview, on_reset,
                       on_rewind, on_run, on_scale, on_step, on_stop, on_strategy, on_token_click, on_trajectory_view,
                       on_undo, parse_temperatures, restore)  # fmt: skip
from .layout import DEFAULT_PROMPT, build_demo, launch_options
from .page import for_page, on_carry_on, run_controls
from .permalink import PERMALINK_PARAM, decode_permalink, permalink_query
from .shared import DEFAULT_MODEL, ModelRegistry
from .state import CONTROLS, PlaygroundState, UserError, friendly, make_config

__all__ = [
    "CONTROLS", "DEFAULT_MODEL", "DEFAULT_PROMPT", "PERMALINK_PARAM", "RECOVERED", "ModelRegistry",
    "PlaygroundState", "UserError", "bench_step", "build_demo", "decode_permalink", "for_page", "friendly",
    "launch_options", "make_config", "on_carry_on", "on_compare", "on_explore", "on_export", "on_force",
    "on_inspect", "on_load_model", "on_model_defaults", "on_new_seed", "on_page_load", "on_prepare", "on_preview",
    "on_reset", "on_rewind", "on_run", "on_scale", "on_step", "on_stop", "on_strategy", "on_token_click",
    "on_trajectory_view", "on_undo", "parse_temperatures", "permalink_query", "restore", "run_controls",
]  # fmt: skip
