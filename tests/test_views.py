"""Tests for playground/views.py: HTML fragments, the step table and the JSON export, on real records."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from html.parser import HTMLParser

import pandas as pd
import pytest

from playground import views
from playground.config import DecodingConfig
from playground.tokens import bytes_text
from playground.views import (
    INPUT_WIDTH,
    colored_text_html,
    compare_html,
    prob_color,
    step_table,
    step_table_csv,
    step_table_data,
    token_label,
    trace_json,
)

XSS = "<img src=x onerror=alert(1)>"


class Spans(HTMLParser):
    """Collects every element's attributes, and the data-step spans' text."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.token_text: dict[int, str] = {}
        self._open: list[int | None] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a))
        if tag == "span":
            self._open.append(int(a["data-step"]) if "data-step" in a else None)

    def handle_endtag(self, tag):
        if tag == "span" and self._open:
            self._open.pop()

    def handle_data(self, data):
        for step in self._open:
            if step is not None:
                self.token_text[step] = self.token_text.get(step, "") + data

    def tokens(self) -> list[dict]:
        return [a for tag, a in self.elements if tag == "span" and "data-step" in a]


def parse(fragment: str) -> Spans:
    p = Spans()
    p.feed(fragment)
    return p


@pytest.fixture(scope="module")
def sampled(tiny_engine):
    """A sampled run with top-k and top-p set, one forced step in the middle."""
    ids = tiny_engine.encode("Once upon a time", chat=False)
    cfg = DecodingConfig(strategy="sample", temperature=0.9, top_k=5, top_p=0.9, seed=3, max_new_tokens=8, top_n=10)
    s = tiny_engine.start(ids, cfg)
    for _ in range(3):
        s.step()
    newline_id = tiny_engine.tokenizer.convert_tokens_to_ids("Ċ")  # byte-level BPE spells "\n" as Ċ
    s.step(force_token=newline_id)
    for _ in s.run():
        pass
    return s


@pytest.fixture(scope="module")
def comparison(tiny_engine):
    ids = tiny_engine.encode("Paris is the capital", chat=False)
    cfg = DecodingConfig(temperature=0.8, top_k=20, seed=5, max_new_tokens=6, num_beams=3, top_n=5)
    return tiny_engine.compare(ids, cfg, num_samples=1)


# -- token_label --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token, label",
    [(" the", "␣the"), ("\n", "↵"), ("a\tb", "a⇥b"), ("", "∅"), ("\x07", "\\x07"), ("  x\r\n", "␣␣x\\r↵"), ("é", "é")],
)
def test_token_label_makes_whitespace_visible(token, label):
    """Guards against " the" and "the" (or a newline and nothing) looking the same in every view."""
    assert token_label(token) == label


# -- colored text -------------------------------------------------------------------------------------------


def test_colored_text_escapes_the_prompt_and_tokens(sampled):
    """An XSS prompt or token must render as text, never as markup."""
    evil = dataclasses.replace(sampled.steps[0], token="<script>alert(2)</script>")
    out = colored_text_html(XSS, [evil, *sampled.steps[1:]])
    assert XSS not in out and "<script>" not in out
    assert "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in out
    tags = {tag for tag, _ in parse(out).elements}
    assert tags <= {"div", "span", "br"}


def test_colored_text_has_one_span_per_step_with_its_alternatives(sampled):
    steps = sampled.steps
    out = colored_text_html("Once upon a time", steps, selected_step=2)
    spans = parse(out).tokens()
    assert [int(a["data-step"]) for a in spans] == [r.step for r in steps]
    for a, r in zip(spans, steps):
        assert prob_color(r.prob) in a["style"]  # coloured by the probability after the knobs
        assert a["aria-label"] == views.token_accessible_name(r.token, r.prob, r.forced)  # and says it in words
        assert ("dp-unlikely" in a["class"]) == (r.prob < views.UNLIKELY_BELOW)  # a cue beside the colour
        best = min(r.top, key=lambda c: c.rank)
        alts = json.loads(a["data-alts"])  # the popover's content
        assert alts["rows"][0][:3] == [token_label(best.token), f"{100 * best.raw_prob:.2f}%", f"{100 * best.prob:.2f}%"]
        assert [row[4] for row in alts["rows"]].count(True) <= 1 and alts["head"].endswith("(forced)") == r.forced
        assert ("dp-forced" in a["class"]) == r.forced
        assert ("dp-selected" in a["class"]) == (r.step == 2)
    assert sum(r.forced for r in steps) == 1


def test_colored_text_renders_newlines_visibly(sampled):
    """The forced newline shows as ↵ followed by a line break."""
    forced = next(r for r in sampled.steps if r.forced)
    assert forced.token == "\n"
    out = colored_text_html("x", [forced])
    assert "↵</span><br>" in out
    assert parse(out).token_text[forced.step] == "↵"


def test_colored_text_without_steps_shows_the_prompt():
    out = colored_text_html(XSS, [])
    assert "&lt;img" in out and not parse(out).tokens()


# -- step table ---------------------------------------------------------------------------------------------


def test_step_table_matches_the_steps(sampled):
    """Seed 001's reading order: step, the input so far (its end visible), the chosen token with its model and
    after-knobs probabilities (forced steps marked), then the top choices by the model's probability."""
    prompt = "Once upon a time there was a small model\nthat liked to predict"  # 62 characters
    steps = sampled.steps
    df = step_table(prompt, steps, n_choices=4)
    assert list(df.columns) == ["Step", "Input", "Chosen", "Model", "After knobs",
                                "Choice 1", "Choice 2", "Choice 3", "Choice 4"]  # fmt: skip
    assert len(df) == len(steps) and any(r.forced for r in steps)
    generated = b""  # the input joins the tokens' bytes: a character split across tokens reads whole
    for (_, row), r in zip(df.iterrows(), steps):
        text = prompt + bytes_text(generated)
        assert row["Step"] == r.step
        visible = "".join(" " if ch == " " else token_label(ch) for ch in text)
        assert row["Input"] == (visible if len(visible) <= INPUT_WIDTH else "…" + visible[-(INPUT_WIDTH - 1) :])
        assert len(row["Input"]) <= INPUT_WIDTH
        ranked = sorted(r.top, key=lambda c: c.rank)
        for i in range(4):
            assert row[f"Choice {i + 1}"] == f"{token_label(ranked[i].token)} ({100 * ranked[i].raw_prob:.2f}%)"
        assert row["Chosen"] == token_label(r.token) + (" ✎ forced" if r.forced else "")
        assert row["Model"] == f"{100 * r.raw_prob:.2f}%" and row["After knobs"] == f"{100 * r.prob:.2f}%"
        generated += r.raw_bytes
    assert df["Input"].iloc[0] == "…" + prompt.replace("\n", "↵")[-(INPUT_WIDTH - 1) :]  # cut from the left


def test_step_table_csv_holds_numbers_whole_inputs_and_real_tokens(sampled):
    """The CSV is data: probabilities as numbers, the whole input (not the display's last 60 characters), and
    tokens as text with their real spaces and newlines (not the display's ␣ and ↵), read back unchanged."""
    prompt = "Once upon a time, \"quoted\", <b> " + "long " * 30
    data = step_table_data(prompt, sampled.steps, n_choices=3)
    back = pd.read_csv(io.StringIO(step_table_csv(data)), keep_default_na=False)
    assert len(back) == len(sampled.steps)
    generated = b""
    for (_, row), r in zip(back.iterrows(), sampled.steps):
        assert row["input"] == prompt + bytes_text(generated) and row["token"] == r.token
        assert row["token_id"] == r.token_id and bytes.fromhex(row["token_bytes"]) == r.raw_bytes
        assert row["model_prob"] == pytest.approx(r.raw_prob) and row["after_knobs_prob"] == pytest.approx(r.prob)
        assert bool(row["forced"]) == r.forced
        best = min(r.top, key=lambda c: c.rank)
        assert row["choice_1"] == best.token and row["choice_1_prob"] == pytest.approx(best.raw_prob)
        generated += r.raw_bytes
    assert back["model_prob"].dtype.kind == "f" and back["token_id"].dtype.kind == "i"
    assert any(" " in t or "\n" in t for t in back["token"])  # real whitespace survived the round trip


def test_step_table_fills_missing_choices(sampled):
    df = step_table("x", sampled.steps[:1], n_choices=12)  # the run recorded top_n=10 candidates
    assert df["Choice 10"].iloc[0] != "" and df["Choice 11"].iloc[0] == "" and df["Choice 12"].iloc[0] == ""
    with pytest.raises(ValueError):
        step_table("x", sampled.steps, n_choices=0)


# -- compare ------------------------------------------------------------------------------------------------


def test_compare_html_has_a_card_per_strategy(comparison):
    out = compare_html(comparison)
    p = parse(out)
    cards = [a["data-label"] for tag, a in p.elements if a.get("class") == "dp-card"]
    assert cards == list(comparison)
    spans = p.tokens()
    assert len(spans) == sum(len(t.token_ids) for t in comparison.values())
    i = 0
    for trace in comparison.values():
        for lp in trace.token_logprobs:  # coloured by each token's raw model probability, beams included
            assert prob_color(math.exp(lp)) in spans[i]["style"]
            assert spans[i]["aria-label"].endswith(f"{100 * math.exp(lp):.0f}% likely") or math.exp(lp) < 0.01
            i += 1
        assert f"{trace.perplexity:.2f}" in out
        assert f"{trace.sequence_logprob:.2f}" in out
        assert views.finish_words(trace.finish_reason, len(trace.steps), trace.config.max_new_tokens) in out
    assert f"{comparison['beam'].beam_score:.3f}" in out


def test_compare_html_escapes_model_labels_and_notices(comparison):
    trace = dataclasses.replace(comparison["greedy"], model=XSS, label="<b>x</b>", notices=["<script>no</script>"])
    out = compare_html({"greedy": trace})
    assert XSS not in out and "<b>x</b>" not in out and "<script>" not in out
    assert "&lt;script&gt;no&lt;/script&gt;" in out and "&lt;b&gt;x&lt;/b&gt;" in out
    assert "Nothing to compare" in compare_html({})


# -- beam search's final hypotheses -------------------------------------------------------------------------


def reference_beams(engine, ids: list[int], config: DecodingConfig) -> tuple[list[list[int]], list[float]]:
    """generate()'s returned hypotheses for num_return_sequences = num_beams: their generated tokens (cut at each
    one's own length by the caller) and sequences_scores, best first."""
    import torch

    with torch.no_grad():
        out = engine.model.generate(
            torch.tensor([ids]), max_new_tokens=config.max_new_tokens, num_beams=config.num_beams,
            num_return_sequences=config.num_beams, length_penalty=config.length_penalty, do_sample=False,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
    return [row[len(ids) :].tolist() for row in out.sequences], out.sequences_scores.tolist()


@pytest.fixture(scope="module")
def eos_engine(tiny_model_dir):
    """The tiny model with its end-of-text token made likely, so hypotheses finish at different steps and later,
    better ones push earlier ones out of the finished set: the bookkeeping `final_beams` must follow."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from playground.engine import Engine

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        ids = tokenizer("The quick brown fox", return_tensors="pt").input_ids
        direction = model.model(ids).last_hidden_state[0].mean(0)  # (H,) what the prompt's states share
        model.lm_head.weight[tokenizer.eos_token_id] += direction / direction.norm()
    return Engine(model, tokenizer, name="tiny-eos")


@pytest.mark.parametrize("num_beams, length_penalty", [(4, 1.0), (8, 0.6), (16, 1.0)])
def test_final_beams_are_generates_returned_sequences(tiny_engine, num_beams, length_penalty):
    """Guards the table beside the beam tree: its rows are generate()'s num_return_sequences = num_beams outputs,
    in its order, with its sequences_scores; the best is the trace's own tokens and beam score."""
    ids = tiny_engine.encode("The quick brown fox", chat=False)
    config = DecodingConfig(strategy="beam", num_beams=num_beams, length_penalty=length_penalty, max_new_tokens=20)
    trace = tiny_engine.generate(ids, config)
    sequences, scores = reference_beams(tiny_engine, ids, config)
    table = views.final_beams_table(trace)
    assert list(table.columns) == views.FINAL_BEAMS_COLUMNS
    assert table["Rank"].tolist() == list(range(1, num_beams + 1))
    assert table["Score"].tolist() == pytest.approx(scores, abs=1e-4)
    assert table["Score"].is_monotonic_decreasing
    for f, seq in zip(views.final_beams(trace), sequences):
        assert f.token_ids == seq[: len(f.token_ids)]
    best = table.iloc[0]
    assert best["Winner"] and table["Winner"].sum() == 1
    assert best["Score"] == pytest.approx(trace.beam_score) and best["Tokens"] == len(trace.token_ids)
    assert views.final_beams(trace)[0].token_ids == trace.token_ids
    unnormalised = table["Score"] * table["Tokens"] ** length_penalty
    assert table["Sum log-prob"].tolist() == pytest.approx(unnormalised.tolist())
    assert table["Finished"].all()
    assert table["Score"].dtype.kind == "f" and table["Tokens"].dtype.kind == "i"  # numbers stay numbers


@pytest.mark.parametrize("num_beams", [4, 8, 16])
def test_final_beams_follow_early_finishes_and_pushed_out_hypotheses(eos_engine, num_beams):
    """Hypotheses that end early at end-of-text, and ones a better hypothesis later pushes out of the finished set,
    must leave the table exactly as generate() returns them."""
    ids = eos_engine.encode("The quick brown fox", chat=False)
    config = DecodingConfig(strategy="beam", num_beams=num_beams, max_new_tokens=20)
    trace = eos_engine.generate(ids, config)
    sequences, scores = reference_beams(eos_engine, ids, config)
    finals = views.final_beams(trace)
    entered = sum(b.status == "finished" for r in trace.steps for b in r.beams)
    assert entered > num_beams and any(f.step < config.max_new_tokens - 1 for f in finals)  # the fixture's point
    assert [f.score for f in finals] == pytest.approx(scores, abs=1e-4)
    for f, seq in zip(finals, sequences):
        assert f.token_ids == seq[: len(f.token_ids)]
        assert f.token_ids[-1] in eos_engine.vocab.eos_ids or len(f.token_ids) == config.max_new_tokens
    assert finals[0].winner and finals[0].token_ids == trace.token_ids
    text = views.final_beams_table(trace, decode=eos_engine.decode)["Text"].tolist()
    assert text == [eos_engine.decode(f.token_ids) for f in finals]  # special tokens skipped
    assert text[0] == trace.text


def test_final_beams_table_text_joins_tokens_with_real_spaces(comparison):
    trace = comparison["beam"]
    table = views.final_beams_table(trace)
    best = views.final_beams(trace)[0]
    assert table["Text"].iloc[0] == "".join(trace.token_strings) == "".join(best.tokens)
    assert all(len(f.path) == len(f.token_ids) for f in views.final_beams(trace))


def test_final_beams_of_a_stopped_run_are_its_running_beams(tiny_engine):
    """A run stopped before any hypothesis finished reports its best running beam: the table lists the running
    beams, that one first, marked unfinished and scored as if they ended now."""
    ids = tiny_engine.encode("Once upon a time", chat=False)
    session = tiny_engine.start(ids, DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=12))
    for _ in range(4):
        session.step()
    trace = session.trace()
    assert trace.finish_reason is None and trace.beam_score is None  # not finished
    table = views.final_beams_table(trace)
    assert len(table) == 3 and not table["Finished"].any()
    assert table["Winner"].tolist() == [True, False, False]
    assert views.final_beams(trace)[0].token_ids == trace.token_ids
    assert table["Score"].tolist() == pytest.approx((table["Sum log-prob"] / 4).tolist())
    assert table["Score"].is_monotonic_decreasing


def test_final_beams_of_non_beam_runs_are_empty(sampled):
    assert views.final_beams(sampled.trace()) == []
    table = views.final_beams_table(sampled.trace())
    assert table.empty and list(table.columns) == views.FINAL_BEAMS_COLUMNS


# -- JSON ---------------------------------------------------------------------------------------------------


def test_trace_json_exports_every_step(sampled, comparison):
    one = json.loads(trace_json(sampled.trace(), extra={"prompt": XSS}))
    assert one["prompt"] == XSS
    assert one["trace"]["settings"]["seed"] == 3
    assert one["trace"]["token_ids"] == sampled.token_ids
    assert [s["token_id"] for s in one["trace"]["steps"]] == sampled.token_ids
    assert [s["forced"] for s in one["trace"]["steps"]] == [r.forced for r in sampled.steps]
    many = json.loads(trace_json(comparison))
    assert list(many["traces"]) == list(comparison)
    assert "beams" in many["traces"]["beam"]["steps"][0]
    assert json.loads(trace_json(list(comparison.values())))["traces"].keys() == comparison.keys()


def test_trace_json_is_strict_json_for_empty_runs(sampled):
    """An empty trace has a NaN perplexity; the export must still be valid JSON."""
    empty = dataclasses.replace(sampled.trace(), token_ids=[], token_logprobs=[], token_strings=[], steps=[])
    doc = json.loads(trace_json(empty))
    assert doc["trace"]["perplexity"] == "nan"


def test_step_table_reproduces_seed_001s_greedy_table_live(smol_engine):
    """Seed 001's notebook table: greedy decoding of "Transformers are the" for 8 steps, each row the input so
    far and the 5 most likely next tokens with their percentages, by softmax of a plain forward pass. The app's
    table, from the engine's records, must say the same, row for row."""
    import torch

    prompt = "Transformers are the"
    ids = smol_engine.encode(prompt, chat=False)
    session = smol_engine.start(ids, DecodingConfig(strategy="greedy", max_new_tokens=8, top_n=10))
    for _ in session.run():
        pass
    table = views.step_table(prompt, session.steps, n_choices=5)
    context = list(ids)
    for _, row in table.iterrows():  # the notebook's loop
        with torch.no_grad():
            probs = torch.softmax(smol_engine.model(torch.tensor([context])).logits[0, -1].float(), dim=-1)
        top = torch.argsort(probs, descending=True)[:5].tolist()
        expected = [f"{views.token_label(smol_engine.vocab.token_str(t))} ({100 * float(probs[t]):.2f}%)" for t in top]
        assert [row[f"Choice {i + 1}"] for i in range(5)] == expected
        assert row["Input"].endswith(views.token_label_text(smol_engine.decode(context[len(ids):]))[-20:] or prompt[-20:])
        context.append(top[0])
    assert len(table) == 8 and session.token_ids == context[len(ids):]


def test_chart_legend_html_names_every_entry_escaped():
    html_ = views.chart_legend_html([("model (raw)", "#5b8fd0", "bar"), ("<b>cut</b>", "#7b4fb8", "shade"),
                                     ("cumulative", "#7b4fb8", "line")])  # fmt: skip
    assert html_.count('class="dp-key"') == 3 and "&lt;b&gt;cut&lt;/b&gt;" in html_ and "<b>cut" not in html_
    assert "border-top:3px solid #7b4fb8" in html_ and "background:#5b8fd0" in html_


def test_a_tokens_accessible_name_says_how_likely_it_was():
    assert views.token_accessible_name(" time", 0.42) == "“ time”, 42% likely"
    assert views.token_accessible_name("\n", 0.0031, forced=True) == "“↵”, 0.3% likely, forced by you"
    assert views.token_accessible_name("", float("nan")) == "“∅”, probability unknown"


def test_the_step_table_made_step_by_step_reuses_its_rows_and_equals_the_whole(sampled):
    """A Step adds one row: the rows made before are kept beside the run and reused while their steps are the
    same records; the table equals the one made whole, and a changed step (a force, a rewind) is made again."""
    prompt, steps = "Once upon a time", sampled.steps
    made: list = []
    for n in range(1, len(steps) + 1):
        assert step_table(prompt, steps[:n], made=made).equals(step_table(prompt, steps[:n]))
    first_row = made[0][3]
    step_table(prompt, steps, made=made)
    assert made[0][3] is first_row  # reused, not made again
    replaced = [steps[0], dataclasses.replace(steps[1], forced=True), *steps[2:]]
    assert step_table(prompt, replaced, made=made).equals(step_table(prompt, replaced))
    assert "forced" in step_table(prompt, replaced, made=made)["Chosen"].iloc[1]
    assert step_table("Other prompt", steps, made=made).equals(step_table("Other prompt", steps))


def test_finish_words_say_what_happened():
    """Each finish reason in plain words, with its numbers; a stop string names the one the text holds."""
    words = views.finish_words
    assert words("length", 32, 32) == "reached max new tokens (32)"
    assert words(None, 3, 32) == "not finished: 3 of 32 tokens"
    assert words("stopped", 7, 32) == "you pressed Stop after 7 tokens"
    assert words("stopped", 1, 32) == "you pressed Stop after 1 token"
    assert "end-of-sequence" in words("eos", 5, 32) and "context is full" in words("context", 5, 32)
    assert words("stop_string", 4, 32, "Hello.\nBye", ("!", "\n")) == "a stop string appeared: “↵”"
