"""What every browser of one app process shares: the loaded models (`REGISTRY`), the hosting policy (`POLICY`)
and the count of runs streaming now (`STREAMS`, which paces their updates).

Handlers read these as `shared.REGISTRY` / `shared.POLICY` at call time, so app.py and the tests can configure or
replace them. This module knows nothing about the page, a browser's run, or how a token is chosen.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable

from ..engine import Engine
from ..hosting import HostingPolicy, model_key
from ..loading import EMBEDDED_HUB_ID, EMBEDDED_PACKAGE, is_embedded, load_engine
from .controls import DEFAULT_MODEL
from .pacing import Pacer



class ModelRegistry:
    """Loads each model once and shares it; keeps the `capacity` most recently used engines.

    `loader(spec, progress=...)` is replaceable (tests pass a fake or a preloaded engine with `put`).
    "default" (or "") means `default_spec`, the model the app was started with (None = the embedded model).
    """

    def __init__(self, loader: Callable[..., Engine] = load_engine, default_spec: str | None = None, capacity: int = 2):
        self.loader = loader
        self.default_spec = default_spec
        self.capacity = capacity
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()  # guards _engines
        self._load_lock = threading.Lock()  # one load at a time (memory)

    def resolve(self, spec: str | None) -> str | None:
        """The spec the loader gets: "default"/"" -> default_spec."""
        spec = (spec or "").strip()
        return self.default_spec if spec in ("", DEFAULT_MODEL) else spec

    def key(self, spec: str | None) -> str:
        """One key per model, whatever the spelling (`hosting.model_key`): a Hub id in any case, a folder by
        its resolved path, and the embedded model by its Hub id where its package is missing (the loader then
        fetches that id, so the two names are one model)."""
        resolved = self.resolve(spec)
        if is_embedded(resolved):
            return "embedded" if _embedded_installed() else model_key(EMBEDDED_HUB_ID)
        return model_key(resolved)

    def put(self, spec: str | None, engine: Engine) -> None:
        with self._lock:
            self._engines[self.key(spec)] = engine
            self._engines.move_to_end(self.key(spec))
            while len(self._engines) > self.capacity:
                self._engines.popitem(last=False)

    def cached(self, spec: str | None) -> Engine | None:
        with self._lock:
            engine = self._engines.get(self.key(spec))
            if engine is not None:
                self._engines.move_to_end(self.key(spec))
            return engine

    def get(self, spec: str | None, progress: Callable[[str], None] | None = None) -> Engine:
        engine = self.cached(spec)
        if engine is not None:
            return engine
        with self._load_lock:
            engine = self.cached(spec)  # another request may have loaded it meanwhile
            if engine is None:
                engine = self.loader(self.resolve(spec), progress=progress)
                self.put(spec, engine)
        return engine


@functools.cache
def _embedded_installed() -> bool:
    return importlib.util.find_spec(EMBEDDED_PACKAGE) is not None


REGISTRY = ModelRegistry()
POLICY = HostingPolicy.from_env()
STREAMS = Pacer()


def engine_for(model: str | None, progress: Callable[[str], None] | None = None) -> Engine:
    """The engine for a model picker value, loaded once whatever its spelling; a public Space refuses models
    off its allow-list."""
    model = POLICY.canonical_model(model)
    if model not in ("", DEFAULT_MODEL):  # the app's own default is always allowed
        POLICY.check_model(REGISTRY.resolve(model))
    return REGISTRY.get(model, progress=progress)


def encode_prompt(engine: Engine, prompt, chat: bool = False, system: str | None = None) -> list[int]:
    """The prompt's token ids, within the hosting caps: its characters checked before tokenizing (and that it
    is text at all), its tokens before any prefill. ValueError in one sentence."""
    POLICY.check_prompt(prompt, system if chat else None)
    ids = engine.encode(prompt, chat=chat, system=system or None)
    POLICY.check_prompt_tokens(len(ids))
    return ids
