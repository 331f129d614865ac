"""Hosted mode: the limits a public Space puts on every request, read once from environment variables.

Per-request caps, enforced only in hosted mode (a local app has none of them):

    PLAYGROUND_HOSTED=1              turn hosted mode on (off by default)
    PLAYGROUND_MAX_NEW_TOKENS=64     cap on max new tokens per run
    PLAYGROUND_MAX_BEAMS=4           cap on the number of beams
    PLAYGROUND_MAX_SAMPLES=4         cap on the number of sampled runs in Compare
    PLAYGROUND_ALLOWED_MODELS=a,b    the models users may pick (default: only the embedded default model /
                                     HuggingFaceTB/SmolLM2-135M-Instruct); compared in one spelling (`model_key`)
    PLAYGROUND_MAX_PROMPT_CHARS=8000 prompt + system message length, checked before tokenizing (0 = no cap)
    PLAYGROUND_MAX_PROMPT_TOKENS=1024  the prompt's tokens, chat template included, checked before the
                                     prefill (0 = no cap; the model's context is the limit either way)
    PLAYGROUND_MAX_WORD_ENTRIES=32   banned token sequences (bad_words_ids) and sequence-bias entries, each
    PLAYGROUND_MAX_SUPPRESS=256      suppressed token ids
    PLAYGROUND_MAX_NGRAM=10          cap on no_repeat_ngram_size (each step compares every window of this
                                     size in the context: a cost that grows with it, for no use past a few)
    "Candidates shown" (top_n) is capped at 50, the slider's end, for API clients and permalinks too.

Protection of the server, in both modes; hosted mode changes the defaults (hosted / local):

    PLAYGROUND_CONCURRENCY=32        model-using requests run at once, all events together (32 / 32): room for a
                                     class's steps to wait together and share one forward (batching.py)
    PLAYGROUND_QUEUE_SIZE=256        requests waiting in Gradio's queue, all sessions together (256 / no limit)
    PLAYGROUND_SESSION_QUEUE=6       requests one session may have queued or running (6 / no limit)
    PLAYGROUND_SESSION_WAIT_S=10     how long a session's second request waits for its first (10 / 10);
                                     a third is refused at once: a session runs one request at a time
    PLAYGROUND_LIVE_SESSIONS=128     sessions that keep their KV cache; beyond, the least recently used one
                                     is parked: cache and steps dropped, its recipe kept (128 / 128): room
                                     for a class (a parked run is rebuilt token by token on its next request,
                                     so a class larger than this thrashes: 100 students at 32 served 6.6 Steps
                                     a second, at 128 23.6); a SmolLM2-135M run holds ~46 KB a position
    PLAYGROUND_SESSION_IDLE_S=300    a session idle this long is parked; its next request rebuilds the run
                                     from the recipe, token for token (300 / 3600)
    PLAYGROUND_SESSION_TTL_S=10800   a session idle this long is forgotten, recipe and Gradio's record of it
                                     too (3 hours / no limit)
    PLAYGROUND_MAX_SESSIONS=2000     sessions remembered at all; beyond, the least recently used one is
                                     forgotten (2000 / 10000, Gradio's own default)

The UI handlers call `check_model`, `apply` and `check_prompt` on every request, so the caps hold for API
clients too, not only for the sliders. This module knows nothing about Gradio, models or tensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .config import DecodingConfig
from .loading import EMBEDDED_ALIASES
from .loading import EMBEDDED_HUB_ID as DEFAULT_HUB_MODEL

# Every spelling of "the embedded default model" that loading.is_embedded accepts, plus its Hub id.
_DEFAULT_ALIASES = EMBEDDED_ALIASES | {DEFAULT_HUB_MODEL.lower()}
MAX_TOP_N = 50  # the "Candidates shown" slider's end


@dataclass(frozen=True)
class HostingPolicy:
    """Limits for one deployment; `hosted=False` means no per-request caps (the server protections remain)."""

    hosted: bool = False
    max_new_tokens: int = 64
    max_beams: int = 4
    max_samples: int = 4
    allowed_models: tuple[str, ...] = field(default_factory=lambda: (DEFAULT_HUB_MODEL,))
    max_prompt_chars: int | None = 8000  # None: no cap
    max_prompt_tokens: int | None = 1024
    max_top_n: int = MAX_TOP_N
    max_word_entries: int = 32  # bad_words_ids sequences, and sequence_bias entries, each
    max_suppress: int = 256
    max_ngram: int = 10
    # protection of the server (both modes); the defaults here are the local ones, from_env picks by mode
    # model-using requests at once: visitors' steps that wait together share one forward (batching.py), so a class
    # needs room for its steps to wait together (4 kept each Run in line: the last of 30 done after 102 s; 32: 26 s)
    concurrency: int = 32
    queue_size: int | None = None
    session_queue: int | None = None
    session_wait_s: float | None = 10.0  # None: a second request is refused at once
    live_sessions: int = 128
    session_idle_s: float | None = 3600.0  # None: parked only when more than live_sessions
    session_ttl_s: float | None = None  # None: forgotten only when more than max_sessions
    max_sessions: int = 10_000
    # streamed runs' updates to the pages, all runs together, a second: each costs the server's one Python thread
    # ~10 ms (the text, Gradio's postprocessing, the message), so one run sends every token and thirty at once
    # send a few tokens an update each (ui/pacing.py)
    stream_updates_per_s: float | None = 40.0  # None: every token sent, however many runs stream

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HostingPolicy:
        """Read the PLAYGROUND_* variables; a malformed number raises ValueError naming the variable."""
        env = os.environ if env is None else env
        hosted = env.get("PLAYGROUND_HOSTED", "").strip().lower() in ("1", "true", "yes", "on")
        models = tuple(m.strip() for m in env.get("PLAYGROUND_ALLOWED_MODELS", "").split(",") if m.strip())

        def by_mode(hosted_value, local_value):
            return hosted_value if hosted else local_value

        return cls(
            hosted=hosted,
            max_new_tokens=_positive_int(env, "PLAYGROUND_MAX_NEW_TOKENS", 64),
            max_beams=_positive_int(env, "PLAYGROUND_MAX_BEAMS", 4),
            max_samples=_positive_int(env, "PLAYGROUND_MAX_SAMPLES", 4),
            allowed_models=models or (DEFAULT_HUB_MODEL,),
            max_prompt_chars=_limit(env, "PLAYGROUND_MAX_PROMPT_CHARS", 8000),
            max_prompt_tokens=_limit(env, "PLAYGROUND_MAX_PROMPT_TOKENS", 1024),
            max_word_entries=_positive_int(env, "PLAYGROUND_MAX_WORD_ENTRIES", 32),
            max_suppress=_positive_int(env, "PLAYGROUND_MAX_SUPPRESS", 256),
            max_ngram=_positive_int(env, "PLAYGROUND_MAX_NGRAM", 10),
            concurrency=_positive_int(env, "PLAYGROUND_CONCURRENCY", 32),
            queue_size=_limit(env, "PLAYGROUND_QUEUE_SIZE", by_mode(256, None)),
            session_queue=_limit(env, "PLAYGROUND_SESSION_QUEUE", by_mode(6, None)),
            session_wait_s=_seconds(env, "PLAYGROUND_SESSION_WAIT_S", 10.0),
            live_sessions=_positive_int(env, "PLAYGROUND_LIVE_SESSIONS", 128),
            session_idle_s=_seconds(env, "PLAYGROUND_SESSION_IDLE_S", by_mode(300.0, 3600.0)),
            session_ttl_s=_seconds(env, "PLAYGROUND_SESSION_TTL_S", by_mode(10_800.0, None)),
            max_sessions=_positive_int(env, "PLAYGROUND_MAX_SESSIONS", by_mode(2000, 10_000)),
            stream_updates_per_s=_rate(env, "PLAYGROUND_STREAM_UPDATES_PER_S", 40.0),
        )

    def is_allowed(self, model: str | None) -> bool:
        if not self.hosted:
            return True
        key = model_key(model)
        allowed = {model_key(m) for m in self.allowed_models}
        if key in _DEFAULT_ALIASES:  # the default model counts as allowed when any of its names is
            return bool(allowed & _DEFAULT_ALIASES)
        return key in allowed

    def check_model(self, model: str | None) -> None:
        """Raise ValueError when hosted mode does not allow `model`."""
        if not self.is_allowed(model):
            names = ", ".join(self.allowed_models)
            raise ValueError(f"This hosted playground only runs these models: {names}.")

    def canonical_model(self, model: str | None) -> str:
        """`model` in the one spelling every request uses: an allow-listed model as the list spells it (a Hub id
        typed in another case is the same repository), anything else stripped of surrounding space."""
        spelled = (model or "").strip()
        key = model_key(spelled)
        return next((m for m in self.allowed_models if model_key(m) == key), spelled)

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
        if config.top_n > self.max_top_n:
            notices.append(f"Candidates shown are capped at {self.max_top_n} here (asked for {config.top_n}).")
            config = config.replace(top_n=self.max_top_n)
        if config.no_repeat_ngram_size > self.max_ngram:
            notices.append(f"No-repeat n-gram size is capped at {self.max_ngram} here (asked for {config.no_repeat_ngram_size}).")
            config = config.replace(no_repeat_ngram_size=self.max_ngram)
        for name, what, cap in (
            ("bad_words_ids", "Banned token sequences", self.max_word_entries),
            ("sequence_bias", "Sequence-bias entries", self.max_word_entries),
            ("suppress_tokens", "Suppressed tokens", self.max_suppress),
        ):
            entries = getattr(config, name)
            if len(entries) > cap:
                notices.append(f"{what} are capped at {cap} here (asked for {len(entries)}): the first {cap} are used.")
                config = config.replace(**{name: entries[:cap]})
        return config, notices

    def cap_samples(self, num_samples: int) -> tuple[int, list[str]]:
        if self.hosted and num_samples > self.max_samples:
            return self.max_samples, [f"Samples are capped at {self.max_samples} here (asked for {num_samples})."]
        return num_samples, []

    def check_prompt(self, prompt, system: str | None = None) -> None:
        """Before tokenizing: the text must be valid Unicode (always) and, in hosted mode, at most
        `max_prompt_chars` long, prompt and system message together. ValueError in one sentence."""
        for name, text in (("prompt", prompt), ("system message", system)):
            if isinstance(text, str) and not _encodable(text):
                bad = next(c for c in text if 0xD800 <= ord(c) <= 0xDFFF)
                raise ValueError(f"The {name} contains U+{ord(bad):04X}, half of a UTF-16 surrogate pair, which is "
                                 "not text on its own: remove it.")  # fmt: skip
        if not self.hosted or not self.max_prompt_chars:
            return
        n = sum(len(t) for t in (prompt, system) if isinstance(t, str))
        if n > self.max_prompt_chars:
            what = "The prompt and system message are" if system else "The prompt is"
            raise ValueError(f"{what} {n:,} characters long; this playground takes at most {self.max_prompt_chars:,}.")

    def check_prompt_tokens(self, n_tokens: int) -> None:
        """After tokenizing, before the prefill: at most `max_prompt_tokens` (hosted mode)."""
        if self.hosted and self.max_prompt_tokens and n_tokens > self.max_prompt_tokens:
            raise ValueError(f"The prompt is {n_tokens:,} tokens long; this playground takes at most "
                             f"{self.max_prompt_tokens:,} tokens.")  # fmt: skip


def model_key(model: str | None) -> str:
    """The one spelling a model is known by, for the allow-list and the model registry alike: a folder that
    exists as its resolved path (so "./m", "m/" and "/abs/m" are one model), anything else (a Hub id, whose
    repository names the Hub resolves in any case) stripped and lower-cased."""
    spelled = (model or "").strip()
    try:
        if spelled.startswith((".", "/", "~")) or (spelled and Path(spelled).expanduser().is_dir()):
            return str(Path(spelled).expanduser().resolve())
    except (OSError, ValueError, RuntimeError):  # not a path this system can have (a NUL byte, too long)
        pass
    return spelled.lower()


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def _limit(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A whole-number limit where 0 (or "off") means none."""
    raw = env.get(name, "").strip().lower()
    if raw in ("0", "off", "none"):
        return None
    return _positive_int(env, name, default) if raw else default


def _rate(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    """A positive rate (a second) where 0 (or "off") means no limit."""
    raw = env.get(name, "").strip().lower()
    if raw and raw not in ("0", "off", "none"):
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0 < value < float("inf"):
            raise ValueError(f"{name} must be a positive number a second (or off), got {raw!r}.")
        return value
    return None if raw else default


def _seconds(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    """A duration in seconds where 0 (or "off") means none."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "off", "none"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}.") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds, got {raw!r}.")
    return value
