"""The page's decoding controls as one typed, frozen record (`Controls`), the one place their names, types and
defaults are written.

A request's control values (from the page's components or an API client's keyword arguments) become a
`Controls` once, through `Controls.from_values`, which checks each value's type in one sentence; `decoding()`
turns the record into the validated `DecodingConfig` a step runs with. The page's components take their
defaults from `DEFAULTS`, so an API client that leaves a control out gets what the page shows. This module
knows nothing about Gradio, the page's layout or a browser's run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import DecodingConfig

DEFAULT_MODEL = "default"  # the model picker's value for "whatever the app was started with"
DEFAULT_PROMPT = "Once upon a time, in a small village by the sea,"


@dataclass(frozen=True)
class Controls:
    """What the page's settings say a run should be: its identity (prompt, model, chat, system, seed) and the
    knobs of its next step. Field order is the API's parameter order (docs/ui.md)."""

    prompt: str = DEFAULT_PROMPT
    model: str = DEFAULT_MODEL  # "default", a Hub id or a folder
    chat: bool = False  # wrap the prompt in the model's chat template
    system: str = ""  # the chat's system message (chat only)
    strategy: str = "sample"  # greedy, sample or beam
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    num_beams: int = 4
    length_penalty: float = 1.0
    max_new_tokens: int = 32
    top_n: int = 10  # candidates each step records and the page shows
    seed: int = 0

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> Controls:
        """The record from a request's values by name (a missing one takes its default); ValueError in one
        sentence for a value of the wrong type."""
        given = {name: values[name] for name in CONTROL_NAMES if name in values}
        d = DEFAULTS
        get = lambda name: given.get(name, getattr(d, name))  # noqa: E731
        return cls(
            prompt=get("prompt") if isinstance(get("prompt"), str) else "",  # not text: the engine says it is empty
            model=str(get("model") or DEFAULT_MODEL),
            chat=bool(get("chat")),
            system=str(get("system") or ""),
            strategy=str(get("strategy") or "greedy").strip().lower(),
            temperature=as_float("Temperature", get("temperature")),
            top_k=as_int("Top-k", get("top_k")),
            top_p=as_float("Top-p", get("top_p")),
            min_p=as_float("Min-p", get("min_p")),
            repetition_penalty=as_float("Repetition penalty", get("repetition_penalty")),
            num_beams=as_int("Beams", get("num_beams")),
            length_penalty=as_float("Length penalty", get("length_penalty")),
            max_new_tokens=as_int("Max new tokens", get("max_new_tokens")),
            top_n=as_int("Candidates shown", get("top_n")),
            seed=as_int("Seed", get("seed")),
        )

    @classmethod
    def from_config(cls, config: DecodingConfig, **identity) -> Controls:
        """The controls that show `config` (a permalink's last step), with the run's identity given by name."""
        return cls(**identity, **{k: getattr(config, k) for k in KNOB_AND_RUN_NAMES})

    def decoding(self, strategy: str | None = None) -> DecodingConfig:
        """The validated settings of the next step (ValueError in one sentence if one is bad); `strategy`
        overrides the record's (Compare's sampled lanes)."""
        values = {k: getattr(self, k) for k in KNOB_AND_RUN_NAMES}
        return DecodingConfig(**{**values, "strategy": strategy or self.strategy})

    def replace(self, **changes) -> Controls:
        return dataclasses.replace(self, **changes)

    def values(self) -> tuple:
        """The values in field order (the page's components in the same order)."""
        return tuple(getattr(self, name) for name in CONTROL_NAMES)


CONTROL_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Controls))
IDENTITY_NAMES = ("prompt", "model", "chat", "system")  # the run's own, beside the settings
KNOB_AND_RUN_NAMES = tuple(n for n in CONTROL_NAMES if n not in IDENTITY_NAMES)  # DecodingConfig's fields
# The decoding knobs a model's generation_config may set (the page's knob controls, in field order).
KNOBS = ("strategy", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "num_beams", "length_penalty")
DEFAULTS = Controls()


def as_int(name: str, x) -> int:
    """`x` as a whole number; ValueError in one sentence naming the control otherwise."""
    if isinstance(x, bool) or x is None:
        raise ValueError(f"{name} must be a whole number, got {x!r}.")
    if isinstance(x, float):
        if not x.is_integer():
            raise ValueError(f"{name} must be a whole number, got {x}.")
        return int(x)
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {x!r}.") from None
    try:
        return int(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {x!r}.") from None


def as_float(name: str, x) -> float:
    """`x` as a number; ValueError in one sentence naming the control otherwise."""
    if isinstance(x, bool):
        raise ValueError(f"{name} must be a number, got {x!r}.")
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}.") from None
