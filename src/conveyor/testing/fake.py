"""A dispatch recorder with assertions, for application tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..jobs import JobDefinition, PreparedJob
from ..records import NewJob

if TYPE_CHECKING:
    from ..app import Conveyor

JobRef = JobDefinition[Any, Any] | str


@dataclass(frozen=True, slots=True)
class RecordedDispatch:
    id: str
    name: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    delay: float
    batch_id: str | None


def _name(job: JobRef) -> str:
    return job if isinstance(job, str) else job.name


class DispatchRecorder:
    def __init__(self, app: Conveyor) -> None:
        self.app = app
        self.dispatched: list[RecordedDispatch] = []

    def record(self, jobs: Sequence[PreparedJob], records: Sequence[NewJob]) -> None:
        for job, record in zip(jobs, records, strict=True):
            self.dispatched.append(RecordedDispatch(
                id=record.id, name=record.name, queue=record.queue, args=tuple(job.args),
                kwargs=dict(job.kwargs), delay=record.available_at - record.created_at,
                batch_id=record.batch_id))

    def record_records(self, records: Sequence[NewJob]) -> None:
        """Jobs dispatched as records (batches, chains): arguments read back from payloads."""
        from ..serialization import decode_payload

        for record in records:
            payload = decode_payload(record.payload, None, self.app.payload_cipher())
            self.dispatched.append(RecordedDispatch(
                id=record.id, name=record.name, queue=record.queue, args=tuple(payload.args),
                kwargs=dict(payload.kwargs), delay=record.available_at - record.created_at,
                batch_id=record.batch_id))

    def of(self, job: JobRef, where: Callable[[RecordedDispatch], bool] | None = None,
           queue: str | None = None) -> list[RecordedDispatch]:
        name = _name(job)
        return [d for d in self.dispatched
                if d.name == name and (queue is None or d.queue == queue)
                and (where is None or where(d))]

    def assert_dispatched(self, job: JobRef, times: int | None = None, *,
                          queue: str | None = None,
                          where: Callable[[RecordedDispatch], bool] | None = None,
                          args: tuple[Any, ...] | None = None) -> None:
        found = self.of(job, where, queue)
        if args is not None:
            found = [d for d in found if d.args == tuple(args)]
        detail = f" on queue {queue!r}" if queue else ""
        if times is None:
            assert found, f"{_name(job)} was not dispatched{detail}; dispatched: {self._names()}"
        else:
            assert len(found) == times, (
                f"{_name(job)} was dispatched {len(found)} time(s){detail}, expected {times}")

    def assert_not_dispatched(self, job: JobRef, *, queue: str | None = None) -> None:
        found = self.of(job, queue=queue)
        assert not found, f"{_name(job)} was dispatched {len(found)} time(s), expected none"

    def assert_count(self, count: int) -> None:
        assert len(self.dispatched) == count, (
            f"{len(self.dispatched)} job(s) dispatched, expected {count}: {self._names()}")

    def assert_nothing_dispatched(self) -> None:
        self.assert_count(0)

    def assert_dispatched_on_queue(self, job: JobRef, queue: str) -> None:
        self.assert_dispatched(job, queue=queue)

    def assert_dispatched_with_batch(self, job: JobRef, batch_id: str | None = None) -> None:
        found = [d for d in self.of(job) if d.batch_id and (batch_id in (None, d.batch_id))]
        assert found, f"{_name(job)} was not dispatched in a batch"

    def _names(self) -> list[str]:
        return [d.name for d in self.dispatched]
