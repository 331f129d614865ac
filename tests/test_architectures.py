"""The architecture matrix: on a tiny random model of each of 23 architectures (tests/tiny_models.py), the engine
equals transformers' `generate()` token for token -- greedy (a one-token and a longer prompt), seeded sampling with
every knob, beam search with a length penalty -- and a rewound or forced run equals a fresh one, record for record.

Each guards what an architecture brings: its own attention and position code behind the engine's forward (no
attention mask, `logits_to_keep=1`), its cache layout (dynamic, sliding-window, or both in one cache: Qwen2 with
`use_sliding_window`, Gemma 2 and 3), its tied or untied output embedding. Every model is built once per module
(a module-scoped fixture, a fraction of a second each), and the module runs torch on one thread: on models this
small a second thread only adds hand-offs (about 5x slower on a busy two-core machine). The whole file stays well
under a minute and a half on two CPU cores. The README's matrix is this file's result.

PLAYGROUND_TEST_DEVICE=cuda runs the same matrix on a GPU (float32, both sides on the device: scripts/gpu_check.sh);
it is skipped where that device is missing.
"""

from __future__ import annotations

import os

import pytest
import torch
from tiny_models import ARCHITECTURES, SLIDING, WINDOW, build_tiny_model

from playground.config import DecodingConfig
from playground.engine import Engine

PROMPT = "Once upon a time there was"
MAX_NEW = 12
SAMPLING = dict(temperature=0.8, top_k=20, top_p=0.9, min_p=0.02, repetition_penalty=1.2)
BEAMS = dict(num_beams=3, length_penalty=0.8)
DEVICE = torch.device(os.environ.get("PLAYGROUND_TEST_DEVICE") or "cpu")  # both sides run there
if DEVICE.type == "cuda" and not torch.cuda.is_available():
    pytest.skip(f"PLAYGROUND_TEST_DEVICE={DEVICE} but CUDA is not available", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """torch on one thread for this module's tiny models, as it was afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def engine(request, tiny_engine) -> Engine:
    """An Engine over a tiny random model of one architecture, sharing the tiny Llama's tokenizer."""
    tokenizer = tiny_engine.tokenizer
    model = build_tiny_model(request.param, len(tokenizer), tokenizer.eos_token_id).to(DEVICE)
    return Engine(model, tokenizer, name=request.param)


def _generate(engine: Engine, ids: list[int], seed: int | None = None, **kwargs) -> list[int]:
    """generate()'s new tokens for one prompt (seeded through the global generator, as generate() draws)."""
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        out = engine.model.generate(torch.tensor([ids], device=DEVICE), max_new_tokens=MAX_NEW, **kwargs)
    return out[0, len(ids) :].tolist()


@pytest.mark.parametrize("prompt", ["The", PROMPT], ids=["one-token", "prompt"])
def test_greedy_equals_generate(engine, prompt):
    """Greedy search: the forward the engine makes (one row, no mask, the last position's logits) is the model's."""
    ids = engine.encode(prompt)[: 1 if prompt == "The" else None]
    trace = engine.generate(ids, DecodingConfig(max_new_tokens=MAX_NEW))
    assert trace.token_ids == _generate(engine, ids, do_sample=False)


def test_sampling_equals_generate(engine):
    """Seeded sampling with the repetition penalty, temperature, top-k, top-p and min-p all on."""
    ids = engine.encode(PROMPT)
    trace = engine.generate(ids, DecodingConfig(strategy="sample", seed=7, max_new_tokens=MAX_NEW, **SAMPLING))
    assert trace.token_ids == _generate(engine, ids, seed=7, do_sample=True, **SAMPLING)


def test_beam_search_equals_generate(engine):
    """Beam search (3 beams, length penalty 0.8): the tokens and generate()'s sequences_scores."""
    ids = engine.encode(PROMPT)
    trace = engine.generate(ids, DecodingConfig(strategy="beam", max_new_tokens=MAX_NEW, **BEAMS))
    with torch.no_grad():
        out = engine.model.generate(torch.tensor([ids], device=DEVICE), max_new_tokens=MAX_NEW, do_sample=False, output_scores=True,
                                    return_dict_in_generate=True, **BEAMS)  # fmt: skip
    assert trace.token_ids == out.sequences[0, len(ids) :].tolist()
    assert trace.beam_score == pytest.approx(float(out.sequences_scores[0]), abs=1e-4)


def test_rewind_and_force_equal_a_fresh_run(engine):
    """Undo, Rewind and 'Use this token instead' on a sampled run whose prompt + output pass a sliding window
    (where the architecture has one): every step after them equals a fresh session's, numbers included."""
    ids = engine.encode("The")
    config = DecodingConfig(strategy="sample", seed=3, max_new_tokens=14, top_n=5, **SAMPLING)
    fresh = list(engine.start(ids, config).run())
    if engine.name in SLIDING:
        assert len(ids) < WINDOW < len(ids) + len(fresh)
    session = engine.start(ids, config)
    list(session.run())
    for back_to in (13, 8, 2):  # Undo, then two rewinds
        session.rewind(back_to)
        assert list(session.run()) == fresh[back_to:], f"rewind to {back_to}"
    at = 9
    other = fresh[at].top[1].token_id  # the runner-up at step `at`
    session.rewind(at)
    session.step(force_token=other)
    list(session.run())
    forced = engine.start(ids, config)
    for _ in range(at):
        forced.step()
    forced.step(force_token=other)
    list(forced.run())
    assert session.steps == forced.steps and session.steps[:at] == fresh[:at]


def test_one_beam_equals_generate(engine):
    """One beam is greedy search, as generate(num_beams=1) runs it: with a repetition penalty, which a one-beam
    search would apply to log-probabilities instead of logits."""
    ids = engine.encode(PROMPT)
    trace = engine.generate(ids, DecodingConfig(strategy="beam", num_beams=1, repetition_penalty=1.5, max_new_tokens=MAX_NEW))
    assert trace.token_ids == _generate(engine, ids, do_sample=False, num_beams=1, repetition_penalty=1.5)


def test_a_stop_string_over_the_prompts_end_equals_generate(engine):
    """A stop string that starts in the prompt and ends in the first new token stops the run there, as it stops
    generate(stop_strings=...). (The first prompt whose first new token is whole text is used: a random model
    often starts with a lone UTF-8 byte, which no stop string can end in.)"""
    for prompt in (PROMPT, "The quick brown fox", "Paris is the capital of", "1 2 3 4 5 6"):
        ids = engine.encode(prompt)
        first = engine.generate(ids, DecodingConfig(max_new_tokens=1)).token_ids[0]
        piece = engine.tokenizer.decode([first])
        if piece and "\ufffd" not in piece:
            break
    else:
        pytest.fail("no prompt's first new token decodes to whole text")
    stop = engine.tokenizer.decode(ids)[-3:] + piece[:1]
    trace = engine.generate(ids, DecodingConfig(max_new_tokens=MAX_NEW, stop_strings=(stop,)))
    expected = _generate(engine, ids, do_sample=False, stop_strings=[stop], tokenizer=engine.tokenizer)
    assert trace.token_ids == expected == [first] and trace.finish_reason == "stop_string"


def test_the_models_own_defaults_equal_generate(engine):
    """With the model's generation_config asking for sampling with knobs and nothing given but the seed, the run is
    generate()'s with no kwargs at all: a setting not given takes the model's value."""
    generation = engine.model.generation_config
    asked = dict(do_sample=True, temperature=0.7, top_k=30, top_p=0.95, repetition_penalty=1.3)
    before = {name: getattr(generation, name) for name in asked}
    try:
        for name, value in asked.items():
            setattr(generation, name, value)
        own = Engine(engine.model, engine.tokenizer, name=engine.name)
        ids = own.encode(PROMPT)
        trace = own.generate(ids, own.default_config(seed=11, max_new_tokens=MAX_NEW))
        assert trace.token_ids == _generate(own, ids, seed=11)
    finally:
        for name, value in before.items():
            setattr(generation, name, value)


# The knobs beyond today's five: those every strategy applies, and those only sampling (and beam sampling) applies.
EVERY_STRATEGY = dict(no_repeat_ngram_size=2, min_new_tokens=4, suppress_tokens=(5,))
SAMPLING_MORE = dict(top_h=0.95, typical_p=0.95, epsilon_cutoff=0.001, eta_cutoff=0.002)


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam", "beam-sample"])
def test_every_knob_equals_generate(engine, strategy):
    """Each strategy with every knob it applies on at once -- the n-gram rule, min_new_tokens, banned words,
    a sequence bias and suppressed tokens; for sampling also top-h, typical-p and the epsilon and eta cutoffs on
    top of today's knobs -- equals generate() given the same kwargs (`DecodingConfig.generate_kwargs`). Beam
    sampling draws its continuations from the run's own generator as generate() draws from the global one."""
    ids = engine.encode(PROMPT)
    knobs = dict(EVERY_STRATEGY, bad_words_ids=engine.bad_words_ids(["the", "was"]),
                 sequence_bias=engine.sequence_bias([("fox", 4.0), ("quick brown", 2.0)]))  # fmt: skip
    if strategy in ("sample", "beam-sample"):
        knobs.update(SAMPLING, **SAMPLING_MORE)
    if strategy == "beam-sample":  # it draws 2 x 3 continuations a step: keep enough tokens to draw them from
        knobs.update(temperature=1.5, top_k=40, top_p=0.99, min_p=0.0, top_h=0.0, typical_p=0.99, epsilon_cutoff=1e-4,
                     eta_cutoff=1e-4)  # fmt: skip
    if strategy in ("beam", "beam-sample"):
        knobs.update(BEAMS)
    config = DecodingConfig(strategy=strategy, seed=5, max_new_tokens=MAX_NEW, **knobs)
    trace = engine.generate(ids, config)
    kwargs = config.generate_kwargs()
    del kwargs["max_new_tokens"]
    assert trace.token_ids == _generate(engine, ids, seed=config.seed, **kwargs)


def test_a_prompt_holding_the_pad_token_is_masked_as_generate_masks_it(engine):
    """Where the model's pad id is not an EOS id, generate() masks every pad token of the prompt (attention mask
    and position ids) and its repetition penalty skips the leading ones: so does the engine, pads leading and
    inside the prompt."""
    generation = engine.model.generation_config
    before = generation.pad_token_id
    text = engine.encode(PROMPT)
    pad = text[1]  # an ordinary token, made the pad token
    try:
        generation.pad_token_id = pad
        own = Engine(engine.model, engine.tokenizer, name=engine.name)
        ids = [pad, pad, text[0], pad, *text[2:]]
        config = DecodingConfig(strategy="sample", seed=2, repetition_penalty=1.3, max_new_tokens=MAX_NEW)
        trace = own.generate(ids, config)
        assert trace.token_ids == _generate(own, ids, seed=2, do_sample=True, top_k=0, repetition_penalty=1.3)
    finally:
        generation.pad_token_id = before
