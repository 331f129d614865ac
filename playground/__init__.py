"""Decoding Playground: see how a language model chooses its next token.

The package is layered: `config` (settings) -> `processors` (shape the distribution) -> `strategies` (pick the
token) -> `engine` (the model, the KV cache, sessions and comparisons) -> `records` (what each step leaves).
`loading` finds models; `plots`, `views` and `ui` show them; `cli` is the command line. `measure` (the benchmark
and felt speed) sits apart: nothing here imports it but the CLI's `bench` command.
"""

from .config import DecodingConfig

__all__ = ["DecodingConfig"]
__version__ = "0.1.0"
