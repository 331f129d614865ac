"""Choose tokens: greedy, sampling (an explicit `torch.Generator`) and beam search, as lanes of one batch.

A *lane* owns some rows of the batch the engine forwards each step: greedy and sampling own one row, beam
search owns `num_beams`. Every step has two phases so that the whole batch moves its records to the host in
one transfer:

    select(logits)  -> Selection: next token per row, which row each new row continues, and a packed
                       float32 tensor of everything the step record needs (all on the model's device)
    commit(values)  -> StepRecord, built on the host from the packed values; decides whether the lane is done

Shaping the distribution is `processors.process`; lanes only pick. Beam search follows `generate()`'s
implementation (transformers 5.x `_beam_search`) line for line, for one prompt, so its output is the same
token for token. Lanes know token ids and a `Vocab` for display strings; they never call the model. `to(device)` moves a
lane's tensors (between GPU calls a run may wait on the CPU); a sampled lane's draws go on where they were.
Beam sampling (`generation_mode` "beam-sample") is the beam lane with its 2B continuations drawn, without
replacement, from the softmax of the beams' accumulated scores (the run's own generator), as generate() draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from .config import DecodingConfig
from .processors import CUT_BY, process
from .records import BeamCandidate, Candidate, StepRecord

NEG = -1.0e9  # generate()'s "impossible" score for beams


class DecodingError(RuntimeError):
    """The model's output cannot be decoded from (NaN or infinite logits, for example)."""


class Vocab(Protocol):
    eos_ids: tuple[int, ...]

    def token_str(self, token_id: int) -> str: ...  # its text, or its bytes as ⟨E5 96⟩ (tokens.token_text)

    def token_bytes(self, token_id: int) -> bytes | None: ...  # raw bytes of a token that is part of a character

    def decode(self, token_ids: list[int]) -> str: ...

    # (R,) bool: which rows of (R, L) prompt-and-output sequences just completed one of the stop strings
    def stop_hits(self, sequences: torch.Tensor, stop_strings: tuple[str, ...]) -> torch.Tensor: ...


@dataclass
class Selection:
    tokens: torch.Tensor  # (n_rows,) long: the token each row appends
    parents: torch.Tensor  # (n_rows,) long: the lane row each new row continues
    packed: torch.Tensor  # (K,) float32: the step's record, to be unpacked by commit()


def move_tensors(value, device: torch.device, memo: dict):
    """`value` with every tensor in it (inside lists, tuples and dicts too) moved to `device`; a tensor met twice
    (by identity, `memo`) is moved once, so what was shared stays shared."""
    if isinstance(value, torch.Tensor):
        if value.device == device:
            return value
        if id(value) not in memo:
            memo[id(value)] = (value, value.to(device))  # the original is kept alive while its id is a key
        return memo[id(value)][1]
    if isinstance(value, list):
        return [move_tensors(v, device, memo) for v in value]
    if isinstance(value, tuple):
        return tuple(move_tensors(v, device, memo) for v in value)
    if isinstance(value, dict):
        return {k: move_tensors(v, device, memo) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------------------------------------
# The per-step distribution record, shared by every lane: pack on the device, unpack on the host.

_HEAD = 5  # token, raw logprob, logprob, raw negentropy, negentropy
_COLUMNS = 7  # per candidate: id, logit, raw prob, shaped prob, prob, cut stage, top-p cumulative


def _pack_distribution(
    logits: torch.Tensor,  # (V,) raw float32
    token: torch.Tensor,  # () long
    top_n: int,
    *,
    raw_logp: torch.Tensor | None = None,  # (V,) log_softmax(logits), where the caller has it already
    shaped: torch.Tensor | None = None,  # (V,) before truncation; None: the same as logits (no knob changed them)
    scores: torch.Tensor | None = None,  # (V,) final; None: the same as shaped
    probs: torch.Tensor | None = None,  # (V,) softmax of the final scores, where the caller sampled from it
    cut_stage_at=None,  # ids -> their int8 cut stage (Processed.cut_stage_at); None: nothing was cut
    top_p_input: torch.Tensor | None = None,  # (V,) the scores top-p saw, when it was on
    top_k: int = 0,  # the top-k setting that shaped top_p_input (0: off)
) -> torch.Tensor:
    if raw_logp is None:
        raw_logp = torch.log_softmax(logits, dim=-1)
    raw_p = raw_logp.exp()
    final = shaped if scores is None else scores
    if final is None:  # greedy without penalty: one distribution, computed once
        logp, p = raw_logp, raw_p
    else:
        logp = torch.log_softmax(final, dim=-1)
        p = logp.exp() if probs is None else probs
    top_logits, top_ids = torch.topk(logits, min(top_n, logits.shape[-1]))  # (n,)
    if shaped is None:
        shaped_top = raw_p[top_ids]
    elif scores is None:
        shaped_top = p[top_ids]
    else:  # only the candidates' shaped probabilities are recorded: no softmax over the whole vocabulary
        shaped_top = (shaped[top_ids] - torch.logsumexp(shaped, dim=-1)).exp()
    raw_neg_h = _neg_entropy(raw_p, raw_logp)
    cut = torch.zeros(top_ids.shape, device=logits.device) if cut_stage_at is None else cut_stage_at(top_ids).float()
    head = torch.stack(
        [token.float(), raw_logp[token], logp[token], raw_neg_h, raw_neg_h if final is None else _neg_entropy(p, logp)]
    )
    cumulative = (
        torch.full(top_ids.shape, float("nan"), device=logits.device)
        if top_p_input is None
        else _top_p_cumulative(top_p_input, top_ids, top_k)
    )
    return torch.cat([head, top_ids.float(), top_logits, raw_p[top_ids], shaped_top, p[top_ids], cut, cumulative])


def _top_p_cumulative(scores: torch.Tensor, ids: torch.Tensor, top_k: int) -> torch.Tensor:
    """(n,) for each of `ids`, the probability under softmax(scores) (V,) of it and every token at least as
    likely: top-p's running sum at that token, over the whole vocabulary. After top-k only the k kept tokens
    have any probability, so only they are compared (no host sync, no sort)."""
    q = scores.softmax(dim=-1)  # (V,)
    support = q if top_k == 0 else torch.topk(q, min(top_k, q.shape[-1])).values  # (V,) or (k,)
    at_least = support[None, :] >= q[ids][:, None]  # (n, V) or (n, k)
    return (support[None, :] * at_least).sum(dim=-1)


def _neg_entropy(p: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """sum(p * log p) from both forms (V,), negated into an entropy in nats on the host; cut tokens (p = 0,
    logp = -inf) add 0. Half the time of torch.special.entr on CPU, which recomputes the log (the benchmark's
    profile: docs/bench.md). NaN or +inf anywhere in the logits makes their log-softmax NaN everywhere, and so
    this sum: it doubles as the step's check that the model gave numbers to decode from."""
    return (p * logp.clamp_min(torch.finfo(logp.dtype).min)).sum()


def _unpack_distribution(values: list[float], vocab: Vocab, step: int) -> tuple[dict, list[Candidate]]:
    token, raw_logprob, logprob, raw_neg_h, neg_h = values[:_HEAD]
    if math.isnan(neg_h) and not math.isnan(raw_neg_h):  # the model's numbers were fine: the knobs cut every token
        raise DecodingError(
            f"The knobs cut every token at step {step} (banned or suppressed tokens, the n-gram rule, min new tokens "
            "or the cutoffs), so there is nothing to choose from: loosen them."
        )
    if math.isnan(raw_neg_h) or math.isnan(neg_h):
        raise DecodingError(
            f"The model produced NaN or infinite logits at step {step} (in float16 this is often an overflow; "
            "try float32 or bfloat16), so there is nothing to sample from."
        )
    n = (len(values) - _HEAD) // _COLUMNS
    cols = [values[_HEAD + i * n : _HEAD + (i + 1) * n] for i in range(_COLUMNS)]
    top = [
        Candidate(
            token_id=int(tid),
            token=vocab.token_str(int(tid)),
            rank=rank,
            logit=logit,
            raw_prob=raw_p,
            shaped_prob=shaped_p,
            prob=p,
            kept=cut == 0,
            cut_by=CUT_BY[int(cut)],
            cumulative=None if math.isnan(cum) else cum,
        )
        for rank, (tid, logit, raw_p, shaped_p, p, cut, cum) in enumerate(zip(*cols))
    ]
    head = {
        "token_id": int(token),
        "raw_logprob": raw_logprob,
        "logprob": logprob,
        "raw_prob": math.exp(raw_logprob),
        "prob": math.exp(logprob),
        "entropy_raw": 0.0 - raw_neg_h,  # 0.0 - x: never -0.0 for a sure thing
        "entropy": 0.0 - neg_h,
    }
    return head, top


def _safe_probs(scores: torch.Tensor) -> torch.Tensor:
    """softmax(scores), with rows that are not a distribution (NaN, all -inf) replaced by uniform ones so that
    sampling never trips a device assert; such a step is reported as an error by commit()."""
    probs = torch.softmax(scores, dim=-1)
    bad = ~(probs.sum(dim=-1, keepdim=True) > 0)  # (R, 1): a NaN anywhere makes the sum NaN, and NaN > 0 is False
    return torch.where(bad, 1.0 / probs.shape[-1], probs)


# ----------------------------------------------------------------------------------------------------------


class SingleLane:
    """Greedy or sampled decoding of one row (beam search with one beam is greedy search, as in generate()).
    Settings may change from one step to the next."""

    n_rows = 1

    def __init__(self, label: str, config: DecodingConfig, prompt_ids: torch.Tensor, vocab: Vocab,
                 draws_on: str | None = None, penalty_skip: int = 0):
        if config.is_beam:
            raise ValueError("SingleLane decodes greedy or sampled runs; use BeamLane for beam search.")
        self.label = label
        self.config = config
        self.vocab = vocab
        self.prompt_ids = prompt_ids  # (1, P) on the model's device
        self.penalty_skip = penalty_skip  # the prompt's leading tokens the repetition penalty leaves out (pads)
        self.context = prompt_ids  # (1, P + t): prompt and generated tokens, for the repetition penalty
        # the generator draws on the model's kind of device (`draws_on`; its state means nothing elsewhere); a lane
        # made elsewhere (on the CPU, to wait between GPU calls) makes it when it gets there, from the seed
        self._draws_on = draws_on or prompt_ids.device.type
        self._parked_rng: torch.Tensor | None = None  # its state while the lane is on another kind of device
        self._seed = config.seed
        self.generator = None
        if prompt_ids.device.type == self._draws_on:
            self.generator = torch.Generator(device=prompt_ids.device).manual_seed(config.seed)
        self.token_ids: list[int] = []
        self.token_logprobs: list[float] = []
        self.steps: list[StepRecord] = []
        self._rng_states: list[torch.Tensor] = []  # generator state before each step, for rewind
        self.recomputed: int | None = None  # this step's own pick, where a replayed link's token was kept instead
        self.done = False
        self.finish_reason = ""

    def select(self, logits: torch.Tensor, config: DecodingConfig, forced: int | None = None,
               expected: int | None = None) -> Selection:  # fmt: skip
        """logits (1, V) raw float32 -> the next token, by argmax, by a draw, or as forced. `expected` (a replayed
        link's recorded token): the token is picked as ever (a draw advances the generator as it did), and where
        this machine's pick differs, the recorded token is kept and the pick noted (`recomputed`)."""
        self._rng_states.append(self.generator.get_state())
        processed = process(self.context, logits, config, prompt_len=self.prompt_ids.shape[1],
                            eos_ids=self.vocab.eos_ids, penalty_skip=self.penalty_skip)  # fmt: skip
        probs = None
        self.recomputed = None
        if forced is not None:
            token = torch.tensor([forced], device=logits.device)
        elif config.is_greedy:
            token = torch.argmax(processed.scores, dim=-1)  # (1,)
        else:
            probs = _safe_probs(processed.scores)
            token = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
        if forced is None and expected is not None and int(token[0]) != expected:  # a replay only: one host sync
            self.recomputed, token = int(token[0]), torch.tensor([expected], device=logits.device)
        packed = _pack_distribution(
            logits[0],
            token[0],
            config.top_n,
            shaped=None if processed.shaped is logits else processed.shaped[0],
            scores=None if processed.scores is processed.shaped else processed.scores[0],
            probs=None if probs is None else probs[0],
            cut_stage_at=(lambda ids: processed.cut_stage_at(0, ids)) if processed.stages else None,
            top_p_input=processed.top_p_input[0] if processed.top_p_input is not None and config.top_p < 1 else None,
            top_k=config.top_k,
        )
        self.context = torch.cat([self.context, token[:, None]], dim=-1)
        if config.stop_strings:  # over the prompt and the output, as generate() checks them
            stopped = self.vocab.stop_hits(self.context, config.stop_strings).float()  # (1,)
        else:
            stopped = torch.zeros(1, device=logits.device)
        packed = torch.cat([stopped, packed])
        return Selection(tokens=token, parents=torch.zeros(1, dtype=torch.long, device=logits.device), packed=packed)

    def commit(self, values: list[float], config: DecodingConfig, forced: int | None = None) -> StepRecord:
        step = len(self.token_ids)
        stopped, values = values[0], values[1:]
        try:
            head, top = _unpack_distribution(values, self.vocab, step)
        except DecodingError:  # the step did not happen: undo select()'s context and generator changes
            self.generator.set_state(self._rng_states.pop())
            self.context = self.context[:, :-1]
            raise
        token_id = head.pop("token_id")
        record = StepRecord(
            step=step,
            token_id=token_id,
            token=self.vocab.token_str(token_id),
            token_bytes=self.vocab.token_bytes(token_id),
            forced=forced is not None,
            config=config,
            top=top,
            recomputed=self.recomputed,
            **head,
        )
        self.steps.append(record)
        self.token_ids.append(token_id)
        self.token_logprobs.append(head["raw_logprob"])
        self.config = config
        if token_id in self.vocab.eos_ids:
            self.done, self.finish_reason = True, "eos"
        elif stopped:
            self.done, self.finish_reason = True, "stop_string"
        elif len(self.token_ids) >= config.max_new_tokens:
            self.done, self.finish_reason = True, "length"
        return record

    def rewind(self, n_steps: int) -> None:
        """Forget every step from `n_steps` on; the generator goes back to where it was then."""
        if n_steps < len(self.token_ids):
            if self.generator is not None:
                self.generator.set_state(self._rng_states[n_steps])
            else:  # waiting off its device: the state it takes when it gets back
                self._parked_rng = self._rng_states[n_steps]
        del self.token_ids[n_steps:], self.token_logprobs[n_steps:], self.steps[n_steps:], self._rng_states[n_steps:]
        self.context = self.context[:, : self.prompt_ids.shape[1] + n_steps]
        self.done, self.finish_reason = False, ""

    def replay_tokens(self, n_steps: int) -> torch.Tensor:
        """(n_rows, n_steps) the tokens each row has generated in its first n_steps steps."""
        return self.context[:, self.prompt_ids.shape[1] : self.prompt_ids.shape[1] + n_steps]

    def result(self) -> tuple[list[int], list[float], float | None]:
        return list(self.token_ids), list(self.token_logprobs), None

    def to(self, device: torch.device, memo: dict | None = None) -> None:
        """Move the lane's tensors to `device`. The generator goes along where it can draw there (the same kind of
        device: a CPU generator's state is not a CUDA generator's); elsewhere its state is kept aside, and it is
        made again, in that state, when the lane comes back. Rewind states are host tensors already."""
        memo = {} if memo is None else memo
        self.prompt_ids = move_tensors(self.prompt_ids, device, memo)
        self.context = move_tensors(self.context, device, memo)
        _move_generator(self, device)


def _move_generator(lane, device: torch.device) -> None:
    """A lane's generator goes along where it can draw there (the same kind of device as `lane._draws_on`: a CPU
    generator's state is not a CUDA generator's); elsewhere its state is kept aside (`_parked_rng`), and it is made
    again, in that state, when the lane comes back (from the seed if it never drew)."""
    state = lane.generator.get_state() if lane.generator is not None else lane._parked_rng
    if device.type == lane._draws_on:
        if lane.generator is None or lane.generator.device != device:
            lane.generator = torch.Generator(device=device)
            if state is None:  # never drawn from yet: as seeded
                lane.generator.manual_seed(lane._seed)
            else:
                lane.generator.set_state(state)
        lane._parked_rng = None
    else:
        lane.generator, lane._parked_rng = None, state


# ----------------------------------------------------------------------------------------------------------


class BeamLane:
    """Beam search over `num_beams` rows, as generate() does it for one prompt (batch size 1).

    Tensors keep generate()'s shapes with the batch dimension of 1: running beams (1, B, ...), the 2B best
    continuations of a step (1, 2B, ...), finished hypotheses (1, B, ...).
    """

    def __init__(self, label: str, config: DecodingConfig, prompt_ids: torch.Tensor, vocab: Vocab,
                 draws_on: str | None = None, penalty_skip: int = 0):
        if not config.is_beam:
            raise ValueError("BeamLane runs beam search with 2 or more beams; use SingleLane for greedy or sampled runs.")
        self.label = label
        self.config = config
        self.vocab = vocab
        self.penalty_skip = penalty_skip  # the prompt's leading tokens the repetition penalty leaves out (pads)
        self.n_rows = B = config.num_beams
        self.prompt_ids = prompt_ids  # (1, P)
        self.max_new_tokens = T = config.max_new_tokens
        dev = prompt_ids.device
        # beam sampling draws the continuations (generate() draws them from the global generator; here the run's own,
        # on the model's kind of device, made there from the seed when the lane was made elsewhere: `_move_generator`)
        self._draws_on, self._seed, self._parked_rng = draws_on or dev.type, config.seed, None
        self.generator = torch.Generator(device=dev).manual_seed(config.seed) if dev.type == self._draws_on else None
        n_eos = len(vocab.eos_ids)
        self.beams_to_keep = max(2, 1 + n_eos) * B
        self.top_num_beam_mask = torch.cat(
            [torch.ones(B, dtype=torch.bool), torch.zeros(self.beams_to_keep - B, dtype=torch.bool)]
        ).to(dev)
        self.eos = torch.tensor(vocab.eos_ids or [-1], device=dev)
        fill = vocab.eos_ids[0] if vocab.eos_ids else 0
        self.state = {
            "running_seqs": torch.full((1, B, T), fill, dtype=torch.long, device=dev),
            "running_raw": torch.zeros((1, B, T), device=dev),  # raw model logprob of each token
            "running_scores": torch.cat([torch.zeros(1, 1), torch.full((1, B - 1), NEG)], dim=1).to(dev),
            "seqs": torch.full((1, B, T), fill, dtype=torch.long, device=dev),
            "raw": torch.zeros((1, B, T), device=dev),
            "scores": torch.full((1, B), NEG, device=dev),
            "lengths": torch.zeros((1, B), dtype=torch.long, device=dev),
            "is_finished": torch.zeros((1, B), dtype=torch.bool, device=dev),
            "heuristic_unsatisfied": torch.ones((1, 1), dtype=torch.bool, device=dev),
        }
        self._history: list[dict] = []
        self.steps: list[StepRecord] = []
        self.done = False
        self.finish_reason = ""
        self._pending: dict = {}

    @property
    def t(self) -> int:
        return len(self.steps)

    def select(self, logits: torch.Tensor, config: DecodingConfig, forced: int | None = None,
               expected: int | None = None) -> Selection:  # fmt: skip
        """logits (B, V) raw float32 of the running beams -> the beams of the next step (a beam search is replayed
        from its recipe: `expected` is not used)."""
        if forced is not None:
            raise ValueError("Forcing a token is for greedy and sampled runs, not beam search.")
        s, B, t, T = self.state, self.n_rows, self.t, self.max_new_tokens
        # no state tensor is ever written in place: references suffice (and the generator's state, for a rewind)
        self._history.append({**s, "generator": self.generator.get_state()})
        V = logits.shape[-1]
        context = torch.cat([self.prompt_ids.expand(B, -1), s["running_seqs"][0, :, :t]], dim=-1)  # (B, P + t)
        processed = process(context, logits, config, prompt_len=self.prompt_ids.shape[1], eos_ids=self.vocab.eos_ids,
                            penalty_skip=self.penalty_skip)  # log-softmaxed, then the knobs  # fmt: skip
        raw_logp = processed.start  # (B, V) the model's own log-probabilities

        acc = processed.scores[None] + s["running_scores"][:, :, None]  # (1, B, V)
        acc = acc.reshape(1, -1)  # (1, B * V)
        if config.generation_mode == "beam-sample":  # draw 2B continuations without replacement, as generate()
            probs = torch.softmax(acc, dim=-1)
            available = int((probs > 0).sum())
            if available < self.beams_to_keep:
                self.generator.set_state(self._history.pop()["generator"])
                raise ValueError(
                    f"Beam sampling draws {self.beams_to_keep} continuations a step, but the knobs left only "
                    f"{available} with any probability: loosen top-k, top-p or the other cuts, or use fewer beams."
                )
            topk_idx = torch.multinomial(probs, num_samples=self.beams_to_keep, generator=self.generator)  # (1, 2B)
            topk_scores = torch.gather(acc, 1, topk_idx)
        else:
            topk_scores, topk_idx = torch.topk(acc, k=self.beams_to_keep)  # (1, 2B)
        parent = topk_idx // V
        tokens = topk_idx % V
        topk_seqs = s["running_seqs"][0][parent]  # (1, 2B, T)
        topk_seqs[:, :, t] = tokens
        topk_raw = s["running_raw"][0][parent]
        topk_raw[:, :, t] = raw_logp.reshape(1, -1).gather(1, topk_idx)

        hits = torch.isin(tokens, self.eos)  # (1, 2B)
        if t + 1 >= T:
            hits = torch.ones_like(hits)
        elif config.stop_strings:  # over the prompt and each continuation, as generate() checks them
            prompt = self.prompt_ids.expand(self.beams_to_keep, -1)
            continuations = torch.cat([prompt, topk_seqs[0, :, : t + 1]], dim=-1)  # (2B, P + t + 1)
            hits = hits | self.vocab.stop_hits(continuations, config.stop_strings)[None]

        # the running beams of the next step: the best B continuations that did not stop
        topk_running = topk_scores + hits.to(torch.float32) * NEG
        keep = torch.topk(topk_running, k=B)[1]  # (1, B) indices into the 2B
        new_running_seqs = topk_seqs[0][keep]
        new_running_raw = topk_raw[0][keep]
        new_running_scores = topk_running.gather(1, keep)
        parents = parent.gather(1, keep)[0]  # (B,)

        # finished hypotheses: merge the B best that just stopped into the finished set
        did_finish = hits & self.top_num_beam_mask[None, :]
        normalized = topk_scores / ((t + 1) ** config.length_penalty)
        full = torch.all(s["is_finished"], dim=-1, keepdim=True) & (config.early_stopping is True)
        normalized = normalized + full.to(torch.float32) * NEG
        normalized = normalized + (~s["heuristic_unsatisfied"]).to(torch.float32) * NEG
        normalized = normalized + (~did_finish) * NEG
        merged_scores = torch.cat([s["scores"], normalized], dim=1)  # (1, 3B)
        merged_top = torch.topk(merged_scores, k=B)[1]  # (1, B)
        lengths = torch.full((1, self.beams_to_keep), t + 1, dtype=torch.long, device=logits.device)
        entered = torch.zeros((1, B + self.beams_to_keep), dtype=torch.bool, device=logits.device)
        entered[0, merged_top[0]] = True
        entered_new = entered[:, B:] & did_finish  # (1, 2B): which continuations became hypotheses
        s_next = {
            "running_seqs": new_running_seqs,
            "running_raw": new_running_raw,
            "running_scores": new_running_scores,
            "seqs": torch.cat([s["seqs"], topk_seqs], dim=1)[0][merged_top],
            "raw": torch.cat([s["raw"], topk_raw], dim=1)[0][merged_top],
            "scores": merged_scores.gather(1, merged_top),
            "lengths": torch.cat([s["lengths"], lengths], dim=1).gather(1, merged_top),
            "is_finished": torch.cat([s["is_finished"], did_finish], dim=1).gather(1, merged_top),
        }

        # generate()'s early-stop heuristic: can a running beam still beat the worst finished one?
        if config.early_stopping == "never" and config.length_penalty > 0.0:
            best_len = T
        else:
            best_len = t + 1
        best_possible = new_running_scores[:, :1] / (best_len**config.length_penalty)
        worst_finished = torch.where(
            s_next["is_finished"], torch.min(s_next["scores"], dim=1, keepdim=True)[0], NEG
        )
        s_next["heuristic_unsatisfied"] = s["heuristic_unsatisfied"] & torch.any(
            best_possible > worst_finished, dim=-1, keepdim=True
        )
        go_on = (
            torch.any(s_next["heuristic_unsatisfied"])
            & ~(torch.all(s_next["is_finished"]) & (config.early_stopping is True))
            & ~torch.all(hits)
        )
        self._pending = s_next

        # the record: the distribution behind the best running beam, and the whole beam step
        p0 = parents[0]
        slot = torch.full((self.beams_to_keep,), -1.0, device=logits.device)
        slot[keep[0]] = torch.arange(B, device=logits.device, dtype=torch.float32)
        packed = torch.cat(
            [
                go_on.float()[None],
                _pack_distribution(
                    logits[p0], new_running_seqs[0, 0, t], config.top_n, raw_logp=raw_logp[p0], shaped=processed.shaped[p0],
                    scores=None if processed.scores is processed.shaped else processed.scores[p0],
                    cut_stage_at=(lambda ids: processed.cut_stage_at(p0, ids)) if processed.stages else None,
                ),
                parent[0].float(),
                tokens[0].float(),
                topk_scores[0],
                slot,
                entered_new[0].float() * 2 + hits[0].float(),  # 2 = became a hypothesis, 1 = stopped
                (topk_scores / ((t + 1) ** config.length_penalty))[0],
            ]
        )
        self.config = config
        return Selection(tokens=new_running_seqs[0, :, t], parents=parents, packed=packed)

    def commit(self, values: list[float], config: DecodingConfig, forced: int | None = None) -> StepRecord:
        step = self.t
        go_on, values = values[0], values[1:]
        k = self.beams_to_keep
        dist, beam_cols = values[: len(values) - 6 * k], values[len(values) - 6 * k :]
        try:
            head, top = _unpack_distribution(dist, self.vocab, step)
        except DecodingError:  # the step did not happen: keep the beams (and the generator) as they were
            self.generator.set_state(self._history.pop()["generator"])
            raise
        self.state = self._pending
        parent, tokens, scores, slot, entered, normalized = (beam_cols[i * k : (i + 1) * k] for i in range(6))
        beams = []
        for i in range(k):
            finished, stopped = entered[i] >= 2, entered[i] % 2 == 1
            kept = slot[i] >= 0 and not stopped  # a stopped continuation never runs on, even if slotted
            beams.append(
                BeamCandidate(
                    parent=int(parent[i]),
                    token_id=int(tokens[i]),
                    token=self.vocab.token_str(int(tokens[i])),
                    score=scores[i],
                    status="finished" if finished else ("kept" if kept else "pruned"),
                    beam=int(slot[i]) if kept else None,
                    normalized_score=normalized[i] if finished else None,
                )
            )
        token_id = head.pop("token_id")
        record = StepRecord(
            step=step,
            token_id=token_id,
            token=self.vocab.token_str(token_id),
            token_bytes=self.vocab.token_bytes(token_id),
            forced=False,
            config=config,
            top=top,
            beams=beams,
            **head,
        )
        self.steps.append(record)
        if not go_on:
            self.done = True
            best = self.result()[0]
            if best and best[-1] in self.vocab.eos_ids:
                self.finish_reason = "eos"
            elif config.stop_strings and len(best) < self.max_new_tokens:  # ended by EOS, a stop string or length
                self.finish_reason = "stop_string"
            else:
                self.finish_reason = "length"
        return record

    def rewind(self, n_steps: int) -> None:
        if n_steps < self.t:
            self.state = dict(self._history[n_steps])
            rng = self.state.pop("generator")
            if self.generator is not None:
                self.generator.set_state(rng)
            else:  # the lane waits on another kind of device: its generator is made in this state when it is back
                self._parked_rng = rng
        del self._history[n_steps:], self.steps[n_steps:]
        self.done, self.finish_reason = False, ""

    def replay_tokens(self, n_steps: int) -> torch.Tensor:
        return self.state["running_seqs"][0, :, :n_steps]

    def to(self, device: torch.device, memo: dict | None = None) -> None:
        """Move the lane's tensors (the beams, their history, the masks) to `device`; shared tensors stay shared."""
        memo = {} if memo is None else memo
        for name in ("prompt_ids", "top_num_beam_mask", "eos", "state", "_pending"):
            setattr(self, name, move_tensors(getattr(self, name), device, memo))
        # each step's beams move; the generator states kept for a rewind are host tensors, and stay there
        self._history = [{**move_tensors({k: v for k, v in h.items() if k != "generator"}, device, memo),
                          **({"generator": h["generator"]} if "generator" in h else {})} for h in self._history]  # fmt: skip
        _move_generator(self, device)

    def best_running(self) -> list[int]:
        return self.state["running_seqs"][0, 0, : self.t].tolist()

    def result(self) -> tuple[list[int], list[float], float | None]:
        """The best finished hypothesis (generate()'s sequences[0]): token ids, raw logprobs, beam score."""
        s = self.state
        if not bool(s["is_finished"][0, 0]):  # stopped early by the user: report the best running beam
            n = self.t
            return (
                s["running_seqs"][0, 0, :n].tolist(),
                s["running_raw"][0, 0, :n].tolist(),
                None,
            )
        n = int(s["lengths"][0, 0])
        return s["seqs"][0, 0, :n].tolist(), s["raw"][0, 0, :n].tolist(), float(s["scores"][0, 0])
