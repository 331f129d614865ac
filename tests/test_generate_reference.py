"""The correctness bar: on the embedded SmolLM2-135M-Instruct, the engine's tokens equal `generate()`'s, token for
token -- greedy, seeded sampling with combinations of every knob, beam search with 2, 4 and 8 beams and a
length penalty other than 1, and beam sampling; each knob of issue 22 (top-h, typical-p, the epsilon and eta
cutoffs, the n-gram rule, min_new_tokens, banned words, sequence bias, suppressed tokens) alone and combined. Each case guards a different piece: processor order and semantics, the explicit
generator's draw sequence, and the port of generate()'s beam bookkeeping (finished hypotheses, early-stop
heuristic, length normalisation)."""

from __future__ import annotations

import pytest
import torch

from playground.config import DecodingConfig

PROMPT = "The capital of France is"
STORY = "Once upon a time, in a small village by the sea,"

CASES = [
    # id, prompt, engine settings, generate() kwargs (explicit: generate's own default top_k is 50)
    ("greedy", PROMPT, dict(strategy="greedy"), dict(do_sample=False)),
    ("greedy-penalty", STORY, dict(strategy="greedy", repetition_penalty=1.3), dict(do_sample=False, repetition_penalty=1.3)),
    ("sample-plain", STORY, dict(strategy="sample", seed=3), dict(do_sample=True, top_k=0)),
    ("sample-temp-topk", STORY, dict(strategy="sample", temperature=0.7, top_k=20, seed=11), dict(do_sample=True, temperature=0.7, top_k=20)),
    ("sample-topp-minp", PROMPT, dict(strategy="sample", temperature=1.2, top_p=0.85, min_p=0.05, seed=5), dict(do_sample=True, temperature=1.2, top_k=0, top_p=0.85, min_p=0.05)),
    (
        "sample-all-knobs",
        STORY,
        dict(strategy="sample", temperature=0.9, top_k=40, top_p=0.9, min_p=0.02, repetition_penalty=1.15, seed=42),
        dict(do_sample=True, temperature=0.9, top_k=40, top_p=0.9, min_p=0.02, repetition_penalty=1.15),
    ),
    ("beam2-lp0.6", PROMPT, dict(strategy="beam", num_beams=2, length_penalty=0.6), dict(do_sample=False, num_beams=2, length_penalty=0.6)),
    ("beam4-lp1.5", STORY, dict(strategy="beam", num_beams=4, length_penalty=1.5), dict(do_sample=False, num_beams=4, length_penalty=1.5)),
    (
        "beam8-lp0.8-penalty",
        PROMPT,
        dict(strategy="beam", num_beams=8, length_penalty=0.8, repetition_penalty=1.2),
        dict(do_sample=False, num_beams=8, length_penalty=0.8, repetition_penalty=1.2),
    ),
    ("beam4-early-stopping", PROMPT, dict(strategy="beam", num_beams=4, early_stopping=True), dict(do_sample=False, num_beams=4, early_stopping=True)),
]


# Issue 22's knobs: the engine's settings, and generate() given the same (DecodingConfig.generate_kwargs). Words
# become token ids with the model's tokenizer (Engine.bad_words_ids, Engine.sequence_bias).
MORE_CASES = [
    ("sample-typical", STORY, dict(strategy="sample", typical_p=0.8, seed=12)),
    ("sample-epsilon-eta-top-h", PROMPT, dict(strategy="sample", temperature=1.1, epsilon_cutoff=3e-4, eta_cutoff=1e-3, top_h=0.7, seed=13)),
    ("greedy-ngram", STORY, dict(no_repeat_ngram_size=2)),
    ("greedy-bans-bias-min-suppress", PROMPT, dict(bad_words=["Paris"], biases=[("beautiful", 4.0)], min_new_tokens=14, suppress_tokens=(30,))),
    ("beam4-ngram-bias", STORY, dict(strategy="beam", num_beams=4, no_repeat_ngram_size=3, biases=[("dragon", 3.0)])),
    ("beam-sample3", STORY, dict(strategy="beam-sample", num_beams=3, temperature=0.9, top_k=30, seed=7)),
    (
        "sample-every-knob",
        STORY,
        dict(strategy="sample", temperature=0.9, top_k=60, top_p=0.95, min_p=0.01, repetition_penalty=1.1, top_h=0.9,
             typical_p=0.95, epsilon_cutoff=1e-4, eta_cutoff=3e-4, no_repeat_ngram_size=3, bad_words=["village"],
             biases=[("sea", -2.0)], min_new_tokens=4, suppress_tokens=(30,), seed=21),
    ),
]  # fmt: skip


@pytest.mark.parametrize("case_id,prompt,ours", MORE_CASES, ids=[c[0] for c in MORE_CASES])
def test_every_knob_matches_generate_token_for_token(smol_engine, case_id, prompt, ours):
    ours = dict(ours)
    words, biases = ours.pop("bad_words", None), ours.pop("biases", None)
    if words:
        ours["bad_words_ids"] = smol_engine.bad_words_ids(words)
    if biases:
        ours["sequence_bias"] = smol_engine.sequence_bias(biases)
    ids = smol_engine.encode(prompt)
    config = DecodingConfig(max_new_tokens=12, **ours)
    trace = smol_engine.generate(ids, config)
    if config.is_sampling:
        torch.manual_seed(config.seed)
    with torch.no_grad():
        out = smol_engine.model.generate(torch.tensor([ids]), **config.generate_kwargs())
    expected = out[0, len(ids) :].tolist()
    if not config.is_beam:  # generate pads finished rows; a lone row simply stops
        expected = expected[: len(trace.token_ids)]
    assert trace.token_ids == expected, f"{case_id}: engine {trace.token_ids} != generate {expected}"


def test_a_model_that_sets_only_a_temperature_samples_as_generate_does(smol_engine):
    """Point 5 of issue 22: where the model's generation_config asks for sampling at a temperature and nothing
    else, generate() samples with its own top-k fallback of 50; so does a run with nothing given."""
    from playground.engine import Engine

    generation = smol_engine.model.generation_config
    before = (generation.do_sample, generation.temperature)
    try:
        generation.do_sample, generation.temperature = True, 0.8
        engine = Engine(smol_engine.model, smol_engine.tokenizer, name="smol")
        ids = engine.encode(STORY)
        config = engine.default_config(seed=5, max_new_tokens=16)
        assert config.top_k == 50 and config.strategy == "sample"
        torch.manual_seed(5)
        with torch.no_grad():
            expected = engine.model.generate(torch.tensor([ids]), max_new_tokens=16)[0, len(ids) :].tolist()
        assert engine.generate(ids, config).token_ids == expected[: len(expected)]
    finally:
        generation.do_sample, generation.temperature = before


@pytest.mark.parametrize("case_id,prompt,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_engine_matches_generate_token_for_token(smol_engine, case_id, prompt, ours, theirs):
    max_new = 24
    ids = smol_engine.encode(prompt)
    config = DecodingConfig(max_new_tokens=max_new, **ours)
    trace = smol_engine.generate(ids, config)

    if config.strategy == "sample":
        torch.manual_seed(config.seed)
    with torch.no_grad():
        out = smol_engine.model.generate(torch.tensor([ids]), max_new_tokens=max_new, **theirs)
    expected = out[0, len(ids) :].tolist()
    if config.strategy != "beam":  # generate pads finished rows; a lone row simply stops
        expected = expected[: len(trace.token_ids)] if len(expected) > len(trace.token_ids) else expected
    assert trace.token_ids == expected, f"{case_id}: engine {trace.token_ids} != generate {expected}"
    assert len(trace.token_ids) > 0


def test_beam_score_matches_generate_sequences_scores(smol_engine):
    """The winner's normalised, penalised score is generate()'s sequences_scores[0]."""
    ids = smol_engine.encode(PROMPT)
    config = DecodingConfig(strategy="beam", num_beams=4, length_penalty=1.3, max_new_tokens=16)
    trace = smol_engine.generate(ids, config)
    with torch.no_grad():
        out = smol_engine.model.generate(
            torch.tensor([ids]), max_new_tokens=16, num_beams=4, length_penalty=1.3, do_sample=False,
            return_dict_in_generate=True, output_scores=True,
        )
    assert trace.beam_score == pytest.approx(float(out.sequences_scores[0]), abs=1e-4)


def test_chat_mode_uses_the_template_and_matches_generate(smol_engine):
    ids = smol_engine.encode("Name a colour.", chat=True, system="Answer in one word.")
    text = smol_engine.tokenizer.decode(ids)
    assert "<|im_start|>system\nAnswer in one word." in text and text.endswith("<|im_start|>assistant\n")
    trace = smol_engine.generate(ids, DecodingConfig(max_new_tokens=12))
    with torch.no_grad():
        out = smol_engine.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)
    assert trace.token_ids == out[0, len(ids) :].tolist()[: len(trace.token_ids)]
    if trace.finish_reason == "eos":
        assert trace.token_ids[-1] in smol_engine.vocab.eos_ids


def test_compare_lanes_equal_lone_runs_on_the_embedded_model(smol_engine):
    """One batch for all strategies must not change any of them: each lane equals its lone run."""
    ids = smol_engine.encode(STORY)
    config = DecodingConfig(max_new_tokens=12, num_beams=3, temperature=0.8, top_k=30, seed=9)
    traces = smol_engine.compare(ids, config, num_samples=2)
    assert traces["greedy"].token_ids == smol_engine.generate(ids, config.replace(strategy="greedy")).token_ids
    assert traces["beam"].token_ids == smol_engine.generate(ids, config.replace(strategy="beam")).token_ids
    assert traces["sample"].token_ids == smol_engine.generate(ids, config.replace(strategy="sample")).token_ids
    assert traces["sample 2"].token_ids == smol_engine.generate(ids, config.replace(strategy="sample", seed=10)).token_ids
