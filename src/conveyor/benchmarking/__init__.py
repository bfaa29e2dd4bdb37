"""``conveyor bench``: measure dispatch rate, drain rate, pickup latency and worker memory on
the configured store, for conveyor alone (``benchmarks/`` compares it with its peers)."""

from __future__ import annotations

from .measure import BenchConfig, BenchResult, run_bench

__all__ = ["BenchConfig", "BenchResult", "run_bench"]
