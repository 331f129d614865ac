"""The step-wise generation engine: prefill once, then one forward per step over a KV cache, for every lane.

Phases, one function each:

    Engine.encode   prompt text (plain or chat template) -> token ids
    _Batch()        the prefill: the prompt, once, into a fresh KV cache (one row)
    _Batch.step     reorder the cache rows (beams, lanes that finished), forward the pending tokens of every
                    live row as one batch, let each lane pick its tokens, move every record to the host in one
                    transfer
    Session.prepare the next step's forward, ahead of it (a preview makes it too); the step then reuses it
    Session.rewind  back to an earlier step: crop the cache where it can be cropped exactly, else rebuild it
                    (the prompt, then each kept token as it was first fed) at the next forward

Every forward goes through `Engine.forward`. With `share_forwards` on (the default; PLAYGROUND_SHARE_FORWARDS=0 or
`engine.share_forwards = False` turns it off), the one-token forwards of different runs that wait at the same moment
are made as one batch (batching.py); a run alone is forwarded at once, exactly as without it. A prompt's forward
(the prefill) is kept for the next run that starts from the same prompt (`Engine.prefill`, prefills.py): the same
numbers, made once (PLAYGROUND_SHARE_PREFILL_MB=0 turns it off).

A `Session` is one strategy stepped by a caller (the app's step mode): settings may change between steps, a
token may be forced, and any step may be rewound. A `Comparison` runs greedy, beam and sampled lanes of one
prompt as rows of one batch: one prefill, one forward per step for all of them.

Sessions and comparisons pickle without the model: an `Engine` (and its vocabulary) pickles as its `key`, and
unpickling finds the engine of that key in the process (`Engine.by_key`). `Session.to` / `Comparison.to` move
every tensor they hold (the KV cache included) to a device, so that between GPU calls a run can live on the CPU
(`gpu.py`, ZeroGPU). `Engine.forward` asks `gpu.check_forward` first: under ZeroGPU's emulation a forward outside a
GPU call raises.

This is the only module that calls the model. It knows nothing about Gradio, HTML or plots.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import time
import weakref
from collections.abc import Hashable, Iterator
from functools import lru_cache

import torch

from . import batching, gpu, processors, tokens
from .batching import ForwardBatcher, SharingSettings, SharingStats
from .config import GENERATE_FALLBACKS, MODEL_SETTINGS, DecodingConfig, describe_settings, model_defaults
from .prefills import PrefillCache
from .records import Candidate, Exploration, KnobView, StepRecord, TemperatureView, Trace
from .strategies import BeamLane, DecodingError, SingleLane, move_tensors

__all__ = ["Engine", "Session", "Comparison", "DecodingError", "ModelMemoryError"]


ONE_BEAM_NOTICE = "One beam is greedy search, as in generate(num_beams=1): this run is greedy."
ONE_BEAM_SAMPLE_NOTICE = "Beam sampling with one beam is no beam search, as in generate(num_beams=1): this run is {mode}."


class ModelMemoryError(RuntimeError):
    """The device ran out of memory during a forward pass; the model itself stays loaded and usable."""


class TokenizerVocab:
    """Token display strings (and the raw bytes of a token that is part of a character: `tokens.token_text`),
    decoding and stop strings, for the lanes; a thin, cached view of a tokenizer."""

    def __init__(self, tokenizer, eos_ids: tuple[int, ...], engine_key: str | None = None):
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.engine_key = engine_key
        self.token_text = lru_cache(maxsize=65536)(self._token_text)
        self._stop_criteria = lru_cache(maxsize=16)(self._make_stop_criteria)

    def __reduce__(self):
        """Pickled as its engine's key (a tokenizer is large): unpickled, it is that engine's vocabulary."""
        if self.engine_key is None:
            raise TypeError("A vocabulary without an engine cannot be pickled.")
        return _vocab_by_key, (self.engine_key,)

    def _token_text(self, token_id: int) -> tuple[str, bytes | None]:
        return tokens.token_text(self.tokenizer, token_id)

    def token_str(self, token_id: int) -> str:
        """What a token shows: its text, or its bytes as ⟨E5 96⟩ where it is part of a character."""
        return self.token_text(token_id)[0]

    def token_bytes(self, token_id: int) -> bytes | None:
        """A token's raw bytes where it is part of a character (its text alone would be U+FFFD); else None."""
        return self.token_text(token_id)[1]

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def stop_hits(self, sequences: torch.Tensor, stop_strings: tuple[str, ...]) -> torch.Tensor:
        """(R,) bool on the sequences' device: whether each row of `sequences` (R, L), the prompt and the tokens so
        far, has just completed a stop string, as generate(stop_strings=...) decides it: transformers'
        StopStringCriteria, where a stop string may start anywhere (in the prompt too) but must reach into the
        newest token. Built once per set of stop strings."""
        return self._stop_criteria(tuple(stop_strings))(sequences)

    def _make_stop_criteria(self, stop_strings: tuple[str, ...]):
        from transformers.generation.stopping_criteria import StopStringCriteria

        try:
            criteria = StopStringCriteria(self.tokenizer, list(stop_strings))
        except Exception:  # noqa: BLE001 - a vocabulary StopStringCriteria cannot read (generate() would refuse)
            return lambda sequences: torch.tensor(
                [self._text_hits(row, stop_strings) for row in sequences.tolist()], device=sequences.device
            )
        return lambda sequences: criteria(sequences, None)

    def _text_hits(self, row: list[int], stop_strings: tuple[str, ...]) -> bool:
        """The same question asked of decoded text: a stop string in the last tokens' text that was not there
        before the newest token."""
        tail = row[-(max(map(len, stop_strings)) + 1) :]
        now = self.tokenizer.decode(tail, skip_special_tokens=False)
        before = self.tokenizer.decode(tail[:-1], skip_special_tokens=False)
        return any(s in now and s not in before for s in stop_strings)


_ENGINES: weakref.WeakValueDictionary[str, Engine] = weakref.WeakValueDictionary()  # every live engine, by key
_SERIALS = itertools.count(1)


def _engine_by_key(key: str) -> Engine:
    return Engine.by_key(key)


def _vocab_by_key(key: str) -> TokenizerVocab:
    return Engine.by_key(key).vocab


class Engine:
    """A causal LM and its tokenizer, ready to decode. Shared by every user; holds no per-run state.

    Each engine has a `key`, unique in its process (and in the processes forked from it, as ZeroGPU's calls are).
    An engine pickles as that key, never as its model: unpickling it gives the process's engine of that key."""

    def __init__(self, model, tokenizer, name: str = "model", sharing: SharingSettings | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.key = f"{name}#{next(_SERIALS)}"
        _ENGINES[self.key] = self
        self.device = next(model.parameters()).device
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self.context_length = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        generation = model.generation_config
        # the EOS ids generate() stops on: the generation_config's, and nothing else (no tokenizer fallback)
        eos = generation.eos_token_id
        self.vocab = TokenizerVocab(tokenizer, tuple(eos if isinstance(eos, list) else ([] if eos is None else [eos])),
                                    engine_key=self.key)
        # what the model asks for where the user gives nothing, as generate() starts from it (only what it sets)
        self.model_defaults, self.model_defaults_notices = model_defaults(
            {name: getattr(generation, name, None) for name in ("do_sample", *MODEL_SETTINGS)}
        )
        for name in ("bad_words_ids", "sequence_bias", "suppress_tokens"):  # token ids this vocabulary lacks
            if name in self.model_defaults:
                try:
                    self.check_ids(DecodingConfig(**{name: self.model_defaults[name]}))
                except ValueError as e:
                    del self.model_defaults[name]
                    self.model_defaults_notices.append(f"The model's generation_config sets {name}, which the playground cannot use: {e}")
        # the pad id generate() masks a prompt's pad tokens by (its generation_config's; never an EOS id)
        pad = generation.pad_token_id
        self.pad_id = pad if isinstance(pad, int) and pad not in self.vocab.eos_ids else None
        parameters = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in parameters
        self._takes_mask = "attention_mask" in parameters
        self._takes_positions = "position_ids" in parameters
        # visitors' one-token forwards shared across runs (batching.py); only for a model that takes a padding mask
        # and explicit positions, and never under ZeroGPU (each request's forward is its own process's)
        self._can_share = self._takes_mask and self._takes_positions
        self.sharing = SharingSettings.from_env() if sharing is None else sharing
        self.batcher = ForwardBatcher(self._forward_alone, self._forward_padded, self.sharing)
        self.share_forwards = self.sharing.enabled
        # prompts' forwards kept for the next run of the same prompt; not under ZeroGPU (each call its own process)
        self.prefills = PrefillCache(0 if gpu.ZEROGPU else self.sharing.prefill_bytes)

    def __reduce__(self):
        return _engine_by_key, (self.key,)

    @staticmethod
    def by_key(key: str) -> Engine:
        """The engine of `key` in this process; ValueError (one sentence) when it is no longer loaded."""
        engine = _ENGINES.get(key)
        if engine is None:
            name = key.rsplit("#", 1)[0]
            raise ValueError(f"The model this run used ({name}) is no longer loaded: reset to start a new run.")
        return engine

    def default_config(self, **given) -> DecodingConfig:
        """DecodingConfig from the settings `given` (DecodingConfig's field names); each one that is None or not
        given takes the model's value (`model_defaults`), else generate()'s own fallback (GENERATE_FALLBACKS: top_k
        50), else DecodingConfig's default (every other knob's fallback is "off" in both) -- as generate() does."""
        return DecodingConfig.starting_from({**GENERATE_FALLBACKS, **self.model_defaults}, **given)

    def model_defaults_notice(self) -> str | None:
        """One sentence saying which settings the model's generation_config sets (None if it sets none)."""
        if not self.model_defaults:
            return None
        return (f"{self.name}'s generation_config sets {describe_settings(self.model_defaults)}: a setting you do not "
                "give takes that value, as in generate().")

    # -- prompt --------------------------------------------------------------------------------------------

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def encode(self, prompt: str, chat: bool = False, system: str | None = None) -> list[int]:
        """Prompt text -> token ids: as is, or wrapped in the model's chat template (with an optional system
        message) and ready for the assistant's answer."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("The prompt is empty: type some text for the model to continue.")
        if chat:
            if not self.has_chat_template:
                raise ValueError(f"{self.name} has no chat template, so chat mode cannot be used: turn it off.")
            messages = [{"role": "system", "content": system}] if system and system.strip() else []
            messages.append({"role": "user", "content": prompt})
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        else:
            ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        if not ids:
            raise ValueError("The prompt encodes to no tokens.")
        return list(ids)

    def decode(self, token_ids: list[int]) -> str:
        return self.vocab.decode(token_ids)

    # -- words as token ids (bad_words_ids, sequence_bias) ---------------------------------------------------

    def word_ids(self, word: str) -> tuple[tuple[int, ...], ...]:
        """The token sequences a word can take, as a person means "this word": as written (at the start of a
        line) and after a space (mid-sentence), each once. A word that encodes to no tokens is refused."""
        word = word.strip() if isinstance(word, str) else word
        if not isinstance(word, str) or not word:
            raise ValueError("A banned or biased word is empty: write at least one character.")
        forms = []
        for text in (word, " " + word):
            ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if ids and ids not in forms:
                forms.append(ids)
        if not forms:
            raise ValueError(f"The word {word!r} encodes to no tokens in {self.name}'s vocabulary, so it cannot be banned or biased.")
        return tuple(forms)

    def bad_words_ids(self, words) -> tuple[tuple[int, ...], ...]:
        """generate()'s bad_words_ids for `words` (from `config.parse_words`), each in every form of `word_ids`."""
        return tuple(dict.fromkeys(ids for word in words for ids in self.word_ids(word)))

    def sequence_bias(self, biases) -> tuple[tuple[tuple[int, ...], float], ...]:
        """generate()'s sequence_bias for (word, bias) pairs (from `config.parse_word_biases`): every form of each
        word (`word_ids`) takes its bias; a word given twice takes its last bias."""
        pairs: dict[tuple[int, ...], float] = {}
        for word, bias in biases:
            for ids in self.word_ids(word):
                pairs[ids] = bias
        return tuple(pairs.items())

    def words_text(self, bad_words_ids) -> str:
        """bad_words_ids back as the text `config.parse_words` reads ('cake, pie'): each sequence decoded, spaces
        around it dropped, each word once (for a box a permalink or a model's defaults fill)."""
        words = dict.fromkeys(self.tokenizer.decode(list(ids)).strip() for ids in bad_words_ids)
        return ", ".join(w for w in words if w)

    def biases_text(self, sequence_bias) -> str:
        """sequence_bias back as the text `config.parse_word_biases` reads ('dragon=3, sea=-2.5')."""
        pairs = {self.tokenizer.decode(list(ids)).strip(): bias for ids, bias in sequence_bias}
        return ", ".join(f"{word}={bias:g}" for word, bias in pairs.items() if word)

    def check_ids(self, config: DecodingConfig) -> DecodingConfig:
        """`config`, when every token id its banned, biased and suppressed tokens name is in the vocabulary; else
        a ValueError saying which one is not."""
        for name, sequences in (
            ("bad_words_ids", config.bad_words_ids),
            ("sequence_bias", [ids for ids, _ in config.sequence_bias]),
            ("suppress_tokens", [config.suppress_tokens]),
        ):
            for ids in sequences:
                for token_id in ids:
                    if token_id >= self.vocab_size:
                        raise ValueError(f"{name} names token id {token_id}, but {self.name}'s vocabulary has ids 0 "
                                         f"to {self.vocab_size - 1}.")  # fmt: skip
        return config

    def fit_context(self, prompt_ids: list[int], config: DecodingConfig) -> tuple[list[int], DecodingConfig, list[str]]:
        """Make prompt + max_new_tokens fit the model's context: drop the prompt's oldest tokens if it alone is
        too long, then cap max_new_tokens. Returns what was used and a notice for each change."""
        notices: list[str] = []
        ctx = self.context_length
        if not ctx:
            return list(prompt_ids), config, notices
        if len(prompt_ids) > ctx - 1:
            dropped = len(prompt_ids) - (ctx - 1)
            notices.append(
                f"The prompt is {len(prompt_ids)} tokens but the model's context holds {ctx}: its first "
                f"{dropped} tokens were dropped."
            )
            prompt_ids = prompt_ids[dropped:]
        room = ctx - len(prompt_ids)
        if config.max_new_tokens > room:
            notices.append(f"max_new_tokens was lowered from {config.max_new_tokens} to {room} to fit the context.")
            config = config.replace(max_new_tokens=room)
        return list(prompt_ids), config, notices

    # -- runs ----------------------------------------------------------------------------------------------

    def start(self, prompt_ids: list[int], config: DecodingConfig, prefill: bool = True, device=None) -> Session:
        """Prefill the prompt and return a session ready for its first step. `prefill=False`: the prefill is made
        by the session's first forward instead, so that starting a run needs no model call; `device`: where the
        session's tensors start (default: the model's; "cpu" for a run that waits there between GPU calls)."""
        return Session(self, prompt_ids, config, prefill=prefill, device=device)

    def start_comparison(self, prompt_ids: list[int], config: DecodingConfig, num_samples: int = 1,
                         prefill: bool = True) -> Comparison:  # fmt: skip
        """Greedy, beam search and `num_samples` sampled lanes of one prompt as rows of one batch, ready to step
        (`prefill=False`: the first step makes the prefill)."""
        return Comparison(self, prompt_ids, config, num_samples, prefill=prefill)

    def generate(self, prompt_ids: list[int], config: DecodingConfig) -> Trace:
        """Run one strategy to the end (EOS, max_new_tokens or a stop string)."""
        session = self.start(prompt_ids, config)
        for _ in session.run():
            pass
        return session.trace()

    def compare(self, prompt_ids: list[int], config: DecodingConfig, num_samples: int = 1) -> dict[str, Trace]:
        """Greedy, beam search and `num_samples` sampled runs of one prompt, as rows of one batch."""
        comparison = Comparison(self, prompt_ids, config, num_samples)
        while not comparison.done:
            comparison.step()
        return comparison.traces()

    # -- the model -----------------------------------------------------------------------------------------

    def prompt_mask(self, prompt: torch.Tensor) -> torch.Tensor | None:
        """(1, P) the attention mask generate() infers for a prompt (1, P) that holds the pad token (where the pad
        id is not an EOS id): 0 on every pad token, 1 elsewhere. None where generate() attends to every token."""
        if self.pad_id is None or not self._takes_mask or not bool((prompt == self.pad_id).any()):
            return None
        return prompt.ne(self.pad_id).long()

    @staticmethod
    def penalty_skip(prompt_mask: torch.Tensor | None) -> int:
        """The prompt's leading tokens generate()'s repetition penalty leaves out when it masks pad tokens: those
        before the first attended one (none when nothing is masked)."""
        return 0 if prompt_mask is None else int((prompt_mask[0] != 0).int().argmax())

    def forward(
        self, input_ids: torch.Tensor, cache, prompt_mask: torch.Tensor | None = None, past: int = 0,
        stream: Hashable | None = None,
    ) -> tuple[torch.Tensor, object]:
        """input_ids (R, T) after `cache` (holding `past` positions) -> next-token logits (R, V) float32 and the
        grown cache.

        With `share_forwards` on, a one-token forward after a plain cache goes through the batcher: alone it is
        made at once, exactly as `_forward_alone`; when other runs wait at the same moment it shares their forward
        (its logits then differ from a lone forward's in the last bits; the cache it gets back has the same
        shapes). Never under ZeroGPU, where each request's forward is its own process's, nor for a prompt whose
        pad tokens are masked (`prompt_mask`), which goes alone. `stream` names a run that forwards again as soon
        as it has picked (`Session.streaming`): the batcher waits for it."""
        gpu.check_forward(self.name)  # under ZeroGPU's emulation, only inside a GPU call
        if (prompt_mask is None and self.share_forwards and not gpu.ZEROGPU and self._can_share
                and batching.stackable(input_ids, cache)):  # fmt: skip
            return self.batcher.forward(input_ids, cache, stream)
        return self._forward_alone(input_ids, cache, prompt_mask, past)

    def prefill(self, prompt: torch.Tensor, prompt_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, object]:
        """The prompt's forward (1, P) -> its next-token logits (1, V) and a cache of its own: made once for every
        run that starts from this prompt while it is kept (`prefills`), each run getting a copy."""
        key = (tuple(prompt[0].tolist()), str(prompt.device))
        if prompt_mask is None:
            return self.prefills.get(key, lambda: self.forward(prompt, None))
        return self.prefills.get(key, lambda: self.forward(prompt, None, prompt_mask))

    def _forward_alone(
        self, input_ids: torch.Tensor, cache, prompt_mask: torch.Tensor | None = None, past: int = 0
    ) -> tuple[torch.Tensor, object]:
        """The forward of one run's rows: positions from the cache; with a `prompt_mask` (1, P) the model gets
        generate()'s attention mask (the prompt's, then ones) and position ids (the count of attended prompt
        tokens before each position; new tokens follow the prompt's last position one by one)."""
        kwargs = {"logits_to_keep": 1} if self._logits_to_keep else {}
        if prompt_mask is not None:
            rows, total = input_ids.shape[0], past + input_ids.shape[1]
            n_prompt = prompt_mask.shape[1]
            prompt_positions = (prompt_mask.cumsum(-1) - 1).masked_fill(prompt_mask == 0, 0)  # (1, P)
            after = prompt_positions[:, -1:] + torch.arange(1, total - n_prompt + 1, device=self.device)  # (1, total - P)
            mask = torch.cat([prompt_mask, torch.ones_like(after)], dim=1)  # (1, total)
            kwargs["attention_mask"] = mask.expand(rows, -1)
            if self._takes_positions:
                kwargs["position_ids"] = torch.cat([prompt_positions, after], dim=1)[:, past:].expand(rows, -1)
        try:
            out = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True, **kwargs)
        except torch.OutOfMemoryError as e:
            self._out_of_memory(input_ids, e)
        return out.logits[:, -1, :].float(), out.past_key_values  # (R, V)

    @torch.inference_mode()
    def _forward_padded(
        self, input_ids: torch.Tensor, cache, attention_mask: torch.Tensor | None, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, object]:
        """The shared forward of several runs' rows (batching.py): input_ids (B, 1) after `cache`, whose rows are
        left-padded to one length; attention_mask (B, L + 1) marks the padding (None: there is none), position_ids
        (B, 1) each row's own position -> logits (B, V) float32 and the grown cache."""
        kwargs = {"logits_to_keep": 1} if self._logits_to_keep else {}
        try:
            out = self.model(
                input_ids=input_ids, past_key_values=cache, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=True, **kwargs,
            )
        except torch.OutOfMemoryError as e:
            self._out_of_memory(input_ids, e)
        return out.logits[:, -1, :].float(), out.past_key_values  # (B, V)

    def _out_of_memory(self, input_ids: torch.Tensor, error: BaseException):
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        raise ModelMemoryError(
            f"Out of memory on {self.device} running {self.name} on {input_ids.shape[0]} rows of "
            f"{input_ids.shape[1]} tokens: try fewer beams, fewer new tokens or a shorter prompt."
        ) from error

    def sharing_stats(self) -> SharingStats:
        """How the one-token forwards were shared so far: forwards made, rows per forward, wait (batching.py)."""
        return self.batcher.stats()

    def prompt_tensor(self, prompt_ids: list[int], device=None) -> torch.Tensor:
        return torch.tensor([prompt_ids], dtype=torch.long, device=self.device if device is None else device)  # (1, P)

    def check_token(self, token_id) -> int:
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < self.vocab_size:
            raise ValueError(
                f"Token id {token_id!r} does not exist: {self.name}'s vocabulary has ids 0 to {self.vocab_size - 1}."
            )
        return token_id


class _Batch:
    """The rows of every lane of one prompt, their KV cache, and the tokens waiting to be fed.

    `fed` (R, t) holds each cache row's tokens after the prompt, in the order they were fed: the cache holds the
    prompt and the first `cached` columns, and the rest are fed, one column at a time, before the next forward.
    Going back (a rewind, a forward that failed part-way) crops the cache where every layer allows it exactly: a
    full-attention layer always, a sliding-window layer only while it still holds every position (before its window
    fills). Any other cache (a sliding layer past its window, a recurrent state, a layout not known here) is dropped
    and rebuilt before the next forward from the prompt and `fed`, fed as they were first fed, so its numbers are
    those of a fresh run. Nothing here changes until the forwards it needs have succeeded.
    """

    def __init__(self, engine: Engine, prompt: torch.Tensor, lanes: list, prefill: bool = True):
        self.engine = engine
        self.lanes = lanes
        self.prompt = prompt  # (1, P)
        self.prompt_len = prompt.shape[1]
        self.prompt_mask = engine.prompt_mask(prompt)  # (1, P) where generate() masks the prompt's pad tokens
        self.prefill_logits: torch.Tensor | None = None  # (1, V), once the prompt is prefilled
        self.cache = None
        self.stream: Hashable | None = None  # while the run streams (Session.streaming): its name for the batcher
        self.fed = torch.zeros((1, 0), dtype=torch.long, device=prompt.device)  # (R, t)
        self.cached = 0  # columns of `fed` the cache holds (when there is a cache)
        self._reset_rows()
        if prefill:
            self._prefill()

    def _prefill(self) -> None:
        """The prompt's forward, once: the logits every lane row starts from, and the cache."""
        self.prefill_logits, self.cache = self.engine.prefill(self.prompt, self.prompt_mask)  # (1, V)
        self.cached = 0
        if self.pending is None and not self.fed.shape[1]:
            self.logits = self.prefill_logits

    def _forward(self, input_ids: torch.Tensor, cache, past: int = 0):
        """The engine's forward, with generate()'s mask and positions where the prompt holds pad tokens."""
        if self.prompt_mask is None:
            return self.engine.forward(input_ids, cache, stream=self.stream)
        return self.engine.forward(input_ids, cache, self.prompt_mask, past)

    def _reset_rows(self) -> None:
        """Back to just after prefill: the prefill's logits, which every lane row starts from."""
        self.logits = self.prefill_logits
        self.rows = [torch.zeros(lane.n_rows, dtype=torch.long, device=self.prompt.device) for lane in self.lanes]
        self.pending: torch.Tensor | None = None  # (R,) tokens to feed before the next step
        self.reorder: torch.Tensor | None = None  # (R,) the row of `fed` (and the cache) each new row continues

    def ready(self) -> None:
        """Forward the pending tokens, once: afterwards `self.logits` are the next step's. A preview calls it
        before the step does, and the step then reuses its forward. A batch made without its prefill makes it
        here, first."""
        if self.prefill_logits is None:
            self._prefill()
        if self.pending is None:
            return
        if self.reorder is not None:
            self.fed = self.fed[self.reorder]
            if self.cache is not None:
                self.cache.reorder_cache(self.reorder)
            self.reorder = None  # applied: a forward that fails (out of memory) must not reorder twice
        self._catch_up()
        self.logits = self._feed(self.pending)
        self.fed = torch.cat([self.fed, self.pending[:, None]], dim=1)
        self.cached += 1
        self.pending = None

    def _catch_up(self) -> None:
        """Make the cache hold the prompt and every column of `fed`: rebuild it if it was dropped, then feed the
        columns it lacks one at a time, as they were first fed (the same numbers as the run that fed them)."""
        if self.cache is None:
            _, cache = self.engine.prefill(self.prompt, self.prompt_mask)
            if self.fed.shape[0] != 1:  # every row starts from the prompt
                cache.reorder_cache(torch.zeros(self.fed.shape[0], dtype=torch.long, device=self.prompt.device))
            self.cache, self.cached = cache, 0
        while self.cached < self.fed.shape[1]:
            self._feed(self.fed[:, self.cached])
            self.cached += 1

    def _feed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Forward one token per row (R,) after the cache -> the next logits (R, V). A forward that fails part-way
        (out of memory) has grown the first layers and not the rest: they are cut back, or the cache dropped."""
        length = self.prompt_len + self.cached
        try:
            logits, self.cache = self._forward(tokens[:, None], self.cache, length)
        except ModelMemoryError:
            self._cut(length)
            raise
        return logits

    def _cut(self, length: int) -> None:
        """Cut every cache layer back to `length` positions, each by its own excess (after a forward that failed
        part-way the layers differ in length, which Cache.crop, the same count from each, would not mend); where
        a layer cannot be cut exactly, drop the cache, to be rebuilt before the next forward."""
        if not _croppable(self.cache):
            self.cache, self.cached = None, 0
            return
        for layer in self.cache.layers:
            excess = layer.get_seq_length() - length
            if excess > 0:
                layer.crop(-excess)

    def keep(self, fed: torch.Tensor) -> None:
        """Make the cache the prompt and `fed` (R, k) for the rows that follow: keep the part it shares with what
        is cached (cropping the rest, or dropping the cache where it cannot be cropped); the rest is fed later."""
        rows = fed.shape[0]
        shared = _shared_columns(self.fed[:, : self.cached], fed) if self.fed.shape[0] == rows else 0
        if self.cache is not None and shared < self.cached:
            self._cut(self.prompt_len + shared)
        if self.cache is not None and self.fed.shape[0] != rows:  # shared == 0: the prompt alone, the same in every row
            self.cache.reorder_cache(torch.zeros(rows, dtype=torch.long, device=self.prompt.device))
        self.fed, self.cached = fed, (shared if self.cache is not None else 0)

    def step(self, configs: list[DecodingConfig], forced: list[int | None],
             expected: list[int | None] | None = None) -> list[StepRecord | None]:  # fmt: skip
        self.ready()
        live = [i for i, lane in enumerate(self.lanes) if not lane.done]
        expected = expected or [None] * len(self.lanes)
        selections = {i: self.lanes[i].select(self.logits[self.rows[i]], configs[i], forced[i], expected[i]) for i in live}
        values = torch.cat([selections[i].packed for i in live]).tolist()  # the step's one host transfer
        records: list[StepRecord | None] = [None] * len(self.lanes)
        offset = 0
        for i in live:
            width = selections[i].packed.shape[0]
            records[i] = self.lanes[i].commit(values[offset : offset + width], configs[i], forced[i])
            offset += width

        sources, tokens, n = [], [], 0
        for i in live:
            lane = self.lanes[i]
            if lane.done:
                continue
            sources.append(self.rows[i][selections[i].parents])
            tokens.append(selections[i].tokens)
            self.rows[i] = torch.arange(n, n + lane.n_rows, device=self.prompt.device)
            n += lane.n_rows
        if tokens:
            self.pending = torch.cat(tokens)
            moved = n != self.fed.shape[0] or any(isinstance(self.lanes[i], BeamLane) for i in live)
            self.reorder = torch.cat(sources) if moved else None
            self.logits = None  # used: the next forward makes the next step's (and a moved run carries less)
        return records

    def backlog(self) -> int:
        """How many forwards the next step's logits need: the prefill (if not made yet), the rebuilt cache's (the
        prompt and each column it lacks), the pending tokens'."""
        rebuild = 1 if self.prefill_logits is None or self.cache is None else 0
        return rebuild + self.fed.shape[1] - (self.cached if self.cache is not None else 0) + (self.pending is not None)

    def to(self, device, keep_cache: bool = True) -> None:
        """Move every tensor of the batch, its lanes and its cache to `device` (None: each where the model put it,
        per cache layer where the model spans devices). `keep_cache=False` drops the cache instead: the next
        forward rebuilds it, from the prompt and each fed column, as a fresh run would have made it."""
        home = self.engine.device if device is None else torch.device(device)
        memo: dict = {}
        if not keep_cache:
            self.cache, self.cached = None, 0
        elif self.cache is not None:
            _move_cache(self.cache, None if device is None else home)
        for name in ("prompt", "prompt_mask", "prefill_logits", "fed", "logits", "rows", "pending", "reorder"):
            setattr(self, name, move_tensors(getattr(self, name), home, memo))
        for lane in self.lanes:
            lane.to(home, memo)

    def rewind(self, n_steps: int) -> None:
        """Back to just after step n_steps (0 = just after prefill); a single lane, as sessions have. Only
        bookkeeping, which cannot fail half-way: the model runs at the next forward (and rebuilds the cache there,
        if it had to be dropped)."""
        (lane,) = self.lanes
        lane.rewind(n_steps)
        if n_steps == 0:
            self.keep(torch.zeros((1, 0), dtype=torch.long, device=self.prompt.device))
            self._reset_rows()
            return
        replay = lane.replay_tokens(n_steps)  # (n_rows, n_steps): every token but the last is in the cache
        self.keep(replay[:, :-1])  # (beams: each row's own history, re-fed from the prompt where rows moved)
        self.rows = [torch.arange(lane.n_rows, device=self.prompt.device)]
        self.pending, self.reorder = replay[:, -1], None


def _move_cache(cache, device: torch.device | None) -> None:
    """Move every tensor of every layer of `cache` to `device`; None: back to the device each layer was on before
    it was first moved (a model spread over GPUs keeps each layer's cache beside it)."""
    for layer in getattr(cache, "layers", None) or ():
        target = getattr(layer, "_playground_home", None) if device is None else device
        if device is not None and getattr(layer, "device", None) is not None and not hasattr(layer, "_playground_home"):
            layer._playground_home = layer.device
        if target is None:
            continue
        for name, value in vars(layer).items():
            if isinstance(value, torch.Tensor):
                setattr(layer, name, value.to(target))
        if getattr(layer, "device", None) is not None:
            layer.device = torch.device(target)


def _croppable(cache) -> bool:
    """Whether every layer of `cache` can be cut back exactly: transformers' dynamic full-attention layers, and its
    sliding-window layers while they still hold every position (their crop refuses once the window is full). Any
    other layer (recurrent, static, quantized, a model's own) is not trusted to: such a cache is rebuilt instead."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    layers = getattr(cache, "layers", None)
    if layers is None:
        return False
    for layer in layers:
        if type(layer) is DynamicLayer:
            continue
        if type(layer) is DynamicSlidingWindowLayer and layer.get_seq_length() < layer.sliding_window:
            continue
        return False
    return True


def _shared_columns(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many leading columns a (R, m) and b (R, k) share in every row."""
    n = min(a.shape[1], b.shape[1])
    same = (a[:, :n] == b[:, :n]).all(dim=0).tolist()  # (n,)
    return same.index(False) if False in same else n


def _lane(label: str, config: DecodingConfig, prompt: torch.Tensor, engine: Engine):
    skip = engine.penalty_skip(engine.prompt_mask(prompt))
    if config.is_beam:
        return BeamLane(label, config, prompt, engine.vocab, draws_on=engine.device.type, penalty_skip=skip)
    return SingleLane(label, config, prompt, engine.vocab, draws_on=engine.device.type, penalty_skip=skip)


def _finish_reason(engine: Engine, lane, n_prompt: int, stopped: bool = False) -> str | None:
    """Why the lane's run ended, in FINISH_REASONS' words: a run that reached its max new tokens where the model's
    context holds no more says "context"; a run not finished says None, or "stopped" when its caller stopped it."""
    reason = lane.finish_reason or ("stopped" if stopped else None)
    if reason == "length" and engine.context_length and n_prompt + len(lane.steps) >= engine.context_length:
        return "context"
    return reason


def _trace(engine: Engine, lane, prompt_ids: list[int], elapsed: float, notices: list[str],
           stopped: bool = False) -> Trace:  # fmt: skip
    token_ids, logprobs, beam_score = lane.result()
    strategy = lane.config.strategy
    if strategy == "beam" and not isinstance(lane, BeamLane):  # what ran; the settings keep what was asked
        strategy, notices = "greedy", [*notices, ONE_BEAM_NOTICE]
    elif strategy == "beam-sample" and not isinstance(lane, BeamLane):
        strategy = lane.config.generation_mode
        notices = [*notices, ONE_BEAM_SAMPLE_NOTICE.format(mode="greedy" if strategy == "greedy" else "sampled")]
    return Trace(
        model=engine.name,
        strategy=strategy,
        label=lane.label,
        config=lane.config,
        prompt_token_ids=list(prompt_ids),
        token_ids=token_ids,
        text=engine.decode(token_ids),
        token_strings=[engine.vocab.token_str(t) for t in token_ids],
        token_bytes=[engine.vocab.token_bytes(t) for t in token_ids],
        token_logprobs=logprobs,
        steps=list(lane.steps),
        finish_reason=_finish_reason(engine, lane, len(prompt_ids), stopped),
        elapsed_s=elapsed,
        beam_score=beam_score,
        notices=list(notices),
    )


class Session:
    """One strategy, stepped by the caller: change settings between steps, force a token, rewind."""

    @torch.inference_mode()
    def __init__(self, engine: Engine, prompt_ids: list[int], config: DecodingConfig, prefill: bool = True,
                 device=None):
        if not prompt_ids:
            raise ValueError("The prompt is empty: type some text for the model to continue.")
        self.engine = engine
        engine.check_ids(config)
        self.prompt_ids, self.config, self.notices = engine.fit_context(list(prompt_ids), config)
        start = time.perf_counter()
        prompt = engine.prompt_tensor(self.prompt_ids, device)
        self.lane = _lane(self.config.strategy, self.config, prompt, engine)
        self._batch = _Batch(engine, prompt, [self.lane], prefill=prefill)
        self.elapsed_s = time.perf_counter() - start
        self.stopped = False  # the caller stopped the run before it finished (`stop`); forgotten when it moves

    @property
    def steps(self) -> list[StepRecord]:
        return self.lane.steps

    @property
    def done(self) -> bool:
        return self.lane.done

    @property
    def finish_reason(self) -> str | None:
        """Why the run ended (one of FINISH_REASONS): "eos", "length", "stop_string" or "context"; for a run not
        finished, "stopped" when its caller stopped it (`stop`), else None."""
        return _finish_reason(self.engine, self.lane, len(self.prompt_ids), self.stopped)

    def stop(self) -> None:
        """The caller stops the run before it finished (a person's Stop): its finish reason says "stopped" until
        the run moves again (a step or a rewind carries on from here). A finished run keeps its own reason."""
        self.stopped = not self.done

    @property
    def token_ids(self) -> list[int]:
        """Generated so far: for beams, the best running beam (until the run ends, then the winner)."""
        if isinstance(self.lane, BeamLane) and not self.lane.done:
            return self.lane.best_running()
        return self.lane.result()[0]

    @torch.inference_mode()
    def step(self, config: DecodingConfig | None = None, force_token: int | None = None,
             expect_token: int | None = None) -> StepRecord:  # fmt: skip
        """Take one step with `config` (default: the last settings), or append `force_token` instead.
        `expect_token` (replaying a link that recorded its tokens): the step is taken as ever, and where this
        machine picks another token than the recorded one, the recorded one is kept (`record.recomputed`)."""
        config = self._next_config(config)
        if force_token is not None:
            self.engine.check_token(force_token)
            if isinstance(self.lane, BeamLane):
                raise ValueError("Forcing a token is for greedy and sampled runs, not beam search.")
        if self.done:
            if self._extends(config):
                self.rewind(len(self.steps))  # a higher max_new_tokens: carry on from here
            else:
                raise ValueError(f"The run has finished ({self.finish_reason}): rewind or reset to go on.")
        start = time.perf_counter()
        (record,) = self._batch.step([config], [force_token], [expect_token])
        self.stopped = False
        self.elapsed_s += time.perf_counter() - start
        self.config = config
        return record

    @torch.inference_mode()
    def preview(self, config: DecodingConfig | None = None) -> StepRecord:
        """The record the next step would make with `config`, without taking it: the same numbers and the same
        token (a sampled run's generator is put back after the draw). The step's forward is made here and kept,
        so the step that follows costs no second model call."""
        config = self._next_config(config)
        if self.done:
            raise ValueError(f"The run has finished ({self.finish_reason}): there is no next step to preview.")
        self._batch.ready()
        lane, n, settings = self.lane, len(self.steps), self.lane.config
        selection = lane.select(self._batch.logits[self._batch.rows[0]], config, None)
        try:
            return lane.commit(selection.packed.tolist(), config, None)
        finally:  # the lane as it was: its records, generator state, context and settings
            lane.rewind(n)
            lane.config = settings

    @torch.inference_mode()
    def prepare(self) -> None:
        """Make the next step's forward now, ahead of the step: the step (or preview) that follows then costs no
        model call. Nothing is recorded and nothing the run shows changes; a finished run has nothing to make."""
        if not self.done:
            self._batch.ready()

    def run(self, config: DecodingConfig | None = None) -> Iterator[StepRecord]:
        """Step until the run ends, yielding each record (stop early by no longer iterating). A run that ended on
        max_new_tokens carries on when `config` raises it. The steps are one stream (`streaming`)."""
        with self.streaming():
            while self.goes_on(config):
                yield self.step(config)

    @contextlib.contextmanager
    def streaming(self) -> Iterator[Session]:
        """Inside, the run steps without pause (a Run, a Step xN): each forward tells the engine's batcher so, and
        a forward shared with other runs waits for this one to come back from its pick rather than leave without
        it (`SharingSettings.stream_wait_ms`). Leaving ends the stream: nobody waits for it any longer."""
        stream = self._batch.stream = object()  # a name of its own (not the session: no reference cycle)
        try:
            yield self
        finally:
            self._batch.stream = None
            self.engine.batcher.end_stream(stream)

    def goes_on(self, config: DecodingConfig | None = None) -> bool:
        """Whether a step with `config` would take a token: the run has not finished, or it carries on."""
        return not self.done or self._extends(self._next_config(config))

    def backlog(self) -> int:
        """How many forwards the next step needs before it can pick (1 as a rule; more where the prompt is not
        prefilled yet or the cache must be rebuilt)."""
        return self._batch.backlog()

    @torch.inference_mode()
    def to(self, device=None, keep_cache: bool = True) -> Session:
        """Move the run's tensors (KV cache included) to `device` -- "cpu" between GPU calls; None: back where
        the model is -- in place, and return it. `keep_cache=False` drops the cache instead (the next forward
        rebuilds it, the same numbers). Its sampled draws go on exactly where they were, on either side."""
        self._batch.to(device, keep_cache)
        return self

    def _extends(self, config: DecodingConfig) -> bool:
        """Whether a finished run goes on with `config`: it stopped on max_new_tokens, which `config` raises."""
        return (
            self.done and self.finish_reason == "length" and isinstance(self.lane, SingleLane)
            and len(self.steps) < config.max_new_tokens
        )

    @property
    def is_beam(self) -> bool:
        """A beam search (its steps cannot be forced, and a link replays it from its recipe alone)."""
        return isinstance(self.lane, BeamLane)

    @torch.inference_mode()
    def rewind(self, n_steps: int) -> None:
        """Go back to just after step `n_steps` (0 = only the prompt). The cache is cropped where every layer
        allows it; otherwise (a sliding-window layer past its window, say) it is rebuilt at the next step, from
        the prompt and the kept tokens fed one at a time, so the run goes on exactly as a fresh one would."""
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 0 <= n_steps <= len(self.steps):
            raise ValueError(f"Cannot rewind to step {n_steps!r}: this run has steps 0 to {len(self.steps)}.")
        self._batch.rewind(n_steps)
        self.stopped = False

    def trace(self) -> Trace:
        return _trace(self.engine, self.lane, self.prompt_ids, self.elapsed_s, self.notices,
                      self.stopped)

    @torch.inference_mode()
    def explore(
        self,
        step: int | None = None,
        temperatures: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0),
        top_n: int = 20,
        config: DecodingConfig | None = None,
    ) -> Exploration:
        """The teaching views of the distribution behind step `step` (default: the next step, not yet taken):
        the same logits at several temperatures, and what each cutting knob alone would keep (top-k, top-p and
        min-p always; top-h, typical-p, epsilon, eta, the n-gram and min-new-tokens rules and the banned and
        suppressed tokens when they are on: `processors.explained_knobs`).

        The context is the prompt and the tokens before that step (for beams, the best beam's); its logits are
        recomputed in one forward without the cache, so exploring never disturbs the run.
        """
        n = len(self.steps)
        step = n if step is None else step
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= n:
            raise ValueError(f"Cannot explore step {step!r}: this run has steps 0 to {n}.")
        if any((not isinstance(t, (int, float))) or not 0 < t <= 100 for t in temperatures):
            raise ValueError("Temperatures to explore must be numbers in (0, 100].")
        config = config or (self.steps[step].config if step < n else self.config)
        context = self.engine.prompt_tensor(self.prompt_ids + self.token_ids[:step])
        prompt_mask = self._batch.prompt_mask
        logits, _ = self.engine.forward(context, None, *(() if prompt_mask is None else (prompt_mask,)))
        explained = processors.explain(context, logits, config, tuple(temperatures), top_n, prompt_len=len(self.prompt_ids),
                                       eos_ids=self.engine.vocab.eos_ids, penalty_skip=self.engine.penalty_skip(prompt_mask))  # fmt: skip
        t = {k: v.tolist() for k, v in explained.items()}
        token_str = self.engine.vocab.token_str
        candidates = [
            Candidate(
                token_id=int(tid), token=token_str(int(tid)), rank=r, logit=lg, raw_prob=rp, shaped_prob=sp,
                prob=p, kept=cut == 0, cut_by=processors.CUT_BY[int(cut)],
            )
            for r, (tid, lg, rp, sp, p, cut) in enumerate(
                zip(t["ids"], t["logits"], t["raw"], t["shaped"], t["prob"], t["cut"])
            )
        ]
        k = len(candidates)
        temps = [
            TemperatureView(temperature=float(temp), probs=row[:k], rest=max(0.0, row[k]), entropy=row[k + 1])
            for temp, row in zip(temperatures, t["temperatures"])
        ]
        knobs = [
            KnobView(
                knob=name, setting=_setting(getattr(config, name)), kept=[x > 0 for x in row[:k]], kept_count=int(row[k]),
                kept_mass=row[k + 1], threshold=None if math.isnan(row[k + 2]) else row[k + 2],
                label=processors.CUT_LABELS[name],
            )
            for name, row in zip(processors.explained_knobs(config), t["knobs"])
        ]
        return Exploration(step=step, candidates=candidates, cumulative=t["cumulative"], temperatures=temps,
                           knobs=knobs, config=config)

    def _next_config(self, config: DecodingConfig | None) -> DecodingConfig:
        if config is None:
            return self.config
        old = self.config
        self.engine.check_ids(config)
        beam, was_beam = config.is_beam, old.is_beam
        if beam != was_beam or (
            beam and (config.num_beams, config.max_new_tokens) != (old.num_beams, old.max_new_tokens)
        ):
            raise ValueError("Switching to or from beam search, or changing its beams or length, needs a new run: reset.")
        if config.seed != old.seed:
            raise ValueError("The seed is fixed for a run: reset to use another seed.")
        if self.engine.context_length and len(self.prompt_ids) + config.max_new_tokens > self.engine.context_length:
            config = config.replace(max_new_tokens=self.engine.context_length - len(self.prompt_ids))
        return config


def _setting(value):
    """A knob's value as a KnobView shows it: a number, or for a list of token ids (banned, suppressed) the count."""
    return value if isinstance(value, (int, float)) else len(value)


def sample_seed(seed: int, i: int) -> int:
    """The seed of a comparison's sample i (0-based): seed + i, wrapped into the valid range [0, 2**63)."""
    return (seed + i) % 2**63


class Comparison:
    """Greedy, beam search and sampled runs of one prompt as rows of one batch: one prefill, one forward a step.

    The sampled lanes use seeds config.seed, config.seed + 1, ..., wrapping around to 0 past the largest seed
    (2**63 - 1): sample i has seed (config.seed + i) mod 2**63 and equals a lone sampled run with that seed.
    """

    @torch.inference_mode()
    def __init__(self, engine: Engine, prompt_ids: list[int], config: DecodingConfig, num_samples: int = 1,
                 prefill: bool = True, device=None):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 0 <= num_samples <= 8:
            raise ValueError(f"num_samples must be an integer from 0 to 8, got {num_samples!r}.")
        self.engine = engine
        engine.check_ids(config)
        self.prompt_ids, config, self.notices = engine.fit_context(list(prompt_ids), config)
        start = time.perf_counter()
        prompt = engine.prompt_tensor(self.prompt_ids, device)
        self.configs = [config.replace(strategy="greedy"), config.replace(strategy="beam")]
        labels = ["greedy", "beam"]
        for i in range(num_samples):
            self.configs.append(config.replace(strategy="sample", seed=sample_seed(config.seed, i)))
            labels.append("sample" if i == 0 else f"sample {i + 1}")
        lanes = [_lane(label, c, prompt, engine) for label, c in zip(labels, self.configs)]
        self._batch = _Batch(engine, prompt, lanes, prefill=prefill)
        self.elapsed_s = time.perf_counter() - start

    @property
    def lanes(self) -> list:
        return self._batch.lanes

    @property
    def done(self) -> bool:
        return all(lane.done for lane in self.lanes)

    @torch.inference_mode()
    def step(self) -> list[StepRecord | None]:
        start = time.perf_counter()
        records = self._batch.step(self.configs, [None] * len(self.configs))
        self.elapsed_s += time.perf_counter() - start
        return records

    def backlog(self) -> int:
        return self._batch.backlog()

    @torch.inference_mode()
    def to(self, device=None, keep_cache: bool = True) -> Comparison:
        """As `Session.to`: every tensor of the comparison to `device` (None: where the model is), in place."""
        self._batch.to(device, keep_cache)
        return self

    def traces(self) -> dict[str, Trace]:
        return {lane.label: _trace(self.engine, lane, self.prompt_ids, self.elapsed_s, self.notices) for lane in self.lanes}
