"""Shared fixtures: tiny random causal LMs built and saved by the tests (no download), and the embedded model.

`tiny_model_dir`  a folder holding a 2-layer Llama with a small byte-level BPE tokenizer and a chat template,
                  loadable by any Hub-style loader (AutoModelForCausalLM / AutoTokenizer).
`tiny_engine`     an Engine over it, on the CPU.
`app_url`         the app on a free port, with the tiny model as its default (one per test module)
`page_factory`    new pages of one headless chromium (skips without Playwright or chromium, unless
                  PLAYGROUND_REQUIRE_BROWSER=1)
`smol_engine`     the embedded SmolLM2-135M-Instruct (converted and cached on first use); its tests are marked
                  `slow` only in name: the suite always runs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time there was a small model that liked to predict the next token.",
    "Paris is the capital of France. Rome is the capital of Italy.",
    "Temperature, top-k, top-p and min-p shape the distribution; the sampler picks a token.",
    "1 2 3 4 5 6 7 8 9 10 a b c d e f g h i j k l m n o p q r s t u v w x y z",
] * 20


def build_tiny_model_dir(path, seed: int = 0, vocab_size: int = 300, chat_template: bool = True) -> str:
    """Train a tiny BPE tokenizer and save it with a random 2-layer Llama to `path`; return the path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # sharper logits than the default init, so distributions are not near-uniform
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    from playground.loading import load_engine

    return load_engine(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def smol_engine():
    from playground.loading import load_engine

    return load_engine(None, device="cpu")


@pytest.fixture
def tiny_ui(tiny_engine, tiny_model_dir, monkeypatch):
    """playground.ui with a registry holding only the tiny model (as the app's default) and no hosting caps."""
    ui = pytest.importorskip("playground.ui")
    from playground.hosting import HostingPolicy

    registry = ui.ModelRegistry(default_spec=tiny_model_dir)
    registry.put(ui.DEFAULT_MODEL, tiny_engine)
    monkeypatch.setattr(ui.shared, "REGISTRY", registry)
    monkeypatch.setattr(ui.shared, "POLICY", HostingPolicy())
    return ui


def ui_controls(ui, prompt: str = "Once upon a time", **overrides) -> list:
    """The step handlers' control values, in ui.CONTROL_NAMES order: a short sampled run unless overridden (a
    control not named here, such as the More knobs, at the page's default: off)."""
    values = dict(prompt=prompt, model=ui.DEFAULT_MODEL, chat=False, system="", strategy="sample", temperature=1.0,
                  top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, num_beams=2, length_penalty=1.0,
                  max_new_tokens=6, top_n=5, seed=4)  # fmt: skip
    values.update(overrides)
    return [values[name] if name in values else getattr(ui.DEFAULTS, name) for name in ui.CONTROL_NAMES]


# -- the real page in headless chromium (tests/test_e2e.py, tests/test_page.py) ------------------------------

CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def _browser_or_skip():
    required = os.environ.get("PLAYGROUND_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("PLAYGROUND_REQUIRE_BROWSER=1 but playwright is not installed.")
        pytest.skip("playwright is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        if required:
            pytest.fail(f"PLAYGROUND_REQUIRE_BROWSER=1 but {CHROMIUM} does not exist.")
        pytest.skip(f"{CHROMIUM} is missing")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The page's tests meet tokens at a real model's pace: each forward of the tiny model (~2 ms) takes as long as
# the embedded model's on a 2-core CPU (~25 ms). At the tiny model's own pace a stream's updates came faster
# than a loaded machine's browser drew them, and a click on Stop raced a 200-token run to its end.
PAGE_FORWARD_S = 0.025


@pytest.fixture(scope="module")
def app_url(tiny_model_dir):
    from playground import ui

    old = ui.shared.REGISTRY
    ui.shared.REGISTRY = ui.ModelRegistry(default_spec=tiny_model_dir)
    model = ui.shared.REGISTRY.get(ui.DEFAULT_MODEL).model
    forward = model.forward

    def at_a_real_models_pace(*args, **kwargs):  # the GIL is free meanwhile, as in a real model's forward
        time.sleep(PAGE_FORWARD_S)
        return forward(*args, **kwargs)

    model.forward = at_a_real_models_pace
    demo = ui.build_demo()
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **ui.launch_options())
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    ui.shared.REGISTRY = old


@pytest.fixture(scope="module")
def page_factory():
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield lambda: browser.new_page(viewport={"width": 1400, "height": 1600})
        browser.close()
