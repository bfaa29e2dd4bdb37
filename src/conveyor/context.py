"""``current_job()``: what a running job knows about itself, and how it steers its fate."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import ConveyorError, Fail, Retry

if TYPE_CHECKING:
    from .app import Conveyor
    from .batches import Batch

_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "conveyor_current_job", default=None
)


@dataclass(slots=True)
class JobContext:
    """The running job: ``id``, ``attempt`` (1-based), ``queue``, ``name``, ``tries``."""

    app: Conveyor
    id: str
    name: str
    queue: str
    attempt: int
    tries: int
    batch_id: str | None = None
    progress_value: float | None = None
    progress_message: str = ""
    _stop_asked: bool = field(default=False, repr=False)

    def release(self, delay: float | None = None) -> NoReturn:
        """Put this job back to run again after ``delay`` seconds (counts as an attempt)."""
        raise Retry(delay=delay, reason="released by the job")

    def fail(self, reason: str = "failed by the job") -> NoReturn:
        """Give up now: no further attempts, straight to the failed store."""
        raise Fail(reason)

    def progress(self, value: float, message: str = "") -> None:
        """Report progress (0-100); shown in the worker's record and the monitor."""
        self.progress_value = max(0.0, min(100.0, float(value)))
        self.progress_message = message
        self.app.events.emit("job_progress", job_id=self.id, name=self.name,
                             progress=self.progress_value, message=message)

    @property
    def batch(self) -> Batch | None:
        """The batch this job belongs to (or whose callback it is), read fresh; None if none.
        ``current_job().batch.cancelled`` lets a long job stop early; ``.add([...])`` adds
        jobs to it."""
        if self.batch_id is None:
            return None
        return self.app.find_batch(self.batch_id)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.tries

    @property
    def stopping(self) -> bool:
        """True once the worker is stopping (a signal, ``--max-jobs``, a restart…): a long
        job may check it, save its place and return (or ``release()``) before the grace
        period runs out."""
        return self._stop_asked

    def ask_to_stop(self) -> None:
        """Called by the worker, from any thread (one attribute write)."""
        self._stop_asked = True

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "queue": self.queue, "attempt": self.attempt,
                "tries": self.tries, "progress": self.progress_value}


def current_job() -> JobContext:
    """The job running in this thread or task; raises outside a job."""
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("current_job() was called outside a running job")
    return ctx


def set_current(ctx: JobContext | None) -> contextvars.Token[JobContext | None]:
    return _current.set(ctx)


def reset_current(token: contextvars.Token[JobContext | None]) -> None:
    _current.reset(token)
