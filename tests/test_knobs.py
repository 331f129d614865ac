"""The knobs beyond temperature, top-k, top-p, min-p and the repetition penalty: top-h, typical-p, the epsilon and
eta cutoffs, the no-repeat n-gram rule, min_new_tokens, banned words, sequence bias, suppressed tokens, and beam
sampling.

Guards: that `processors.process` is transformers' own processor list, in the order `generate()` builds it
(`_get_logits_processor`, asked of a real model here), for any logits and settings; that every bad value is
refused with one sentence, from the config and from text; that a record says which knob cut each token; that
a knob nobody sets takes generate()'s own fallback; that a prompt holding the pad token is masked; that the
settings round-trip through a permalink's and a trace's JSON. Token-for-token equality on real models is
tests/test_generate_reference.py's and tests/test_architectures.py's.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import GenerationConfig

from playground import processors
from playground.config import (GENERATE_FALLBACKS, DecodingConfig, generate_fallbacks, parse_token_ids,
                               parse_word_biases, parse_words)  # fmt: skip
from playground.engine import Engine

PROMPT = "Once upon a time there was"
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_MODEL = {}


def _reference_model():
    """A 1-layer Llama: what _get_logits_processor is asked of (it reads nothing of the model but its kind)."""
    if "model" not in _MODEL:
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
        _MODEL["model"] = LlamaForCausalLM(config).eval()
    return _MODEL["model"]


def _ids(draw, vocab, max_len=3):
    return tuple(draw(st.lists(st.integers(0, vocab - 1), min_size=1, max_size=max_len)))


@st.composite
def cases(draw):
    """(logits (1, V), context (1, T), prompt length, EOS ids, config) with every knob drawn, on or off."""
    vocab = draw(st.integers(min_value=2, max_value=40))
    values = draw(st.lists(st.floats(-30, 30, allow_nan=False, width=32) | st.sampled_from([0.0, 1.0, -1.0, 1e4]),
                           min_size=vocab, max_size=vocab))  # fmt: skip
    masked = draw(st.lists(st.booleans(), min_size=vocab, max_size=vocab))
    masked[draw(st.integers(0, vocab - 1))] = False  # at least one finite token
    logits = torch.tensor([[-math.inf if m and draw(st.booleans()) else v for v, m in zip(values, masked)]])
    context = draw(st.lists(st.integers(0, vocab - 1), min_size=1, max_size=14))
    prompt_len = draw(st.integers(0, len(context)))
    eos_ids = tuple(draw(st.lists(st.integers(0, vocab - 1), max_size=2, unique=True)))
    strategy = draw(st.sampled_from(["greedy", "sample", "beam", "beam-sample"]))
    off = draw(st.booleans())  # half the time the knobs of today stay off, so the new ones act alone
    config = DecodingConfig(
        strategy=strategy,
        num_beams=draw(st.integers(2, 4)),
        temperature=draw(st.floats(0.1, 5.0) | st.just(1.0)),
        top_k=0 if off else draw(st.integers(0, 30)),
        top_p=1.0 if off else draw(st.floats(0.05, 1.0)),
        min_p=0.0 if off else draw(st.floats(0.0, 0.5)),
        repetition_penalty=draw(st.floats(0.5, 3.0) | st.just(1.0)),
        top_h=draw(st.floats(0.05, 1.0) | st.just(0.0)),
        typical_p=draw(st.floats(0.05, 1.0) | st.just(1.0)),
        epsilon_cutoff=draw(st.floats(0.0, 0.3) | st.just(0.0)),
        eta_cutoff=draw(st.floats(0.0, 0.3) | st.just(0.0)),
        no_repeat_ngram_size=draw(st.integers(0, 4)),
        min_new_tokens=draw(st.integers(0, 6)),
        bad_words_ids=tuple(_ids(draw, vocab) for _ in range(draw(st.integers(0, 3)))),
        sequence_bias=tuple((_ids(draw, vocab), draw(st.floats(-10, 10))) for _ in range(draw(st.integers(0, 3)))),
        suppress_tokens=tuple(draw(st.lists(st.integers(0, vocab - 1), max_size=3))),
    )
    return logits, torch.tensor([context]), prompt_len, eos_ids, config


@pytest.mark.filterwarnings("ignore:Passing")  # transformers warns that no prompt was given: none is needed here
@SETTINGS
@given(case=cases())
def test_process_is_generates_own_processor_list_in_its_order(case):
    """For any logits and any settings, process() gives the scores that generate()'s own processor list gives --
    built by transformers' `_get_logits_processor` from the same kwargs, so its order and its min_tokens_to_keep
    for beam sampling are transformers', not a copy of them -- and cuts the same tokens."""
    logits, context, prompt_len, eos_ids, config = case
    kwargs = config.generate_kwargs()
    generation = GenerationConfig(**{**GenerationConfig._get_default_generation_params(), **kwargs})
    generation._eos_token_tensor = torch.tensor(eos_ids) if eos_ids else None
    chain = _reference_model()._get_logits_processor(generation_config=generation, input_ids_seq_length=prompt_len,
                                                     device="cpu", model_kwargs={})  # fmt: skip
    theirs = torch.log_softmax(logits, dim=-1) if config.is_beam else logits.clone()
    ours = processors.process(context, logits, config, prompt_len=prompt_len, eos_ids=eos_ids)
    try:
        for processor in chain:
            theirs = processor(context, theirs)
    except ValueError:  # transformers' top-h refuses a row the bans cut whole; every token stays cut here
        assert config.top_h and torch.isneginf(ours.scores).all()
        return
    assert torch.equal(torch.isneginf(ours.scores), torch.isneginf(theirs))
    assert torch.allclose(ours.scores, theirs, rtol=1e-6, atol=0, equal_nan=True)
    # every token that ends at -inf was cut by a step that was on (unless it was -inf to begin with)
    cut = ours.cut_stage[0]
    assert torch.equal(cut > 0, torch.isneginf(ours.scores[0]) & ~torch.isneginf(ours.shaped[0]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_process_never_mutates_its_input_and_keeps_a_distribution(case):
    logits, context, prompt_len, eos_ids, config = case
    before_logits, before_context = logits.clone(), context.clone()
    out = processors.process(context, logits, config, prompt_len=prompt_len, eos_ids=eos_ids)
    assert torch.equal(logits, before_logits) and torch.equal(context, before_context)
    if not torch.isneginf(out.scores).all():  # the bans alone may cut every token of a tiny vocabulary
        probs = out.scores.softmax(-1)
        assert torch.allclose(probs.sum(-1), torch.ones(1), atol=1e-4)


# -- refusals: one sentence each ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,name",
    [
        (dict(typical_p=0.0), "typical_p"), (dict(typical_p=1.5), "typical_p"), (dict(typical_p=float("nan")), "typical_p"),
        (dict(epsilon_cutoff=-0.1), "epsilon_cutoff"), (dict(epsilon_cutoff=1.0), "epsilon_cutoff"),
        (dict(eta_cutoff=1.0), "eta_cutoff"), (dict(top_h=-0.1), "top_h"), (dict(top_h=1.5), "top_h"),
        (dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size"), (dict(no_repeat_ngram_size=2.5), "no_repeat_ngram_size"),
        (dict(min_new_tokens=-3), "min_new_tokens"), (dict(bad_words_ids=((),)), "bad_words_ids"),
        (dict(bad_words_ids=(("a",),)), "bad_words_ids"), (dict(bad_words_ids="cake"), "bad_words_ids"),
        (dict(sequence_bias=(((1,), "x"),)), "sequence_bias"), (dict(sequence_bias=(((1,), float("nan")),)), "sequence_bias"),
        (dict(sequence_bias=(((), 1.0),)), "sequence_bias"), (dict(sequence_bias=((1, 2, 3),)), "sequence_bias"),
        (dict(suppress_tokens=(-1,)), "suppress_tokens"), (dict(strategy="beam sample"), "strategy"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_with_one_sentence(bad, name):
    with pytest.raises(ValueError) as e:
        DecodingConfig(**bad)
    message = str(e.value)
    assert name in message and message.endswith(".") and "\n" not in message


@pytest.mark.parametrize(
    "parse,text,phrase",
    [
        (parse_word_biases, "cake", "not word=bias"), (parse_word_biases, "cake=abc", "not a number"),
        (parse_word_biases, "cake=inf", "finite"), (parse_word_biases, "=3", "not word=bias"),
        (parse_token_ids, "13, x", "not a token id"), (parse_token_ids, "-1", "not a token id"),
    ],
)  # fmt: skip
def test_bad_text_is_refused_with_one_sentence(parse, text, phrase):
    with pytest.raises(ValueError, match=phrase) as e:
        parse(text)
    assert str(e.value).endswith(".") and "\n" not in str(e.value)


def test_text_parses_into_words_biases_and_ids():
    assert parse_words(" cake, New York;pie\n\n") == ("cake", "New York", "pie")
    assert parse_words("") == ()
    assert parse_word_biases("cake=-5, a=b=+2.5\ndragon = 3") == (("cake", -5.0), ("a=b", 2.5), ("dragon", 3.0))
    assert parse_token_ids("13, 198;7") == (13, 198, 7)


def test_words_become_every_form_of_their_tokens_and_an_empty_one_is_refused(tiny_engine):
    """A banned word is banned as written and after a space (the two ways it appears in text); a word that
    encodes to nothing, or an id outside the vocabulary, is refused in one sentence before any step."""
    forms = tiny_engine.word_ids("fox")
    assert forms == tuple(dict.fromkeys([tuple(tiny_engine.tokenizer("fox", add_special_tokens=False)["input_ids"]),
                                         tuple(tiny_engine.tokenizer(" fox", add_special_tokens=False)["input_ids"])]))  # fmt: skip
    assert tiny_engine.bad_words_ids(["fox", "fox"]) == forms
    assert tiny_engine.sequence_bias([("fox", 1.0), ("fox", -2.0)]) == tuple((ids, -2.0) for ids in forms)
    with pytest.raises(ValueError, match="empty"):
        tiny_engine.word_ids("   ")
    # and back to text, for a box a permalink fills
    assert parse_words(tiny_engine.words_text(tiny_engine.bad_words_ids(["fox", "quick"]))) == ("fox", "quick")
    biases = tiny_engine.sequence_bias([("fox", 1.5), ("lazy dog", -2.0)])
    assert parse_word_biases(tiny_engine.biases_text(biases)) == (("fox", 1.5), ("lazy dog", -2.0))
    ids = tiny_engine.encode(PROMPT)
    for name, value in (("bad_words_ids", ((tiny_engine.vocab_size,),)), ("suppress_tokens", (10**6,)),
                        ("sequence_bias", (((tiny_engine.vocab_size + 3,), 1.0),))):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            tiny_engine.start(ids, DecodingConfig(**{name: value}))


# -- what the records say ------------------------------------------------------------------------------------


def _cuts(trace) -> set:
    return {c.cut_by for step in trace.steps for c in step.top if not c.kept}


@pytest.mark.parametrize(
    "knobs,label",
    [
        (dict(strategy="sample", top_h=0.3), "top_h"),
        (dict(strategy="sample", typical_p=0.3), "typical"),
        (dict(strategy="sample", epsilon_cutoff=0.05), "epsilon"),
        (dict(strategy="sample", eta_cutoff=0.05), "eta"),
        (dict(strategy="greedy", no_repeat_ngram_size=1), "ngram"),
        (dict(strategy="beam", num_beams=2, no_repeat_ngram_size=1), "ngram"),
        (dict(strategy="beam-sample", num_beams=2, epsilon_cutoff=0.001, seed=1), "epsilon"),
    ],
)  # fmt: skip
def test_each_cut_is_labelled_with_its_knob(tiny_engine, knobs, label):
    """The chart says which knob cut each token: the record's cut_by names it, and a cut token has probability 0."""
    trace = tiny_engine.generate(tiny_engine.encode(PROMPT), DecodingConfig(max_new_tokens=4, top_n=200, **knobs))
    assert label in _cuts(trace)
    assert all(c.prob == 0 for step in trace.steps for c in step.top if c.cut_by == label)


def test_banned_suppressed_and_early_eos_tokens_are_labelled_and_never_chosen(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    plain = tiny_engine.generate(ids, DecodingConfig(max_new_tokens=3, top_n=300))
    first, second = plain.token_ids[0], plain.steps[0].top[1].token_id
    eos = tiny_engine.vocab.eos_ids[0]
    config = DecodingConfig(max_new_tokens=3, top_n=300, bad_words_ids=((first,),), suppress_tokens=(second,),
                            min_new_tokens=3)  # fmt: skip
    trace = tiny_engine.generate(ids, config)
    by_id = {c.token_id: c for c in trace.steps[0].top}
    assert (by_id[first].cut_by, by_id[second].cut_by, by_id[eos].cut_by) == ("banned", "suppress", "min_new_tokens")
    assert trace.token_ids[0] not in (first, second, eos)
    assert trace.steps[0].to_dict()["settings"]["bad_words_ids"] == [[first]]  # a record says what was on


def test_the_knobs_view_shows_each_new_filter_alone(tiny_engine):
    """Exploring a step shows what each filter that is on would keep alone, over the whole vocabulary: the same
    tokens the filter alone keeps of the shaped distribution."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(strategy="sample", typical_p=0.5, epsilon_cutoff=0.02, eta_cutoff=0.02, top_h=0.5,
                            no_repeat_ngram_size=1, max_new_tokens=2, top_n=30)  # fmt: skip
    session = tiny_engine.start(ids, config)
    x = session.explore(top_n=30)
    names = [k.knob for k in x.knobs]
    assert names == ["no_repeat_ngram_size", "top_h", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff"]
    logits, _ = tiny_engine.forward(tiny_engine.prompt_tensor(ids), None)
    shaped = logits  # temperature 1, no penalty: the shaped scores are the logits
    alone = {"typical_p": processors.typical_filter(shaped, 0.5), "epsilon_cutoff": processors.epsilon_filter(shaped, 0.02),
             "eta_cutoff": processors.eta_filter(shaped, 0.02), "top_h": processors.top_h_filter(shaped, 0.5),
             "no_repeat_ngram_size": processors.no_repeat_ngram(tiny_engine.prompt_tensor(ids), shaped, 1)}  # fmt: skip
    for knob in x.knobs:
        if knob.knob in alone:
            kept = ~torch.isneginf(alone[knob.knob][0])
            assert knob.kept == [bool(kept[c.token_id]) for c in x.candidates], knob.knob
            assert knob.kept_count == int(kept.sum()) and knob.label == processors.CUT_LABELS[knob.knob]
    by_name = {k.knob: k for k in x.knobs}
    assert by_name["epsilon_cutoff"].threshold == pytest.approx(0.02)
    assert by_name["top_h"].threshold is None
    assert DecodingConfig().replace(typical_p=0.5) and [k.knob for k in session.explore(config=DecodingConfig()).knobs] == ["top_k", "top_p", "min_p"]


# -- defaults, masking, round trips ---------------------------------------------------------------------------


def _engine_with_generation_config(tiny_engine, **settings) -> Engine:
    model = copy.deepcopy(tiny_engine.model)
    for name, value in settings.items():
        setattr(model.generation_config, name, value)
    return Engine(model, tiny_engine.tokenizer, name="tiny")


def test_generate_fallbacks_are_transformers_own():
    """Every knob's generate() fallback (GenerationConfig._get_default_generation_params) is DecodingConfig's own
    default, except those GENERATE_FALLBACKS names, with the value it names."""
    theirs = GenerationConfig._get_default_generation_params()
    ours = DecodingConfig().to_dict()
    differ = {name: theirs[name] for name in ours if name in theirs and name != "num_beams"
              and theirs[name] not in (ours[name], None) and not (theirs[name] is False and ours[name] is False)}  # fmt: skip
    assert differ == GENERATE_FALLBACKS == generate_fallbacks() == {"top_k": 50}


def test_a_knob_nobody_sets_takes_generates_fallback(tiny_engine):
    """Point 5 of issue 22: a model that sets only do_sample and a temperature samples, in generate(), with top-k
    50 (its fallback); so does the engine with nothing given."""
    engine = _engine_with_generation_config(tiny_engine, do_sample=True, temperature=1.5)
    config = engine.default_config(seed=4, max_new_tokens=10)
    assert (config.strategy, config.temperature, config.top_k) == ("sample", 1.5, 50)
    ids = engine.encode(PROMPT)
    torch.manual_seed(4)
    with torch.no_grad():
        expected = engine.model.generate(torch.tensor([ids]), max_new_tokens=10)[0, len(ids) :].tolist()
    assert engine.generate(ids, config).token_ids == expected
    off = engine.generate(ids, config.replace(top_k=0)).token_ids  # the old behaviour, which differed here
    assert off != expected


def test_the_models_new_knobs_are_its_defaults(tiny_engine):
    engine = _engine_with_generation_config(tiny_engine, do_sample=True, num_beams=3, no_repeat_ngram_size=3,
                                            typical_p=0.9, bad_words_ids=[[5], [6, 7]], sequence_bias={(8,): 2.0},
                                            suppress_tokens=[9])  # fmt: skip
    assert engine.model_defaults == dict(strategy="beam-sample", num_beams=3, no_repeat_ngram_size=3, typical_p=0.9,
                                         bad_words_ids=((5,), (6, 7)), sequence_bias=(((8,), 2.0),), suppress_tokens=(9,))  # fmt: skip
    assert engine.default_config().bad_words_ids == ((5,), (6, 7))
    odd = _engine_with_generation_config(tiny_engine, suppress_tokens=[10**6])
    assert "suppress_tokens" not in odd.model_defaults and any("suppress_tokens" in n for n in odd.model_defaults_notices)


def test_pad_tokens_in_the_prompt_are_masked_only_where_generate_masks_them(tiny_engine):
    """The mask matters (a masked pad changes the logits) and is made only when the pad id is not an EOS id and
    the prompt holds it; the repetition penalty skips the leading pads, as generate() does."""
    ids = tiny_engine.encode(PROMPT)
    pad = ids[1]
    engine = _engine_with_generation_config(tiny_engine, pad_token_id=pad)
    prompt = engine.prompt_tensor([pad, pad, *ids])
    mask = engine.prompt_mask(prompt)
    assert mask.tolist() == [[0, 0, 1, 0, *[1] * (len(ids) - 2)]] and engine.penalty_skip(mask) == 2
    masked, _ = engine.forward(prompt, None, mask)
    plain, _ = engine.forward(prompt, None)
    assert not torch.allclose(masked, plain)
    assert tiny_engine.prompt_mask(prompt) is None  # the tiny model's pad is its EOS: nothing is masked
    assert engine.prompt_mask(engine.prompt_tensor(ids[2:])) is None  # no pad in the prompt


def test_new_settings_round_trip_through_a_permalink_and_a_trace(tiny_engine):
    config = DecodingConfig(strategy="beam-sample", num_beams=3, top_h=0.4, typical_p=0.8, epsilon_cutoff=0.001,
                            eta_cutoff=0.002, no_repeat_ngram_size=3, min_new_tokens=2, bad_words_ids=((5,), (6, 7)),
                            sequence_bias=(((8,), -2.5), ((9, 10), 3.0)), suppress_tokens=(11, 12), max_new_tokens=3)  # fmt: skip
    assert DecodingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    trace = tiny_engine.generate(tiny_engine.encode(PROMPT), config)
    assert DecodingConfig.from_dict(json.loads(json.dumps(trace.to_dict()))["settings"]) == config


def test_beam_sampling_rewinds_to_a_fresh_runs_steps_and_equals_generate(tiny_engine):
    """Beam sampling's generator goes back with a rewind: the steps after it are a fresh run's, numbers included."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(strategy="beam-sample", num_beams=3, seed=6, temperature=0.9, max_new_tokens=8, top_n=5)
    fresh = list(tiny_engine.start(ids, config).run())
    session = tiny_engine.start(ids, config)
    list(session.run())
    session.rewind(3)
    assert list(session.run()) == fresh[3:]
    torch.manual_seed(6)
    with torch.no_grad():
        out = tiny_engine.model.generate(torch.tensor([ids]), **config.generate_kwargs())
    assert session.trace().token_ids == out[0, len(ids) :].tolist()


def test_compare_sample_lanes_take_the_new_knobs(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(typical_p=0.6, no_repeat_ngram_size=2, bad_words_ids=tiny_engine.bad_words_ids(["the"]),
                            max_new_tokens=6, num_beams=2, seed=3)  # fmt: skip
    traces = tiny_engine.compare(ids, config, num_samples=2)
    for label, seed in (("sample", 3), ("sample 2", 4)):
        lone = tiny_engine.generate(ids, config.replace(strategy="sample", seed=seed))
        assert traces[label].token_ids == lone.token_ids and traces[label].config.typical_p == 0.6


def test_hosted_mode_caps_the_lists_and_the_ngram_size_with_a_notice_each():
    from playground.hosting import HostingPolicy

    config = DecodingConfig(no_repeat_ngram_size=50, bad_words_ids=tuple((i,) for i in range(40)),
                            sequence_bias=tuple(((i,), 1.0) for i in range(33)), suppress_tokens=tuple(range(300)))  # fmt: skip
    capped, notices = HostingPolicy.from_env({"PLAYGROUND_HOSTED": "1"}).apply(config)
    assert (capped.no_repeat_ngram_size, len(capped.bad_words_ids), len(capped.sequence_bias), len(capped.suppress_tokens)) == (10, 32, 32, 256)
    assert capped.bad_words_ids == config.bad_words_ids[:32] and len(notices) == 4
    assert all(n.endswith(".") for n in notices)
    assert HostingPolicy().apply(config) == (config, [])  # a local app caps nothing
    small = HostingPolicy.from_env({"PLAYGROUND_HOSTED": "1", "PLAYGROUND_MAX_NGRAM": "3", "PLAYGROUND_MAX_WORD_ENTRIES": "2"})
    assert small.apply(config)[0].no_repeat_ngram_size == 3 and len(small.apply(config)[0].sequence_bias) == 2


def test_the_chart_names_each_new_cut(tiny_engine):
    """The distribution chart shades a row each new knob cut in that knob's colour and says which knob it was:
    "cut by typical", "cut by ε", "banned", ... (the page's Step chart is this figure)."""
    from playground import plots

    ids = tiny_engine.encode(PROMPT)
    plain = tiny_engine.generate(ids, DecodingConfig(max_new_tokens=1))
    config = DecodingConfig(strategy="sample", epsilon_cutoff=0.05, bad_words_ids=((plain.token_ids[0],),),
                            max_new_tokens=1, top_n=50)  # fmt: skip
    record = tiny_engine.generate(ids, config).steps[0]
    fig = plots.distribution_figure(record, max_tokens=50)
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    for label in ("banned", "epsilon"):
        assert f"✂ {plots.cut_phrase(label)}" in texts
        assert any(a.get_gid() == f"cut:{label}" for ax in fig.axes for a in ax.patches)
    assert plots.cut_phrase("epsilon") == "cut by ε" and plots.cut_phrase("typical") == "cut by typical"
    x = tiny_engine.start(ids, config).explore()
    assert [k.knob for k in x.knobs] == ["bad_words_ids", "top_k", "top_p", "min_p", "epsilon_cutoff"]
    panels = plots.knobs_figure(x)
    assert {c.patches[0].get_gid() for ax in panels.axes for c in ax.containers} >= {"bad_words_ids", "epsilon_cutoff"}


def test_knobs_that_cut_every_token_are_one_sentence(tiny_engine):
    """Suppressing the whole vocabulary leaves nothing to choose: one sentence saying so, not a NaN error."""
    from playground.engine import DecodingError

    config = DecodingConfig(suppress_tokens=tuple(range(tiny_engine.vocab_size)), max_new_tokens=2)
    with pytest.raises(DecodingError, match="cut every token"):
        tiny_engine.generate(tiny_engine.encode(PROMPT), config)
