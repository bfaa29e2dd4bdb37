"""A job's effective policy (tries, backoff, timeout, deadline) and the decision after an
attempt. Pure functions: no store, no threads."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..errors import Fail, JobTimeout, Retry
from ..jobs import JobDefinition
from ..retry import Backoff, Decision, decide_after_error, parse_backoff


@dataclass(frozen=True, slots=True)
class WorkerDefaults:
    """What ``conveyor work`` flags and ``QUEUE_WORKER_*`` settings give jobs that don't say."""

    tries: int = 3
    backoff: Backoff = field(default_factory=lambda: Backoff("exponential", base=5.0))
    timeout: float = 60.0
    lease: float = 30.0


@dataclass(frozen=True, slots=True)
class JobPolicy:
    tries: int
    backoff: Backoff
    timeout: float | None
    retry_until: float | None
    retry_on: tuple[type[BaseException], ...] | None


def resolve_policy(
    job: JobDefinition[Any, Any] | None,
    meta: dict[str, Any],
    max_tries: int | None,
    defaults: WorkerDefaults,
) -> JobPolicy:
    """Precedence: per-dispatch options > the job's own > the worker's defaults."""
    tries = meta.get("tries") or max_tries or (job.tries if job else None) or defaults.tries
    backoff_spec = meta.get("backoff")
    if backoff_spec is not None:
        backoff = parse_backoff(backoff_spec)
    elif job is not None and job.backoff is not None:
        backoff = job.backoff
    else:
        backoff = defaults.backoff
    timeout = meta.get("timeout")
    if timeout is None:
        timeout = job.timeout if job is not None and job.timeout is not None else defaults.timeout
    retry_until = meta.get("retry_until")
    return JobPolicy(
        tries=int(tries),
        backoff=backoff,
        timeout=float(timeout) if timeout else None,
        retry_until=float(retry_until) if retry_until is not None else None,
        retry_on=job.retry_on if job else None,
    )


def decide(
    error: BaseException | None,
    *,
    attempt: int,
    policy: JobPolicy,
    now: float,
    permanent: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """The step after an attempt that ended with ``error`` (None: it succeeded)."""
    if error is None:
        return Decision("complete")
    if permanent or isinstance(error, Fail):
        return Decision("fail", reason=str(error))
    forced = error.delay if isinstance(error, Retry) else None
    retryable = True
    if policy.retry_on is not None and not isinstance(error, Retry | JobTimeout):
        retryable = isinstance(error, policy.retry_on)
    return decide_after_error(
        attempt=attempt,
        tries=policy.tries,
        backoff=policy.backoff,
        now=now,
        retry_until=policy.retry_until,
        retryable=retryable,
        forced_delay=forced,
        rng=rng,
    )
