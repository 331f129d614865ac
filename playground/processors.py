"""Shape the next-token distribution: pure `scores -> scores` steps, in `generate()`'s order and semantics.

The pipeline, written once (`PIPELINE`) and applied by `process` in that order -- the order of transformers'
`_get_logits_processor`:

    1. sequence bias         (every strategy) add a bias to the token that completes a chosen sequence
    2. repetition penalty    (every strategy) CTRL-style, on every token already in the context
    3. no-repeat n-gram      (every strategy) ban a token that would repeat an n-gram of the context
    4. bad words             (every strategy) ban the token that would complete a banned sequence
    5. min new tokens        (every strategy) ban EOS before the run has this many new tokens
    6. suppress tokens       (every strategy) ban these token ids
    7. temperature           (sampling only)
    8. top-h                 (sampling only)
    9. top-k                 (sampling only)
   10. top-p                 (sampling only)
   11. min-p                 (sampling only)
   12. typical-p             (sampling only)
   13. epsilon cutoff        (sampling only)
   14. eta cutoff            (sampling only)

Steps 1-6 can change the argmax, so greedy and beam search apply them; the rest only shape the draw, so, as in
`generate()`, they run only on the random path (sampling and beam sampling). Beam search and beam sampling apply
the pipeline to log-softmaxed scores, and beam sampling's truncation keeps at least one token more than there are
EOS ids, both as `generate()` does; one beam is no beam (`DecodingConfig.generation_mode`). Every function returns
a new tensor and never touches its input. Cut tokens get `-inf`, so their probability is exactly 0, and which
step cut each one is recorded (`CUT_BY`).

This module only shapes; choosing the token is `strategies.py`'s job. It knows nothing about models or UIs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

from .config import DecodingConfig

# DecodingConfig's knobs, in the order generate() applies them (transformers 5.x `_get_logits_processor`).
PIPELINE: tuple[str, ...] = (
    "sequence_bias", "repetition_penalty", "no_repeat_ngram_size", "bad_words_ids", "min_new_tokens",
    "suppress_tokens", "temperature", "top_h", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
)  # fmt: skip
# The knobs only sampling (and beam sampling) applies: PIPELINE from temperature on.
SAMPLING_ONLY: frozenset[str] = frozenset(PIPELINE[PIPELINE.index("temperature") :])
# The knobs that cut tokens (write -inf), with the label a record's `cut_by` gives a token each one cut.
CUT_LABELS: dict[str, str] = {
    "no_repeat_ngram_size": "ngram", "bad_words_ids": "banned", "min_new_tokens": "min_new_tokens",
    "suppress_tokens": "suppress", "top_h": "top_h", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
    "typical_p": "typical", "epsilon_cutoff": "epsilon", "eta_cutoff": "eta",
}  # fmt: skip
# Which step cut a token (the index into CUT_BY; 0 means the token survived). The first three keep their indices.
CUT_BY: tuple[str | None, ...] = (
    None, "top_k", "top_p", "min_p", "top_h", "typical", "epsilon", "eta", "ngram", "banned", "min_new_tokens", "suppress",
)  # fmt: skip
FILTER_VALUE = -float("inf")


def repetition_penalty(input_ids: torch.Tensor, scores: torch.Tensor, penalty: float) -> torch.Tensor:
    """Divide positive scores (multiply negative ones) of every token in `input_ids` (R, T) by `penalty`."""
    if penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0, got {penalty}.")
    if penalty == 1.0 or input_ids.shape[-1] == 0:
        return scores
    seen = torch.gather(scores, 1, input_ids)  # (R, T)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return scores.scatter(1, input_ids, seen)


def temperature(scores: torch.Tensor, t: float) -> torch.Tensor:
    """Divide by `t` > 0. (Temperature 0 is not a division: the caller treats it as greedy.)"""
    if t <= 0:
        raise ValueError(f"temperature must be > 0 here (0 is handled as greedy), got {t}.")
    return scores if t == 1.0 else scores / t


def top_k_filter(scores: torch.Tensor, k: int, min_keep: int = 1) -> torch.Tensor:
    """Keep the `k` highest scores per row (ties with the k-th are kept too); 0 = off."""
    if k < 0:
        raise ValueError(f"top_k must be >= 0, got {k}.")
    if k == 0:
        return scores
    k = min(max(k, min_keep), scores.shape[-1])
    kth = torch.topk(scores, k)[0][..., -1, None]  # (R, 1)
    return scores.masked_fill(scores < kth, FILTER_VALUE)


def top_p_filter(scores: torch.Tensor, p: float, min_keep: int = 1) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches `p` (nucleus sampling); 1 = off."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}.")
    if p >= 1.0:
        return scores
    sparse = _top_p_few_finite(scores, p, min_keep)
    if sparse is not None:
        return sparse
    sorted_scores, sorted_idx = torch.sort(scores, descending=False)  # (R, V), least likely first
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    sorted_remove = cumulative <= (1 - p)
    sorted_remove[..., -min_keep:] = False
    remove = sorted_remove.scatter(1, sorted_idx, sorted_remove)
    return scores.masked_fill(remove, FILTER_VALUE)


def _top_p_few_finite(scores: torch.Tensor, p: float, min_keep: int) -> torch.Tensor | None:
    """top_p_filter without sorting the whole vocabulary, for one row on the CPU where few tokens are finite
    (after top-k): the same result bit for bit, or None where that cannot be promised.

    The full sort puts every -inf first and the finite scores after them in ascending order, and when no two
    finite scores are equal that order is unique. So sorting only the finite scores and laying them out after
    V - n -inf values rebuilds the very tensor the full sort gives (only the order of the -inf entries, which
    are cut either way, is unknown), and its softmax and cumulative sum are the same numbers. Ties (where the
    full sort's order among equal scores decides which one is cut), NaN, +inf and dense rows take the full sort.
    A full-vocabulary sort is most of sampling's cost on a CPU; on a GPU it is cheap and the checks here would
    each wait for the device, so GPUs always take the full sort.
    """
    if scores.device.type != "cpu" or scores.dim() != 2 or scores.shape[0] != 1:
        return None
    row = scores[0]
    vocab = row.shape[0]
    finite_idx = torch.nonzero(row > FILTER_VALUE)[:, 0]  # (n,) ascending token ids; NaN is never > -inf
    n = finite_idx.shape[0]
    if n == 0 or 4 * n > vocab or bool(torch.isnan(row).any()):
        return None
    values, order = torch.sort(row[finite_idx])  # (n,)
    if bool(torch.isposinf(values[-1])) or bool((values[1:] == values[:-1]).any()):
        return None
    laid_out = torch.full_like(row, FILTER_VALUE)
    laid_out[vocab - n :] = values
    cumulative = laid_out.softmax(dim=-1).cumsum(dim=-1)[vocab - n :]
    sorted_remove = cumulative <= (1 - p)
    sorted_remove[-min_keep:] = False
    out = scores.clone()
    out[0, finite_idx[order[sorted_remove]]] = FILTER_VALUE
    return out


def min_p_filter(scores: torch.Tensor, min_p: float, min_keep: int = 1) -> torch.Tensor:
    """Drop tokens whose probability is below `min_p` x the top token's probability; 0 = off."""
    if not 0 <= min_p <= 1:
        raise ValueError(f"min_p must be in [0, 1], got {min_p}.")
    if min_p == 0:
        return scores
    probs = scores.softmax(dim=-1)
    remove = probs < min_p * probs.amax(dim=-1, keepdim=True)
    keep = torch.topk(probs, min(min_keep, probs.shape[-1]), dim=-1).indices
    remove = remove.scatter(-1, keep, False)
    return scores.masked_fill(remove, FILTER_VALUE)


def top_h_filter(scores: torch.Tensor, top_h: float) -> torch.Tensor:
    """Top-H: among the 100 most likely tokens, keep the most likely ones while their entropy terms -p log p
    (renormalised over those 100) sum to at most top_h x the entropy of those 100; the top token always stays.
    0 = off. (transformers' TopHLogitsWarper, which looks at 100 tokens at most.)"""
    if not 0 <= top_h <= 1:
        raise ValueError(f"top_h must be in [0, 1], got {top_h}.")
    if top_h == 0:
        return scores
    top_logits, top_idx = torch.topk(scores, min(100, scores.shape[-1]), dim=-1, largest=True, sorted=True)  # (R, n)
    # (no argument check: a row the bans cut whole stays cut, where transformers' warper raises on its NaNs)
    dist = torch.distributions.Categorical(logits=top_logits, validate_args=False)
    probs = dist.probs
    tau = (dist.entropy() * top_h).unsqueeze(-1)  # (R, 1)
    cumulative = torch.cumsum(-probs * torch.log(probs), dim=-1)  # (R, n)
    selected = cumulative <= tau
    selected[:, 0] = True
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device).scatter(1, top_idx, selected)
    return scores.masked_fill(~keep, FILTER_VALUE)


def typical_filter(scores: torch.Tensor, mass: float, min_keep: int = 1) -> torch.Tensor:
    """Typical sampling: rank tokens by how far their surprise (-log p) is from the entropy, closest first, and
    keep them until their probability reaches `mass`; 1 = off."""
    if not 0 < mass <= 1:
        raise ValueError(f"typical_p must be in (0, 1], got {mass}.")
    if mass >= 1.0:
        return scores
    normalized = torch.log_softmax(scores, dim=-1)  # (R, V)
    p = normalized.exp()
    entropy = -(normalized * p).nansum(-1, keepdim=True)  # (R, 1)
    shifted = torch.abs((-normalized) - entropy)
    sorted_shifted, sorted_idx = torch.sort(shifted, descending=False)
    cumulative = scores.gather(-1, sorted_idx).softmax(dim=-1).cumsum(dim=-1)
    last = (cumulative < mass).sum(dim=1).clamp(max=sorted_shifted.shape[-1] - 1)  # (R,)
    sorted_remove = sorted_shifted > sorted_shifted.gather(1, last.view(-1, 1))
    sorted_remove[..., :min_keep] = False
    return scores.masked_fill(sorted_remove.scatter(1, sorted_idx, sorted_remove), FILTER_VALUE)


def epsilon_filter(scores: torch.Tensor, epsilon: float, min_keep: int = 1) -> torch.Tensor:
    """Epsilon sampling: drop tokens whose probability is below `epsilon` (the `min_keep` most likely stay);
    0 = off."""
    if not 0 <= epsilon < 1:
        raise ValueError(f"epsilon_cutoff must be in [0, 1), got {epsilon}.")
    if epsilon == 0:
        return scores
    return _below(scores, scores.softmax(dim=-1) < epsilon, min_keep)


def eta_threshold(scores: torch.Tensor, eta: float) -> torch.Tensor:
    """(R, 1) eta sampling's cutoff: min(eta, sqrt(eta) x exp(-entropy))."""
    entropy = torch.distributions.Categorical(logits=scores).entropy()  # (R,)
    eta_t = torch.tensor(eta, device=scores.device)
    return torch.min(eta_t, torch.sqrt(eta_t) * torch.exp(-entropy))[..., None]


def eta_filter(scores: torch.Tensor, eta: float, min_keep: int = 1) -> torch.Tensor:
    """Eta sampling: drop tokens below an entropy-dependent cutoff, `eta_threshold` (the `min_keep` most likely
    stay); 0 = off."""
    if not 0 <= eta < 1:
        raise ValueError(f"eta_cutoff must be in [0, 1), got {eta}.")
    if eta == 0:
        return scores
    return _below(scores, scores.softmax(dim=-1) < eta_threshold(scores, eta), min_keep)


def _below(scores: torch.Tensor, remove: torch.Tensor, min_keep: int) -> torch.Tensor:
    """Cut the tokens `remove` marks, except the `min_keep` highest scores (and ties with the lowest of them)."""
    kth = torch.topk(scores, min(min_keep, scores.shape[-1]))[0][..., -1, None]  # (R, 1)
    return scores.masked_fill(remove & (scores < kth), FILTER_VALUE)


def sequence_bias(input_ids: torch.Tensor, scores: torch.Tensor, biases: tuple) -> torch.Tensor:
    """Add each bias to the last token of its sequence (ids, bias) where the context (R, T) ends with the rest
    of the sequence (always, for one-token sequences); a sequence listed twice takes its last bias. As
    transformers' SequenceBiasLogitsProcessor, sum for sum. () = off."""
    if not biases:
        return scores
    by_ids = {tuple(ids): float(bias) for ids, bias in biases}
    vocab = scores.shape[-1]
    if any(t >= vocab for ids in by_ids for t in ids):
        raise ValueError(f"sequence_bias names a token id outside the vocabulary of {vocab} tokens.")
    single = torch.zeros((vocab,), dtype=torch.float, device=scores.device)
    ones = [(ids[0], b) for ids, b in by_ids.items() if len(ids) == 1]
    if ones:
        single[[i for i, _ in ones]] = torch.tensor([b for _, b in ones], device=scores.device)
    bias = torch.zeros_like(scores) + single  # (R, V)
    groups: dict[int, list] = {}
    for ids, b in by_ids.items():
        if len(ids) > 1:
            groups.setdefault(len(ids) - 1, []).append((ids, b))
    for group in groups.values():
        prefixes = torch.tensor([ids[:-1] for ids, _ in group], device=scores.device)  # (G, n)
        last = torch.tensor([ids[-1] for ids, _ in group], device=scores.device)  # (G,)
        values = torch.tensor([b for _, b in group], dtype=torch.float, device=scores.device)
        n = prefixes.shape[1]
        if n > input_ids.shape[1]:
            continue
        matching = (input_ids[:, None, -n:] == prefixes).all(dim=-1)  # (R, G)
        bias = bias.index_add(1, last, torch.where(matching, values, 0.0).to(bias.dtype))
    return scores + bias


def ban_sequences(input_ids: torch.Tensor, scores: torch.Tensor, banned: tuple, eos_ids: tuple[int, ...] = ()) -> torch.Tensor:
    """Ban the last token of each banned sequence where the context (R, T) ends with the rest of it (always, for
    one-token sequences); a banned word that is a lone EOS id is not banned, as generate() leaves it. () = off."""
    banned = [tuple(ids) for ids in banned if not (len(ids) == 1 and ids[0] in eos_ids)]
    if not banned:
        return scores
    vocab = scores.shape[-1]
    if any(t >= vocab for ids in banned for t in ids):
        raise ValueError(f"bad_words_ids names a token id outside the vocabulary of {vocab} tokens.")
    remove = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)  # (R, V)
    for ids in banned:
        n = len(ids) - 1
        if n == 0:
            remove[:, ids[0]] = True
        elif n <= input_ids.shape[1]:
            prefix = torch.tensor(ids[:-1], device=scores.device)
            remove[:, ids[-1]] |= (input_ids[:, -n:] == prefix).all(dim=-1)
    return scores.masked_fill(remove, FILTER_VALUE)


def no_repeat_ngram(input_ids: torch.Tensor, scores: torch.Tensor, n: int) -> torch.Tensor:
    """Ban every token that would complete an n-gram already in the context (R, T), the prompt included; 0 = off."""
    if n < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0, got {n}.")
    length = input_ids.shape[-1]
    if n == 0 or length < n:
        return scores
    prefix = input_ids[:, length + 1 - n :]  # (R, n - 1): the n-gram the next token would complete
    windows = input_ids.unfold(dimension=1, size=n, step=1)  # (R, W, n)
    matches = (windows[..., :-1] == prefix.unsqueeze(1)).all(dim=-1)  # (R, W)
    vocab = scores.shape[-1]
    banned = scores.new_zeros((scores.shape[0], vocab + 1), dtype=torch.bool)  # a spare column for non-matches
    banned = banned.scatter(1, torch.where(matches, windows[..., -1].clamp(max=vocab), vocab), True)
    return scores.masked_fill(banned[:, :vocab], FILTER_VALUE)


def min_new_tokens_filter(scores: torch.Tensor, new_tokens: int, min_new_tokens: int, eos_ids: tuple[int, ...]) -> torch.Tensor:
    """Ban every EOS id while fewer than `min_new_tokens` tokens have been generated (`new_tokens`); 0 = off."""
    if min_new_tokens < 0:
        raise ValueError(f"min_new_tokens must be >= 0, got {min_new_tokens}.")
    if min_new_tokens == 0 or not eos_ids or new_tokens >= min_new_tokens:
        return scores
    return suppress(scores, eos_ids)


def suppress(scores: torch.Tensor, token_ids: tuple[int, ...]) -> torch.Tensor:
    """Ban these token ids (ids outside the vocabulary are ignored, as generate() ignores them); () = off."""
    if not token_ids:
        return scores
    mask = torch.isin(torch.arange(scores.shape[-1], device=scores.device), torch.tensor(list(token_ids), device=scores.device))
    return torch.where(mask, FILTER_VALUE, scores)


@dataclass(frozen=True)
class StepContext:
    """What a step knows besides its scores: each row's context and what the length-dependent knobs need."""

    input_ids: torch.Tensor  # (R, T) prompt and generated tokens, for the penalty, n-grams and sequences
    prompt_len: int = 0  # tokens of input_ids that are the prompt (min_new_tokens counts the rest)
    eos_ids: tuple[int, ...] = ()  # the model's EOS ids (min_new_tokens bans them; a lone EOS is never a bad word)
    penalty_skip: int = 0  # leading tokens the repetition penalty ignores (a prompt's leading pad tokens)
    min_keep: int = 1  # tokens a truncation step keeps at least (beam sampling: one more than there are EOS ids)


# Each knob of PIPELINE as a step (context, scores, config) -> scores; it returns `scores` itself when it is off.
STEPS: dict[str, Callable[[StepContext, torch.Tensor, DecodingConfig], torch.Tensor]] = {
    "sequence_bias": lambda c, s, cfg: sequence_bias(c.input_ids, s, cfg.sequence_bias),
    "repetition_penalty": lambda c, s, cfg: repetition_penalty(c.input_ids[:, c.penalty_skip :], s, cfg.repetition_penalty),
    "no_repeat_ngram_size": lambda c, s, cfg: no_repeat_ngram(c.input_ids, s, cfg.no_repeat_ngram_size),
    "bad_words_ids": lambda c, s, cfg: ban_sequences(c.input_ids, s, cfg.bad_words_ids, c.eos_ids),
    "min_new_tokens": lambda c, s, cfg: min_new_tokens_filter(s, c.input_ids.shape[-1] - c.prompt_len, cfg.min_new_tokens, c.eos_ids),
    "suppress_tokens": lambda c, s, cfg: suppress(s, cfg.suppress_tokens),
    "temperature": lambda c, s, cfg: temperature(s, cfg.temperature),
    "top_h": lambda c, s, cfg: top_h_filter(s, cfg.top_h),
    "top_k": lambda c, s, cfg: top_k_filter(s, cfg.top_k, c.min_keep),
    "top_p": lambda c, s, cfg: top_p_filter(s, cfg.top_p, c.min_keep),
    "min_p": lambda c, s, cfg: min_p_filter(s, cfg.min_p, c.min_keep),
    "typical_p": lambda c, s, cfg: typical_filter(s, cfg.typical_p, c.min_keep),
    "epsilon_cutoff": lambda c, s, cfg: epsilon_filter(s, cfg.epsilon_cutoff, c.min_keep),
    "eta_cutoff": lambda c, s, cfg: eta_filter(s, cfg.eta_cutoff, c.min_keep),
}  # fmt: skip
assert set(STEPS) == set(PIPELINE)  # a step for every knob; the order is PIPELINE's alone


@dataclass(frozen=True)
class Processed:
    """One step's distribution after the knobs, with what each step did. All tensors are (R, V)."""

    start: torch.Tensor  # what the pipeline started from: the raw logits, or their log-softmax in beam modes
    shaped: torch.Tensor  # start after the steps that cut nothing (bias, penalty, temperature): before any cut
    scores: torch.Tensor  # final scores; -inf where a step cut the token
    stages: tuple[tuple[int, torch.Tensor], ...] = ()  # (index into CUT_BY, scores after it) per cutting step that was on
    top_p_input: torch.Tensor | None = None  # the scores top-p saw (after temperature, top-h and top-k), when sampling

    @cached_property
    def cut_stage(self) -> torch.Tensor:
        """(R, V) int8 index into CUT_BY of the step that cut each token (0: kept)."""
        return self._cut(lambda scores: scores)

    def cut_stage_at(self, row, ids: torch.Tensor) -> torch.Tensor:
        """cut_stage[row][ids] without building it over the whole vocabulary (what a step record needs)."""
        return self._cut(lambda scores: scores[row][ids])

    def _cut(self, view) -> torch.Tensor:
        dead = torch.isneginf(view(self.shaped))  # -inf before any step: no step cut it
        cut = torch.zeros(dead.shape, dtype=torch.int8, device=dead.device)
        for stage, after in self.stages:
            newly = torch.isneginf(view(after)) & ~dead  # steps only write -inf, and -inf stays -inf
            cut = cut.masked_fill(newly, stage)
            dead = dead | newly
        return cut


def min_tokens_to_keep(config: DecodingConfig, eos_ids: tuple[int, ...]) -> int:
    """The fewest tokens a truncation step keeps: 1, or for beam sampling one more than there are EOS ids (at
    least 2), so that a beam can go on past EOS -- as generate() sets it."""
    return max(2, len(eos_ids) + 1) if config.generation_mode == "beam-sample" else 1


def process(
    input_ids: torch.Tensor,
    logits: torch.Tensor,
    config: DecodingConfig,
    *,
    prompt_len: int = 0,
    eos_ids: tuple[int, ...] = (),
    penalty_skip: int = 0,
) -> Processed:
    """Apply the knobs that `config.generation_mode` uses, in PIPELINE order, to raw `logits` (R, V) float32.

    `input_ids` (R, T) is each row's context (prompt + generated so far); the first `prompt_len` are the prompt
    (for min_new_tokens), `eos_ids` the model's EOS ids, and the first `penalty_skip` tokens are left out of the
    repetition penalty (the prompt's leading pad tokens, as generate() leaves them).
    """
    mode = config.generation_mode
    sampling = mode in ("sample", "beam-sample")
    start = torch.log_softmax(logits, dim=-1) if mode in ("beam", "beam-sample") else logits
    context = StepContext(input_ids, prompt_len, tuple(eos_ids), penalty_skip, min_tokens_to_keep(config, eos_ids))
    scores = shaped = start
    stages: list[tuple[int, torch.Tensor]] = []
    top_p_input = None
    for name in PIPELINE:
        if name in SAMPLING_ONLY and not sampling:
            continue
        if name == "top_p":
            top_p_input = scores
        step = STEPS[name]
        after = step(context, scores, config)
        if after is scores:  # off
            continue
        if name in CUT_LABELS:
            stages.append((CUT_BY.index(CUT_LABELS[name]), after))
        else:  # a step that cuts nothing reshapes the uncut distribution too
            shaped = after if shaped is scores else step(context, shaped, config)
        scores = after
    return Processed(start=start, shaped=shaped, scores=scores, stages=tuple(stages), top_p_input=top_p_input)


EXPLAINED_ALWAYS: tuple[str, ...] = ("top_k", "top_p", "min_p")  # the Knobs view shows these even when off


def explained_knobs(config: DecodingConfig) -> tuple[str, ...]:
    """The cutting knobs the Knobs view shows, in PIPELINE order: top-k, top-p and min-p always, every other
    one when it is on."""
    off = DecodingConfig()
    return tuple(
        name for name in PIPELINE
        if name in CUT_LABELS and (name in EXPLAINED_ALWAYS or getattr(config, name) != getattr(off, name))
    )  # fmt: skip


def explain(
    input_ids: torch.Tensor,
    logits: torch.Tensor,
    config: DecodingConfig,
    temperatures: tuple[float, ...],
    top_n: int,
    *,
    prompt_len: int = 0,
    eos_ids: tuple[int, ...] = (),
    penalty_skip: int = 0,
) -> dict[str, torch.Tensor]:
    """The numbers behind the teaching views, over the whole vocabulary, for one row.

    input_ids (1, T), logits (1, V) raw. The knobs are explained as sampling would apply them (a greedy or beam
    config is read as "what if we sampled with these settings"; temperature 0 reads as 1). Returns tensors:
    candidate ids/logits/raw/shaped/final probs/cut stage (top_n by raw logit), the cumulative shaped
    probability in shaped order, per temperature the candidates' probs, rest mass and entropy, and per knob of
    `explained_knobs(config)` alone (applied to the uncut, shaped distribution) its kept mask over the
    candidates, kept count, kept mass and threshold (top-p: p; min-p: min_p x top probability; epsilon: epsilon;
    eta: its cutoff; else NaN).
    """
    config = config.replace(strategy="sample", temperature=config.temperature or 1.0)
    processed = process(input_ids, logits, config, prompt_len=prompt_len, eos_ids=eos_ids, penalty_skip=penalty_skip)
    n = min(top_n, logits.shape[-1])
    top_logits, ids = torch.topk(logits[0], n)  # (n,)
    shaped_p = processed.shaped[0].softmax(-1)  # (V,)
    context = StepContext(input_ids, prompt_len, tuple(eos_ids), penalty_skip, 1)
    biased = STEPS["sequence_bias"](context, logits, config)
    penalised = STEPS["repetition_penalty"](context, biased, config)[0]  # (V,) bias and penalty, before temperature
    temps = []
    for t in temperatures:
        p = (penalised / t).softmax(-1)
        temps.append(torch.cat([p[ids], (1 - p[ids].sum())[None], torch.special.entr(p).sum()[None]]))
    knobs = []
    base = processed.shaped  # (1, V): bias, penalty and temperature, before any cut
    dev = logits.device  # every piece of the packed result on it, so the one transfer works on a GPU too
    nan = torch.tensor(float("nan"), device=dev)
    thresholds = {
        "top_p": torch.tensor(config.top_p, device=dev),
        "min_p": config.min_p * shaped_p.max(),
        "epsilon_cutoff": torch.tensor(config.epsilon_cutoff, device=dev),
        "eta_cutoff": eta_threshold(base, config.eta_cutoff)[0, 0] if config.eta_cutoff else nan,
    }
    for name in explained_knobs(config):
        kept = ~torch.isneginf(STEPS[name](context, base, config)[0])  # (V,)
        knobs.append(torch.cat([kept[ids].float(), kept.sum().float()[None], shaped_p[kept].sum()[None],
                                thresholds.get(name, nan).reshape(1).float()]))  # fmt: skip
    cumulative = torch.sort(shaped_p[ids], descending=True)[0].cumsum(-1)
    return {
        "ids": ids,
        "logits": top_logits,
        "raw": logits[0].softmax(-1)[ids],
        "shaped": shaped_p[ids],
        "prob": processed.scores[0].softmax(-1)[ids],
        "cut": processed.cut_stage[0][ids],
        "cumulative": cumulative,
        "temperatures": torch.stack(temps) if temps else torch.zeros(0, n + 2),
        "knobs": torch.stack(knobs) if knobs else torch.zeros(0, n + 3),
    }
