"""Timing that can be trusted: warm-up passes, many timed passes, median and 95th percentile; several callables timed
round-robin so that a change of load hits them alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    """Latency statistics of one candidate, milliseconds."""

    median_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    runs: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> Timing:
        t = np.asarray(times_ms)
        return cls(float(np.median(t)), float(np.percentile(t, 95)), float(t.mean()), float(t.min()), len(t))


def time_call(fn: Callable[[], object], runs: int, warmup: int) -> Timing:
    """Times `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing.of(times)


def time_round_robin(fns: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, Timing]:
    """Times every callable `runs` times, interleaved (pass i of each, then pass i + 1), after `warmup` each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1e3)
    return {k: Timing.of(v) for k, v in times.items()}
