"""What the built-in jobs share: where their state lives on the app, routing tables,
and retry delays computed from the running job's attempt."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ..context import current_job
from ..errors import ConfigurationError, ConveyorError, Fail, Retry
from ..retry import Backoff

if TYPE_CHECKING:
    from ..app import Conveyor

T = TypeVar("T")


def attempt() -> int:
    """The running job's attempt (1-based); 1 when called outside a worker."""
    try:
        return current_job().attempt
    except ConveyorError:
        return 1


def retry_later(reason: str, delay: float) -> NoReturn:
    """Raise ``Retry(delay)``, or ``Fail`` on the last attempt so the failed record says
    that the job gave up, not that it will retry."""
    try:
        ctx = current_job()
    except ConveyorError:
        ctx = None
    if ctx is not None and ctx.is_last_attempt:
        raise Fail(f"{reason} (gave up after {ctx.attempt} attempts)")
    raise Retry(delay=delay, reason=reason)


def progress(value: float, message: str = "") -> None:
    """Report progress when running in a worker; a no-op when called directly."""
    try:
        ctx = current_job()
    except ConveyorError:
        return
    ctx.progress(value, message)


def stopping() -> bool:
    """True when the worker running this job asks it to wind down (shutdown, timeout)."""
    try:
        return current_job().stopping
    except ConveyorError:
        return False


def exponential_delay(base: float, cap: float, n: int) -> float:
    """Seconds before try ``n + 1``: base, 2*base, 4*base … capped, with equal jitter."""
    if base <= 0:
        return 0.0
    return Backoff("exponential", base=base, cap=cap).delay(n)


def add_routes(app: Conveyor, job: str, queue: str, routes: Mapping[str, str]) -> None:
    """Route the job by its ``type`` argument. Rules from settings (``routing`` in
    conveyor.toml) were added first, so they win over these defaults."""
    for kind, priority in routes.items():
        app.route(job, type=kind, queue=queue, priority=priority)


def register(app: Conveyor, key: str, build: Callable[[], T]) -> T:
    """Build an extension's service once per app and keep it in ``app.extensions``."""
    if key in app.extensions:
        raise ConfigurationError(
            f"{key} is already installed on this app; install it once and keep the object "
            f"it returns (or get it back with app.extensions[{key!r}])")
    service = app.extensions[key] = build()
    return service


def installed(app: Conveyor, key: str, how: str) -> Any:
    try:
        return app.extensions[key]
    except KeyError:
        raise ConfigurationError(f"{key} is not installed on this app: call {how}") from None
