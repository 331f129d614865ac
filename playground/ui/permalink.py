"""Permalinks: a run's recipe (prompt, model, settings, and per step any forced token or changed setting) packed
into the page's query string, read back, and replayed.

`permalink_query(state)` writes "?run=<base64url(zlib(json))>"; `decode_permalink(value)` reads the recipe back
(ValueError, one sentence, if it cannot); `replay(recipe)` runs it again token for token (opening a link,
rebuilding a parked run, recovering a run the server lost). "?present=1" beside it (`PRESENT_PARAM`) opens the
page in its presenter view, which the page reads itself.

A link records each step's chosen token beside the recipe ("t"; "f" for a token the person forced). A step's
logits can differ in their last bits from one machine to another, or when a forward was shared with other
visitors (`batching`), which can flip a near-tie: so a replay recomputes each step from its recipe but keeps the
recorded token, and says in one line where this machine would have chosen otherwise. Beam searches are
replayed from their recipe alone. This module knows nothing about the page's layout
or how a request is served.
"""

from __future__ import annotations

import base64
import json
import zlib

from .. import gpu
from ..config import DecodingConfig, check_temperature_floor
from ..hosting import MAX_TOP_N
from . import shared
from .controls import DEFAULT_MODEL, Controls
from .state import PlaygroundState, prepare

PERMALINK_PARAM = "run"
# "?present=1" (beside or without a run) opens the page in its presenter view: read by the page itself
# (endpoints.LOAD_JS), kept in the address bar while the view is on, left out of the link a person shares.
PRESENT_PARAM = "present"
# A link is read only up to these sizes, packed and unpacked: past them it is refused before any work (a
# 544 KB link used to unpack to 400 MB). A hosted playground's longest prompt makes a link far below both.
MAX_PERMALINK_CHARS = 100_000
MAX_RECIPE_BYTES = 1_000_000


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
        elif not state.session.is_beam:
            entry["t"] = r.token_id
        steps.append(entry)
        previous = r.config
    doc = {"v": 1, "prompt": state.prompt, "model": state.model, "chat": state.chat, "system": state.system,
           "config": base.to_dict(), "steps": steps}  # fmt: skip
    packed = zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 9)
    return f"?{PERMALINK_PARAM}=" + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def decode_permalink(value: str) -> dict:
    """The recipe inside a permalink's `run` value (ValueError if it is not one)."""
    value = value.strip() if isinstance(value, str) else ""
    if len(value) > MAX_PERMALINK_CHARS:
        raise ValueError(f"This link is {len(value):,} characters long; a playground link is at most "
                         f"{MAX_PERMALINK_CHARS:,}.")  # fmt: skip
    try:
        packed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        unpacker = zlib.decompressobj()
        raw = unpacker.decompress(packed, MAX_RECIPE_BYTES + 1)  # never more than the limit, however packed
    except Exception:  # noqa: BLE001
        raise ValueError("This link's run could not be read: it may have been cut short when copied.") from None
    if len(raw) > MAX_RECIPE_BYTES or unpacker.unconsumed_tail:
        raise ValueError(f"This link's run unpacks to more than {MAX_RECIPE_BYTES:,} bytes, more than a playground "
                         "link holds.")  # fmt: skip
    try:
        if not unpacker.eof:  # cut short
            raise ValueError
        doc = json.loads(raw.decode("utf-8"))
    except Exception:  # noqa: BLE001
        raise ValueError("This link's run could not be read: it may have been cut short when copied.") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("steps"), list):
        raise ValueError("This link was made by another version of the playground and cannot be opened.")
    for settings in [doc.get("config")] + [e.get("c") for e in doc["steps"] if isinstance(e, dict)]:
        _within_the_controls(settings)
    return doc


def _within_the_controls(settings) -> None:
    """A link's settings held to the page's controls: "Candidates shown" lowered to the slider's end (it only
    decides how many candidates are recorded, never which token is chosen), a temperature too small to compute
    with refused as the page refuses it."""
    if not isinstance(settings, dict):
        return
    top_n = settings.get("top_n")
    if isinstance(top_n, int) and not isinstance(top_n, bool) and top_n > MAX_TOP_N:
        settings["top_n"] = MAX_TOP_N
    t = settings.get("temperature")
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        check_temperature_floor(t)


def replay(doc: dict) -> tuple[PlaygroundState, Controls]:
    """A permalink's recipe run again, token for token: (state, the controls that show its last step)."""
    config = DecodingConfig.from_dict(doc["config"])
    identity = {
        "prompt": str(doc.get("prompt", "")), "model": str(doc.get("model") or DEFAULT_MODEL),
        "chat": bool(doc.get("chat")), "system": str(doc.get("system") or ""),
    }  # fmt: skip
    engine = shared.engine_for(identity["model"])
    state, _ = prepare(None, Controls.from_config(config, engine, **identity))
    current, steps = state.session.config, []  # each step's settings and forced token, read before any model call
    for entry in doc["steps"][: current.max_new_tokens]:
        if not isinstance(entry, dict):
            raise ValueError("This link's run could not be read: a step is malformed.")
        if entry.get("c"):
            current = DecodingConfig.from_dict({**current.to_dict(), **entry["c"]})
            current, _ = shared.POLICY.apply(current)
        recorded = entry.get("t")
        steps.append((current, entry.get("f"), recorded if isinstance(recorded, int) and not isinstance(recorded, bool) else None))
    state.session, records = gpu.replay(state.session, 0, steps)  # one GPU call; stops where the run ends
    differed = [r for r in records if r.recomputed is not None]
    if differed:
        state.session.notices.append(recomputed_notice(differed, state.session.engine))
    last = records[-1].config if records else state.session.config
    return state, Controls.from_config(last, state.session.engine, **identity)


def recomputed_notice(records: list, engine) -> str:
    """One line: where this machine chose otherwise than the link (whose tokens were kept)."""
    first = records[0]
    label = lambda t: repr(engine.vocab.token_str(t))  # noqa: E731
    where = f"step {first.step}" + (f" (and {len(records) - 1} more)" if len(records) > 1 else "")
    return (f"Replayed the link's own tokens: at {where} this machine would have chosen {label(first.recomputed)} "
            f"instead of {label(first.token_id)} (numbers can differ in their last bits between machines).")


def permalink_url(state: PlaygroundState, request=None) -> str:
    """The run's permalink as a whole address, to paste in a chat or keep in a file: the page's own address (the
    one the browser says it is on, else the server's as the request reached it, proxies' forwarded names first)
    with the run's query; the bare query when there is no request to tell."""
    query = permalink_query(state)
    headers = {k.lower(): v for k, v in dict(getattr(request, "headers", None) or {}).items()}
    page = headers.get("referer", "").split("#")[0].split("?")[0]
    if not page.startswith(("http://", "https://")) and headers.get("host"):
        scheme = headers.get("x-forwarded-proto") or getattr(getattr(request, "url", None), "scheme", None) or "http"
        page = f"{scheme.split(',')[0].strip()}://{headers.get('x-forwarded-host') or headers['host']}/"
    return page + query if query and page else query
