"""Where "Prepare downloads" writes its files: one folder per export under one root that is pruned, so exports
never pile up on disk (each used to leave a temporary folder behind for good).

Gradio serves each file from a copy in its own cache, made as the handler returns, so a folder here is needed
only for a moment; it is kept for `KEEP_S` all the same, and at most `KEEP` folders are kept at all. The root
is removed when the process exits. (Gradio's copies are deleted by `delete_cache`, see `sessions.configure`.)
This module knows nothing about what is exported; `run_stem` names a run's files from plain strings.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

KEEP_S = 600.0  # an export folder older than this is deleted at the next export
KEEP = 64  # and never more than this many folders

_lock = threading.Lock()


def root() -> Path:
    """The folder every export of this process goes under (in the temporary directory, which Gradio serves)."""
    return Path(tempfile.gettempdir()) / f"decoding-playground-exports-{os.getpid()}"


def new_folder() -> Path:
    """A fresh, empty folder for one export; older exports are pruned first."""
    base = root()
    with _lock:
        base.mkdir(parents=True, exist_ok=True)
        prune(base)
        return Path(tempfile.mkdtemp(prefix="export-", dir=base))


def prune(base: Path, now: float | None = None) -> None:
    """Delete the export folders older than KEEP_S, then the oldest beyond the newest KEEP - 1."""
    now = time.time() if now is None else now
    folders = []
    for path in base.iterdir():
        try:
            folders.append((path.stat().st_mtime, path))
        except OSError:  # deleted meanwhile
            continue
    folders.sort()
    for i, (mtime, path) in enumerate(folders):
        if now - mtime > KEEP_S or i < len(folders) - (KEEP - 1):
            shutil.rmtree(path, ignore_errors=True)


@atexit.register
def _remove_root() -> None:
    shutil.rmtree(root(), ignore_errors=True)


def run_stem(prompt: str, model: str, seed: int, words: int = 4, max_chars: int = 32) -> str:
    """A download's name for a run, so files of several runs can be told apart and kept: the prompt's first
    words, the model's short name and the seed, slugged ("once-upon-a-time_smollm2-135m-instruct_seed0"). A
    model's folder or Hub id gives its last part, "(embedded)" is dropped; any script's letters are kept."""
    slug = lambda text: re.sub(r"[\W_]+", "-", text.lower()).strip("-")  # noqa: E731
    head = slug(" ".join((prompt or "").split()[:words]))[:max_chars].strip("-") or "run"
    name = re.sub(r"\s*\(.*?\)\s*$", "", (model or "").strip()).rstrip("/\\")
    short = slug(re.split(r"[/\\]", name)[-1])[:max_chars].strip("-") or "model"
    return f"{head}_{short}_seed{int(seed)}"
