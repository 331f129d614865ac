"""Hosted mode: the limits a public Space puts on every request, read once from environment variables.

    PLAYGROUND_HOSTED=1              turn hosted mode on (off by default: a local app has no limits)
    PLAYGROUND_MAX_NEW_TOKENS=64     cap on max new tokens per run
    PLAYGROUND_MAX_BEAMS=4           cap on the number of beams
    PLAYGROUND_MAX_SAMPLES=4         cap on the number of sampled runs in Compare
    PLAYGROUND_ALLOWED_MODELS=a,b    the models users may pick (default: only the embedded default model /
                                     HuggingFaceTB/SmolLM2-135M-Instruct)

The UI handlers call `HostingPolicy.check_model` and `HostingPolicy.apply` on every request, so the caps hold
for API clients too, not only for the sliders. This module knows nothing about Gradio, models or tensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import DecodingConfig
from .loading import EMBEDDED_ALIASES
from .loading import EMBEDDED_HUB_ID as DEFAULT_HUB_MODEL

# Every spelling of "the embedded default model" that loading.is_embedded accepts, plus its Hub id.
_DEFAULT_ALIASES = EMBEDDED_ALIASES | {DEFAULT_HUB_MODEL.lower()}


@dataclass(frozen=True)
class HostingPolicy:
    """Limits for one deployment; `hosted=False` means no limits at all."""

    hosted: bool = False
    max_new_tokens: int = 64
    max_beams: int = 4
    max_samples: int = 4
    allowed_models: tuple[str, ...] = field(default_factory=lambda: (DEFAULT_HUB_MODEL,))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HostingPolicy:
        """Read the PLAYGROUND_* variables; a malformed number raises ValueError naming the variable."""
        env = os.environ if env is None else env
        hosted = env.get("PLAYGROUND_HOSTED", "").strip().lower() in ("1", "true", "yes", "on")
        models = tuple(m.strip() for m in env.get("PLAYGROUND_ALLOWED_MODELS", "").split(",") if m.strip())
        return cls(
            hosted=hosted,
            max_new_tokens=_positive_int(env, "PLAYGROUND_MAX_NEW_TOKENS", 64),
            max_beams=_positive_int(env, "PLAYGROUND_MAX_BEAMS", 4),
            max_samples=_positive_int(env, "PLAYGROUND_MAX_SAMPLES", 4),
            allowed_models=models or (DEFAULT_HUB_MODEL,),
        )

    def is_allowed(self, model: str | None) -> bool:
        if not self.hosted:
            return True
        key = _model_key(model)
        allowed = {_model_key(m) for m in self.allowed_models}
        if key in _DEFAULT_ALIASES:  # the default model counts as allowed when any of its names is
            return bool(allowed & _DEFAULT_ALIASES)
        return key in allowed

    def check_model(self, model: str | None) -> None:
        """Raise ValueError when hosted mode does not allow `model`."""
        if not self.is_allowed(model):
            names = ", ".join(self.allowed_models)
            raise ValueError(f"This hosted playground only runs these models: {names}.")

    def apply(self, config: DecodingConfig) -> tuple[DecodingConfig, list[str]]:
        """`config` with the caps applied, and one notice per setting that was lowered."""
        if not self.hosted:
            return config, []
        notices = []
        if config.max_new_tokens > self.max_new_tokens:
            notices.append(f"Max new tokens is capped at {self.max_new_tokens} here (asked for {config.max_new_tokens}).")
            config = config.replace(max_new_tokens=self.max_new_tokens)
        if config.num_beams > self.max_beams:
            notices.append(f"Beams are capped at {self.max_beams} here (asked for {config.num_beams}).")
            config = config.replace(num_beams=self.max_beams)
        return config, notices

    def cap_samples(self, num_samples: int) -> tuple[int, list[str]]:
        if self.hosted and num_samples > self.max_samples:
            return self.max_samples, [f"Samples are capped at {self.max_samples} here (asked for {num_samples})."]
        return num_samples, []


def _model_key(model: str | None) -> str:
    return (model or "").strip().lower()


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}.") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}.")
    return value
