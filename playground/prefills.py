"""Shared prefills: a prompt's forward made once for every run that starts from it.

A class works from a handful of prompts: the teacher's, the examples. Every new run (a Step after New seed, Reset,
Run for thirty students at once) starts with its prompt's forward, the *prefill*, which on a CPU costs as much as
a few dozen one-token forwards and cannot share a batch (batching.py shares one-token forwards only). So each
engine keeps the prefills it made lately, by prompt:

    get(prompt_ids, make)   the prompt's (logits (1, V), cache) as `make()` gives them: made once, then handed out
                            as copies (each run grows and reorders its own cache); a second caller of the same
                            prompt while the first is making it waits for that one instead of making it again
    budget                  the kept prefills' tensors, all together, at most `budget_bytes`; the least recently
                            used go first; 0 keeps none (every run makes its own, as without this module)
    not kept                a prefill whose logits are not all finite (the run that made it reports it; the next
                            run makes its own), or one larger than the whole budget

A prefill handed out is the very tensors `make()` returned (copied), so a run that starts from it is bitwise the
run that makes its own: the same forward of the same ids on the same model gives the same numbers (the engine's
equality with generate() is untouched). This module knows nothing of models, sessions or Gradio: only keys,
tensors and a callable.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch

__all__ = ["PrefillCache", "cache_bytes", "copy_cache"]


class PrefillCache:
    """The latest prefills of one model by prompt, within a byte budget; safe to share between threads."""

    def __init__(self, budget_bytes: int):
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 0:
            raise ValueError(f"budget_bytes must be a whole number of bytes, 0 or more, got {budget_bytes!r}.")
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._kept: OrderedDict[Hashable, tuple[torch.Tensor, object, int]] = OrderedDict()
        self._making: dict[Hashable, threading.Event] = {}
        self.hits = self.misses = 0

    @property
    def kept_bytes(self) -> int:
        with self._lock:
            return sum(size for _, _, size in self._kept.values())

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Hashable, make: Callable[[], tuple[torch.Tensor, object]]) -> tuple[torch.Tensor, object]:
        """The prefill of `key`: a copy of the kept one, or `make()`'s (kept for the next caller if it fits). An
        error in `make` reaches its caller; a caller waiting on it then makes its own."""
        if not self.budget_bytes:
            return make()
        while True:
            with self._lock:
                kept = self._kept.get(key)
                if kept is not None:
                    self._kept.move_to_end(key)
                    self.hits += 1
                    break
                making = self._making.get(key)
                if making is None:
                    self._making[key] = threading.Event()
                    self.misses += 1
                    break
            making.wait()  # another caller is making this prefill: take a copy of it when it is done
        if kept is not None:  # copied outside the lock (a kept prefill never changes): hits do not queue
            return kept[0].clone(), copy_cache(kept[1])
        try:
            logits, cache = make()
            self._keep(key, logits, cache)
        finally:
            with self._lock:
                self._making.pop(key).set()
        return logits, cache

    def _keep(self, key: Hashable, logits: torch.Tensor, cache) -> None:
        size = logits.nbytes + cache_bytes(cache)
        if size > self.budget_bytes or not bool(torch.isfinite(logits).all()):  # a NaN is reported, never handed on
            return
        kept = (logits.clone(), copy_cache(cache), size)  # the caller grows its own; these stay as made
        with self._lock:
            self._kept[key] = kept
            total = sum(s for _, _, s in self._kept.values())
            while total > self.budget_bytes:
                _, (_, _, dropped) = self._kept.popitem(last=False)
                total -= dropped

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


def cache_bytes(cache) -> int:
    """The bytes of a cache's key and value tensors (0 for a layout without them)."""
    total = 0
    for layer in getattr(cache, "layers", ()) or ():
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.nbytes
    return total


def copy_cache(cache):
    """A cache that shares no tensor with `cache`: transformers' layered caches layer by layer where a layer's only
    tensors are its keys and values (cloned; its other fields copied as they are), any other layout deep-copied."""
    layers = getattr(cache, "layers", None)
    plain = isinstance(layers, list) and all(
        {name for name, value in vars(layer).items() if isinstance(value, torch.Tensor)} <= {"keys", "values"}
        for layer in layers
    )
    if not plain:  # a layer with tensors of its own (quantized, recurrent, ...): copied whole
        return copy.deepcopy(cache)
    new = copy.copy(cache)
    new.layers = []
    for layer in layers:
        twin = copy.copy(layer)
        for name in ("keys", "values"):
            tensor = getattr(layer, name)
            if isinstance(tensor, torch.Tensor):
                setattr(twin, name, tensor.clone())
        new.layers.append(twin)
    return new
