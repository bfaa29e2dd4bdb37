"""The ``sync`` connection: a dispatched job runs at once in the caller, tries included.

Delays and backoff are not waited for; the final error is raised to the caller, as a
"sync" queue driver does. Timeouts are not enforced inline.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..records import NewJob, ReservedJob
from .executor import call_async, call_sync, prepare, settle
from .policy import WorkerDefaults

if TYPE_CHECKING:
    from ..app import Conveyor


def run_inline(app: Conveyor, record: NewJob) -> None:
    s = app.settings
    from ..retry import parse_backoff

    defaults = WorkerDefaults(s.worker_tries, parse_backoff(s.worker_backoff), s.worker_timeout,
                              s.worker_lease)
    attempt = 0
    while True:
        attempt += 1
        now = app.clock()
        reserved = ReservedJob(
            id=record.id, queue=record.queue, name=record.name, payload=record.payload,
            attempts=attempt, max_tries=record.max_tries, token="inline",
            available_at=record.available_at, created_at=record.created_at, reserved_at=now,
            lease_expires_at=now, batch_id=record.batch_id,
        )
        execution = prepare(app, reserved, defaults)
        if execution.error is None:
            if execution.is_async:
                asyncio.run(call_async(execution))
            else:
                call_sync(execution)
        decision, _ = settle(execution, app.clock())
        if decision.action == "complete":
            return
        if decision.action == "fail":
            assert execution.error is not None
            raise execution.error
