"""The command line, run as users run it: `python -m playground ...` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, "-m", "playground", *args], capture_output=True, text=True, cwd=ROOT, env=env,
        input=stdin, timeout=300,
    )


def test_generate_json(tiny_model_dir):
    r = run_cli("generate", "--model", tiny_model_dir, "--prompt", "The quick", "--strategy", "sample",
                "--temperature", "0.8", "--top-k", "20", "--seed", "3", "--max-new-tokens", "5", "--top-n", "4", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["model"] == tiny_model_dir and d["strategy"] == "sample"
    assert len(d["token_ids"]) == len(d["steps"]) <= 5 and d["prompt_token_ids"]
    assert isinstance(d["sequence_logprob"], float)
    top = d["steps"][0]["top"]
    assert len(top) == 4 and {"token_id", "token", "raw_prob", "prob", "kept"} <= set(top[0])
    # the same flags give the same tokens (seeded)
    again = json.loads(run_cli("generate", "--model", tiny_model_dir, "--prompt", "The quick", "--strategy", "sample",
                               "--temperature", "0.8", "--top-k", "20", "--seed", "3", "--max-new-tokens", "5",
                               "--top-n", "4", "--json").stdout)
    assert again["token_ids"] == d["token_ids"]


def test_compare_json_and_text(tiny_model_dir):
    r = run_cli("compare", "--model", tiny_model_dir, "--prompt", "-", "--max-new-tokens", "4", "--num-beams", "2",
                "--num-samples", "2", "--json", stdin="Once upon a time")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert list(d) == ["greedy", "beam", "sample", "sample 2"]
    assert all(v["token_ids"] for v in d.values())
    text = run_cli("compare", "--model", tiny_model_dir, "--prompt", "Hi", "--max-new-tokens", "3")
    assert text.returncode == 0 and "[greedy]" in text.stdout and "[beam]" in text.stdout


def test_generate_text_output_has_a_step_table(tiny_model_dir):
    r = run_cli("generate", "--model", tiny_model_dir, "--prompt", "Paris is", "--max-new-tokens", "3", "--chat", "--system", "Be brief.")
    assert r.returncode == 0, r.stderr
    assert "step" in r.stdout and "top candidates" in r.stdout
    assert len([line for line in r.stdout.splitlines() if line.strip()[:1].isdigit()]) >= 1


@pytest.mark.parametrize(
    "flags,fragment",
    [
        (["--prompt", "  "], "prompt is empty"),
        (["--prompt", "hi", "--temperature", "-1"], "temperature"),
        (["--prompt", "hi", "--top-p", "0"], "top_p"),
        (["--prompt", "hi", "--top-p", "1.5"], "top_p"),
        (["--prompt", "hi", "--num-beams", "17"], "num_beams"),
        (["--prompt", "hi", "--strategy", "nucleus"], "invalid choice"),
        (["--prompt", "hi", "--top-k", "many"], "invalid int"),
        (["--prompt", "hi", "--model", "/no/such/folder"], "not a folder"),
        (["--prompt", "hi", "--model", "no-such-org/no-such-model"], "'no-such-org/no-such-model'"),
        (["--prompt", "hi", "--chart", "step.jpg"], "--chart saves .png or .svg"),
        (["--prompt", "hi", "--chart-step", "1"], "--chart-step needs --chart"),
        (["--prompt", "hi", "--sequence-bias", "cake=lots"], "not a number"),  # the rest: tests/test_bad_input.py
    ],
)
def test_bad_input_exits_nonzero_with_one_line(flags, fragment):
    r = run_cli("generate", *flags)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert fragment in lines[0]
    assert "Traceback" not in r.stderr


def test_help_lists_every_flag():
    r = run_cli("generate", "--help")
    assert r.returncode == 0
    for flag in ("--prompt", "--model", "--device", "--strategy", "--max-new-tokens", "--temperature", "--top-k",
                 "--top-p", "--min-p", "--repetition-penalty", "--num-beams", "--length-penalty", "--early-stopping",
                 "--seed", "--top-n", "--chat", "--system", "--json", "--chart", "--chart-step", "--top-h", "--typical-p",
                 "--epsilon-cutoff", "--eta-cutoff", "--no-repeat-ngram-size", "--min-new-tokens", "--bad-words",
                 "--sequence-bias", "--suppress-tokens", "beam-sample", "cake=-5"):
        assert flag in r.stdout


def test_an_unknown_hub_id_fails_fast_without_a_network(monkeypatch):
    """With no network, huggingface_hub retries for ~25 s; the loader notices the Hub does not resolve and says
    so at once (this checks the answer, not the time: the look-up is stubbed, so no network is touched)."""
    from playground import loading

    monkeypatch.setattr(loading, "_hub_resolves", lambda timeout_s=3.0: False)
    calls = []
    import transformers

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda *a, **k: calls.append(a) or 1 / 0)
    with pytest.raises(loading.ModelLoadError, match="cannot be reached"):
        loading.load_model("no-such-org/no-such-model", device="cpu")
    assert calls == []  # never went to from_pretrained (and its retries)


def test_generate_without_knob_flags_takes_the_models_generation_config(tiny_model_dir, tmp_path):
    """Issue 10: a model whose generation_config sets repetition_penalty 1.3 gives generate(do_sample=False) that
    penalty; `python -m playground generate` with no knob flags used 1.0. A flag given still wins."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "penalised"
    shutil.copytree(tiny_model_dir, folder)
    config_file = folder / "generation_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "repetition_penalty": 1.3}))
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = AutoTokenizer.from_pretrained(folder)("The quick brown fox")["input_ids"]
    with torch.no_grad():
        penalised = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)[0, len(ids) :].tolist()
        plain = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, repetition_penalty=1.0)
    assert penalised != plain[0, len(ids) :].tolist(), "the penalty must matter for this check to mean anything"

    r = run_cli("generate", "--model", str(folder), "--prompt", "The quick brown fox", "--max-new-tokens", "16", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["token_ids"] == penalised[: len(d["token_ids"])] and d["settings"]["repetition_penalty"] == 1.3
    assert any("generation_config" in notice and "repetition_penalty" in notice for notice in d["notices"])
    flagged = run_cli("generate", "--model", str(folder), "--prompt", "The quick brown fox", "--max-new-tokens", "16",
                      "--repetition-penalty", "1", "--json")  # fmt: skip
    assert json.loads(flagged.stdout)["token_ids"] == plain[0, len(ids) :].tolist()[: 16]
    assert "the model's" in run_cli("generate", "--help").stdout  # --help says where a default comes from


def test_early_stopping_flag_is_generates(tiny_model_dir):
    """Issue 10: the CLI had no --early-stopping. It takes generate()'s three values, and beams run with it as
    generate(early_stopping=...) does; anything else is one line and exit status 2."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = AutoTokenizer.from_pretrained(tiny_model_dir)("The quick brown fox")["input_ids"]
    r = run_cli("generate", "--model", tiny_model_dir, "--prompt", "The quick brown fox", "--strategy", "beam",
                "--num-beams", "3", "--length-penalty", "2", "--early-stopping", "never", "--max-new-tokens", "8", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=8, num_beams=3, length_penalty=2.0,
                             early_stopping="never", do_sample=False)  # fmt: skip
    assert d["settings"]["early_stopping"] == "never" and d["token_ids"] == out[0, len(ids) :].tolist()
    bad = run_cli("generate", "--prompt", "hi", "--early-stopping", "sometimes")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--early-stopping" in bad.stderr


def test_compare_with_the_largest_seed_and_two_samples(tiny_model_dir):
    """Issue 10: compare refused seed 2**63-1 with two or more samples ("seed must be an integer from 0 to 2**63 - 1"
    about a seed the user had given within range). Sample i's seed is (seed + i) mod 2**63."""
    r = run_cli("compare", "--model", tiny_model_dir, "--prompt", "Once upon a time", "--max-new-tokens", "3",
                "--num-beams", "2", "--num-samples", "2", "--seed", str(2**63 - 1), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [d["sample"]["settings"]["seed"], d["sample 2"]["settings"]["seed"]] == [2**63 - 1, 0]


def test_generate_saves_a_steps_chart_for_slides(tiny_model_dir, tmp_path):
    """--chart PATH saves the last step's distribution chart (--chart-step N another's) as PNG or SVG; a step the
    run does not have exits 2 with one line."""
    svg = tmp_path / "step1.svg"
    r = run_cli("generate", "--model", tiny_model_dir, "--prompt", "The quick", "--strategy", "sample", "--top-p", "0.8",
                "--max-new-tokens", "3", "--json", "--chart", str(svg), "--chart-step", "1")
    assert r.returncode == 0, r.stderr
    step = json.loads(r.stdout)["steps"][1]
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "Step 1: chose" in text and "top-p = 0.8" in text
    assert f"saved step 1's distribution chart to {svg}" in r.stderr
    assert f"{100 * step['prob']:.1f}% after knobs" in text  # the title names the step's own token and probability
    png = tmp_path / "last.png"
    r = run_cli("generate", "--model", tiny_model_dir, "--prompt", "The quick", "--max-new-tokens", "2", "--chart", str(png))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "saved step 1's" in r.stderr
    r = run_cli("generate", "--model", tiny_model_dir, "--prompt", "The quick", "--max-new-tokens", "2", "--chart",
                str(png), "--chart-step", "5")
    assert r.returncode == 2 and "the run has steps 0 to 1" in r.stderr and "Traceback" not in r.stderr


def test_every_knob_flag_is_generates_kwarg(tiny_model_dir, tmp_path):
    """Issue 22: the new flags, beam sampling included, give generate()'s tokens for the same kwargs; words become
    the token ids the tokenizer gives them (as written and after a space); the model's generation_config sets a
    knob where no flag is given, and '' turns it off."""
    import shutil

    import torch

    from playground.config import DecodingConfig
    from playground.loading import load_engine

    engine = load_engine(tiny_model_dir, device="cpu")
    r = run_cli("generate", "--model", tiny_model_dir, "--prompt", "The quick brown fox", "--strategy", "beam-sample",
                "--num-beams", "2", "--temperature", "1.3", "--typical-p", "0.95", "--epsilon-cutoff", "0.0001",
                "--eta-cutoff", "0.0001", "--top-h", "0.99", "--no-repeat-ngram-size", "2", "--min-new-tokens", "3",
                "--bad-words", "the; fox", "--sequence-bias", "quick=2.5", "--suppress-tokens", "5", "--seed", "3",
                "--max-new-tokens", "8", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    config = DecodingConfig.from_dict(d["settings"])
    assert config.bad_words_ids == engine.bad_words_ids(["the", "fox"]) and config.top_k == 50  # generate()'s fallback
    assert config.sequence_bias == engine.sequence_bias([("quick", 2.5)]) and config.suppress_tokens == (5,)
    ids = engine.encode("The quick brown fox")
    torch.manual_seed(3)
    with torch.no_grad():
        out = engine.model.generate(torch.tensor([ids]), **config.generate_kwargs())
    assert d["strategy"] == "beam-sample" and d["token_ids"] == out[0, len(ids) :].tolist()
    assert any("fallback" in notice and "top_k 50" in notice for notice in d["notices"])

    folder = tmp_path / "opinionated"
    shutil.copytree(tiny_model_dir, folder)
    config_file = folder / "generation_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "no_repeat_ngram_size": 2, "suppress_tokens": [7]}))
    taken = json.loads(run_cli("generate", "--model", str(folder), "--prompt", "Hi", "--max-new-tokens", "3", "--json").stdout)
    assert (taken["settings"]["no_repeat_ngram_size"], taken["settings"]["suppress_tokens"]) == (2, [7])
    assert any("no_repeat_ngram_size 2" in notice for notice in taken["notices"])
    off = json.loads(run_cli("generate", "--model", str(folder), "--prompt", "Hi", "--max-new-tokens", "3",
                             "--suppress-tokens", "", "--no-repeat-ngram-size", "0", "--json").stdout)  # fmt: skip
    assert (off["settings"]["no_repeat_ngram_size"], off["settings"]["suppress_tokens"]) == (0, [])
