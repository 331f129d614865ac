"""Decoding settings: one frozen, validated dataclass, with names that follow `generate()`'s kwargs.

Everything that shapes a step (the knobs) or a run (strategy, beams, limits) lives here and is checked once,
at construction, with a `ValueError` that says in one sentence what is wrong.

A setting the user does not give takes the model's own value, as in generate(): `model_defaults` reads those
from a model's generation_config (generate()'s kwargs, as a mapping), and `DecodingConfig.starting_from` lays
what was given over them; where the model sets none either, generate()'s own fallback (`GENERATE_FALLBACKS`:
top_k 50) stands. Banned and biased words are token ids here, as generate() takes them (turning words into ids
is the engine's, which has the tokenizer). This module knows nothing about models, tensors or the UI.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["greedy", "sample", "beam", "beam-sample"]
# "beam-sample" is generate()'s beam sampling: do_sample=True with num_beams > 1
STRATEGIES: tuple[str, ...] = ("greedy", "sample", "beam", "beam-sample")
MAX_BEAMS = 16
# The smallest positive temperature: far below it the logits divided by it overflow float32 (1e-300 did), and
# long before that sampling is greedy in all but name.
MIN_TEMPERATURE = 1e-4
TokenIds = tuple[int, ...]


@dataclass(frozen=True)
class DecodingConfig:
    strategy: Strategy = "greedy"
    # --- the knobs (processors.PIPELINE is the order they apply in; 0, 1 or () turns each off) ---
    repetition_penalty: float = 1.0  # >1 discourages tokens already in the context (CTRL paper); 1 = off
    temperature: float = 1.0  # <1 sharpens, >1 flattens; 0 means "greedy" (argmax)
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # keep the smallest set whose probability reaches p; 1 = off
    min_p: float = 0.0  # drop tokens below min_p x (probability of the top token); 0 = off
    # sampling (and beam sampling) only, as in generate():
    top_h: float = 0.0  # keep top tokens while their entropy stays within top_h x the whole entropy; 0 = off
    typical_p: float = 1.0  # keep the tokens whose surprise is closest to the entropy, up to this mass; 1 = off
    epsilon_cutoff: float = 0.0  # drop tokens whose probability is below epsilon; 0 = off
    eta_cutoff: float = 0.0  # drop tokens below min(eta, sqrt(eta) x exp(-entropy)); 0 = off
    # every strategy, as the repetition penalty (applied before temperature):
    sequence_bias: tuple[tuple[TokenIds, float], ...] = ()  # add the bias to a sequence's last token when it completes it
    no_repeat_ngram_size: int = 0  # no n-gram of this size occurs twice (the prompt counts); 0 = off
    bad_words_ids: tuple[TokenIds, ...] = ()  # token sequences that are never completed (banned)
    min_new_tokens: int = 0  # EOS is impossible before this many new tokens; 0 = off
    suppress_tokens: TokenIds = ()  # token ids that are never generated
    # --- beam search ---
    num_beams: int = 4  # used by "beam" and "beam-sample"; one beam is no beam search, as in generate()
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
        _check_finite("top_h", self.top_h)
        if not 0 <= self.top_h <= 1:
            raise ValueError(f"top_h must be in [0, 1] (0 = off), got {self.top_h}.")
        _check_finite("typical_p", self.typical_p)
        if not 0 < self.typical_p <= 1:
            raise ValueError(f"typical_p must be in (0, 1] (1 = off), got {self.typical_p}.")
        for name in ("epsilon_cutoff", "eta_cutoff"):
            _check_finite(name, getattr(self, name))
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1) (0 = off), got {getattr(self, name)}.")
        for name in ("no_repeat_ngram_size", "min_new_tokens"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0 (0 = off), got {getattr(self, name)!r}.")
        object.__setattr__(self, "bad_words_ids", tuple(_token_ids("bad_words_ids", w) for w in _seq("bad_words_ids", self.bad_words_ids)))
        object.__setattr__(self, "sequence_bias", tuple(_bias_entry(e) for e in _seq("sequence_bias", self.sequence_bias)))
        object.__setattr__(self, "suppress_tokens", _token_ids("suppress_tokens", self.suppress_tokens, allow_empty=True))
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
    def generation_mode(self) -> Literal["greedy", "sample", "beam", "beam-sample"]:
        """The search these settings run, as generate() decides it from do_sample and num_beams: "beam" for beam
        search with 2 or more beams, "beam-sample" for beam sampling with 2 or more beams, "sample" for sampling,
        else "greedy". One beam is no beam (generate(num_beams=1) is greedy search or sampling), and temperature 0
        samples nothing: sampling at temperature 0 is greedy search, beam sampling at temperature 0 beam search."""
        sampling = self.strategy in ("sample", "beam-sample") and self.temperature > 0
        if self.strategy in ("beam", "beam-sample") and self.num_beams > 1:
            return "beam-sample" if sampling else "beam"
        return "sample" if sampling else "greedy"

    @property
    def is_beam(self) -> bool:
        """True when the run keeps beams: beam search or beam sampling with 2 or more beams."""
        return self.generation_mode in ("beam", "beam-sample")

    @property
    def is_sampling(self) -> bool:
        """True when the next tokens are drawn: sampling or beam sampling at a temperature above 0."""
        return self.generation_mode in ("sample", "beam-sample")

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
        """The settings as JSON-ready values (tuples become lists; sequence_bias becomes [[ids, bias], ...], the
        list form generate() takes)."""
        d = dataclasses.asdict(self)
        d["stop_strings"] = list(self.stop_strings)
        d["bad_words_ids"] = [list(ids) for ids in self.bad_words_ids]
        d["sequence_bias"] = [[list(ids), bias] for ids, bias in self.sequence_bias]
        d["suppress_tokens"] = list(self.suppress_tokens)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DecodingConfig:
        """Build from a dict (a permalink, a JSON trace), ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if "stop_strings" in kwargs:
            kwargs["stop_strings"] = tuple(kwargs["stop_strings"])
        return cls(**kwargs)

    def generate_kwargs(self) -> dict:
        """The generate() kwargs that run these settings (the search and every knob explicit, "off" as generate()
        spells it), for a reference call: model.generate(input_ids, **config.generate_kwargs())."""
        mode = self.generation_mode
        sampling = mode in ("sample", "beam-sample")
        kwargs: dict = dict(
            do_sample=sampling,
            num_beams=self.num_beams if mode in ("beam", "beam-sample") else 1,
            max_new_tokens=self.max_new_tokens,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            bad_words_ids=[list(ids) for ids in self.bad_words_ids] or None,
            sequence_bias=[[list(ids), float(bias)] for ids, bias in self.sequence_bias] or None,
            min_new_tokens=self.min_new_tokens or None,
            suppress_tokens=list(self.suppress_tokens) or None,
        )
        if sampling:  # the knobs only sampling uses (generate() warns about them otherwise)
            kwargs.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p or None,
                          top_h=self.top_h or None, typical_p=self.typical_p, epsilon_cutoff=self.epsilon_cutoff,
                          eta_cutoff=self.eta_cutoff)  # fmt: skip
        if mode in ("beam", "beam-sample"):
            kwargs.update(length_penalty=self.length_penalty, early_stopping=self.early_stopping)
        if self.stop_strings:
            kwargs["stop_strings"] = list(self.stop_strings)
        return kwargs


# generate()'s settings a model's generation_config may set that are DecodingConfig fields of the same name and
# meaning (do_sample and num_beams also choose the strategy). Not taken: max_length / max_new_tokens (a run's
# length is the user's), and what the playground does not run (constraints, watermarks, ...).
MODEL_SETTINGS: tuple[str, ...] = (
    "temperature", "top_k", "top_p", "min_p", "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff",
    "repetition_penalty", "sequence_bias", "no_repeat_ngram_size", "bad_words_ids", "min_new_tokens",
    "suppress_tokens", "num_beams", "length_penalty", "early_stopping",
)  # fmt: skip

# What generate() uses for a knob that neither the call nor the model's generation_config sets
# (GenerationConfig._get_default_generation_params), where it differs from DecodingConfig's own default: every
# other knob's fallback is "off" in both (a test pins this). num_beams is not here: the playground's "beam"
# strategy means 2 or more beams (its default 4), where generate()'s fallback of 1 beam is no beam search.
GENERATE_FALLBACKS: dict[str, object] = {"top_k": 50}


def generate_fallbacks() -> dict[str, object]:
    """The knobs whose generate() fallback differs from DecodingConfig's default, with that fallback (top_k 50):
    what a page that keeps its own teaching defaults (top-k off) should say it does differently."""
    return dict(GENERATE_FALLBACKS)


def model_defaults(generation_config: Mapping[str, object]) -> tuple[dict, list[str]]:
    """The settings a model asks for, as DecodingConfig fields, from its generation_config given as a mapping of
    generate()'s kwargs (a setting it does not set is None or absent). Returns (settings, notices).

    Only what the model sets is returned; generate()'s own fallbacks for the rest are GENERATE_FALLBACKS. The
    strategy follows generate(): "beam-sample" when do_sample is True and num_beams > 1, "sample" when do_sample
    is True, "beam" when num_beams > 1, "greedy" when do_sample is False. A value DecodingConfig cannot take
    (num_beams above MAX_BEAMS, say) is left out, with a one-sentence notice each.
    """
    settings: dict = {}
    notices: list[str] = []
    for name in MODEL_SETTINGS:
        value = _from_generation_config(name, generation_config.get(name))
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
        settings["strategy"] = "beam-sample"
    elif do_sample is True:
        settings["strategy"] = "sample"
    elif beams > 1:
        settings["strategy"] = "beam"
    elif do_sample is False:
        settings["strategy"] = "greedy"
    return settings, notices


def _from_generation_config(name: str, value):
    """A generation_config value in DecodingConfig's form: generate()'s "unset" spellings (None, an empty list)
    become None, lists become tuples, sequence_bias's dict form ({(ids): bias}) becomes pairs."""
    if value is None:
        return None
    if name == "sequence_bias":
        pairs = value.items() if isinstance(value, Mapping) else value
        try:
            value = tuple((tuple(ids), bias) for ids, bias in pairs)
        except (TypeError, ValueError):
            return value  # left for DecodingConfig to refuse, with its sentence
    elif name == "bad_words_ids" and isinstance(value, (list, tuple)):
        value = tuple(tuple(ids) if isinstance(ids, (list, tuple)) else ids for ids in value)
    elif name == "suppress_tokens" and isinstance(value, (list, tuple)):
        value = tuple(value)
    if isinstance(value, tuple) and not value:
        return None
    return value


# -- the knobs given as text (the CLI's flags, the page's boxes) ------------------------------------------------

WORD_SEPARATORS = ",;\n"  # words, word=bias pairs and token ids are separated by commas, semicolons or new lines


def _entries(text: str) -> list[str]:
    if not isinstance(text, str):
        raise ValueError(f"Expected text, got {text!r}.")
    for sep in WORD_SEPARATORS[1:]:
        text = text.replace(sep, WORD_SEPARATORS[0])
    return [entry.strip() for entry in text.split(WORD_SEPARATORS[0]) if entry.strip()]


def parse_words(text: str) -> tuple[str, ...]:
    """'cake, New York; pie' -> ('cake', 'New York', 'pie'): the words to ban, separated by commas, semicolons or
    new lines (spaces around each are dropped; `Engine.bad_words_ids` bans each with and without a leading
    space). Empty text is no words."""
    return tuple(_entries(text))


def parse_word_biases(text: str) -> tuple[tuple[str, float], ...]:
    """'cake=-5, pie=+2.5' -> (('cake', -5.0), ('pie', 2.5)): word=bias pairs separated by commas, semicolons or
    new lines, the bias a finite number added to the word's logit (`Engine.sequence_bias` takes each word with
    and without a leading space). A pair without '=' or with a bias that is not a number is refused."""
    pairs = []
    for entry in _entries(text):
        word, sep, bias = entry.rpartition("=")
        if not sep or not word.strip():
            raise ValueError(f"{entry!r} is not word=bias: write each as a word, '=' and a number, e.g. cake=-5.")
        try:
            value = float(bias)
        except ValueError:
            raise ValueError(f"The bias for {word.strip()!r} is {bias.strip()!r}, not a number: write e.g. {word.strip()}=-5.") from None
        if not math.isfinite(value):
            raise ValueError(f"The bias for {word.strip()!r} must be a finite number, got {bias.strip()!r}.")
        pairs.append((word.strip(), value))
    return tuple(pairs)


def parse_token_ids(text: str) -> tuple[int, ...]:
    """'13, 198' -> (13, 198): token ids (integers >= 0) separated by commas, semicolons or new lines."""
    ids = []
    for entry in _entries(text):
        if not entry.isdigit():
            raise ValueError(f"{entry!r} is not a token id: token ids are whole numbers >= 0, e.g. 13, 198.")
        ids.append(int(entry))
    return tuple(ids)


def describe_settings(settings: Mapping[str, object]) -> str:
    """'temperature 0.7, top_k 20, repetition_penalty 1.3': settings as one phrase, in DecodingConfig's order."""
    order = [f.name for f in dataclasses.fields(DecodingConfig)]
    return ", ".join(f"{name} {settings[name]}" for name in sorted(settings, key=order.index))


def _seq(name: str, value) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {value!r}.")
    return tuple(value)


def _token_ids(name: str, ids, allow_empty: bool = False) -> TokenIds:
    """A tuple of token ids (integers >= 0), or a ValueError naming `name`."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple)):
        raise ValueError(f"{name} must hold lists of token ids, got {ids!r}.")
    if not ids and not allow_empty:
        raise ValueError(f"{name} holds an empty token sequence: a banned or biased word must be at least one token.")
    if any(not _is_int(t) or t < 0 for t in ids):
        raise ValueError(f"{name} must hold token ids (integers >= 0), got {list(ids)!r}.")
    return tuple(ids)


def _bias_entry(entry) -> tuple[TokenIds, float]:
    """One sequence_bias entry as (token ids, bias): the ids non-empty, the bias a finite number."""
    if isinstance(entry, (str, bytes)) or not isinstance(entry, (list, tuple)) or len(entry) != 2:
        raise ValueError(f"each sequence_bias entry must be (token ids, bias), got {entry!r}.")
    ids, bias = entry
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
        raise ValueError(f"a sequence_bias bias must be a finite number, got {bias!r}.")
    return _token_ids("sequence_bias", ids), float(bias)


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
