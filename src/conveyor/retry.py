"""Retry maths: small pure functions that turn an attempt's outcome into the next step."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

BackoffSpec = float | int | str | Sequence[float] | None


@dataclass(frozen=True, slots=True)
class Backoff:
    """``fixed`` (one delay), ``list`` (delays whose last repeats) or ``exponential``."""

    kind: str
    delays: tuple[float, ...] = (0.0,)
    base: float = 1.0
    cap: float = 600.0
    jitter: bool = True

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        attempt = max(1, attempt)
        if self.kind == "exponential":
            raw = min(self.cap, self.base * (2 ** (attempt - 1)))
            if self.jitter:
                # "equal jitter": at least half the delay, never a thundering herd.
                r = (rng or random).random()
                return float(raw / 2 + r * raw / 2)
            return float(raw)
        index = min(attempt - 1, len(self.delays) - 1)
        return self.delays[index]

    def to_data(self) -> Any:
        if self.kind == "exponential":
            return {"exponential": self.base, "cap": self.cap, "jitter": self.jitter}
        if self.kind == "fixed":
            return self.delays[0]
        return list(self.delays)


def parse_backoff(spec: Any) -> Backoff:
    """Accept 5, "5", "5,30,120", [5, 30, 120], "exponential", or a dict from ``to_data``.
    Anything else (it may come from a stored payload) is a ConfigurationError."""
    try:
        backoff = _parse_backoff(spec)
    except (TypeError, ValueError, KeyError, OverflowError):
        backoff = None
    if backoff is None or not all(
            math.isfinite(v) for v in (*backoff.delays, backoff.base, backoff.cap)):
        raise ConfigurationError(
            f"invalid backoff {spec!r}: use seconds (10), a list (10,60,300) or 'exponential'")
    return backoff


def _parse_backoff(spec: Any) -> Backoff:
    if spec is None:
        return Backoff("fixed", (0.0,))
    if isinstance(spec, Backoff):
        return spec
    if isinstance(spec, dict) and "exponential" in spec:
        return Backoff(
            "exponential",
            base=float(spec["exponential"]),
            cap=float(spec.get("cap", 600.0)),
            jitter=bool(spec.get("jitter", True)),
        )
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("exponential"):
            _, _, rest = text.partition(":")
            base = float(rest) if rest else 1.0
            return Backoff("exponential", base=base)
        try:
            values = [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            values = []
        if not values:
            raise ConfigurationError(
                f"invalid backoff {spec!r}: use seconds (10), a list (10,60,300) or 'exponential'"
            )
        spec = values
    if isinstance(spec, bool):
        raise ConfigurationError(f"invalid backoff {spec!r}")
    if isinstance(spec, int | float):
        if spec < 0:
            raise ConfigurationError(f"invalid backoff {spec!r}: seconds must not be negative")
        return Backoff("fixed", (float(spec),))
    if isinstance(spec, list | tuple) and spec:
        delays = tuple(float(v) for v in spec)
        if any(d < 0 for d in delays):
            raise ConfigurationError(f"invalid backoff {spec!r}: seconds must not be negative")
        return Backoff("list" if len(delays) > 1 else "fixed", delays)
    raise ConfigurationError(
        f"invalid backoff {spec!r}: use seconds (10), a list (10,60,300) or 'exponential'"
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to an attempt: ``complete``, ``release`` (after ``delay``) or ``fail``."""

    action: str
    delay: float = 0.0
    reason: str = ""


def decide_after_error(
    *,
    attempt: int,
    tries: int,
    backoff: Backoff,
    now: float,
    retry_until: float | None = None,
    retryable: bool = True,
    forced_delay: float | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """An attempt raised: retry with backoff, or fail when out of tries or time."""
    if not retryable:
        return Decision("fail", reason="not retryable")
    delay = forced_delay if forced_delay is not None else backoff.delay(attempt, rng)
    if retry_until is not None:
        if now + delay >= retry_until:
            return Decision("fail", reason="retry_until reached")
        return Decision("release", delay=delay)
    if attempt >= tries:
        return Decision("fail", reason=f"tried {attempt} of {tries} times")
    return Decision("release", delay=delay)
