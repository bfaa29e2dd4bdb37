"""A small synchronous events hub: ``app.on("job_failed", fn)``.

Listeners run in the thread that emits; an exception in a listener is logged, never
propagated into the job or the worker.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError

EVENTS = (
    "job_dispatched",
    "job_started",
    "job_succeeded",
    "job_failed",
    "job_released",
    "job_timed_out",
    "job_progress",
    "worker_started",
    "worker_stopped",
)

Listener = Callable[..., Any]
log = logging.getLogger("conveyor.events")


class Events:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = defaultdict(list)

    def on(self, event: str, listener: Listener) -> Listener:
        if event not in EVENTS:
            raise ConfigurationError(
                f"unknown event {event!r}: accepted events are {', '.join(EVENTS)}"
            )
        self._listeners[event].append(listener)
        return listener

    def has(self, event: str) -> bool:
        return bool(self._listeners.get(event))

    def emit(self, event: str, **data: Any) -> None:
        for listener in self._listeners.get(event, ()):
            try:
                listener(event=event, **data)
            except Exception:
                log.exception("listener %r for %s raised", listener, event)
