"""Bad and hostile input: every mistake a user (or an API client) can make gets one clear sentence, and nothing
breaks. Covers the settings (`DecodingConfig`), the engine (prompts, context limits, forced tokens, rewinds),
the loader (missing ids, non-model folders, non-causal models, remote code), the CLI and the UI handlers.

These tests use the tiny random Llama (context 256) from conftest; they know nothing about the HTML views.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ui_controls

from playground.config import MAX_BEAMS, DecodingConfig
from playground.hosting import HostingPolicy
from playground.loading import ModelLoadError, load_engine

REPO = Path(__file__).resolve().parent.parent


def assert_one_sentence(message: str, *must_contain: str) -> None:
    """An error message is one line, one sentence, and names what was tried."""
    assert message and "\n" not in message, f"not one line: {message!r}"
    assert message.rstrip().endswith((".", ")")), f"not a sentence: {message!r}"
    assert "Traceback" not in message
    for part in must_contain:
        assert part.lower() in message.lower(), f"{part!r} not named in {message!r}"


# ----------------------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    "field, value",
    [
        ("temperature", -0.5),
        ("temperature", float("nan")),
        ("temperature", float("inf")),
        ("temperature", "hot"),
        ("top_p", 0.0),
        ("top_p", -0.2),
        ("top_p", 1.5),
        ("top_k", -1),
        ("top_k", 2.5),
        ("top_k", True),
        ("min_p", -0.01),
        ("min_p", 1.01),
        ("num_beams", 0),
        ("num_beams", MAX_BEAMS + 1),
        ("repetition_penalty", 0.0),
        ("repetition_penalty", -1.0),
        ("max_new_tokens", 0),
        ("seed", -1),
        ("top_n", 0),
        ("strategy", "nucleus"),
        ("length_penalty", float("nan")),
        ("early_stopping", "sometimes"),
    ],
)
def test_bad_setting_is_one_sentence_naming_the_setting(field, value):
    with pytest.raises(ValueError) as info:
        DecodingConfig(**{field: value})
    assert_one_sentence(str(info.value), field)


def test_bad_setting_from_a_permalink_dict_is_rejected_too():
    with pytest.raises(ValueError) as info:
        DecodingConfig.from_dict({"strategy": "sample", "top_p": 7, "unknown_key": 1})
    assert_one_sentence(str(info.value), "top_p")


# ----------------------------------------------------------------------------------------------------------
# Prompts


@pytest.mark.parametrize("prompt", ["", " ", "\n\t  \r\n", None, 42])
def test_empty_or_whitespace_prompt(tiny_engine, prompt):
    with pytest.raises(ValueError) as info:
        tiny_engine.encode(prompt)
    assert_one_sentence(str(info.value), "prompt")


def test_empty_prompt_ids_are_refused_by_the_engine(tiny_engine):
    with pytest.raises(ValueError) as info:
        tiny_engine.start([], DecodingConfig())
    assert_one_sentence(str(info.value), "prompt")


WEIRD_PROMPTS = [
    "Emoji 😀🎉👩‍👩‍👧 and flags 🇫🇷",
    "שלום עולם — مرحبا بالعالم",  # right-to-left scripts
    "mixed \u202eRTL override\u202c and \u200e marks",
    "control \x01\x02\x1b[31m escape \x7f chars",
    "NUL \x00 byte in the middle\x00",
    "\x00",
    "<script>alert(1)</script> & \"quotes\"",
    "ünïcödé ｆｕｌｌｗｉｄｔｈ 𝕄𝕒𝕥𝕙",
]


@pytest.mark.parametrize("prompt", WEIRD_PROMPTS)
def test_weird_prompts_round_trip_and_decode(tiny_engine, prompt):
    ids = tiny_engine.encode(prompt)
    assert tiny_engine.decode(ids) == prompt  # byte-level BPE: nothing is lost
    traces = tiny_engine.compare(ids, DecodingConfig(num_beams=2, max_new_tokens=3, seed=3), num_samples=1)
    for trace in traces.values():  # greedy, beam and sample lanes
        assert 1 <= len(trace.token_ids) <= 3
        assert isinstance(trace.text, str) and all(isinstance(t, str) for t in trace.token_strings)
        json.dumps(trace.to_dict())  # the export path copes with any of it


def test_weird_prompts_with_the_real_tokenizer(smol_engine):
    """SmolLM2's tokenizer (byte-level too) round-trips them, in plain and chat mode, and decodes a step."""
    for prompt in WEIRD_PROMPTS:
        ids = smol_engine.encode(prompt)
        assert smol_engine.decode(ids) == prompt
        assert len(smol_engine.encode(prompt, chat=True, system="Be brief \x00 😀")) > len(ids)
    session = smol_engine.start(smol_engine.encode(" ".join(WEIRD_PROMPTS), chat=True), DecodingConfig(max_new_tokens=2))
    record = session.step()
    assert record.token == smol_engine.vocab.token_str(record.token_id)


def test_chat_mode_without_a_chat_template(tmp_path):
    from conftest import build_tiny_model_dir

    engine = load_engine(build_tiny_model_dir(tmp_path / "no-template", chat_template=False), device="cpu")
    assert not engine.has_chat_template
    with pytest.raises(ValueError) as info:
        engine.encode("hello", chat=True)
    assert_one_sentence(str(info.value), "chat template", str(tmp_path / "no-template"))
    assert engine.encode("hello", chat=False)  # plain mode still works


# ----------------------------------------------------------------------------------------------------------
# Context limits (the tiny model holds 256 tokens)


def test_prompt_longer_than_the_context_is_cut_from_the_left_with_a_notice(tiny_engine):
    assert tiny_engine.context_length == 256
    ids = tiny_engine.encode("The quick brown fox jumps over the lazy dog. " * 40)
    assert len(ids) > 256
    session = tiny_engine.start(ids, DecodingConfig(max_new_tokens=8))
    assert session.prompt_ids == ids[-255:]  # the newest tokens are kept, one slot is left to generate
    assert any("dropped" in n and str(len(ids)) in n and "256" in n for n in session.notices), session.notices
    assert any("max_new_tokens" in n for n in session.notices)
    record = session.step()
    assert session.done and session.finish_reason in ("length", "eos", "context")  # context: the cut prompt filled the model's context
    assert 0 <= record.token_id < tiny_engine.vocab_size
    trace = session.trace()
    assert trace.notices == session.notices  # the notice reaches the exported trace


def test_max_new_tokens_past_the_context_is_capped_with_a_notice(tiny_engine):
    ids = tiny_engine.encode("Once upon a time " * 12)
    trace = tiny_engine.generate(ids, DecodingConfig(max_new_tokens=10_000, strategy="sample", seed=1))
    room = 256 - len(ids)
    assert any(f"from 10000 to {room}" in n for n in trace.notices), trace.notices
    assert len(trace.prompt_token_ids) + len(trace.token_ids) <= 256


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_long_prompt_in_compare_and_beam(tiny_engine, strategy):
    ids = tiny_engine.encode("Paris is the capital of France. " * 60)
    traces = tiny_engine.compare(ids, DecodingConfig(strategy=strategy, num_beams=3, max_new_tokens=5), num_samples=2)
    for trace in traces.values():
        assert len(trace.prompt_token_ids) + len(trace.token_ids) <= 256
        assert any("dropped" in n for n in trace.notices)


def test_raising_max_new_tokens_mid_session_stays_inside_the_context(tiny_engine):
    ids = tiny_engine.encode("Rome is the capital of Italy. " * 30)
    session = tiny_engine.start(ids, DecodingConfig(max_new_tokens=2))
    for _ in session.run(DecodingConfig(max_new_tokens=5000)):
        pass
    assert len(session.prompt_ids) + len(session.token_ids) <= 256


# ----------------------------------------------------------------------------------------------------------
# Forced tokens and rewinds


@pytest.mark.parametrize("token", [-1, 300, 10**12, "5", 2.0, None.__class__, True])
def test_forcing_a_token_that_does_not_exist(tiny_engine, token):
    session = tiny_engine.start(tiny_engine.encode("hello"), DecodingConfig(max_new_tokens=4))
    assert tiny_engine.vocab_size == 300
    with pytest.raises(ValueError) as info:
        session.step(force_token=token)
    assert_one_sentence(str(info.value), "token id", "299")
    assert session.steps == []  # nothing was appended
    session.step(force_token=299)  # the largest id is fine
    assert session.token_ids == [299]


def test_forcing_in_beam_search_is_refused(tiny_engine):
    session = tiny_engine.start(tiny_engine.encode("hello"), DecodingConfig(strategy="beam", num_beams=2))
    with pytest.raises(ValueError) as info:
        session.step(force_token=5)
    assert_one_sentence(str(info.value), "beam")


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_rewinding_past_the_start_or_beyond_the_last_step(tiny_engine, strategy):
    session = tiny_engine.start(tiny_engine.encode("hello there"), DecodingConfig(strategy=strategy, num_beams=2,
                                                                                    max_new_tokens=6, seed=5))
    for _ in range(3):
        session.step()
    before = list(session.token_ids)
    for bad in (-1, 4, 100, 1.0, "2", None):
        with pytest.raises(ValueError) as info:
            session.rewind(bad)
        assert_one_sentence(str(info.value), "rewind", "0 to 3")
    assert session.token_ids == before and len(session.steps) == 3  # the failed rewinds changed nothing
    session.rewind(3)  # the ends of the range are fine
    session.rewind(0)
    assert session.steps == []


def test_stepping_a_finished_run_says_so(tiny_engine):
    session = tiny_engine.start(tiny_engine.encode("hello"), DecodingConfig(strategy="beam", num_beams=2,
                                                                           max_new_tokens=2))
    for _ in session.run():
        pass
    with pytest.raises(ValueError) as info:
        session.step()
    assert_one_sentence(str(info.value), "finished")


def test_changing_the_seed_or_beams_mid_session_is_refused(tiny_engine):
    session = tiny_engine.start(tiny_engine.encode("hello"), DecodingConfig(strategy="sample", seed=1))
    with pytest.raises(ValueError) as info:
        session.step(config=DecodingConfig(strategy="sample", seed=2))
    assert_one_sentence(str(info.value), "seed")
    with pytest.raises(ValueError) as info:
        session.step(config=DecodingConfig(strategy="beam"))
    assert_one_sentence(str(info.value), "beam")


@pytest.mark.parametrize("n", [-1, 9, 1.5, "2"])
def test_bad_number_of_samples(tiny_engine, n):
    with pytest.raises(ValueError) as info:
        tiny_engine.compare(tiny_engine.encode("hi"), DecodingConfig(), num_samples=n)
    assert_one_sentence(str(info.value), "num_samples")


# ----------------------------------------------------------------------------------------------------------
# Models that cannot be loaded


def test_a_model_id_that_does_not_exist():
    with pytest.raises(ModelLoadError) as info:
        load_engine("no-such-org/no-such-model-4242", device="cpu", local_files_only=True)
    assert_one_sentence(str(info.value), "no-such-org/no-such-model-4242")


@pytest.mark.parametrize("spec", ["./no/such/folder", "/no/such/folder", "~/no-such-folder-4242"])
def test_a_path_that_does_not_exist(spec):
    with pytest.raises(ModelLoadError) as info:
        load_engine(spec, device="cpu", local_files_only=True)
    assert_one_sentence(str(info.value), spec)


def test_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError) as info:
        load_engine(str(tmp_path), device="cpu", local_files_only=True)
    assert_one_sentence(str(info.value), str(tmp_path), "config.json")


def test_a_file_instead_of_a_folder(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(ModelLoadError) as info:
        load_engine(str(path), device="cpu")
    assert_one_sentence(str(info.value), str(path), "folder")


def test_a_folder_with_a_broken_config(tmp_path):
    (tmp_path / "config.json").write_text("{ this is not json")
    with pytest.raises(ModelLoadError) as info:
        load_engine(str(tmp_path), device="cpu", local_files_only=True)
    assert_one_sentence(str(info.value), str(tmp_path))


def test_a_folder_with_an_encoder_decoder_model(tmp_path):
    from transformers import T5Config, T5Model

    T5Model(T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_engine(str(tmp_path), device="cpu", local_files_only=True)
    assert_one_sentence(str(info.value), str(tmp_path), "t5", "causal")


def test_a_folder_with_an_encoder_only_model(tmp_path):
    """AutoModelForCausalLM happily wraps a BertModel checkpoint in a fresh, random LM head; refuse it."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_engine(str(tmp_path), device="cpu", local_files_only=True)
    assert_one_sentence(str(info.value), str(tmp_path), "causal")


def test_a_folder_with_a_model_but_no_tokenizer(tmp_path, tiny_model_dir):
    import shutil

    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if (Path(tiny_model_dir) / name).exists():
            shutil.copy(Path(tiny_model_dir) / name, tmp_path / name)
    with pytest.raises(ModelLoadError) as info:
        load_engine(str(tmp_path), device="cpu", local_files_only=True)
    assert_one_sentence(str(info.value), str(tmp_path), "tokenizer")


@pytest.mark.parametrize("device, named", [("tpu", "tpu"), ("cuda:7", "cuda"), ("gpu please", "gpu please")])
def test_a_device_that_does_not_exist(tiny_model_dir, device, named):
    with pytest.raises(ModelLoadError) as info:
        load_engine(tiny_model_dir, device=device)
    assert_one_sentence(str(info.value), named)


def test_an_unknown_dtype(tiny_model_dir):
    with pytest.raises(ModelLoadError) as info:
        load_engine(tiny_model_dir, device="cpu", dtype="int3")
    assert_one_sentence(str(info.value), "int3")


# ----------------------------------------------------------------------------------------------------------
# Remote code is never run


def test_no_loader_path_passes_trust_remote_code(monkeypatch, tiny_model_dir):
    """Record the kwargs of every from_pretrained call the loader makes; none may ask for remote code."""
    import transformers

    calls = []
    for cls_name in ("AutoConfig", "AutoModelForCausalLM", "AutoTokenizer"):
        cls = getattr(transformers, cls_name)
        original = cls.from_pretrained.__func__

        def recorder(klass, *args, _original=original, _name=cls_name, **kwargs):
            calls.append((_name, kwargs))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(recorder))
    load_engine(tiny_model_dir, device="cpu")
    with pytest.raises(ModelLoadError):
        load_engine("no-such-org/no-such-model-4242", device="cpu", local_files_only=True)
    assert {name for name, _ in calls} == {"AutoConfig", "AutoModelForCausalLM", "AutoTokenizer"}
    assert all(kwargs.get("trust_remote_code", False) is False for _, kwargs in calls), calls


def test_no_module_asks_for_remote_code():
    """A static guard for the paths the test above cannot reach (the embedded GGUF conversion, the UI)."""
    for path in (REPO / "playground").glob("*.py"):
        text = path.read_text().replace(" ", "")
        assert "trust_remote_code=True" not in text, path
        assert '"trust_remote_code":True' not in text, path


def test_a_folder_that_asks_for_custom_code_does_not_run_it(tmp_path, tiny_model_dir):
    """A config whose auto_map points at a modeling file: the file must never be imported."""
    import shutil

    folder = tmp_path / "evil"
    shutil.copytree(tiny_model_dir, folder)
    marker = tmp_path / "code-ran"
    (folder / "modeling_evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import LlamaForCausalLM\n"
        "class EvilForCausalLM(LlamaForCausalLM):\n    pass\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM",
                          "AutoConfig": "modeling_evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    try:
        engine = load_engine(str(folder), device="cpu", local_files_only=True)
    except ModelLoadError as e:
        assert_one_sentence(str(e), str(folder))
    else:
        assert type(engine.model).__name__ == "LlamaForCausalLM"
    assert not marker.exists(), "the folder's custom code was imported"


# ----------------------------------------------------------------------------------------------------------
# The CLI: bad flags or input exit non-zero with one line on stderr, never a traceback


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    from playground import cli

    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


CLI_BAD = [
    (["--temperature", "-1"], "temperature"),
    (["--temperature", "nan"], "temperature"),
    (["--top-p", "0"], "top_p"),
    (["--top-p", "1.5"], "top_p"),
    (["--top-k", "-3"], "top_k"),
    (["--top-k", "2.5"], "top-k"),
    (["--min-p", "2"], "min_p"),
    (["--num-beams", "0"], "num_beams"),
    (["--num-beams", "17"], "num_beams"),
    (["--repetition-penalty", "0"], "repetition_penalty"),
    (["--max-new-tokens", "0"], "max_new_tokens"),
    (["--seed", "-4"], "seed"),
    (["--strategy", "nucleus"], "strategy"),
    (["--no-such-flag"], "no-such-flag"),
    (["--prompt", "   "], "prompt"),
    (["--model", "/no/such/folder"], "/no/such/folder"),
    (["--device", "tpu"], "tpu"),
    (["--typical-p", "0"], "typical_p"),
    (["--epsilon-cutoff", "1"], "epsilon_cutoff"),
    (["--top-h", "2"], "top_h"),
    (["--no-repeat-ngram-size", "-1"], "no_repeat_ngram_size"),
    (["--min-new-tokens", "-2"], "min_new_tokens"),
    (["--sequence-bias", "cake=lots"], "not a number"),
    (["--sequence-bias", "cake"], "word=bias"),
    (["--suppress-tokens", "13, x"], "not a token id"),
    (["--strategy", "beam-sample", "--num-beams", "0"], "num_beams"),
]


@pytest.mark.parametrize("extra, named", CLI_BAD)
def test_cli_bad_flags_exit_non_zero_with_one_stderr_line(capsys, tiny_model_dir, extra, named):
    argv = ["generate", "--prompt", "hello", "--model", tiny_model_dir, "--device", "cpu", "--max-new-tokens", "2"]
    code, out, err = _cli(capsys, *argv, *extra)
    assert code not in (0, None), (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and named.lower() in err.lower(), err


def test_cli_chat_without_template_is_one_line(capsys, tmp_path):
    from conftest import build_tiny_model_dir

    folder = build_tiny_model_dir(tmp_path / "plain", chat_template=False)
    capsys.readouterr()
    code, out, err = _cli(capsys, "generate", "--prompt", "hi", "--model", folder, "--device", "cpu", "--chat",
                          "--json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "chat template" in err, err


def test_cli_weird_prompt_and_long_prompt_work(capsys, tiny_model_dir):
    code, out, err = _cli(capsys, "compare", "--prompt", "NUL\x01 😀 שלום " * 80, "--model", tiny_model_dir,
                          "--device", "cpu", "--max-new-tokens", "3", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"greedy", "beam", "sample"}
    assert any("dropped" in n for n in result["greedy"]["notices"])


def test_cli_in_a_real_process_prints_no_traceback(tiny_model_dir):
    """The same as above through `python -m playground`, as a user runs it (one subprocess: imports are slow)."""
    proc = subprocess.run(
        [sys.executable, "-m", "playground", "generate", "--prompt", "hi", "--model", tiny_model_dir,
         "--device", "cpu", "--top-p", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "top_p" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------------------------------------
# The UI handlers (what API clients call): the same one-sentence errors, and hosted mode's caps


@pytest.fixture
def ui(tiny_ui):
    return tiny_ui


@pytest.fixture
def hosted(ui, monkeypatch):
    policy = HostingPolicy.from_env({"PLAYGROUND_HOSTED": "1", "PLAYGROUND_MAX_NEW_TOKENS": "6",
                                        "PLAYGROUND_MAX_BEAMS": "2", "PLAYGROUND_MAX_SAMPLES": "2"})  # fmt: skip
    monkeypatch.setattr(ui.shared, "POLICY", policy)
    return ui


_controls = ui_controls


def _ui_error(call) -> str:
    import gradio as gr

    with pytest.raises(gr.Error) as info:
        result = call()
        if hasattr(result, "__next__"):  # a streaming handler raises on iteration
            list(result)
    message = info.value.message
    assert_one_sentence(message)
    return message


UI_BAD = [
    (dict(prompt=""), "prompt"),
    (dict(prompt="   \n"), "prompt"),
    (dict(prompt=None), "prompt"),
    (dict(temperature=-1), "temperature"),
    (dict(temperature="hot"), "temperature"),
    (dict(temperature=None), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0), "top_p"),
    (dict(top_p=1.01), "top_p"),
    (dict(top_k=-5), "top_k"),
    (dict(top_k=2.5), "top-k"),
    (dict(min_p=3), "min_p"),
    (dict(num_beams=99, strategy="beam"), "num_beams"),
    (dict(repetition_penalty=0), "repetition_penalty"),
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(seed=-3), "seed"),
    (dict(strategy="nucleus"), "strategy"),
    (dict(model="/no/such/model"), "/no/such/model"),
]


@pytest.mark.parametrize("overrides, named", UI_BAD)
def test_ui_step_and_run_and_compare_reject_bad_input_in_one_sentence(ui, overrides, named):
    for call in (
        lambda: ui.api.step(None, *_controls(ui, **overrides), 1),
        lambda: ui.api.run(None, *_controls(ui, **overrides)),
    ):
        assert named.lower() in _ui_error(call).lower()
    if "strategy" not in overrides and "prompt" not in overrides and "model" not in overrides:
        assert named.lower() in _ui_error(lambda: ui.api.compare(*_controls(ui, **overrides), 2)).lower()


def test_ui_chat_without_template(ui, tmp_path, monkeypatch):
    from conftest import build_tiny_model_dir

    folder = build_tiny_model_dir(tmp_path / "plain", chat_template=False)
    message = _ui_error(lambda: ui.api.step(None, *_controls(ui, model=folder, chat=True, system="x"), 1))
    assert "chat template" in message and "plain" in message


def test_ui_error_text_is_escaped(ui):
    """Gradio renders error text as HTML: a model name with markup must come back inert."""
    message = _ui_error(lambda: ui.api.step(None, *_controls(ui, model="/no/<img src=x onerror=alert(1)>"), 1))
    assert "<img" not in message and "&lt;img" in message


@pytest.mark.parametrize("to_step", [-1, 99, "x", None, 1.5])
def test_ui_rewind_and_force_reject_bad_steps(ui, to_step):
    state = ui.api.step(None, *_controls(ui), 2)[-1]
    _ui_error(lambda: ui.api.rewind(state, to_step))
    _ui_error(lambda: ui.api.force(state, *_controls(ui), to_step, 5))
    assert len(state.steps) == 2  # nothing changed


@pytest.mark.parametrize("token", [-1, 300, "abc", None, 3.5])
def test_ui_force_rejects_tokens_that_do_not_exist(ui, token):
    state = ui.api.step(None, *_controls(ui), 2)[-1]
    _ui_error(lambda: ui.api.force(state, *_controls(ui), 1, token))


def test_ui_handlers_without_a_run(ui):
    for call in (lambda: ui.api.rewind(None, 0), lambda: ui.api.undo(None), lambda: ui.api.export(None),
                 lambda: ui.api.force(None, *_controls(ui), 0, 5)):  # fmt: skip
        _ui_error(call)


def test_hosted_mode_caps_reach_api_clients(hosted):
    ui = hosted
    outputs = ui.api.step(None, *_controls(ui, max_new_tokens=500, strategy="beam", num_beams=16), 1000)
    result, state = outputs[0], outputs[-1]
    assert result["n_steps"] <= 6 and state.session.config.max_new_tokens <= 6
    assert state.session.config.num_beams == 2
    assert any("capped at 6" in n for n in result["notices"]) and any("capped at 2" in n for n in result["notices"])
    *_, last = ui.api.run(None, *_controls(ui, max_new_tokens=10_000))
    assert len(last[-1].steps) <= 6


def test_hosted_mode_caps_compare(hosted, monkeypatch):
    import gradio as gr

    ui = hosted
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    *_, (result, _cards, _tree, _beams) = ui.api.compare(*_controls(ui, max_new_tokens=999, num_beams=16), 8)
    assert set(result) == {"greedy", "beam", "sample", "sample 2"}  # 8 samples asked, 2 allowed
    assert all(r["n_steps"] <= 6 for r in result.values())
    assert any("Samples are capped at 2" in w for w in warnings)


@pytest.mark.parametrize("model", ["/etc", "gpt2", "no-such-org/x", "../../../../etc/passwd"])
def test_hosted_mode_refuses_other_models(hosted, model):
    ui = hosted
    message = _ui_error(lambda: ui.api.step(None, *_controls(ui, model=model), 1))
    assert "only runs these models" in message
    _, status, _, *_ = ui.api.load_model(None, model, progress=lambda *a, **k: None)
    assert "still using" in status


def _permalink(doc: dict) -> str:
    import base64
    import zlib

    packed = zlib.compress(json.dumps(doc).encode("utf-8"))
    return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def test_hostile_permalinks_fail_in_one_sentence(ui):
    good = {"v": 1, "prompt": "hi", "model": "default", "chat": False, "system": "",
            "config": DecodingConfig(max_new_tokens=4).to_dict(), "steps": [{}, {}]}  # fmt: skip
    assert len(ui.restore(_permalink(good))["state"].steps) == 2
    bad = [
        "not base64 !!!",
        _permalink({"v": 2, "steps": []}),
        _permalink(["a", "list"]),
        _permalink({**good, "steps": [{"f": 10**9}]}),  # a forced token that does not exist
        _permalink({**good, "steps": [{"f": "abc"}]}),
        _permalink({**good, "steps": ["x"]}),
        _permalink({**good, "config": {**good["config"], "top_p": 5}}),
        _permalink({**good, "config": {**good["config"], "temperature": "NaN"}}),
        _permalink({**good, "prompt": ""}),
        _permalink({**good, "steps": [{"c": {"seed": 99}}]}),
    ]
    for value in bad:
        with pytest.raises(ValueError) as info:
            ui.restore(value)
        assert_one_sentence(str(info.value))


def test_hosted_permalinks_obey_the_caps(hosted):
    ui = hosted
    doc = {"v": 1, "prompt": "hi", "model": "default", "chat": False, "system": "",
           "config": DecodingConfig(strategy="beam", num_beams=16, max_new_tokens=500).to_dict(),
           "steps": [{}] * 500}  # fmt: skip
    state = ui.restore(_permalink(doc))["state"]
    assert state.session.config.num_beams == 2 and len(state.steps) <= 6
    with pytest.raises(ValueError, match="only runs these models"):
        ui.restore(_permalink({**doc, "model": "/etc"}))
