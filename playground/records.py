"""What a decoding step and a whole run leave behind: plain data, raw and processed side by side.

Records hold everything a view could want (top-N candidates with raw logits, raw, shaped and final
probabilities, which knob cut each one, beam parents and scores); trimming for display is the UI's job.
`to_dict` gives the JSON shape the CLI prints and the app exports. This module knows nothing about tensors,
models or Gradio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config import DecodingConfig

# Why a run ended, in transformers' stopping criteria's words where they have one (EosTokenCriteria,
# MaxLengthCriteria, StopStringCriteria): "eos" the model's end-of-sequence token; "length" max new tokens
# reached; "stop_string" a stop string appeared; "context" max new tokens reached where the model's context
# holds no more; "stopped" a run its caller stopped before it finished (a person's Stop). None: not finished yet.
FINISH_REASONS = ("eos", "length", "stop_string", "context", "stopped")


@dataclass(frozen=True)
class Candidate:
    """One of the top-N tokens at a step, ranked by the model's raw logit."""

    token_id: int
    token: str
    rank: int  # 0 = the model's favourite
    logit: float  # raw logit
    raw_prob: float  # softmax of the raw logits
    shaped_prob: float  # after repetition penalty and temperature, before truncation
    prob: float  # after every knob: what the sampler draws from (0 if cut)
    kept: bool
    # the step that cut it (processors.CUT_BY): "top_k", "top_p", "min_p", "top_h", "typical", "epsilon", "eta",
    # "ngram", "banned", "min_new_tokens", "suppress"; None when kept
    cut_by: str | None
    # top-p's running sum at this token: the probability, in the distribution top-p sees (after penalty,
    # temperature and top-k, renormalised; over the whole vocabulary), of this token and every token more
    # likely than it. Top-p keeps a token while the sum before it is below p. None when top-p was off.
    cumulative: float | None = None

    def to_dict(self) -> dict:
        return {
            "token_id": self.token_id,
            "token": self.token,
            "rank": self.rank,
            "logit": _num(self.logit),
            "raw_prob": self.raw_prob,
            "shaped_prob": self.shaped_prob,
            "prob": self.prob,
            "kept": self.kept,
            "cut_by": self.cut_by,
            "cumulative": self.cumulative,
        }


@dataclass(frozen=True)
class BeamCandidate:
    """One of the continuations beam search weighed at a step (the best 2 x num_beams of all beams x vocab)."""

    parent: int  # index of the beam it extends, among the previous step's running beams
    token_id: int
    token: str
    score: float  # running sum of the (penalised) log-probabilities of the beam's tokens
    status: str  # "kept" (a running beam now), "finished" (a hypothesis now), or "pruned"
    beam: int | None  # its index among this step's running beams, when kept
    normalized_score: float | None  # score / length**length_penalty, when finished

    def to_dict(self) -> dict:
        return {
            "parent": self.parent,
            "token_id": self.token_id,
            "token": self.token,
            "score": _num(self.score),
            "status": self.status,
            "beam": self.beam,
            "normalized_score": None if self.normalized_score is None else _num(self.normalized_score),
        }


@dataclass(frozen=True)
class StepRecord:
    """One decoding step: the token chosen (for beams, the best running beam's) and the distribution behind it."""

    step: int  # 0-based index of the generated token
    token_id: int
    token: str
    prob: float  # probability of the chosen token after the knobs
    logprob: float
    raw_prob: float  # its probability under the raw model
    raw_logprob: float
    entropy_raw: float  # nats, raw distribution
    entropy: float  # nats, after the knobs
    forced: bool  # chosen by the user rather than the strategy
    config: DecodingConfig  # the settings this step used
    top: list[Candidate]
    beams: list[BeamCandidate] | None = None  # beam steps only
    # a replayed link's step where this machine chose another token than the link recorded (the link's is kept)
    recomputed: int | None = None
    # the token's raw bytes when it is only part of a character (`token` then shows them: "⟨E5 96⟩"); else None
    token_bytes: bytes | None = None

    @property
    def raw_bytes(self) -> bytes:
        """The token's bytes: what the text is made of, across tokens that split a character."""
        return self.token_bytes if self.token_bytes is not None else self.token.encode("utf-8")

    def to_dict(self) -> dict:
        d = {
            "step": self.step,
            "token_id": self.token_id,
            "token": self.token,
            "prob": self.prob,
            "logprob": _num(self.logprob),
            "raw_prob": self.raw_prob,
            "raw_logprob": _num(self.raw_logprob),
            "entropy_raw": self.entropy_raw,
            "entropy": self.entropy,
            "forced": self.forced,
            "settings": _knobs(self.config),
            "top": [c.to_dict() for c in self.top],
        }
        if self.beams is not None:
            d["beams"] = [b.to_dict() for b in self.beams]
        if self.recomputed is not None:
            d["recomputed_token_id"] = self.recomputed
        if self.token_bytes is not None:
            d["token_bytes"] = self.token_bytes.hex(" ").upper()
        return d


@dataclass
class Trace:
    """A finished (or stopped) run: what was asked, what came out, and every step on the way."""

    model: str
    strategy: str
    label: str  # "greedy", "beam", "sample", "sample 2", ...
    config: DecodingConfig
    prompt_token_ids: list[int]
    token_ids: list[int]  # generated only (for beams: the best finished hypothesis)
    text: str  # generated text, special tokens skipped
    token_strings: list[str]  # one display string per generated token ("⟨E5 96⟩" for part of a character)
    token_logprobs: list[float]  # raw model log-probability of each generated token
    steps: list[StepRecord]
    finish_reason: str | None  # one of FINISH_REASONS; None: not finished (an export taken mid-run)
    elapsed_s: float = 0.0
    beam_score: float | None = None  # generate()'s sequences_scores for beams: normalised, penalised
    notices: list[str] = field(default_factory=list)
    # per generated token, its raw bytes when it is only part of a character, else None (empty: none recorded)
    token_bytes: list[bytes | None] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether the run ended by itself (not stopped by its caller, nor taken mid-run)."""
        return self.finish_reason not in (None, "stopped")

    @property
    def sequence_logprob(self) -> float:
        """Sum of the raw model log-probabilities of the generated tokens."""
        return float(sum(self.token_logprobs))

    @property
    def perplexity(self) -> float:
        n = len(self.token_logprobs)
        return math.exp(-self.sequence_logprob / n) if n else float("nan")

    @property
    def tokens_per_s(self) -> float:
        return len(self.steps) / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "strategy": self.strategy,
            "label": self.label,
            "settings": self.config.to_dict(),
            "prompt_token_ids": list(self.prompt_token_ids),
            "token_ids": list(self.token_ids),
            "text": self.text,
            "tokens": list(self.token_strings),
            **({"token_bytes": [None if b is None else b.hex(" ").upper() for b in self.token_bytes]}
               if any(b is not None for b in self.token_bytes) else {}),
            "token_logprobs": [_num(x) for x in self.token_logprobs],
            "sequence_logprob": _num(self.sequence_logprob),
            "perplexity": _num(self.perplexity),
            "beam_score": None if self.beam_score is None else _num(self.beam_score),
            "finish_reason": self.finish_reason,
            "n_steps": len(self.steps),
            "elapsed_s": self.elapsed_s,
            "tokens_per_s": _num(self.tokens_per_s),
            "notices": list(self.notices),
            "steps": [s.to_dict() for s in self.steps],
        }


def _knobs(config: DecodingConfig) -> dict:
    return {
        k: getattr(config, k)
        for k in ("strategy", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "num_beams")
    } | {k: v for k, v in config.to_dict().items() if k in _NEW_KNOBS and v != _OFF[k]}


# the knobs a step's "settings" list only when they are on (so a record of a plain run stays as short as before)
_NEW_KNOBS = ("top_h", "typical_p", "epsilon_cutoff", "eta_cutoff", "sequence_bias", "no_repeat_ngram_size",
              "bad_words_ids", "min_new_tokens", "suppress_tokens")  # fmt: skip
_OFF = {k: v for k, v in DecodingConfig().to_dict().items() if k in _NEW_KNOBS}


def _num(x: float) -> float | str | None:
    """JSON has no inf/nan: keep finite floats, write the rest as strings."""
    if x is None:
        return None
    return x if math.isfinite(x) else str(x)


@dataclass(frozen=True)
class TemperatureView:
    """The same step's distribution at one temperature, softmaxed over the whole vocabulary."""

    temperature: float
    probs: list[float]  # one per Exploration.candidates, in the same order
    rest: float  # probability of every token outside the candidates
    entropy: float  # nats, whole vocabulary


@dataclass(frozen=True)
class KnobView:
    """What one truncation knob, alone, keeps of the step's (penalised, temperature-scaled) distribution."""

    knob: str  # DecodingConfig's name for it: "top_k", "top_p", "min_p", "typical_p", "bad_words_ids", ...
    setting: float  # its value (an "off" value keeps everything); for token lists, how many sequences or ids
    kept: list[bool]  # one per Exploration.candidates
    kept_count: int  # tokens kept in the whole vocabulary
    kept_mass: float  # their probability before truncation
    # top_p: the cumulative line; min_p: min_p x top probability; epsilon_cutoff: epsilon; eta_cutoff: its
    # entropy-dependent cutoff; the others: None
    threshold: float | None
    label: str = ""  # what a token it cuts says it was cut by (processors.CUT_LABELS): "top_k", "typical", "banned", ...


@dataclass(frozen=True)
class Exploration:
    """The teaching views of one step: the distribution before the choice, at several temperatures, and what
    each knob would keep. Computed over the full vocabulary; `candidates` only says which tokens to show."""

    step: int
    candidates: list[Candidate]  # top-N by raw logit, with the step's settings applied (prob, kept, cut_by)
    cumulative: list[float]  # running sum of shaped_prob over candidates sorted by shaped_prob (top-p's view)
    temperatures: list[TemperatureView]
    knobs: list[KnobView]
    config: DecodingConfig

    def to_dict(self) -> dict:
        return {
            "step": self.step,
            "candidates": [c.to_dict() for c in self.candidates],
            "cumulative": list(self.cumulative),
            "temperatures": [vars(t) for t in self.temperatures],
            "knobs": [vars(k) for k in self.knobs],
            "settings": self.config.to_dict(),
        }
