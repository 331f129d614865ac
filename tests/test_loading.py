"""Model loading: folders and Hub-style ids, device and dtype choice, the embedded model's cached conversion,
and the CUDA path (skipped cleanly where there is no GPU)."""

from __future__ import annotations

import pytest
import torch

from playground import loading
from playground.config import DecodingConfig
from playground.loading import ModelLoadError, load_engine, pick_device, pick_dtype


def test_load_a_local_folder(tiny_model_dir):
    engine = load_engine(tiny_model_dir, device="cpu")
    assert engine.name == tiny_model_dir
    assert engine.device.type == "cpu"
    assert next(engine.model.parameters()).dtype == torch.float32
    assert engine.has_chat_template
    assert engine.generate(engine.encode("hello"), DecodingConfig(max_new_tokens=3)).token_ids


def test_device_and_dtype_choice():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device(None).type == expected
    assert pick_device("auto").type == expected
    assert pick_device("cpu").type == "cpu"
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ModelLoadError, match="Unknown device"):
        pick_device("tpu")
    with pytest.raises(ModelLoadError, match="Unknown dtype"):
        pick_dtype(torch.device("cpu"), "int3")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            pick_device("cuda")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_CACHE_DIR", str(tmp_path / "pg"))
    assert loading.cache_dir() == tmp_path / "pg"
    monkeypatch.delenv("PLAYGROUND_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert loading.cache_dir() == tmp_path / "xdg" / "decoding-playground"


def test_default_falls_back_to_the_hub_id_without_the_package(monkeypatch):
    """On a Space only requirements.txt is installed: the default must name the same model on the Hub."""
    tried = []
    real_find_spec = loading.importlib.util.find_spec
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda n: None if n == loading.EMBEDDED_PACKAGE else real_find_spec(n))

    def fake_from_pretrained(source, **kwargs):
        tried.append(source)
        raise OSError("offline")

    import transformers

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", fake_from_pretrained)
    with pytest.raises(ModelLoadError, match="SmolLM2-135M-Instruct"):
        load_engine(None, device="cpu")
    assert tried == [loading.EMBEDDED_HUB_ID]


def test_embedded_conversion_is_faithful_to_the_gguf(smol_engine, tmp_path, monkeypatch):
    """The cached float32 copy must give exactly the logits of the GGUF model transformers dequantizes."""
    from transformers import AutoModelForCausalLM

    gguf = loading.find_embedded_gguf()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = torch.tensor([smol_engine.encode("Decoding is")])
    with torch.no_grad():
        expected = reference(ids).logits
        got = smol_engine.model(ids).logits
    assert torch.equal(expected, got)
    assert (loading.cache_dir() / "SmolLM2-135M-Instruct-f32" / ".complete").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_engine_runs_and_matches_generate(tiny_model_dir):
    engine = load_engine(tiny_model_dir, device="cuda", dtype="float32")
    assert engine.device.type == "cuda"
    ids = engine.encode("The quick brown fox")
    for config in (DecodingConfig(max_new_tokens=12), DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=8),
                   DecodingConfig(strategy="sample", seed=3, top_k=20, max_new_tokens=12)):
        trace = engine.generate(ids, config)
        kwargs = dict(do_sample=config.strategy == "sample", num_beams=config.num_beams if config.strategy == "beam" else 1)
        if config.strategy == "sample":
            kwargs["top_k"] = 20
            torch.manual_seed(config.seed)
        with torch.no_grad():
            out = engine.model.generate(torch.tensor([ids], device="cuda"), max_new_tokens=config.max_new_tokens, **kwargs)
        assert trace.token_ids == out[0, len(ids):].tolist()[: len(trace.token_ids)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_compare_rewind_and_explore_stay_on_the_device(tiny_model_dir):
    """Every packed record must live on the model's device: a CPU tensor in the mix fails only on a GPU."""
    engine = load_engine(tiny_model_dir, device="cuda", dtype="bfloat16")
    ids = engine.encode("The quick brown fox")
    traces = engine.compare(ids, DecodingConfig(max_new_tokens=6, num_beams=3, top_k=10, top_p=0.9), num_samples=2)
    assert all(t.token_ids for t in traces.values())
    session = engine.start(ids, DecodingConfig(strategy="beam", num_beams=2, max_new_tokens=6))
    first = [r.token_id for r in session.run()]
    session.rewind(2)
    assert [r.token_id for r in session.run()] == first[2:]
    x = session.explore(1, temperatures=(0.5, 1.0), top_n=5)
    assert len(x.candidates) == 5 and len(x.knobs) == 3
