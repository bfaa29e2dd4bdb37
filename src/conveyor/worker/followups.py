"""What a worker does after an attempt of a batch job or a chain link, BEFORE it acks it.

Mark-then-ack: the outcome is recorded in the batch (counted once per job), the next chain
link or the due callbacks inserted (once per key), and only then the job is acked. A worker
that dies in between leaves the job to run again; its second mark changes nothing and its
callbacks are inserted under the same keys, so nothing is counted or fired twice. Releases
for a retry record nothing: the job has not ended yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..batches import BatchOptions, fire_due
from ..chains import advance, fire_catch
from ..errors import StoreError
from ..records import BatchMark, BatchOutcome, BatchRecord, Failure, Lease, Release
from ..serialization import decode_payload
from .logs import LOGGER

if TYPE_CHECKING:
    from ..app import Conveyor
    from .executor import Execution

_STATE_TTL = 1.0  # seconds a worker trusts its copy of a batch's state (cancelled or not)


@dataclass(slots=True)
class Ended:
    """One attempt that ended, as the follow-ups need it."""

    job_id: str
    batch_id: str | None
    meta: dict[str, Any]
    outcome: BatchOutcome | None  # None: released for a retry


def ended(execution: Execution, op: Lease | Release | Failure) -> Ended | None:
    """The follow-up work of an attempt, or None when it has none."""
    meta = execution.payload.meta if execution.payload is not None else {}
    batch_id = execution.reserved.batch_id
    if batch_id is None and "chain" not in meta:
        return None
    if isinstance(op, Release):
        return None
    if execution.skipped:
        outcome = BatchOutcome.CANCELLED
    elif isinstance(op, Lease):
        outcome = BatchOutcome.SUCCEEDED
    else:
        outcome = BatchOutcome.FAILED
    return Ended(execution.reserved.id, batch_id, meta, outcome)


class Followups:
    """Per worker: a short-lived cache of batch states and of callback keys already fired."""

    def __init__(self, app: Conveyor) -> None:
        self.app = app
        self.log = logging.getLogger(LOGGER)
        self._states: dict[str, tuple[float, BatchRecord | None]] = {}
        self._fired: set[str] = set()

    def batch_state(self, batch_id: str) -> BatchRecord | None:
        now = time.monotonic()
        cached = self._states.get(batch_id)
        if cached is None or now - cached[0] > _STATE_TTL:
            record = self.app.backend.batch_get(batch_id)
            self._states[batch_id] = (now, record)
            if len(self._states) > 10_000:
                self._states.clear()
            return record
        return cached[1]

    def cancelled(self, batch_id: str | None) -> bool:
        """Skip this job? Only when its batch exists and was cancelled."""
        if batch_id is None or not self.app.backend.capabilities.batches:
            return False
        state = self.batch_state(batch_id)
        return state is not None and state.cancelled

    def run(self, items: list[Ended]) -> None:
        """Idempotent: the caller retries it whole while the store is in trouble."""
        app = self.app
        for item in items:
            chain = item.meta.get("chain")
            if isinstance(chain, dict):
                if item.outcome is BatchOutcome.SUCCEEDED:
                    advance(app, chain, item.job_id, item.batch_id)
                elif item.outcome is BatchOutcome.FAILED:
                    fire_catch(app, chain)
        marks = [BatchMark(i.batch_id, i.job_id, i.outcome) for i in items
                 if i.batch_id is not None and i.outcome is not None]
        if not marks:
            return
        records = app.backend.batch_record(marks, app.clock())
        failed_batches = {m.batch_id for m in marks if m.outcome is BatchOutcome.FAILED}
        for batch_id, record in records.items():
            if (batch_id in failed_batches and not record.cancelled
                    and not BatchOptions.decode(record.options).allow_failures):
                app.backend.batch_cancel(batch_id, app.clock())
                refreshed = app.backend.batch_get(batch_id)
                record = refreshed if refreshed is not None else record
                self.log.info("batch %s cancelled after a job failed (no allow_failures)",
                              batch_id)
            self._states[batch_id] = (time.monotonic(), record)
            for key in fire_due(app, record, self._fired):
                self.log.info("batch %s: %s callback dispatched", batch_id, key)

    def run_retrying(self, items: list[Ended], give_up: Callable[[], bool]) -> bool:
        """``run`` until it succeeds (the store may be away for a while) or ``give_up()``;
        False when given up: the caller must then not ack those jobs."""
        delay = 0.05
        while True:
            try:
                self.run(items)
                return True
            except StoreError as exc:
                self.log.warning("store trouble during batch bookkeeping: %s", exc,
                                 extra={"fields": {"event": "store_error",
                                                   "during": "batch bookkeeping"}})
                if give_up():
                    return False
                time.sleep(delay)  # back off while the store is unreachable
                delay = min(5.0, delay * 2)

    def lost(self, job_ids: list[str]) -> None:
        """Jobs failed as "worker lost" by lease recovery: they ended without a worker to
        record them, so the recovering worker does it from their failed rows."""
        items: list[Ended] = []
        for job_id in job_ids:
            failed = self.app.backend.failed_get(job_id)
            if failed is None:
                continue
            try:
                meta = decode_payload(failed.payload, None, self.app.payload_cipher()).meta
            except Exception:  # a payload that does not decode has no follow-ups
                continue
            batch_id = meta.get("batch")
            if isinstance(batch_id, str) or "chain" in meta:
                items.append(Ended(job_id, batch_id if isinstance(batch_id, str) else None,
                                   meta, BatchOutcome.FAILED))
        if items:
            self.run(items)
