"""Statistics over per-minute metric samples: totals, rates, averages and runtime
percentiles estimated from the ``RUNTIME_BUCKETS`` histogram."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ..records import RUNTIME_BUCKETS, MetricSample

K = TypeVar("K", bound=Hashable)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | float, what: str = "duration") -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``2d`` -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ConfigurationError(
            f"{what} {text!r} is not a duration: use seconds or a unit, e.g. 90, 90s, 15m, 1h, 2d")
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def parse_rate(text: str, what: str = "rate") -> float:
    """``0.05`` or ``5%`` -> 0.05."""
    value = text.strip()
    try:
        rate = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ConfigurationError(f"{what} {text!r} is not a rate: use 0.05 or 5%") from None
    if not 0 <= rate <= 1:
        raise ConfigurationError(f"{what} {text!r} must be between 0 and 1 (or 0% and 100%)")
    return rate


@dataclass(slots=True)
class Summary:
    """Totals of many samples (one queue, one job name, or everything)."""

    processed: int = 0
    failed: int = 0
    released: int = 0
    timed_out: int = 0
    runtime_sum: float = 0.0
    runtime_max: float = 0.0
    wait_sum: float = 0.0
    wait_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(RUNTIME_BUCKETS) + 1))

    def add(self, s: MetricSample) -> None:
        self.processed += s.processed
        self.failed += s.failed
        self.released += s.released
        self.timed_out += s.timed_out
        self.runtime_sum += s.runtime_sum
        self.runtime_max = max(self.runtime_max, s.runtime_max)
        self.wait_sum += s.wait_sum
        self.wait_max = max(self.wait_max, s.wait_max)
        self.histogram = [a + b for a, b in zip(self.histogram, s.histogram, strict=False)]

    @property
    def succeeded(self) -> int:
        return self.processed - self.failed - self.released

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.processed if self.processed else None

    @property
    def avg_runtime(self) -> float | None:
        return self.runtime_sum / self.processed if self.processed else None

    @property
    def avg_wait(self) -> float | None:
        return self.wait_sum / self.processed if self.processed else None

    def percentile(self, q: float) -> float | None:
        """Runtime below which a fraction ``q`` of attempts finished, interpolated linearly
        inside the bucket (as Prometheus' histogram_quantile) and capped by the maximum."""
        total = sum(self.histogram)
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, count in enumerate(self.histogram):
            if count and seen + count >= rank:
                lower = RUNTIME_BUCKETS[i - 1] if i > 0 else 0.0
                upper = RUNTIME_BUCKETS[i] if i < len(RUNTIME_BUCKETS) else self.runtime_max
                value = lower + (upper - lower) * max(0.0, rank - seen) / count
                return min(value, self.runtime_max)
            seen += count
        return self.runtime_max

    def to_dict(self, window: float) -> dict[str, Any]:
        """Everything a view shows; ``window`` (seconds) turns totals into rates."""
        minutes = window / 60.0
        return {
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "released": self.released,
            "timed_out": self.timed_out,
            "throughput_per_min": _round(self.processed / minutes if minutes > 0 else None),
            "failure_rate": _round(self.failure_rate),
            "runtime_avg": _round(self.avg_runtime),
            "runtime_p50": _round(self.percentile(0.50)),
            "runtime_p95": _round(self.percentile(0.95)),
            "runtime_p99": _round(self.percentile(0.99)),
            "runtime_max": _round(self.runtime_max if self.processed else None),
            "wait_avg": _round(self.avg_wait),
            "wait_max": _round(self.wait_max if self.processed else None),
        }


def summarise(samples: Iterable[MetricSample],
              key: Callable[[MetricSample], K]) -> dict[K, Summary]:
    """Group samples by ``key`` (e.g. queue, or (queue, name)) and add them up."""
    groups: dict[K, Summary] = {}
    for sample in samples:
        groups.setdefault(key(sample), Summary()).add(sample)
    return groups


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
