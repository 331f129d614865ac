"""Shape the next-token distribution: pure `scores -> scores` steps, in `generate()`'s order and semantics.

The pipeline, written once (`PIPELINE`) and applied by `process`:

    1. repetition penalty  (every strategy; CTRL-style, on every token already in the context)
    2. temperature         (sampling only)
    3. top-k               (sampling only)
    4. top-p               (sampling only)
    5. min-p               (sampling only)

Penalties can change the argmax, so greedy and beam search apply them; the truncation knobs cannot, so, as in
`generate()`, they run only on the random path. Beam search applies the penalty to log-softmaxed scores, also
as `generate()` does. Every function returns a new tensor and never touches its input. Cut tokens get
`-inf`, so their probability is exactly 0.

This module only shapes; choosing the token is `strategies.py`'s job. It knows nothing about models or UIs.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    sorted_scores, sorted_idx = torch.sort(scores, descending=False)  # (R, V), least likely first
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    sorted_remove = cumulative <= (1 - p)
    sorted_remove[..., -min_keep:] = False
    remove = sorted_remove.scatter(1, sorted_idx, sorted_remove)
    return scores.masked_fill(remove, FILTER_VALUE)


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
    cut_stage: torch.Tensor  # int8 index into CUT_BY: 0 kept, 1 top-k, 2 top-p, 3 min-p


def process(input_ids: torch.Tensor, logits: torch.Tensor, config: DecodingConfig) -> Processed:
    """Apply the knobs that `config.strategy` uses, in PIPELINE order, to raw `logits` (R, V) float32.

    `input_ids` (R, T) is each row's context (prompt + generated so far), for the repetition penalty.
    """
    if config.strategy == "beam":
        scores = torch.log_softmax(logits, dim=-1)  # generate() penalises log-probs in beam search
    else:
        scores = logits
    scores = repetition_penalty(input_ids, scores, config.repetition_penalty)
    no_cut = torch.zeros(scores.shape, dtype=torch.int8, device=scores.device)
    if config.strategy != "sample" or config.is_greedy:
        return Processed(shaped=scores, scores=scores, cut_stage=no_cut)

    shaped = temperature(scores, config.temperature)
    cut_stage = no_cut
    scores = shaped
    for stage, (fn, arg) in enumerate(
        ((top_k_filter, config.top_k), (top_p_filter, config.top_p), (min_p_filter, config.min_p)), start=1
    ):
        after = fn(scores, arg)
        if after is not scores:  # the stage is on: remember what it newly cut
            newly_cut = after != scores  # stages only write -inf, so what changed is what this stage cut
            cut_stage = cut_stage.masked_fill(newly_cut, stage)
        scores = after
    return Processed(shaped=shaped, scores=scores, cut_stage=cut_stage)


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
