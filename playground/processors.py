"""Shape the next-token distribution: pure `scores -> scores` steps, in `generate()`'s order and semantics.

The pipeline, written once (`PIPELINE`) and applied by `process`:

    1. repetition penalty  (every strategy; CTRL-style, on every token already in the context)
    2. temperature         (sampling only)
    3. top-k               (sampling only)
    4. top-p               (sampling only)
    5. min-p               (sampling only)

Penalties can change the argmax, so greedy and beam search apply them; the truncation knobs cannot, so, as in
`generate()`, they run only on the random path. Beam search (2 or more beams) applies the penalty to
log-softmaxed scores, also as `generate()` does; one beam is greedy search (`DecodingConfig.generation_mode`). Every function returns a new tensor and never touches its input. Cut tokens get
`-inf`, so their probability is exactly 0.

This module only shapes; choosing the token is `strategies.py`'s job. It knows nothing about models or UIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from .config import DecodingConfig

PIPELINE: tuple[str, ...] = ("repetition_penalty", "temperature", "top_k", "top_p", "min_p")
# Which truncation stage cut a token (the index into CUT_BY); 0 means the token survived.
CUT_BY: tuple[str | None, ...] = (None, "top_k", "top_p", "min_p")
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


@dataclass(frozen=True)
class Processed:
    """One step's distribution after the knobs, with what each stage did. All tensors are (R, V)."""

    shaped: torch.Tensor  # after penalty (+ temperature when sampling): the distribution before truncation
    scores: torch.Tensor  # final scores; -inf where a truncation stage cut the token
    stages: tuple[tuple[int, torch.Tensor], ...] = ()  # (index into CUT_BY, scores after it) per stage that was on

    @property
    def top_p_input(self) -> torch.Tensor:
        """(R, V) the scores top-p sees: after penalty, temperature and top-k (PIPELINE order)."""
        return next((after for stage, after in self.stages if CUT_BY[stage] == "top_k"), self.shaped)

    @cached_property
    def cut_stage(self) -> torch.Tensor:
        """(R, V) int8 index into CUT_BY of the stage that cut each token: 0 kept, 1 top-k, 2 top-p, 3 min-p."""
        return self._cut(lambda scores: scores)

    def cut_stage_at(self, row, ids: torch.Tensor) -> torch.Tensor:
        """cut_stage[row][ids] without building it over the whole vocabulary (what a step record needs)."""
        return self._cut(lambda scores: scores[row][ids])

    def _cut(self, view) -> torch.Tensor:
        before = view(self.shaped)
        cut = torch.zeros(before.shape, dtype=torch.int8, device=before.device)
        for stage, after in self.stages:
            now = view(after)
            cut = cut.masked_fill(now != before, stage)  # stages only write -inf: what changed, this stage cut
            before = now
        return cut


def process(input_ids: torch.Tensor, logits: torch.Tensor, config: DecodingConfig) -> Processed:
    """Apply the knobs that `config.generation_mode` uses, in PIPELINE order, to raw `logits` (R, V) float32.

    `input_ids` (R, T) is each row's context (prompt + generated so far), for the repetition penalty.
    """
    mode = config.generation_mode
    if mode == "beam":
        scores = torch.log_softmax(logits, dim=-1)  # generate() penalises log-probs in beam search
    else:
        scores = logits
    scores = repetition_penalty(input_ids, scores, config.repetition_penalty)
    if mode != "sample":
        return Processed(shaped=scores, scores=scores)

    shaped = scores = temperature(scores, config.temperature)
    stages = []
    for stage, (fn, arg) in enumerate(
        ((top_k_filter, config.top_k), (top_p_filter, config.top_p), (min_p_filter, config.min_p)), start=1
    ):
        after = fn(scores, arg)
        if after is not scores:  # the stage is on
            stages.append((stage, after))
        scores = after
    return Processed(shaped=shaped, scores=scores, stages=tuple(stages))


def explain(
    input_ids: torch.Tensor, logits: torch.Tensor, config: DecodingConfig, temperatures: tuple[float, ...], top_n: int
) -> dict[str, torch.Tensor]:
    """The numbers behind the teaching views, over the whole vocabulary, for one row.

    input_ids (1, T), logits (1, V) raw. The knobs are explained as sampling would apply them (a greedy or beam
    config is read as "what if we sampled with these settings"; temperature 0 reads as 1). Returns tensors:
    candidate ids/logits/raw/shaped/final probs/cut stage (top_n by raw logit), the cumulative shaped
    probability in shaped order, per temperature the candidates' probs, rest mass and entropy, and per knob
    alone its kept mask over the candidates, kept count and kept mass and threshold.
    """
    config = config.replace(strategy="sample", temperature=config.temperature or 1.0)
    processed = process(input_ids, logits, config)
    n = min(top_n, logits.shape[-1])
    top_logits, ids = torch.topk(logits[0], n)  # (n,)
    shaped_p = processed.shaped[0].softmax(-1)  # (V,)
    penalised = repetition_penalty(input_ids, logits, config.repetition_penalty)[0]
    temps = []
    for t in temperatures:
        p = (penalised / t).softmax(-1)
        temps.append(torch.cat([p[ids], (1 - p[ids].sum())[None], torch.special.entr(p).sum()[None]]))
    knobs = []
    base = processed.shaped  # (1, V): penalty and temperature, before truncation
    top_prob = shaped_p.max()
    dev = logits.device  # every piece of the packed result on it, so the one transfer works on a GPU too
    for fn, arg, threshold in (
        (top_k_filter, config.top_k, torch.tensor(float("nan"), device=dev)),
        (top_p_filter, config.top_p, torch.tensor(config.top_p, device=dev)),
        (min_p_filter, config.min_p, config.min_p * top_prob),
    ):
        kept = ~torch.isneginf(fn(base, arg)[0])  # (V,)
        knobs.append(
            torch.cat([kept[ids].float(), kept.sum().float()[None], shaped_p[kept].sum()[None], threshold.reshape(1).float()])
        )
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
        "knobs": torch.stack(knobs),
    }
