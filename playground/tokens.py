"""Token ids as people read them, in every script: a token's display text and its raw bytes.

A byte-level tokenizer (GPT-2's, SmolLM2's, Llama 3's, Qwen's) or a SentencePiece one with byte fallback
(<0xE5>) cuts a Chinese character or an emoji into tokens that are each only part of its UTF-8 bytes. Decoded
alone such a token is "\ufffd", and seven of them in a list are seven identical "\ufffd". So, once, here:

    token_text(tokenizer, id)  (text, raw): the token decoded as before where it is whole UTF-8 text (raw None);
                               else its bytes shown as ⟨E5 96⟩ (text) and the bytes themselves (raw)
    bytes_text(data)           bytes as text: whole characters as themselves, the rest as ⟨E5 96⟩
    spell(parts)               consecutive tokens grouped where their bytes together make whole characters
                               (我 from ⟨E6 88⟩ ⟨91⟩), with the text each group makes

Every view takes a token's label from the record's text (`views.token_label`), so every view agrees. This
module knows nothing about Gradio, HTML, plots or models; `token_text` reads a tokenizer, the rest plain bytes.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["token_text", "bytes_text", "raw_bytes", "spell", "Spelling", "OPEN", "CLOSE"]

OPEN, CLOSE = "⟨", "⟩"  # around the hex of bytes that are not whole characters: ⟨E5 96⟩
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte-fallback tokens


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: the printable character a byte-level BPE writes for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


_BYTE_OF = _byte_level_alphabet()


def _piece_bytes(piece: str | None) -> bytes | None:
    """The raw bytes behind a vocabulary piece, where the piece says them: <0xE5>, or byte-level characters."""
    if not piece:
        return None
    m = _BYTE_PIECE.fullmatch(piece)
    if m:
        return bytes([int(m.group(1), 16)])
    if all(ch in _BYTE_OF for ch in piece):
        return bytes(_BYTE_OF[ch] for ch in piece)
    return None


def token_text(tokenizer, token_id: int) -> tuple[str, bytes | None]:
    """(text, raw) for one token id: where the token decodes to whole text, that text and None; where it is
    part of a character (decoded alone it gives U+FFFD), its bytes as `bytes_text` shows them ("⟨E5 96⟩",
    " ⟨E6⟩") and the bytes. A piece whose bytes cannot be read keeps its decoded text."""
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    if "\ufffd" not in text:
        return text, None
    try:
        raw = _piece_bytes(tokenizer.convert_ids_to_tokens(token_id))
    except Exception:  # noqa: BLE001 - a tokenizer without pieces: keep what decode said
        raw = None
    if raw is None or _whole(raw):
        return text, None  # a real U+FFFD in the vocabulary, or no bytes to show
    return bytes_text(raw), raw


def _whole(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def bytes_text(data: bytes) -> str:
    """`data` as text: whole UTF-8 characters as themselves, every run of other bytes (a character's start or
    end, an invalid byte) as its hex in angle brackets: b" \\xe5\\x96" -> " ⟨E5 96⟩"."""
    text = data.decode("utf-8", errors="surrogateescape")  # each stray byte b -> U+DC00 + b
    return re.sub("[\udc80-\udcff]+", lambda m: OPEN + " ".join(f"{ord(c) - 0xDC00:02X}" for c in m.group()) + CLOSE,
                  text)  # fmt: skip


def raw_bytes(text: str, raw: bytes | None) -> bytes:
    """A token's bytes: `raw` where the token is part of a character, else its text's UTF-8."""
    return raw if raw is not None else text.encode("utf-8")


@dataclass(frozen=True)
class Spelling:
    """Tokens start..end-1 and what their bytes spell together. `joined` when they are several tokens (or one
    whose bytes only a neighbour completes) that made whole characters: the text then shows `text` over them."""

    start: int
    end: int
    text: str
    joined: bool


def spell(parts: list[tuple[str, bytes | None]]) -> list[Spelling]:
    """Consecutive tokens, each (text, raw) as `token_text` gives them, cut into groups: a token of whole text
    is a group alone; tokens that are parts of characters run together until their bytes end on a character
    boundary, and that group is `joined`, its text the characters they make (我 from ⟨E6 88⟩ ⟨91⟩). A run that
    has not reached a boundary (the last tokens, waiting for the rest of a character; or cut off by a whole
    token) stays as single tokens, not joined. Groups start where the tokens before them say, so a later token
    never moves an earlier group's start."""
    out: list[Spelling] = []
    i = 0
    while i < len(parts):
        if parts[i][1] is None:
            out.append(Spelling(i, i + 1, parts[i][0], False))
            i += 1
            continue
        decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        j, text = i, ""
        while j < len(parts) and parts[j][1] is not None:
            text += decoder.decode(parts[j][1])
            j += 1
            if not decoder.getstate()[0]:  # nothing left waiting: the bytes end on a character boundary
                break
        if decoder.getstate()[0]:  # unfinished: each token alone
            out.extend(Spelling(k, k + 1, parts[k][0], False) for k in range(i, j))
        else:
            shown = bytes_text(text.encode("utf-8", errors="surrogateescape"))
            out.append(Spelling(i, j, shown, shown != "".join(p[0] for p in parts[i:j])))
        i = j
    return out
