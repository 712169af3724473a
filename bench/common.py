"""Helpers for benchmark scripts: JSON figure lines and peak memory (never asserted in tests)."""
from __future__ import annotations

import json
import resource
import sys


def emit(figure: str, value, unit: str, **extra) -> None:
    """Print one figure as a JSON line: {"figure": ..., "value": ..., "unit": ...}."""
    print(json.dumps({"figure": figure, "value": value, "unit": unit, **extra}), flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB: VmHWM on Linux (ru_maxrss carries the parent's peak
    over fork and exec, so a benchmark started from a big process would report the parent's memory)."""
    try:
        with open("/proc/self/status") as status:
            return round(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024, 1)
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024, 1)
