"""The engine on a tiny random Llama (fast): KV cache vs recomputation, rewind, force, per-step settings,
comparison lanes, stopping, records. Each test's docstring names the bug it guards against."""

from __future__ import annotations

import math

import pytest
import torch

from playground import processors
from playground.config import DecodingConfig
from playground.engine import Comparison

PROMPT = "The quick brown fox"


def test_cached_steps_equal_full_recomputation(tiny_engine):
    """A KV-cache bug (wrong positions, stale rows) shows up as logits that differ from a cache-free forward."""
    ids = tiny_engine.encode(PROMPT)
    session = tiny_engine.start(ids, DecodingConfig(strategy="sample", seed=1, max_new_tokens=12, top_n=5))
    records = list(session.run())
    model = tiny_engine.model
    for r in records:
        context = torch.tensor([ids + session.token_ids[: r.step]])
        with torch.no_grad():
            full = model(context).logits[0, -1]
        top = torch.topk(full, 5)
        assert [c.token_id for c in r.top] == top.indices.tolist()
        assert [c.logit for c in r.top] == pytest.approx(top.values.tolist(), abs=1e-4)


def test_beam_cache_reordering_equals_recomputation(tiny_engine):
    """Beams reorder cache rows every step; the best beam's recorded candidates must match a fresh forward."""
    ids = tiny_engine.encode(PROMPT)
    session = tiny_engine.start(ids, DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=6, top_n=4))
    for _ in range(4):
        rec = session.step()
        best = session.token_ids  # best running beam, including this step's token
        context = torch.tensor([ids + best[:-1]])
        with torch.no_grad():
            full = model_logits = tiny_engine.model(context).logits[0, -1]
        assert [c.token_id for c in rec.top] == torch.topk(full, 4).indices.tolist()
        del model_logits


def test_records_are_consistent(tiny_engine):
    """Cut tokens have probability exactly 0, kept ones carry all the mass, and the chosen token is kept."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(strategy="sample", top_k=3, top_p=0.9, min_p=0.05, temperature=0.7, seed=2, top_n=12, max_new_tokens=6)
    for rec in tiny_engine.start(ids, config).run():
        assert any(not c.kept for c in rec.top)
        for c in rec.top:
            assert (c.prob == 0.0) == (not c.kept)
            assert (c.cut_by is None) == c.kept
        assert sum(c.prob for c in rec.top if c.kept) == pytest.approx(1.0, abs=1e-5)  # top_k=3 < top_n
        chosen = [c for c in rec.top if c.token_id == rec.token_id]
        assert chosen and chosen[0].kept
        assert rec.prob == pytest.approx(chosen[0].prob, rel=1e-5)
        assert rec.logprob == pytest.approx(math.log(rec.prob), abs=1e-5)
        assert rec.entropy <= rec.entropy_raw + 1e-6
        assert [c.rank for c in rec.top] == list(range(len(rec.top)))


def test_processed_distribution_sums_to_one_and_input_is_untouched():
    """Processors must return new tensors (transformers' rule) and a proper distribution."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 50, generator=g) * 3
    before = logits.clone()
    ctx = torch.randint(0, 50, (2, 7), generator=g)
    config = DecodingConfig(strategy="sample", temperature=0.8, top_k=10, top_p=0.7, min_p=0.1, repetition_penalty=1.3)
    out = processors.process(ctx, logits, config)
    assert torch.equal(logits, before)
    p = out.scores.softmax(-1)
    assert torch.allclose(p.sum(-1), torch.ones(2))
    assert ((out.cut_stage > 0) == (p == 0)).all()


def test_processor_order_is_pinned():
    """generate() applies penalty, temperature, top-k, top-p, min-p in that order (among the other knobs:
    tests/test_properties.py pins the whole PIPELINE); reordering changes results."""
    order = [processors.PIPELINE.index(k) for k in ("repetition_penalty", "temperature", "top_k", "top_p", "min_p")]
    assert order == sorted(order)
    # top-k before top-p: with k=2 the nucleus is computed on the renormalised two tokens.
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    config = DecodingConfig(strategy="sample", top_k=2, top_p=0.5)
    kept = ~torch.isneginf(processors.process(torch.zeros(1, 0, dtype=torch.long), logits, config).scores)
    # on the original distribution top-p=0.5 keeps {0, 1}; after top-k the renormalised 0.57 alone reaches 0.5
    assert kept.tolist() == [[True, False, False, False]]


def test_rewind_then_step_reproduces_the_same_tokens(tiny_engine):
    """Rewinding must restore the cache and the generator: the same settings give the same tokens again."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(strategy="sample", temperature=1.3, seed=7, max_new_tokens=14)
    session = tiny_engine.start(ids, config)
    first = [r.token_id for r in session.run()]
    for back_to in (9, 3, 0):
        session.rewind(back_to)
        assert session.token_ids == first[:back_to]
        again = [r.token_id for r in session.run()]
        assert session.token_ids == first, f"rewind to {back_to}"
        assert again == first[back_to:]


def test_beam_rewind_reproduces_the_same_beams(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    session = tiny_engine.start(ids, DecodingConfig(strategy="beam", num_beams=4, length_penalty=0.7, max_new_tokens=10))
    list(session.run())
    final = session.trace()
    session.rewind(4)
    assert len(session.steps) == 4
    list(session.run())
    again = session.trace()
    assert again.token_ids == final.token_ids and again.beam_score == pytest.approx(final.beam_score)
    assert [[b.token_id for b in s.beams] for s in again.steps] == [[b.token_id for b in s.beams] for s in final.steps]


def test_force_a_token_then_continue(tiny_engine):
    """Forcing appends exactly that token, marks the record, and the run goes on from it."""
    ids = tiny_engine.encode(PROMPT)
    session = tiny_engine.start(ids, DecodingConfig(max_new_tokens=8))
    session.step()
    second_best = session.steps[0].top[1].token_id
    session.rewind(0)
    rec = session.step(force_token=second_best)
    assert rec.forced and rec.token_id == second_best and session.token_ids == [second_best]
    rest = list(session.run())
    assert rest and not any(r.forced for r in rest)
    # the continuation is what greedy gives after prompt + forced token
    lone = tiny_engine.generate(ids + [second_best], DecodingConfig(max_new_tokens=7))
    assert session.token_ids[1:] == lone.token_ids


def test_settings_change_between_steps_only_affect_later_steps(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    greedy = DecodingConfig(max_new_tokens=6)
    session = tiny_engine.start(ids, greedy)
    session.step()
    hot = greedy.replace(strategy="sample", temperature=2.0, top_k=1)  # top_k=1 samples the argmax
    rec = session.step(config=hot)
    assert rec.config == hot and session.steps[0].config == greedy
    assert rec.token_id == rec.top[0].token_id
    with pytest.raises(ValueError, match="seed"):
        session.step(config=hot.replace(seed=99))
    with pytest.raises(ValueError, match="beam"):
        session.step(config=hot.replace(strategy="beam"))


def test_temperature_zero_sampling_is_greedy(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    a = tiny_engine.generate(ids, DecodingConfig(strategy="sample", temperature=0.0, top_k=5, max_new_tokens=10))
    b = tiny_engine.generate(ids, DecodingConfig(strategy="greedy", max_new_tokens=10))
    assert a.token_ids == b.token_ids


def test_seeded_sampling_is_reproducible_and_seed_sensitive(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    runs = [tiny_engine.generate(ids, DecodingConfig(strategy="sample", temperature=1.5, seed=s, max_new_tokens=12)).token_ids for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_compare_lanes_equal_lone_runs(tiny_engine):
    """Greedy, beam and samples share one prefill and one forward per step, yet each equals its lone run."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(max_new_tokens=9, num_beams=3, temperature=1.2, seed=4)
    comparison = Comparison(tiny_engine, ids, config, num_samples=3)
    assert [lane.label for lane in comparison.lanes] == ["greedy", "beam", "sample", "sample 2", "sample 3"]
    while not comparison.done:
        comparison.step()
    traces = comparison.traces()
    assert traces["greedy"].token_ids == tiny_engine.generate(ids, config.replace(strategy="greedy")).token_ids
    assert traces["beam"].token_ids == tiny_engine.generate(ids, config.replace(strategy="beam")).token_ids
    for i, label in enumerate(["sample", "sample 2", "sample 3"]):
        lone = tiny_engine.generate(ids, config.replace(strategy="sample", seed=4 + i))
        assert traces[label].token_ids == lone.token_ids


def test_compare_forwards_once_per_step_for_all_lanes(tiny_engine, monkeypatch):
    """The point of compare mode: one prefill and one batched forward a step, not one per strategy."""
    calls = []
    forward = tiny_engine.forward

    def counting(input_ids, cache, **kwargs):
        calls.append(tuple(input_ids.shape))
        return forward(input_ids, cache, **kwargs)

    monkeypatch.setattr(tiny_engine, "forward", counting)
    tiny_engine.prefills.clear()  # a prompt's forward an earlier test made would be handed out without a forward
    ids = tiny_engine.encode(PROMPT)
    comparison = Comparison(tiny_engine, ids, DecodingConfig(max_new_tokens=5, num_beams=2), num_samples=1)
    steps = 0
    while not comparison.done:
        comparison.step()
        steps += 1
    assert calls[0] == (1, len(ids))  # one prefill, one row
    assert len(calls) == steps  # then one forward per step after the first
    assert calls[1][0] == 1 + 2 + 1  # greedy + 2 beams + 1 sample as rows of one batch


def test_stop_strings_and_max_new_tokens(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    free = tiny_engine.generate(ids, DecodingConfig(strategy="sample", seed=3, max_new_tokens=20))
    assert free.finish_reason in ("length", "eos") and len(free.token_ids) <= 20
    if free.finish_reason == "length":
        assert len(free.token_ids) == 20
    # stop on a piece of text the free run produced: the run must end as soon as it appears
    stop = free.text[len(free.text) // 2 :][:2] or free.text[:1]
    stopped = tiny_engine.generate(ids, DecodingConfig(strategy="sample", seed=3, max_new_tokens=20, stop_strings=(stop,)))
    assert stopped.finish_reason == "stop_string" and stop in stopped.text
    assert stop not in tiny_engine.decode(stopped.token_ids[:-1])
    assert stopped.token_ids == free.token_ids[: len(stopped.token_ids)]


def test_step_after_length_finish_resumes_with_more_tokens(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    session = tiny_engine.start(ids, DecodingConfig(max_new_tokens=3))
    list(session.run())
    assert session.done and session.finish_reason == "length"
    with pytest.raises(ValueError, match="finished"):
        session.step()
    session.step(config=session.config.replace(max_new_tokens=5))
    assert len(session.token_ids) == 4
    assert session.token_ids == tiny_engine.generate(ids, DecodingConfig(max_new_tokens=4)).token_ids


def test_trace_json_shape(tiny_engine):
    ids = tiny_engine.encode(PROMPT)
    d = tiny_engine.generate(ids, DecodingConfig(strategy="sample", seed=1, max_new_tokens=4, top_n=3)).to_dict()
    for key in ("model", "strategy", "prompt_token_ids", "token_ids", "text", "sequence_logprob", "steps"):
        assert key in d
    step = d["steps"][0]
    for key in ("token_id", "token", "prob", "logprob", "entropy"):
        assert key in step
    assert set(step["top"][0]) >= {"token_id", "token", "raw_prob", "prob", "kept"}
    assert d["sequence_logprob"] == pytest.approx(sum(d["token_logprobs"]))


def test_beam_records_form_a_tree(tiny_engine):
    """Every kept beam at step t has a parent among step t-1's kept beams; finished ones carry scores."""
    ids = tiny_engine.encode(PROMPT)
    trace = tiny_engine.generate(ids, DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=7))
    for t, step in enumerate(trace.steps):
        assert len(step.beams) == 2 * 3
        kept = [b for b in step.beams if b.status == "kept"]
        assert sorted(b.beam for b in kept) == list(range(len(kept)))
        for b in step.beams:
            assert 0 <= b.parent < 3
            if b.status == "finished":
                assert b.normalized_score is not None
    assert sum(b.status == "finished" for s in trace.steps for b in s.beams) >= 1
    assert trace.beam_score is not None and trace.finish_reason in ("eos", "length")


def test_explore_matches_the_step_it_explains(tiny_engine):
    """The teaching views recompute the distribution behind a step; it must agree with the step's record."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(strategy="sample", top_k=4, top_p=0.8, seed=5, max_new_tokens=4, top_n=6)
    session = tiny_engine.start(ids, config)
    records = list(session.run())
    x = session.explore(2, temperatures=(0.5, 1.0, 2.0), top_n=6)
    assert [c.token_id for c in x.candidates] == [c.token_id for c in records[2].top]
    assert [c.prob for c in x.candidates] == pytest.approx([c.prob for c in records[2].top], abs=1e-5)
    one = x.temperatures[1]
    assert one.probs == pytest.approx([c.raw_prob for c in records[2].top], abs=1e-5)
    assert sum(one.probs) + one.rest == pytest.approx(1.0, abs=1e-5)
    assert x.temperatures[0].entropy < one.entropy < x.temperatures[2].entropy  # colder is sharper
    top_k = x.knobs[0]
    assert top_k.knob == "top_k" and top_k.kept_count == 4 and sum(top_k.kept) == 4
    assert session.token_ids == [r.token_id for r in records]  # exploring does not disturb the run
    with pytest.raises(ValueError):
        session.explore(99)


def test_entropy_of_a_certain_distribution_is_plus_zero():
    """-(1 * log 1) is -0.0 in floating point, which the views printed as "-0.00 nats"."""
    from playground.strategies import _pack_distribution, _unpack_distribution

    class Vocab:
        def token_str(self, token_id):
            return str(token_id)

    logits = torch.tensor([0.0, -float("inf"), -float("inf")])
    head, _ = _unpack_distribution(_pack_distribution(logits, torch.tensor(0), 3).tolist(), Vocab(), 0)
    for value in (head["entropy_raw"], head["entropy"]):
        assert value == 0.0 and math.copysign(1.0, value) == 1.0


@pytest.mark.parametrize(
    "config",
    [
        DecodingConfig(strategy="sample", temperature=1.3, top_k=8, top_p=0.6, min_p=0.02, seed=3, top_n=8),
        DecodingConfig(strategy="greedy", repetition_penalty=1.3, top_n=8),
        DecodingConfig(strategy="beam", num_beams=3, top_n=8),
    ],
    ids=["sample", "greedy", "beam"],
)
def test_preview_is_the_next_step_and_its_forward_is_reused(tiny_engine, monkeypatch, config):
    """A preview that drew from the run's generator, kept a beam's state or left its forward unused would make
    the next Step differ from a run without previews, or cost a second model call."""
    ids = tiny_engine.encode(PROMPT)
    config = config.replace(max_new_tokens=6)
    plain = tiny_engine.start(ids, config)
    previewed = tiny_engine.start(ids, config)
    calls = []
    forward = tiny_engine.forward
    monkeypatch.setattr(tiny_engine, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    while not previewed.done:
        first = previewed.preview(config)
        again = previewed.preview(config.replace(top_n=4))  # a knob moved: the same forward serves it
        before = len(calls)
        taken = previewed.step(config)
        assert len(calls) == before, "the step after a preview called the model again"
        assert first == taken == plain.step(config)
        assert [c.token_id for c in again.top] == [c.token_id for c in taken.top][:4]
    assert previewed.token_ids == plain.token_ids
    with pytest.raises(ValueError, match="finished"):
        previewed.preview(config)


@pytest.mark.parametrize("strategy", ["sample", "beam"])
def test_a_step_prepared_ahead_is_the_same_and_calls_no_model(tiny_engine, monkeypatch, strategy):
    """The page makes the next step's forward while the person reads (Session.prepare): the step that follows
    must make no model call and be the step a run without it takes, also after a rewind or a force."""
    config = DecodingConfig(strategy=strategy, temperature=1.2, top_k=8, seed=5, num_beams=3, max_new_tokens=7, top_n=6)
    ids = tiny_engine.encode(PROMPT)
    plain, prepared = tiny_engine.start(ids, config), tiny_engine.start(ids, config)
    calls = []
    forward = tiny_engine.forward
    monkeypatch.setattr(tiny_engine, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    for i in range(config.max_new_tokens + 2):  # the two steps rewound are taken again
        if i == 4:  # back two steps on both, then on as before
            plain.rewind(2)
            prepared.rewind(2)
        forced = plain.steps[0].top[-1].token_id if strategy == "sample" and i == 5 else None
        expected = plain.step(config, force_token=forced)
        prepared.prepare()
        before = len(calls)
        assert prepared.step(config, force_token=forced) == expected
        assert len(calls) == before, f"step {i} called the model again after prepare()"
        prepared.prepare()  # twice is once
        assert len(calls) == before + (0 if prepared.done else 1)
    assert prepared.done and prepared.token_ids == plain.token_ids
    prepared.prepare()  # a finished run has nothing to make
    assert prepared.steps == plain.steps


def test_recorded_cumulative_is_what_top_p_sees(tiny_engine):
    """The chart's top-p line must be the running sum over the distribution top-p really filters (after penalty,
    temperature and top-k, over the whole vocabulary), and agree with the record's top-p cuts."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(strategy="sample", temperature=1.5, top_k=12, top_p=0.5, repetition_penalty=1.2,
                            seed=2, max_new_tokens=4, top_n=20)  # fmt: skip
    session = tiny_engine.start(ids, config)
    for record in session.run():
        context = torch.tensor([ids + session.token_ids[: record.step]])
        with torch.no_grad():
            logits = tiny_engine.model(context).logits[0, -1:].float()
        scores = processors.temperature(processors.repetition_penalty(context, logits, 1.2), 1.5)
        q = processors.top_k_filter(scores, 12)[0].softmax(-1)  # what top-p sees
        for c in record.top:
            assert c.cumulative == pytest.approx(float(q[q >= q[c.token_id]].sum()), abs=1e-5)
            mass_above = c.cumulative - float(q[c.token_id])
            if c.cut_by in (None, "top_p") and q[c.token_id] > 0:  # kept by top-k: top-p decides
                assert (c.cut_by == "top_p") == (mass_above >= 0.5 - 1e-6)
    greedy = tiny_engine.start(ids, DecodingConfig(strategy="greedy", top_n=5)).step()
    assert all(c.cumulative is None for c in greedy.top)


# ----------------------------------------------------------------------------------------------------------
# Rewind, force and carrying on over every cache layout: sliding-window layers past their window cannot be cropped


@pytest.fixture(scope="module", params=["Mistral", "Gemma 2", "Gemma 3"])
def sliding_engine(request, tiny_engine):
    """An Engine over a tiny random model whose cache has sliding-window layers (Mistral: all of them; Gemma 2 and 3:
    sliding and full layers mixed), with a window of tiny_models.WINDOW tokens."""
    from tiny_models import build_tiny_model

    from playground.engine import Engine

    tokenizer = tiny_engine.tokenizer
    return Engine(build_tiny_model(request.param, len(tokenizer), tokenizer.eos_token_id), tokenizer, name=request.param)


SLIDING_CONFIG = DecodingConfig(strategy="sample", temperature=1.2, top_k=40, top_p=0.95, repetition_penalty=1.1, seed=5,
                                max_new_tokens=14, top_n=5)  # fmt: skip
# a prompt shorter than the window (the run passes it mid-way) and one longer than it (passed at the prefill)
SLIDING_PROMPTS = {"short prompt": "The", "long prompt": "Once upon a time there was a small model"}


@pytest.mark.parametrize("prompt", SLIDING_PROMPTS.values(), ids=SLIDING_PROMPTS.keys())
def test_rewind_past_a_sliding_window_equals_a_fresh_run(sliding_engine, prompt):
    """Issue 10: once prompt + output passed the window, Undo and Rewind raised transformers' RuntimeError from
    DynamicSlidingWindowLayer.crop and left the session half-rewound. Every rewind must give back the very run
    (tokens and recorded numbers) a fresh session makes."""
    from tiny_models import WINDOW

    ids = sliding_engine.encode(prompt)
    fresh = sliding_engine.start(ids, SLIDING_CONFIG)
    first = list(fresh.run())
    assert len(ids) + len(first) > WINDOW + 4 and len(first) == SLIDING_CONFIG.max_new_tokens
    session = sliding_engine.start(ids, SLIDING_CONFIG)
    list(session.run())
    for back_to in (13, 11, 6, 1, 0):  # 13: Undo at the end; 0: back to the prompt
        session.rewind(back_to)
        assert session.steps == first[:back_to] and not session.done
        again = list(session.run())
        assert again == first[back_to:], f"rewind to {back_to}"


def test_beam_rewind_past_a_sliding_window_equals_a_fresh_run(sliding_engine):
    """Beam rows are reordered every step, so a beam rewind re-feeds each beam's tokens after the prompt: past the
    window the prompt could not be cropped back to either. The beams must come out as a fresh search's."""
    ids = sliding_engine.encode(SLIDING_PROMPTS["short prompt"])
    config = DecodingConfig(strategy="beam", num_beams=3, length_penalty=0.8, max_new_tokens=12)
    fresh = sliding_engine.generate(ids, config)
    session = sliding_engine.start(ids, config)
    list(session.run())
    for back_to in (9, 4):
        session.rewind(back_to)
        list(session.run())
        again = session.trace()
        assert again.token_ids == fresh.token_ids and again.beam_score == pytest.approx(fresh.beam_score, abs=1e-5)
        assert [[b.token_id for b in s.beams] for s in again.steps] == [[b.token_id for b in s.beams] for s in fresh.steps]


def test_force_past_a_sliding_window_equals_a_fresh_run(sliding_engine):
    """'Use this token instead' after the window is a rewind then a forced step; it raised the same RuntimeError.
    The forced run must equal a session that took the same steps and forced the same token without going further."""
    ids = sliding_engine.encode(SLIDING_PROMPTS["long prompt"])
    session = sliding_engine.start(ids, SLIDING_CONFIG)
    list(session.run())
    at = 9
    other = session.steps[at].top[1].token_id  # the runner-up at step `at`
    session.rewind(at)
    session.step(force_token=other)
    list(session.run())
    fresh = sliding_engine.start(ids, SLIDING_CONFIG)
    for _ in range(at):
        fresh.step()
    fresh.step(force_token=other)
    list(fresh.run())
    assert session.steps == fresh.steps and session.steps[at].forced


def test_carrying_on_after_a_finished_run_past_a_sliding_window(sliding_engine):
    """A run that ended on max_new_tokens goes on when it is raised; past the window that must not touch the
    cache's sliding layers wrongly, and the tokens must be those of a run asked for the longer length at once."""
    ids = sliding_engine.encode(SLIDING_PROMPTS["long prompt"])
    short = SLIDING_CONFIG.replace(max_new_tokens=8)
    session = sliding_engine.start(ids, short)
    list(session.run())
    assert session.finish_reason == "length"
    longer = short.replace(max_new_tokens=12)
    list(session.run(longer))
    fresh = sliding_engine.start(ids, longer)
    assert session.steps[8:] == list(fresh.run())[8:] and len(session.steps) == 12


def test_a_rewind_that_fails_to_rebuild_leaves_the_session_whole(sliding_engine, monkeypatch):
    """Where the cache cannot be cropped it is rebuilt; a rebuild that fails (out of memory) must leave the session
    exactly at the step it was rewound to, and the next try must give the fresh run's steps."""
    from playground.engine import ModelMemoryError

    ids = sliding_engine.encode(SLIDING_PROMPTS["long prompt"])
    fresh = list(sliding_engine.start(ids, SLIDING_CONFIG).run())
    session = sliding_engine.start(ids, SLIDING_CONFIG)
    list(session.run())
    session.rewind(5)
    forward = sliding_engine.forward
    calls = []

    def out_of_memory_once(input_ids, cache, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # part-way through the rebuild
            raise ModelMemoryError("simulated: out of memory")
        return forward(input_ids, cache, **kwargs)

    monkeypatch.setattr(sliding_engine, "forward", out_of_memory_once)
    with pytest.raises(ModelMemoryError):
        session.step()
    assert session.steps == fresh[:5] and not session.done
    monkeypatch.setattr(sliding_engine, "forward", forward)
    assert list(session.run()) == fresh[5:]


def test_out_of_memory_part_way_through_a_forward_past_a_sliding_window(sliding_engine):
    """A forward that fails in its second layer has grown the first layer's cache by one token. The engine cut it
    back with a crop, which a sliding layer past its window refuses (RuntimeError instead of the one-sentence
    out-of-memory error); the retried step must equal the undisturbed run."""
    from playground.engine import ModelMemoryError

    ids = sliding_engine.encode(SLIDING_PROMPTS["long prompt"])
    fresh = list(sliding_engine.start(ids, SLIDING_CONFIG).run())
    session = sliding_engine.start(ids, SLIDING_CONFIG)
    for _ in range(4):
        session.step()
    layer = sliding_engine.model.model.layers[1]
    real_forward = layer.forward
    fail = {"left": 1}

    def failing(*args, **kwargs):
        if fail["left"]:
            fail["left"] -= 1
            raise torch.OutOfMemoryError("simulated: out of memory in layer 1")
        return real_forward(*args, **kwargs)

    layer.forward = failing
    try:
        with pytest.raises(ModelMemoryError):
            session.step()
    finally:
        layer.forward = real_forward
    assert session.steps == fresh[:4]
    assert list(session.run()) == fresh[4:]


# ----------------------------------------------------------------------------------------------------------
# One beam is greedy search, as in generate()


@pytest.mark.parametrize(
    "settings,eos_at",
    [
        (dict(repetition_penalty=1.3), None),  # a one-beam search penalised log-probabilities, greedy search logits
        (dict(early_stopping="never", length_penalty=2.0), 4),  # a one-beam search went on past EOS to do better
        (dict(early_stopping=True, length_penalty=0.5, repetition_penalty=1.2), 4),
    ],
    ids=["penalty", "eos-never-lp2", "eos-early-lp0.5-penalty"],
)
def test_one_beam_is_greedy_search_as_in_generate(tiny_engine, settings, eos_at):
    """Issue 10: strategy="beam" with num_beams=1 ran a one-beam search, where generate(num_beams=1) runs greedy
    search; they differ with a repetition penalty and at EOS with early_stopping="never" and a positive length
    penalty. Checked against generate(); for the EOS cases on a model whose EOS greedy search meets at step 4."""
    import copy

    from playground.engine import Engine

    ids = tiny_engine.encode(PROMPT)
    model = copy.deepcopy(tiny_engine.model)
    if eos_at is not None:
        penalty = settings.get("repetition_penalty", 1.0)
        greedy = tiny_engine.generate(ids, DecodingConfig(repetition_penalty=penalty, max_new_tokens=16)).token_ids
        model.generation_config.eos_token_id = greedy[eos_at]
    engine = Engine(model, tiny_engine.tokenizer)
    trace = engine.generate(ids, DecodingConfig(strategy="beam", num_beams=1, max_new_tokens=16, **settings))
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=16, num_beams=1, do_sample=False, **settings)
    assert trace.token_ids == out[0, len(ids) :].tolist()
    if eos_at is not None:
        assert trace.finish_reason == "eos" and len(trace.token_ids) <= eos_at + 1
    # the record says what ran, and keeps what was asked
    assert trace.strategy == "greedy" and trace.config.strategy == "beam" and trace.config.num_beams == 1
    assert any("greedy" in notice for notice in trace.notices)
    assert all(step.beams is None for step in trace.steps)


def test_one_beam_in_a_comparison_is_greedy_search(tiny_engine):
    """The comparison's beam lane with one beam is greedy search too (as generate(num_beams=1)), so it equals the
    greedy lane even with a repetition penalty."""
    ids = tiny_engine.encode(PROMPT)
    traces = tiny_engine.compare(ids, DecodingConfig(num_beams=1, repetition_penalty=1.4, max_new_tokens=10))
    assert traces["beam"].token_ids == traces["greedy"].token_ids
    assert traces["beam"].strategy == "greedy" and traces["beam"].label == "beam"


# ----------------------------------------------------------------------------------------------------------
# Stop strings, as generate()'s StopStringCriteria: over the whole sequence, the prompt's end included


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_stop_strings_spanning_the_prompt_and_the_output_stop_as_in_generate(tiny_engine, strategy):
    """Issue 10: a stop string that starts in the prompt and ends in the output stopped generate() but not the
    engine, which searched the output's text alone. One that lies wholly in the prompt stops neither (generate()
    only matches a stop string that reaches into the newest token)."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(strategy=strategy, num_beams=3, temperature=1.2, seed=4, max_new_tokens=10)
    first = tiny_engine.generate(ids, config).token_ids[0]
    tokenizer = tiny_engine.tokenizer
    prompt_text = tokenizer.decode(ids)
    spanning = prompt_text[-3:] + tokenizer.decode([first])[:1]
    assert spanning not in prompt_text
    sampled = dict(do_sample=True, temperature=1.2, top_k=0) if strategy == "sample" else dict(do_sample=False)
    beams = dict(num_beams=3) if strategy == "beam" else {}
    for stop, expect_stop in ((spanning, True), (prompt_text[-6:-1], False)):
        trace = tiny_engine.generate(ids, config.replace(stop_strings=(stop,)))
        torch.manual_seed(config.seed)
        with torch.no_grad():
            out = tiny_engine.model.generate(torch.tensor([ids]), max_new_tokens=10, stop_strings=[stop],
                                             tokenizer=tokenizer, **sampled, **beams)  # fmt: skip
        assert trace.token_ids == out[0, len(ids) :].tolist(), stop
        assert (trace.finish_reason == "stop_string") == expect_stop, stop
    assert len(tiny_engine.generate(ids, config.replace(stop_strings=(spanning,))).token_ids) == 1


# ----------------------------------------------------------------------------------------------------------
# The model's own generation defaults, as generate() starts from them


def _engine_with_generation_config(tiny_engine, tokenizer=None, **settings):
    """An Engine over a copy of the tiny model whose generation_config sets `settings` (None unsets one)."""
    import copy

    from playground.engine import Engine

    model = copy.deepcopy(tiny_engine.model)
    for name, value in settings.items():
        setattr(model.generation_config, name, value)
    return Engine(model, tokenizer or tiny_engine.tokenizer, name="tiny")


def test_a_setting_not_given_takes_the_models_value_as_in_generate(tiny_engine):
    """Issue 10: generate() starts from the model's generation_config (here: sampling at temperature 0.7 with top-k
    20, top-p 0.9 and a repetition penalty), the engine started from its own defaults. With nothing given but the
    seed, the engine's run must be generate()'s."""
    engine = _engine_with_generation_config(tiny_engine, do_sample=True, temperature=0.7, top_k=20, top_p=0.9,
                                            repetition_penalty=1.2)  # fmt: skip
    assert engine.model_defaults == dict(strategy="sample", temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.2)
    config = engine.default_config(seed=3, max_new_tokens=12)
    assert config == DecodingConfig(strategy="sample", temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.2,
                                    seed=3, max_new_tokens=12)  # fmt: skip
    ids = engine.encode(PROMPT)
    torch.manual_seed(3)
    with torch.no_grad():
        expected = engine.model.generate(torch.tensor([ids]), max_new_tokens=12)[0, len(ids) :].tolist()
    assert engine.generate(ids, config).token_ids == expected
    # a setting that is given wins over the model's; None means "not given"
    given = engine.default_config(strategy="greedy", top_k=None, repetition_penalty=1.0)
    assert (given.strategy, given.top_k, given.repetition_penalty, given.temperature) == ("greedy", 20, 1.0, 0.7)


def test_model_defaults_leave_out_what_the_model_does_not_set_or_the_playground_cannot_run(tiny_engine):
    """Only values the model sets are its defaults (transformers' own fallbacks, such as top_k 50 when sampling,
    are not the model's, but a config built from nothing takes them, as generate() does); values the playground
    cannot take are left out with a notice, never a crash at load."""
    plain = _engine_with_generation_config(tiny_engine)
    assert plain.model_defaults == {} and plain.default_config() == DecodingConfig(top_k=50)
    odd = _engine_with_generation_config(tiny_engine, num_beams=40, top_p=0.0, length_penalty=0.5, do_sample=False)
    assert odd.model_defaults == dict(strategy="greedy", length_penalty=0.5)
    assert any("num_beams" in notice for notice in odd.model_defaults_notices)
    assert any("top_p" in notice for notice in odd.model_defaults_notices)
    beams = _engine_with_generation_config(tiny_engine, num_beams=3, early_stopping="never")
    assert beams.model_defaults == dict(strategy="beam", num_beams=3, early_stopping="never")


def test_eos_ids_are_the_models_generation_config_ones_as_in_generate(tiny_engine):
    """generate() stops on the EOS ids of the model's generation_config and nothing else; the engine fell back to
    the tokenizer's EOS token where the model names none, and stopped where generate() goes on."""
    import copy

    ids = tiny_engine.encode(PROMPT)
    greedy = tiny_engine.generate(ids, DecodingConfig(max_new_tokens=10)).token_ids
    tokenizer = copy.deepcopy(tiny_engine.tokenizer)
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(greedy[3])  # the tokenizer's EOS: met at step 3
    engine = _engine_with_generation_config(tiny_engine, tokenizer=tokenizer, eos_token_id=None)
    trace = engine.generate(ids, DecodingConfig(max_new_tokens=10))
    with torch.no_grad():
        expected = engine.model.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False)[0, len(ids) :]
    assert trace.token_ids == expected.tolist() == greedy


def test_sample_lane_seeds_wrap_around_at_the_largest_seed(tiny_engine):
    """Sample lanes use seeds seed, seed + 1, ...; at the largest seed (2**63 - 1) the second lane's seed overflowed
    the valid range and the comparison refused to start. Seeds wrap to 0, and each lane still equals its lone run."""
    ids = tiny_engine.encode(PROMPT)
    config = DecodingConfig(max_new_tokens=6, num_beams=2, temperature=1.3, seed=2**63 - 1)
    traces = tiny_engine.compare(ids, config, num_samples=3)
    assert [traces[k].config.seed for k in ("sample", "sample 2", "sample 3")] == [2**63 - 1, 0, 1]
    for label, seed in (("sample", 2**63 - 1), ("sample 3", 1)):
        lone = tiny_engine.generate(ids, config.replace(strategy="sample", seed=seed))
        assert traces[label].token_ids == lone.token_ids


# -- issue 20: finish reasons that say what happened ----------------------------------------------------------


def test_each_finish_reason_says_how_the_run_ended(tiny_engine, monkeypatch):
    """A run that reached its length, hit an end-of-sequence token, met a stop string or filled the model's context
    says so (transformers' words where they have one); it was "stopped" for all of them only when taken mid-run."""
    ids = tiny_engine.encode(PROMPT)
    eos = tiny_engine.vocab.eos_ids
    no_eos = DecodingConfig(max_new_tokens=3, suppress_tokens=eos)
    length = tiny_engine.generate(ids, no_eos)
    assert length.finish_reason == "length" and len(length.token_ids) == 3 and length.finished
    session = tiny_engine.start(ids, DecodingConfig(max_new_tokens=8))
    session.step()
    session.step(force_token=eos[0])  # the model "ends its answer"
    assert session.done and session.finish_reason == "eos" and session.trace().finish_reason == "eos"
    stop = tiny_engine.decode(length.token_ids[1:2])
    stopped = tiny_engine.generate(ids, no_eos.replace(max_new_tokens=8, stop_strings=(stop,)))
    assert stopped.finish_reason == "stop_string" and len(stopped.token_ids) <= 2
    monkeypatch.setattr(tiny_engine, "context_length", len(ids) + 2)  # room for two new tokens only
    full = tiny_engine.start(ids, no_eos.replace(max_new_tokens=8))
    list(full.run())
    assert len(full.steps) == 2 and full.finish_reason == "context" and full.trace().finish_reason == "context"
    with pytest.raises(ValueError, match="finished"):
        full.step(config=full.config.replace(max_new_tokens=4))  # a full context cannot carry on


def test_a_run_not_finished_says_so_and_a_stopped_run_says_it_was_stopped(tiny_engine):
    """A trace taken after 3 steps of 8 is not finished (None, with its step count), not "stopped"; a run its
    caller stopped says "stopped" until it moves again; a finished run keeps its reason through a stop."""
    ids = tiny_engine.encode(PROMPT)
    session = tiny_engine.start(ids, DecodingConfig(max_new_tokens=8, suppress_tokens=tiny_engine.vocab.eos_ids))
    for _ in range(3):
        session.step()
    trace = session.trace()
    assert session.finish_reason is None and trace.finish_reason is None and not trace.finished
    d = trace.to_dict()
    assert d["finish_reason"] is None and d["n_steps"] == 3 and d["settings"]["max_new_tokens"] == 8
    session.stop()
    assert session.finish_reason == "stopped" and session.trace().finish_reason == "stopped" and not session.done
    session.step()  # Step carries on: no longer stopped
    assert session.finish_reason is None
    session.stop()
    session.rewind(2)
    assert session.finish_reason is None
    list(session.run())
    session.stop()
    assert session.finish_reason == "length" and session.trace().to_dict()["n_steps"] == 8
