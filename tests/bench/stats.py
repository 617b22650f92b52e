"""Percentiles and per-phase summaries of the driver's raw turn timings."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from tests.bench.llm import Profile


def percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def spread(values_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max in milliseconds."""
    ordered = sorted(v * 1000 for v in values_s)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 0.50),
        "p95": percentile(ordered, 0.95),
        "p99": percentile(ordered, 0.99),
        "mean": statistics.fmean(ordered),
        "max": ordered[-1],
    }


def summarize(result: dict[str, Any], llm: Profile) -> dict[str, Any]:
    """Throughput over the measured window, latencies of the turns that started in it."""
    start, end = result["window"]
    rows = result["turns"]
    done = [r for r in rows if r[4] is None and r[2] is not None]
    completed_in = [r for r in done if start <= r[2] <= end]
    measured = [r for r in done if start <= r[0] < end and r[1] is not None]
    errors = Counter(r[4] for r in rows if r[4] is not None and start <= r[0] < end)
    ttft = [r[1] - r[0] for r in measured]
    total = [r[2] - r[0] for r in measured]
    windows = [r[3] for r in measured if r[3] is not None]
    return {
        "turns": len(completed_in),
        "turns_per_s": len(completed_in) / (end - start),
        "errors": dict(errors),
        "ttft_ms": spread(ttft),
        "total_ms": spread(total),
        "overhead_ttft_ms": spread([v - llm.ttft for v in ttft]),
        "overhead_total_ms": spread([v - llm.total for v in total]),
        "prompt_messages_mean": statistics.fmean(windows) if windows else None,
    }
