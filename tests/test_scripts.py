"""Every script readable (issue 20): a prompt in Chinese with an emoji, on the tiny model's byte-level tokenizer
(conftest.py: a byte-level BPE trained on English, so each Chinese character is three tokens of one byte and
the emoji four). A token that is part of a character used to show as "\ufffd" everywhere, seven candidates as
seven identical "\ufffd x%", and the text never showed the character its tokens completed.

The unit tests pin `tokens` (the one helper) and the views; the browser test opens a run of those tokens from
a permalink and reads the text, the popover, the candidates list, the chart and the step table as a person
sees them. Skips without Playwright or chromium, unless PLAYGROUND_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from playground import tokens, views
from playground.config import DecodingConfig

TEXT = "我喜欢吃🍎"  # five characters: four of three bytes, one of four
TIMEOUT_MS = 60_000


def _split_run(engine, text: str = TEXT, extra: int = 2):
    """A greedy session whose first steps are `text`'s tokens, forced, then `extra` steps of the model's own."""
    ids = engine.tokenizer.encode(text)
    session = engine.start(engine.encode("Say it: ", chat=False),
                           DecodingConfig(strategy="greedy", max_new_tokens=len(ids) + extra, top_n=10))  # fmt: skip
    for token_id in ids + [None] * extra:
        session.step(force_token=token_id)
    return ids, session


# -- the helper and the views -----------------------------------------------------------------------------------


def test_the_tiny_tokenizer_splits_characters_into_bytes(tiny_engine):
    """The premise of the tests below: each Chinese character is several tokens, none whole on its own, each
    showing its byte (no U+FFFD), and their bytes together are the text."""
    ids = tiny_engine.tokenizer.encode(TEXT)
    parts = [tokens.token_text(tiny_engine.tokenizer, i) for i in ids]
    assert len(ids) > len(TEXT) and all(raw is not None for _, raw in parts)
    assert all("\ufffd" not in text and text == tokens.bytes_text(raw) for text, raw in parts)
    assert b"".join(raw for _, raw in parts).decode("utf-8") == TEXT


def test_sentencepiece_byte_fallback_tokens_show_their_bytes():
    """Llama 2, Gemma and Mistral spell a character they lack as byte tokens <0xE5> <0x96> <0x9C>: each shows
    its byte, and together they make the character."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}, "▁": 259, "a": 260,
             "▁a": 261, "我": 262}  # fmt: skip
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[("▁", "a")], byte_fallback=True, unk_token="<unk>"))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>")
    ids = tokenizer.encode("a 我喜", add_special_tokens=False)
    parts = [tokens.token_text(tokenizer, i) for i in ids]
    assert parts[-4:] == [("我", None), ("⟨E5⟩", b"\xe5"), ("⟨96⟩", b"\x96"), ("⟨9C⟩", b"\x9c")]
    assert tokens.spell(parts)[-1].text == "喜" and tokens.spell(parts)[-1].joined


def test_bytes_text_shows_whole_characters_and_hex_for_the_rest():
    assert tokens.bytes_text(" 我".encode()) == " 我"
    assert tokens.bytes_text(b" \xe5\x96") == " ⟨E5 96⟩"
    assert tokens.bytes_text("我".encode() + b"\xe5") == "我⟨E5⟩"
    assert tokens.bytes_text(b"\x9c!\xf0\x9f") == "⟨9C⟩!⟨F0 9F⟩"


def test_spell_joins_tokens_into_the_characters_they_complete():
    """Groups end where the bytes end on a character boundary; a run not yet complete, or cut off by a whole
    token, stays as single tokens."""
    raw = [b"\xe6\x88", b"\x91\xe5", b"\x96\x9c", b"\xe6"]
    parts = [(tokens.bytes_text(r), r) for r in raw] + [("a", None), ("⟨E6⟩", b"\xe6")]
    groups = tokens.spell(parts)
    assert [(g.start, g.end, g.text, g.joined) for g in groups] == [
        (0, 3, "我喜", True), (3, 4, "⟨E6⟩", False), (4, 5, "a", False), (5, 6, "⟨E6⟩", False)]  # fmt: skip


def test_every_view_of_a_split_character_shows_bytes_and_the_whole_text(tiny_engine):
    ids, session = _split_run(tiny_engine)
    steps = session.steps
    assert [r.token for r in steps[: len(ids)]] == [tokens.token_text(tiny_engine.tokenizer, i)[0] for i in ids]
    html_text = views.colored_text_html("Say it: ", steps)
    assert "\ufffd" not in html_text and html_text.count('class="dp-char"') == len(TEXT)
    for ch in TEXT:
        assert f">{ch}</rt>" in html_text
    # the table's input and the CSV join bytes: the characters read whole once complete
    data = views.step_table_data("Say it: ", steps)
    assert data["input"].iloc[len(ids)] == "Say it: " + TEXT
    assert bytes.fromhex(data["token_bytes"].iloc[0]) == steps[0].token_bytes
    # the popover says what the token is part of; the chart and the candidates tell tokens apart
    first = tokens.spell([(r.token, r.token_bytes) for r in steps])[0]
    assert "make 我" in views.step_alternatives(steps[1], spelled=first)["head"]
    stand_ins = views.distribution_chart_data(steps[1])["stand_ins"]
    assert "⟨E5⟩" in {s["mark"] for s in stand_ins}  # the chart's legend says what ⟨⟩ is
    for r in steps:
        labels = [row["label"] for row in views.distribution_chart_data(r, top_n=10)["rows"]]
        assert len(set(labels)) == len(labels) and not any("\ufffd" in label for label in labels)
    # a streamed update from the middle of a character redraws that character whole
    assert views.colored_text_increment(steps, 4).startswith(views.TEXT_FROM_MARK.format(3))


# -- the page ---------------------------------------------------------------------------------------------------


def _link(app_url: str, prompt: str, forced: list[int]) -> str:
    """A permalink (the playground's own format) of a greedy run whose steps are `forced`, then one more."""
    from playground.ui import DEFAULT_MODEL, PERMALINK_PARAM

    config = DecodingConfig(strategy="greedy", max_new_tokens=len(forced) + 4, top_n=10).to_dict()
    doc = {"v": 1, "prompt": prompt, "model": DEFAULT_MODEL, "chat": False, "system": "", "config": config,
           "steps": [{"f": t} for t in forced] + [{}]}  # fmt: skip: then one step of the model's own
    packed = zlib.compress(json.dumps(doc).encode("utf-8"), 9)
    return f"{app_url}?{PERMALINK_PARAM}=" + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def test_a_chinese_and_emoji_run_reads_in_every_view(app_url, page_factory, tiny_engine):
    """Issue 20: "我喜欢吃🍎" as byte tokens showed "\ufffd" in the text, the popover, the candidates list and the
    chart, the candidates as identical "\ufffd x%", and the text never showed the characters."""
    from playground.ui import decode_permalink, replay

    ids = tiny_engine.tokenizer.encode(TEXT)
    link = _link(app_url, "用中文说: ", ids)
    page = page_factory()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(link)
    page.wait_for_selector(f"#dp-text [data-step='{len(ids)}']")
    # the text: each character over the tokens that made it, each token its bytes, nothing unreadable
    assert page.eval_on_selector_all("#dp-text ruby.dp-char rt", "rs => rs.map(r => r.textContent)") == list(TEXT)
    shown = page.eval_on_selector_all("#dp-text .dp-tok", "ts => ts.map(t => t.textContent)")[: len(ids)]
    assert shown == [tokens.token_text(tiny_engine.tokenizer, i)[0] for i in ids]
    assert "⟨E6⟩" in shown and "\ufffd" not in page.inner_text("#dp-text")
    # the popover of a token that is part of a character
    page.click("#dp-text [data-step='1']")
    pop = page.locator("#dp-popover")
    pop.wait_for(state="visible")
    assert f"step 1: {shown[1]}" in pop.inner_text() and "我" in pop.inner_text() and "\ufffd" not in pop.inner_text()
    page.keyboard.press("Escape")
    # the chart and the candidates of that step (the one inspected): told apart, bytes legible
    page.wait_for_function("document.querySelector('#dp-dist .dp-lc-sr caption').textContent.startsWith('Step 1')")
    labels = page.eval_on_selector_all("#dp-dist .dp-lc-label", "ls => ls.map(l => l.textContent)")
    assert shown[1] in labels and len(set(labels)) == len(labels) and not any("\ufffd" in x for x in labels)
    run, _ = replay(decode_permalink(link.split("=", 1)[1]))
    record = run.steps[1]
    page.click("#dp-candidates input")
    options = [o.removeprefix("✓").strip()  # Gradio's (hidden) mark of the selected option
               for o in page.eval_on_selector_all("[role=option]", "os => os.map(o => o.textContent.trim())")]
    expected = [views.token_label(c.token) for c in sorted(record.top, key=lambda c: c.rank)]
    assert any("⟨" in e for e in expected)  # the step's candidates include parts of characters
    assert len(options) == len(expected) and all(o.startswith(e) for o, e in zip(options, expected))
    assert len(set(options)) == len(options) and not any("\ufffd" in o for o in options)
    page.keyboard.press("Escape")
    # the step table's input shows the characters once complete
    page.get_by_role("tab", name="Step table").click()
    page.wait_for_selector(f"#dp-table :text('{TEXT}')")
    page.close()
