"""Decoding settings: one frozen, validated dataclass, with names that follow `generate()`'s kwargs.

Everything that shapes a step (the knobs) or a run (strategy, beams, limits) lives here and is checked once,
at construction, with a `ValueError` that says in one sentence what is wrong.

A setting the user does not give takes the model's own value, as in generate(): `model_defaults` reads those
from a model's generation_config (generate()'s kwargs, as a mapping), and `DecodingConfig.starting_from` lays
what was given over them. This module knows nothing about models, tensors or the UI.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["greedy", "sample", "beam"]
STRATEGIES: tuple[str, ...] = ("greedy", "sample", "beam")
MAX_BEAMS = 16
# The smallest positive temperature: far below it the logits divided by it overflow float32 (1e-300 did), and
# long before that sampling is greedy in all but name.
MIN_TEMPERATURE = 1e-4


@dataclass(frozen=True)
class DecodingConfig:
    strategy: Strategy = "greedy"
    # --- the knobs, applied in the order of processors.PIPELINE ---
    repetition_penalty: float = 1.0  # >1 discourages tokens already in the context (CTRL paper); 1 = off
    temperature: float = 1.0  # <1 sharpens, >1 flattens; 0 means "greedy" (argmax)
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # keep the smallest set whose probability reaches p; 1 = off
    min_p: float = 0.0  # drop tokens below min_p x (probability of the top token); 0 = off
    # --- beam search ---
    num_beams: int = 4  # used only by strategy="beam"; one beam is greedy search, as in generate()
    length_penalty: float = 1.0  # finished beams are scored sum(logprob) / length**length_penalty
    early_stopping: bool | Literal["never"] = False  # as in generate()
    # --- the run ---
    max_new_tokens: int = 32
    seed: int = 0  # seeds the run's own torch.Generator (sampling only)
    top_n: int = 10  # how many candidates each step records
    stop_strings: tuple[str, ...] = ()  # as generate(): a match may start in the prompt, and ends in the newest token

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}.")
        _check_finite("temperature", self.temperature)
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}.")
        check_temperature_floor(self.temperature)
        _check_finite("repetition_penalty", self.repetition_penalty)
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty}.")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k}.")
        _check_finite("top_p", self.top_p)
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}.")
        _check_finite("min_p", self.min_p)
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1] (0 = off), got {self.min_p}.")
        if not _is_int(self.num_beams) or not 1 <= self.num_beams <= MAX_BEAMS:
            raise ValueError(f"num_beams must be an integer from 1 to {MAX_BEAMS}, got {self.num_beams}.")
        _check_finite("length_penalty", self.length_penalty)
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}.")
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens}.")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer from 0 to 2**63 - 1, got {self.seed}.")
        if not _is_int(self.top_n) or not 1 <= self.top_n <= 1000:
            raise ValueError(f"top_n must be an integer from 1 to 1000, got {self.top_n}.")
        if isinstance(self.stop_strings, str) or any(not isinstance(s, str) or not s for s in self.stop_strings):
            raise ValueError("stop_strings must be a tuple of non-empty strings.")
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))

    @property
    def generation_mode(self) -> Literal["greedy", "sample", "beam"]:
        """The search these settings run, as generate() decides it: "beam" for beam search with 2 or more beams,
        "sample" for sampling at a temperature above 0, else "greedy" (greedy search: the greedy strategy, beam
        search with one beam -- generate(num_beams=1) is greedy search -- or sampling at temperature 0)."""
        if self.strategy == "beam":
            return "beam" if self.num_beams > 1 else "greedy"
        if self.strategy == "sample" and self.temperature > 0:
            return "sample"
        return "greedy"

    @property
    def is_greedy(self) -> bool:
        """True when the next token is the argmax: greedy strategy, beam search with one beam, or sampling at
        temperature 0."""
        return self.generation_mode == "greedy"

    def replace(self, **changes) -> DecodingConfig:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def starting_from(cls, defaults: Mapping[str, object] | None = None, **given) -> DecodingConfig:
        """The settings `given`, where each one that is None (not given) takes its value from `defaults` (a
        model's, from `model_defaults`), else this class's default: how generate() lays a call's kwargs over the
        model's generation_config."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"Unknown decoding setting {unknown[0]!r}: the settings are {', '.join(sorted(known))}.")
        return cls(**{**(defaults or {}), **{name: value for name, value in given.items() if value is not None}})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["stop_strings"] = list(self.stop_strings)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DecodingConfig:
        """Build from a dict (a permalink, a JSON trace), ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if "stop_strings" in kwargs:
            kwargs["stop_strings"] = tuple(kwargs["stop_strings"])
        return cls(**kwargs)


# generate()'s settings a model's generation_config may set that are DecodingConfig fields of the same name and
# meaning (do_sample and num_beams also choose the strategy). Not taken: max_length / max_new_tokens (a run's
# length is the user's), and everything the playground does not run (typical_p, no_repeat_ngram_size, ...).
MODEL_SETTINGS: tuple[str, ...] = (
    "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "num_beams", "length_penalty", "early_stopping",
)


def model_defaults(generation_config: Mapping[str, object]) -> tuple[dict, list[str]]:
    """The settings a model asks for, as DecodingConfig fields, from its generation_config given as a mapping of
    generate()'s kwargs (a setting it does not set is None or absent). Returns (settings, notices).

    Only what the model sets is returned: transformers' own fallbacks (top_k 50 when sampling, say) are not the
    model's, so the playground's defaults stand for them. The strategy follows generate(): "sample" when
    do_sample is True, "beam" when num_beams > 1, "greedy" when do_sample is False. A value DecodingConfig cannot
    take (num_beams above MAX_BEAMS, say) or a search the playground does not run (beam sampling) is left out,
    with a one-sentence notice each.
    """
    settings: dict = {}
    notices: list[str] = []
    for name in MODEL_SETTINGS:
        value = generation_config.get(name)
        if value is None:
            continue
        try:
            DecodingConfig(**{name: value})
        except (TypeError, ValueError) as e:
            notices.append(f"The model's generation_config sets {name}={value!r}, which the playground cannot use: {e}")
            continue
        settings[name] = value
    do_sample, beams = generation_config.get("do_sample"), settings.get("num_beams", 1)
    if do_sample is True and beams > 1:
        notices.append(
            f"The model's generation_config asks for beam sampling (do_sample with {beams} beams), which the "
            "playground does not run: choose sample or beam."
        )
    elif do_sample is True:
        settings["strategy"] = "sample"
    elif beams > 1:
        settings["strategy"] = "beam"
    elif do_sample is False:
        settings["strategy"] = "greedy"
    return settings, notices


def describe_settings(settings: Mapping[str, object]) -> str:
    """'temperature 0.7, top_k 20, repetition_penalty 1.3': settings as one phrase, in DecodingConfig's order."""
    order = [f.name for f in dataclasses.fields(DecodingConfig)]
    return ", ".join(f"{name} {settings[name]}" for name in sorted(settings, key=order.index))


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_temperature_floor(temperature: float) -> None:
    """A positive temperature below MIN_TEMPERATURE is refused (the logits divided by it would overflow): here,
    not as NaN later. The page, the API, a permalink and the CLI all meet this one sentence."""
    if 0 < temperature < MIN_TEMPERATURE:
        raise ValueError(f"Temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {temperature:g}.")


def _check_finite(name: str, x) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x!r}.")
