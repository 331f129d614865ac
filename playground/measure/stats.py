"""Small statistics the measurements share: paired, alternating rounds and percentiles. Knows nothing about
what is measured."""

from __future__ import annotations

import math
from collections.abc import Callable


def alternate(side_a: Callable, side_b: Callable, repeats: int, warmup: int = 1) -> tuple[list, list]:
    """Run both sides `warmup` times untimed, then `repeats` timed rounds, swapping which goes first each
    round so that neither always runs on a warmer (or more contended) machine. Returns each side's results."""
    for _ in range(warmup):
        side_a()
        side_b()
    a, b = [], []
    for r in range(repeats):
        if r % 2 == 0:
            a.append(side_a())
            b.append(side_b())
        else:
            b.append(side_b())
            a.append(side_a())
    return a, b


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear between closest ranks (numpy's default)."""
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
