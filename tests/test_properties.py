"""Property-based tests (hypothesis) of the distribution-shaping pipeline: `playground/processors.py`.

For any finite logits (large magnitudes, ties, some -inf entries but at least one finite token) and any valid
settings, the processed distribution is a distribution (finite, sums to 1, keeps at least one token, cut
tokens have probability exactly 0), no processor mutates its input, each filter equals transformers' own
warper on the same input, and the order is penalty -> temperature -> top-k -> top-p -> min-p.
These tests know nothing about models or the UI: they build logit tensors directly.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from playground import processors
from playground.config import DecodingConfig

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Logit values: ordinary, huge, and a few repeated values so that ties are common.
_value = st.one_of(
    st.floats(min_value=-50.0, max_value=50.0, allow_nan=False, allow_infinity=False, width=32),
    st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, -1.0, 3.5, 1e4]),
)


@st.composite
def logits_and_context(draw, max_vocab: int = 40):
    """(logits (1, V) float32 with some -inf but at least one finite entry, context ids (1, T))."""
    vocab = draw(st.integers(min_value=1, max_value=max_vocab))
    values = draw(st.lists(_value, min_size=vocab, max_size=vocab))
    masked = draw(st.lists(st.booleans(), min_size=vocab, max_size=vocab))
    if all(masked):
        masked[draw(st.integers(0, vocab - 1))] = False  # at least one finite token
    row = [-math.inf if m else v for v, m in zip(values, masked)]
    context = draw(st.lists(st.integers(0, vocab - 1), min_size=0, max_size=12))
    return (
        torch.tensor([row], dtype=torch.float32),
        torch.tensor([context], dtype=torch.long).reshape(1, len(context)),
    )


sampling_configs = st.builds(
    DecodingConfig,
    strategy=st.just("sample"),
    temperature=st.floats(min_value=0.05, max_value=20.0),
    top_k=st.integers(min_value=0, max_value=50),
    top_p=st.one_of(st.floats(min_value=1e-6, max_value=1.0), st.just(1.0)),
    min_p=st.one_of(st.floats(min_value=0.0, max_value=1.0), st.just(0.0), st.just(1.0)),
    repetition_penalty=st.one_of(st.floats(min_value=0.05, max_value=20.0), st.just(1.0)),
)
any_config = st.one_of(
    sampling_configs,
    st.builds(DecodingConfig, strategy=st.sampled_from(["greedy", "beam"]),
              repetition_penalty=st.floats(min_value=0.05, max_value=20.0)),
)


def _check_distribution(scores: torch.Tensor) -> torch.Tensor:
    probs = scores.softmax(dim=-1)
    assert torch.isfinite(probs).all(), f"non-finite probabilities from scores {scores}"
    assert torch.allclose(probs.sum(dim=-1), torch.ones(1), atol=1e-4)
    assert (probs > 0).sum() >= 1, "every token was cut"
    assert (probs[torch.isneginf(scores)] == 0).all(), "a cut token kept some probability"
    return probs


@SETTINGS
@given(data=logits_and_context(), config=any_config)
def test_processed_probabilities_are_a_distribution(data, config):
    """Guards against a knob combination that cuts every token or produces NaN (a crash in multinomial)."""
    logits, context = data
    out = processors.process(context, logits, config)
    _check_distribution(out.scores)
    # what a stage cut is -inf, and nothing the model gave a finite logit is -inf unless a stage cut it
    cut = out.cut_stage != 0
    assert torch.isneginf(out.scores[cut]).all()
    newly_neg_inf = torch.isneginf(out.scores) & ~torch.isneginf(logits)
    if config.strategy != "beam":  # beam scores are log-softmaxed, which keeps finite entries finite too
        assert torch.equal(newly_neg_inf, cut)
    # a most likely token (after penalty and temperature; ties may go either way) is never cut
    best = out.shaped == out.shaped.max()
    assert torch.isfinite(out.scores[best]).any()


@SETTINGS
@given(data=logits_and_context(), config=any_config)
def test_process_never_mutates_its_input(data, config):
    """Guards against in-place ops (div_, masked_fill_) on the model's logits, which the record reads again."""
    logits, context = data
    logits_before, context_before = logits.clone(), context.clone()
    processors.process(context, logits, config)
    assert torch.equal(logits, logits_before)
    assert torch.equal(context, context_before)


@SETTINGS
@given(
    data=logits_and_context(),
    penalty=st.floats(min_value=0.05, max_value=20.0),
    t=st.floats(min_value=0.05, max_value=20.0),
    k=st.integers(min_value=0, max_value=50),
    p=st.floats(min_value=1e-6, max_value=1.0),
    min_p=st.floats(min_value=0.0, max_value=1.0),
)
def test_each_function_is_pure(data, penalty, t, k, p, min_p):
    logits, context = data
    before = logits.clone()
    for out in (
        processors.repetition_penalty(context, logits, penalty),
        processors.temperature(logits, t),
        processors.top_k_filter(logits, k),
        processors.top_p_filter(logits, p),
        processors.min_p_filter(logits, min_p),
    ):
        assert torch.equal(logits, before)
        assert out.shape == logits.shape


@SETTINGS
@given(
    data=logits_and_context(),
    penalty=st.floats(min_value=0.05, max_value=20.0),
    t=st.floats(min_value=0.05, max_value=20.0),
    k=st.integers(min_value=1, max_value=50),
    p=st.floats(min_value=1e-6, max_value=1.0, exclude_max=True),  # 1.0 is "off": see the test below
    min_p=st.floats(min_value=0.0, max_value=1.0),
)
def test_each_filter_equals_transformers_warper(data, penalty, t, k, p, min_p):
    """Each of our steps gives exactly what transformers' own processor gives on the same scores."""
    logits, context = data
    pairs = [
        (processors.repetition_penalty(context, logits, penalty), RepetitionPenaltyLogitsProcessor(penalty)),
        (processors.temperature(logits, t), TemperatureLogitsWarper(t)),
        (processors.top_k_filter(logits, k), TopKLogitsWarper(k)),
        (processors.top_p_filter(logits, p), TopPLogitsWarper(p)),
        (processors.min_p_filter(logits, min_p), MinPLogitsWarper(min_p)),
    ]
    for ours, warper in pairs:
        theirs = warper(context, logits.clone())
        assert torch.equal(ours, theirs), f"{type(warper).__name__} differs"


@SETTINGS
@given(data=logits_and_context(), config=sampling_configs)
def test_process_equals_transformers_chain_in_generate_order(data, config):
    """The whole sampling pipeline equals transformers' warpers chained as generate() chains them."""
    logits, context = data
    chain = [RepetitionPenaltyLogitsProcessor(config.repetition_penalty), TemperatureLogitsWarper(config.temperature)]
    if config.top_k:
        chain.append(TopKLogitsWarper(config.top_k))
    if config.top_p < 1.0:  # generate() adds no top-p warper at 1.0
        chain.append(TopPLogitsWarper(config.top_p))
    if config.min_p:
        chain.append(MinPLogitsWarper(config.min_p))
    theirs = logits.clone()
    for warper in chain:
        theirs = warper(context, theirs)
    ours = processors.process(context, logits, config).scores
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0, equal_nan=False) or torch.equal(ours, theirs)
    assert torch.equal(torch.isneginf(ours), torch.isneginf(theirs))


@st.composite
def wide_logits(draw):
    """(1, V) logits over a vocabulary of up to 4,096 tokens, often with many ties (a coarse grid of values)."""
    vocab = draw(st.integers(min_value=8, max_value=4096))
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    row = torch.randn(1, vocab, generator=torch.Generator().manual_seed(seed)) * draw(st.sampled_from([0.1, 1.0, 8.0]))
    if draw(st.booleans()):
        row = (row * 4).round() / 4  # ties everywhere: the full sort's order among them decides the cut
    return row


@SETTINGS
@given(
    logits=wide_logits(),
    k=st.integers(min_value=1, max_value=300),
    p=st.floats(min_value=1e-6, max_value=1.0, exclude_max=True),
    min_keep=st.integers(min_value=1, max_value=3),
)
def test_top_p_after_top_k_equals_transformers_bit_for_bit(logits, k, p, min_keep):
    """After top-k most of the row is -inf, and top_p_filter sorts only the finite scores (on the CPU); the
    result must still be transformers' TopPLogitsWarper's exactly, ties included (ties take the full sort)."""
    cut = TopKLogitsWarper(k)(None, logits.clone())
    theirs = TopPLogitsWarper(p, min_tokens_to_keep=min_keep)(None, cut.clone())
    assert torch.equal(processors.top_p_filter(cut, p, min_keep), theirs)


def test_top_p_sorts_only_the_finite_scores_when_it_can():
    """The short path is taken where it is exact (few finite, distinct scores) and refused where it is not."""
    row = torch.full((1, 1000), -float("inf"))
    row[0, [3, 500, 999]] = torch.tensor([1.0, 2.0, 0.5])
    assert processors._top_p_few_finite(row, 0.5, 1) is not None
    tied = row.clone()
    tied[0, 999] = 1.0  # equal to token 3: which of them a full sort puts first decides the cut
    assert processors._top_p_few_finite(tied, 0.5, 1) is None
    assert processors._top_p_few_finite(torch.randn(1, 1000), 0.5, 1) is None  # dense: nothing to save
    with_nan = row.clone()
    with_nan[0, 7] = float("nan")
    assert processors._top_p_few_finite(with_nan, 0.5, 1) is None
    assert processors._top_p_few_finite(row.repeat(2, 1), 0.5, 1) is None  # one row at a time


@SETTINGS
@given(data=logits_and_context(), config=sampling_configs)
def test_cut_stage_at_equals_the_full_cut_stage(data, config):
    """The step record reads the cut stage of its candidates only; it must be the full map's, id for id."""
    logits, context = data
    out = processors.process(context, logits, config)
    ids = torch.arange(logits.shape[-1]).flip(0)
    assert torch.equal(out.cut_stage_at(0, ids), out.cut_stage[0][ids])


def test_top_p_one_is_off():
    """At p=1 we return the scores untouched; transformers' warper also cuts tokens whose probability
    underflows to 0 in float32, which is the same distribution (generate() skips the warper at 1.0)."""
    logits = torch.tensor([[0.0, 104.0, -3.0]])
    assert processors.top_p_filter(logits, 1.0) is logits
    theirs = TopPLogitsWarper(1.0)(None, logits.clone())
    assert torch.equal(logits.softmax(-1), theirs.softmax(-1))


def test_pipeline_order_is_pinned():
    assert processors.PIPELINE == (
        "sequence_bias", "repetition_penalty", "no_repeat_ngram_size", "bad_words_ids", "min_new_tokens",
        "suppress_tokens", "temperature", "top_h", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
    )  # fmt: skip
    assert processors.CUT_BY[:4] == (None, "top_k", "top_p", "min_p")  # the first three keep their indices
    assert set(processors.CUT_LABELS.values()) == set(processors.CUT_BY[1:])


def _logits_for(probs: list[float]) -> torch.Tensor:
    return torch.tensor([probs]).log()


def test_top_k_runs_before_top_p():
    """probs .4 .3 .2 .1 with k=2, p=.5: top-k first leaves .57/.43, so top-p keeps one token (the other order
    would keep two)."""
    logits = _logits_for([0.4, 0.3, 0.2, 0.1])
    cfg = DecodingConfig(strategy="sample", top_k=2, top_p=0.5)
    out = processors.process(torch.zeros(1, 0, dtype=torch.long), logits, cfg)
    assert torch.isfinite(out.scores).sum() == 1
    assert out.cut_stage[0].tolist() == [0, 2, 1, 1]  # .3 cut by top-p, .2 and .1 by top-k
    other_order = processors.top_k_filter(processors.top_p_filter(logits, 0.5), 2)
    assert torch.isfinite(other_order).sum() == 2  # the check can tell the orders apart


def test_top_p_runs_before_min_p():
    """probs .5 .3 .2, p=.6, min_p=.5: top-p first cuts .2, then min-p keeps .3 (.375 >= .5 x .625)."""
    logits = _logits_for([0.5, 0.3, 0.2])
    cfg = DecodingConfig(strategy="sample", top_p=0.6, min_p=0.5)
    out = processors.process(torch.zeros(1, 0, dtype=torch.long), logits, cfg)
    assert out.cut_stage[0].tolist() == [0, 0, 2]
    other_order = processors.top_p_filter(processors.min_p_filter(logits, 0.5), 0.6)
    assert torch.isfinite(other_order).sum() == 1


def test_temperature_runs_before_truncation():
    """At t=0.25 the top token of .4 .35 .25 reaches p=.5 alone; without temperature first it would not."""
    logits = _logits_for([0.4, 0.35, 0.25])
    out = processors.process(torch.zeros(1, 0, dtype=torch.long), logits,
                             DecodingConfig(strategy="sample", temperature=0.25, top_p=0.5))
    assert torch.isfinite(out.scores).sum() == 1
    assert torch.isfinite(processors.top_p_filter(logits, 0.5)).sum() == 2


def test_penalty_runs_before_temperature_and_on_greedy():
    """The penalty changes the argmax, so greedy applies it; it acts on raw logits (sign-aware)."""
    logits = torch.tensor([[2.0, 1.5, -1.0]])
    context = torch.tensor([[0, 2]])
    out = processors.process(context, logits, DecodingConfig(strategy="greedy", repetition_penalty=2.0))
    assert out.scores[0].tolist() == [1.0, 1.5, -2.0]
    sampled = processors.process(context, logits, DecodingConfig(strategy="sample", repetition_penalty=2.0,
                                                                 temperature=0.5))
    assert sampled.scores[0].tolist() == [2.0, 3.0, -4.0]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: processors.top_k_filter(x, -1), "top_k"),
        (lambda x: processors.top_p_filter(x, 0.0), "top_p"),
        (lambda x: processors.top_p_filter(x, 1.5), "top_p"),
        (lambda x: processors.min_p_filter(x, -0.1), "min_p"),
        (lambda x: processors.min_p_filter(x, 1.1), "min_p"),
        (lambda x: processors.temperature(x, 0.0), "temperature"),
        (lambda x: processors.repetition_penalty(torch.zeros(1, 1, dtype=torch.long), x, 0.0), "repetition_penalty"),
    ],
)
def test_processors_reject_bad_parameters(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.zeros(1, 3))
