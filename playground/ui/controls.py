"""The page's decoding controls as one typed, frozen record (`Controls`), the one place their names, types and
defaults are written.

A request's control values (from the page's components or an API client's keyword arguments) become a
`Controls` once, through `Controls.from_values`, which checks each value's type in one sentence; `decoding()`
turns the record into the validated `DecodingConfig` a step runs with: the banned words, the word biases and the
suppressed token ids are text here ("cake, pie"; "dragon=3, sea=-2"; "13, 198"), turned into token ids with
the engine's tokenizer there, and back into text by `from_config` (a permalink, a model's defaults). The
page's components take their
defaults from `DEFAULTS`, so an API client that leaves a control out gets what the page shows. This module
knows nothing about Gradio, the page's layout or a browser's run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import DecodingConfig, parse_token_ids, parse_word_biases, parse_words

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
    strategy: str = "sample"  # greedy, sample, beam or beam-sample
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
    # "More knobs" (after the others, so that an API client's positional values keep their places); each off
    top_h: float = 0.0
    typical_p: float = 1.0
    epsilon_cutoff: float = 0.0
    eta_cutoff: float = 0.0
    no_repeat_ngram_size: int = 0
    min_new_tokens: int = 0
    bad_words: str = ""  # words to ban: "cake, New York" (config.parse_words)
    sequence_bias: str = ""  # word=bias pairs: "dragon=3, sea=-2" (config.parse_word_biases)
    suppress_tokens: str = ""  # token ids never generated: "13, 198" (config.parse_token_ids)

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
            top_h=as_float("Top-h", get("top_h")),
            typical_p=as_float("Typical-p", get("typical_p")),
            epsilon_cutoff=as_float("ε cutoff", get("epsilon_cutoff")),
            eta_cutoff=as_float("η cutoff", get("eta_cutoff")),
            no_repeat_ngram_size=as_int("No-repeat n-gram size", get("no_repeat_ngram_size")),
            min_new_tokens=as_int("Min new tokens", get("min_new_tokens")),
            bad_words=as_text("Bad words", get("bad_words"), parse_words),
            sequence_bias=as_text("Sequence bias", get("sequence_bias"), parse_word_biases),
            suppress_tokens=as_text("Suppress tokens", get("suppress_tokens"), parse_token_ids),
        )

    @classmethod
    def from_config(cls, config: DecodingConfig, engine=None, **identity) -> Controls:
        """The controls that show `config` (a permalink's last step), with the run's identity given by name; the
        banned and biased words as text through `engine`'s tokenizer (needed when `config` has any)."""
        return cls(**identity, **control_values(config, KNOB_AND_RUN_NAMES, engine))

    def decoding(self, strategy: str | None = None, engine=None) -> DecodingConfig:
        """The validated settings of the next step (ValueError in one sentence if one is bad); `strategy`
        overrides the record's (Compare's sampled lanes). Banned and biased words become token ids with
        `engine`'s tokenizer (an `Engine`: needed when there are any), whose vocabulary every id must be in."""
        values = {k: getattr(self, k) for k in KNOB_AND_RUN_NAMES if k not in TEXT_KNOBS}
        words, biases = parse_words(self.bad_words), parse_word_biases(self.sequence_bias)
        if (words or biases) and engine is None:
            raise ValueError("Banned and biased words need a model's tokenizer to become token ids.")
        values.update(
            bad_words_ids=engine.bad_words_ids(words) if words else (),
            sequence_bias=engine.sequence_bias(biases) if biases else (),
            suppress_tokens=parse_token_ids(self.suppress_tokens),
        )
        config = DecodingConfig(**{**values, "strategy": strategy or self.strategy})
        return engine.check_ids(config) if engine is not None else config

    def replace(self, **changes) -> Controls:
        return dataclasses.replace(self, **changes)

    def values(self) -> tuple:
        """The values in field order (the page's components in the same order)."""
        return tuple(getattr(self, name) for name in CONTROL_NAMES)


CONTROL_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Controls))
IDENTITY_NAMES = ("prompt", "model", "chat", "system")  # the run's own, beside the settings
KNOB_AND_RUN_NAMES = tuple(n for n in CONTROL_NAMES if n not in IDENTITY_NAMES)  # the settings, as controls
# The controls that are text on the page and token ids in DecodingConfig: control name -> DecodingConfig field.
TEXT_KNOBS = {"bad_words": "bad_words_ids", "sequence_bias": "sequence_bias", "suppress_tokens": "suppress_tokens"}
# The decoding knobs a model's generation_config may set (the page's knob controls, in field order).
KNOBS = ("strategy", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "num_beams", "length_penalty",
         "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size", "min_new_tokens", "bad_words",
         "sequence_bias", "suppress_tokens")  # fmt: skip
# The knobs of the collapsed "More knobs" group (generate()'s less common ones), in field order.
MORE_KNOBS = ("top_h", "typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size", "min_new_tokens",
              "bad_words", "sequence_bias", "suppress_tokens")  # fmt: skip
# The knobs only sampling (and beam sampling) uses, as in generate(): greyed for greedy and beam search.
SAMPLING_ONLY = ("temperature", "top_k", "top_p", "min_p", "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff")
DEFAULTS = Controls()


def config_field(control: str) -> str:
    """The DecodingConfig field a control sets ("bad_words" -> "bad_words_ids"; the others are named alike)."""
    return TEXT_KNOBS.get(control, control)


def control_values(config: DecodingConfig, names, engine=None) -> dict:
    """The controls `names` as they show `config`: numbers as they are, token ids as the text their boxes take
    (words through `engine`'s tokenizer, needed when `config` bans or biases any)."""
    out = {}
    for name in names:
        value = getattr(config, config_field(name))
        if name in ("bad_words", "sequence_bias") and value and engine is None:
            raise ValueError("Banned and biased words need a model's tokenizer to be shown as text.")
        if name == "bad_words":
            value = engine.words_text(value) if value else ""
        elif name == "sequence_bias":
            value = engine.biases_text(value) if value else ""
        elif name == "suppress_tokens":
            value = ", ".join(str(t) for t in value)
        out[name] = value
    return out


def as_text(name: str, x, parse) -> str:
    """`x` as the text of a words/ids box, checked by `parse` (ValueError in one sentence if it cannot read it)."""
    if x is None:
        return ""
    if not isinstance(x, str):
        raise ValueError(f"{name} must be text, got {x!r}.")
    parse(x)
    return x


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
