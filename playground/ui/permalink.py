"""Permalinks: a run's recipe (prompt, model, settings, and per step any forced token or changed setting) packed
into the page's query string, and read back.

`permalink_query(state)` writes "?run=<base64url(zlib(json))>"; `decode_permalink(value)` reads the recipe back
(ValueError, one sentence, if it cannot). Replaying a recipe token for token is the handlers' job. This module
knows nothing about the page or the model.
"""

from __future__ import annotations

import base64
import json
import zlib

from .state import PlaygroundState

PERMALINK_PARAM = "run"




def permalink_query(state: PlaygroundState) -> str:
    """"?run=<base64url(zlib(json))>" holding prompt, model, chat, system, the starting settings and, per step,
    any forced token and any settings changed before it; "" when there is no run."""
    if state.session is None or state.base_config is None:
        return ""
    base = state.base_config
    steps, previous = [], base
    for r in state.steps:
        entry = {}
        if r.config != previous:  # frozen dataclasses compare cheaply; diff the fields only when they differ
            before = previous.to_dict()
            entry["c"] = {k: v for k, v in r.config.to_dict().items() if v != before.get(k)}
        if r.forced:
            entry["f"] = r.token_id
        steps.append(entry)
        previous = r.config
    doc = {"v": 1, "prompt": state.prompt, "model": state.model, "chat": state.chat, "system": state.system,
           "config": base.to_dict(), "steps": steps}  # fmt: skip
    packed = zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 9)
    return f"?{PERMALINK_PARAM}=" + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def decode_permalink(value: str) -> dict:
    """The recipe inside a permalink's `run` value (ValueError if it is not one)."""
    try:
        value = value.strip()
        packed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        doc = json.loads(zlib.decompress(packed).decode("utf-8"))
    except Exception:  # noqa: BLE001
        raise ValueError("This link's run could not be read: it may have been cut short when copied.") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("steps"), list):
        raise ValueError("This link was made by another version of the playground and cannot be opened.")
    return doc
