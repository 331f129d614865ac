"""Tiny random causal LMs of every architecture the architecture matrix covers, built in memory (no download).

Each entry names transformers' config and model classes and the few settings that make the model tiny: 2 layers,
hidden size 64, 4 heads. Models with a sliding-window attention layer (Mistral, Mixtral, Phi-3, StarCoder2, Qwen2
with `use_sliding_window`, Gemma 2 and 3) get a window of `WINDOW` tokens, so a short prompt and a few steps pass it
and the cache's sliding layers stop being croppable -- the case rewind and force must survive. The output
embedding is scaled up, as in conftest.py, so distributions are sharp rather than near-uniform and argmax ties
(which two correct implementations may break differently) do not occur.

This module only builds models; the tests decide what to check.
"""

from __future__ import annotations

import torch
import transformers

WINDOW = 6  # sliding window of the sliding-window architectures, in tokens

_COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               max_position_embeddings=256)  # fmt: skip
_GPT = dict(n_embd=64, n_layer=2, n_head=4, n_positions=256)

# name -> (config class, model class, settings). The names are the README's; 23 architectures, all that the
# issue lists, and all of them shipped by transformers 5.23 as causal LMs.
ARCHITECTURES: dict[str, tuple[str, str, dict]] = {
    "Llama": ("LlamaConfig", "LlamaForCausalLM", _COMMON),
    "GPT-2": ("GPT2Config", "GPT2LMHeadModel", _GPT),
    "GPT-NeoX": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(_COMMON, num_key_value_heads=None)),
    "Qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(_COMMON, use_sliding_window=True, sliding_window=WINDOW,
                                                       max_window_layers=1)),  # layer 0 full, layer 1 sliding: hybrid
    "Qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(_COMMON, head_dim=16)),
    "Mistral": ("MistralConfig", "MistralForCausalLM", dict(_COMMON, sliding_window=WINDOW)),
    "Mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(_COMMON, sliding_window=WINDOW, num_local_experts=4,
                                                             num_experts_per_tok=2)),
    "Phi": ("PhiConfig", "PhiForCausalLM", _COMMON),
    "Phi-3": ("Phi3Config", "Phi3ForCausalLM", dict(_COMMON, sliding_window=WINDOW)),
    "Gemma": ("GemmaConfig", "GemmaForCausalLM", dict(_COMMON, head_dim=16)),
    "Gemma 2": ("Gemma2Config", "Gemma2ForCausalLM", dict(_COMMON, head_dim=16, sliding_window=WINDOW)),
    "Gemma 3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(_COMMON, head_dim=16, sliding_window=WINDOW,
                                                               layer_types=["sliding_attention", "full_attention"])),
    "Falcon": ("FalconConfig", "FalconForCausalLM", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)),
    "OPT": ("OPTConfig", "OPTForCausalLM", dict(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                                                max_position_embeddings=256, word_embed_proj_dim=64)),
    "GPT-J": ("GPTJConfig", "GPTJForCausalLM", dict(_GPT, rotary_dim=8)),
    "Bloom": ("BloomConfig", "BloomForCausalLM", dict(hidden_size=64, n_layer=2, n_head=4)),
    "StarCoder2": ("Starcoder2Config", "Starcoder2ForCausalLM", dict(_COMMON, sliding_window=WINDOW)),
    "OLMo2": ("Olmo2Config", "Olmo2ForCausalLM", _COMMON),
    "StableLM": ("StableLmConfig", "StableLmForCausalLM", _COMMON),
    "GPTBigCode": ("GPTBigCodeConfig", "GPTBigCodeForCausalLM", _GPT),
    "CodeGen": ("CodeGenConfig", "CodeGenForCausalLM", dict(_GPT, rotary_dim=8, n_ctx=256)),
    "Cohere": ("CohereConfig", "CohereForCausalLM", _COMMON),
    "Granite": ("GraniteConfig", "GraniteForCausalLM", _COMMON),
}

SLIDING = ("Qwen2", "Mistral", "Mixtral", "Phi-3", "Gemma 2", "Gemma 3", "StarCoder2")


def build_tiny_model(name: str, vocab_size: int, eos_token_id: int, seed: int = 0, **overrides):
    """A random 2-layer model of architecture `name` (a key of ARCHITECTURES), in eval mode on the CPU."""
    config_class, model_class, settings = ARCHITECTURES[name]
    settings = {k: v for k, v in {**settings, **overrides}.items() if v is not None}
    config = getattr(transformers, config_class)(
        vocab_size=vocab_size, eos_token_id=eos_token_id, bos_token_id=eos_token_id, pad_token_id=eos_token_id,
        **settings,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():  # sharper logits than the default init (tied embeddings are scaled with it)
        model.get_output_embeddings().weight.mul_(8.0)
    return model
