"""Redis store: each state transition one Lua script (atomic), queues taken in strict
order in one round trip, leases in a sorted set scored by expiry, and a blocking pop on a
per-queue marker list to wake idle workers within milliseconds.

The fencing token is ``<random hex>/<queue>``: transitions out of running arrive with
only (id, token), and the token says which queue's keys (which Cluster slot) hold the job.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from ...errors import StoreError
from ...records import Failure, Lease, NewJob, RecoveryResult, Release, ReservedJob
from ..base import Capabilities
from .admin import RedisAdmin
from .batches import RedisBatches

_BLOCK_SLICE = 1.0
_NEVER = float("inf")
_SLOT_SLICE = 0.05  # single_slot mode: other queues' markers are looked at this often
_PIPELINE_CHUNKS = 8  # insert chunks per round trip: bounds client memory, keeps it busy


#: inserts of up to this many jobs poll for their reply in a burst (a dispatch, a few)
_POLLED_INSERT = 8


def _queue_of(token: str) -> str | None:
    _, slash, queue = token.partition("/")
    return queue if slash and queue else None


def _utf8(text: str) -> str:
    """An exception text as storable UTF-8: a lone surrogate must not make a failure
    impossible to record."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _float(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


def _tries(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


class RedisBackend(RedisBatches, RedisAdmin):
    capabilities = Capabilities(transactional_enqueue=False, native_notify=True,
                                shared_across_hosts=True, persistent=True, batches=True)

    def __init__(self, url: str, *, table_prefix: str = "") -> None:
        super().__init__(url, table_prefix=table_prefix)
        if self.per_queue_calls:  # batch keys and queue keys live in different slots
            self.capabilities = replace(self.capabilities, batches=False)

    # -- inserting --------------------------------------------------------------------
    def jobs_insert(self, records: Sequence[NewJob], *, connection: Any = None) -> None:
        if connection is not None:
            raise StoreError("the Redis store cannot enqueue inside a caller's transaction")
        if not records:
            return
        if len(records) > 1 and len({r.id for r in records}) != len(records):
            raise StoreError("jobs_insert: the same job id appears twice in one batch")
        if not self.per_queue_calls and len(records) <= self.options.chunk:
            # the common case, a dispatch: one EVALSHA, one round trip (polled for in a
            # burst when small: a bigger insert keeps the server past a poll's budget)
            ((script, group, args),) = self._insert_calls(records)
            self.run("insert", script, group, *args, burst=len(records) <= _POLLED_INSERT)
            return
        if self.per_queue_calls:  # the queue set lives in another slot: a command of its own
            # (names checked first: a refused name must not reach the set)
            queues = [self.keys.checked(q) for q in dict.fromkeys(r.queue for r in records)]
            self.pipeline_scripts("insert", [("SADD", (self.keys.queues, *queues))], [])
        # chunk k+1 is built while Redis stores chunk k (without a lane: windows of chunks)
        self.stream_scripts("insert", (call for chunk in self._chunks(records)
                                       for call in self._insert_calls(chunk)),
                            _PIPELINE_CHUNKS)

    def _chunks(self, records: Sequence[NewJob]) -> Iterator[Sequence[NewJob]]:
        size = self.options.chunk
        for start in range(0, len(records), size):
            yield records[start:start + size]

    def _insert_calls(self, chunk: Sequence[NewJob]
                      ) -> list[tuple[str, Sequence[str], tuple[Any, ...]]]:
        by_group: list[tuple[str, Sequence[str], tuple[Any, ...]]] = []
        for group in self.groups([r.queue for r in chunk]):
            index = {q: i + 1 for i, q in enumerate(group)}
            args: list[Any] = [os.urandom(8).hex(), self.options.marker_cap,
                               "0" if self.per_queue_calls else "1"]
            for r in chunk:
                qi = index.get(r.queue)
                if qi is not None:
                    args.extend((qi, r.id, r.available_at, r.name, r.payload, r.created_at,
                                 "" if r.max_tries is None else r.max_tries, r.batch_id or ""))
            by_group.append(("insert", group, tuple(args)))
        return by_group

    # -- reserving --------------------------------------------------------------------
    def jobs_reserve(
        self, queues: Sequence[str], limit: int, lease: float, worker: str, now: float
    ) -> list[ReservedJob]:
        if limit <= 0 or not queues:
            return []
        expires = now + lease
        token = os.urandom(8).hex()
        reserved: list[ReservedJob] = []
        for group in self.groups(queues):  # one group (one round trip) on a single server
            rows = self.run("reserve", "reserve", group, now, expires, token, worker,
                            limit - len(reserved))
            reserved.extend(self._reserved(rows, group, token, now, expires))
            if len(reserved) >= limit:
                break
        return reserved

    @staticmethod
    def _reserved(rows: Sequence[Any], group: Sequence[str], token: str, now: float,
                  expires: float) -> list[ReservedJob]:
        reserved: list[ReservedJob] = []
        for i in range(0, len(rows), 9):
            (qi, job_id, attempts, name, payload, max_tries, available_at, created_at,
             batch_id) = rows[i:i + 9]
            queue = group[int(qi) - 1]
            reserved.append(ReservedJob(
                id=job_id, queue=queue, name=name, payload=payload,
                attempts=int(attempts), max_tries=_tries(max_tries),
                token=f"{token}/{queue}", available_at=_float(available_at),
                created_at=_float(created_at), reserved_at=now,
                lease_expires_at=expires, batch_id=batch_id or None))
        return reserved

    def jobs_ack_and_reserve(
        self, completes: Sequence[Lease], releases: Sequence[Release],
        failures: Sequence[Failure], queues: Sequence[str], limit: int, lease: float,
        worker: str, now: float,
    ) -> list[ReservedJob]:
        """The acks' scripts and the reserve script in one pipeline: one round trip. With
        one call per queue (Cluster, single-slot) the calls cannot share a pipeline."""
        if self.per_queue_calls or limit <= 0 or not queues:
            return super().jobs_ack_and_reserve(completes, releases, failures, queues, limit,
                                                lease, worker, now)
        expires = now + lease
        token = os.urandom(8).hex()
        (group,) = self.groups(queues)
        # the completes of the reserving queues ride in the reserve's own script call (one
        # script a round); releases, failures and any other completes go before it
        index = {q: i for i, q in enumerate(group, start=1)}
        riding: list[Any] = []
        apart: list[Lease] = []
        for done in completes:
            qi = index.get(_queue_of(done.token) or "")
            if qi is None:
                apart.append(done)
            else:
                riding += (qi, done.id, done.token)
        calls = [*self._complete_calls(apart), *self._release_calls(releases),
                 *self._fail_calls(failures)]
        calls.append(("complete_reserve", group,
                      (len(riding) // 3, *riding, now, expires, token, worker, limit)))
        # behind a round that filled every free slot (a backlog, so jobs keep coming), the
        # reply is polled for like a dispatch's in a burst; an idle worker sleeps on it
        backlog = getattr(self._local, "backlog", False)
        rows = self.pipeline_scripts("ack and reserve", [], calls, burst=backlog)[-1]
        reserved = self._reserved(rows, group, token, now, expires)
        self._local.backlog = len(reserved) >= limit
        return reserved

    # -- transitions out of running (token-checked in the scripts) ----------------------
    def _by_queue(self, items: Sequence[Any]) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = defaultdict(list)
        for item in items:
            queue = _queue_of(item.token)
            if queue is not None:  # a token we never issued cannot match anything
                grouped[queue].append(item)
        return grouped

    def _transition_calls(self, script: str, items: Sequence[Any], head: tuple[Any, ...],
                          fields: Any) -> list[tuple[str, Sequence[str], tuple[Any, ...]]]:
        if not items:
            return []
        grouped = self._by_queue(items)
        calls: list[tuple[str, Sequence[str], tuple[Any, ...]]] = []
        for group in self.groups(list(grouped)):
            args: list[Any] = list(head)
            for qi, queue in enumerate(group, start=1):
                for item in grouped[queue]:
                    args.append(qi)
                    args.extend(fields(item))
            calls.append((script, group, tuple(args)))
        return calls

    def _transition(self, calls: list[tuple[str, Sequence[str], tuple[Any, ...]]]) -> list[Any]:
        return [self.run(script, script, group, *args) for script, group, args in calls]

    def _complete_calls(self, leases: Sequence[Lease]) -> list[Any]:
        return self._transition_calls("complete", leases, (), lambda x: (x.id, x.token))

    def _release_calls(self, items: Sequence[Release]) -> list[Any]:
        return self._transition_calls("release", items, (self.options.marker_cap,),
                                      lambda x: (x.id, x.token, x.available_at))

    def _fail_calls(self, items: Sequence[Failure]) -> list[Any]:
        return self._transition_calls(
            "fail", items, (self.display_url,),
            lambda x: (x.id, x.token, _utf8(x.exception), x.failed_at))

    def jobs_complete(self, leases: Sequence[Lease]) -> int:
        return sum(int(n) for n in self._transition(self._complete_calls(leases)))

    def jobs_release(self, items: Sequence[Release]) -> int:
        return sum(int(n) for n in self._transition(self._release_calls(items)))

    def jobs_fail(self, items: Sequence[Failure]) -> int:
        return sum(int(n) for n in self._transition(self._fail_calls(items)))

    def jobs_extend_lease(self, leases: Sequence[Lease], lease: float, now: float) -> list[str]:
        results = self._transition(
            self._transition_calls("extend", leases, (now + lease,), lambda x: (x.id, x.token)))
        held = {job_id for ids in results for job_id in ids}
        return [x.id for x in leases if x.id in held]

    def jobs_recover_expired(
        self, now: float, default_tries: int, limit: int = 1000
    ) -> RecoveryResult:
        result = RecoveryResult()
        for group in self.groups(self.known_queues()):
            left = limit - len(result.released) - len(result.failed)
            if left <= 0:
                break
            released, failed = self.run("lease recovery", "recover", group, now,
                                        default_tries, left, self.display_url,
                                        self.options.marker_cap)
            result.released.extend(released)
            result.failed.extend(failed)
        return result

    def jobs_get(self, job_id: str) -> ReservedJob | None:
        queues = self.known_queues()
        fields = ("name", "payload", "attempts", "max_tries", "token", "available_at",
                  "created_at", "reserved_at", "lease_expires_at", "batch_id")
        with self._errors("jobs_get"):
            pipe = self.client.pipeline(transaction=False)
            for queue in queues:
                pipe.hmget(self.keys.job(queue, job_id), fields)
            rows = pipe.execute()
        for queue, row in zip(queues, rows, strict=True):
            if row[0] is None:
                continue
            (name, payload, attempts, max_tries, token, available_at, created_at, reserved_at,
             lease_expires_at, batch_id) = row
            return ReservedJob(
                id=job_id, queue=queue, name=name, payload=payload or "",
                attempts=int(attempts or 0), max_tries=_tries(max_tries), token=token or "",
                available_at=_float(available_at), created_at=_float(created_at),
                reserved_at=_float(reserved_at), lease_expires_at=_float(lease_expires_at),
                batch_id=batch_id or None)
        return None

    # -- waiting ----------------------------------------------------------------------
    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on the queues' marker lists (pushed by inserts, releases, retries).

        A marker carries the earliest ``available_at`` it announces, and an idle wait
        looks up the next scheduled job once, so a delayed job starts on time without
        polling; a wake-up costs no extra round trip.
        """
        return self._wait(queues, timeout, None)[0]

    def wait_and_reserve(
        self, queues: Sequence[str], timeout: float, limit: int, lease: float, worker: str,
        now: float,
    ) -> tuple[bool, list[ReservedJob]]:
        """The wait with the reserve behind it in the same packet: Redis runs the reserve
        as soon as the blocking pop returns, and the woken worker gets its jobs with the
        wake-up, one round trip instead of two (see wait_reserve.lua)."""
        if self.per_queue_calls or limit <= 0 or not queues:
            return super().wait_and_reserve(queues, timeout, limit, lease, worker, now)
        return self._wait(queues, timeout, _Claim(limit, lease, worker, now + timeout))

    def _wait(self, queues: Sequence[str], timeout: float, claim: _Claim | None
              ) -> tuple[bool, list[ReservedJob]]:
        if not queues:
            time.sleep(timeout)
            return False, []
        state = self._waiter_state()
        markers = [self.keys.queue(q, "marker") for q in queues]
        with self._errors("wait"):
            if state.look:
                state.next_due = min(state.next_due, self._next_scheduled(queues))
                state.look = False
            deadline = time.monotonic() + timeout
            while True:
                now = time.time()
                if state.next_due <= now + 0.001:
                    state.next_due, state.look = _NEVER, True  # more may be scheduled
                    return True, []
                left = min(deadline - time.monotonic(), state.next_due - now)
                if left <= 0.001:
                    state.look = True  # idle: look up scheduled jobs again next time
                    return False, []
                reserved: list[ReservedJob] = []
                if claim is None:
                    marker = self._pop_marker(markers, left)
                else:
                    marker, reserved = self._pop_and_reserve(markers, left, queues, claim)
                if marker is not None:
                    at = _float(marker)
                    if at > now:  # a delayed job: this wake-up is early, remember when
                        state.next_due = min(state.next_due, at)
                if marker is not None or reserved:
                    return True, reserved

    def _pop_and_reserve(self, markers: list[str], left: float, queues: Sequence[str],
                         claim: _Claim) -> tuple[str | None, list[ReservedJob]]:
        """BLPOP and the wait_reserve script in one packet; through the pool (the pop
        alone) when the lane fails."""
        (group,) = self.groups(queues)
        token = os.urandom(8).hex()
        replies = self.lane_commands(
            [("BLPOP", *markers, min(left, _BLOCK_SLICE))],
            [("wait_reserve", group, (claim.bound, claim.lease, token, claim.worker,
                                      claim.limit))])
        if replies is None:
            return self._pop_marker(markers, left), []
        popped, (now, expires, rows) = replies
        marker = None if popped is None else str(popped[1])
        return marker, self._reserved(rows, group, token, float(now), float(expires))

    def _waiter_state(self) -> _WaiterState:
        state: _WaiterState | None = getattr(self._local, "waiter", None)
        if state is None:
            state = self._local.waiter = _WaiterState()
        return state

    def _next_scheduled(self, queues: Sequence[str]) -> float:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zrangebyscore(self.keys.queue(queue, "wait"), f"({now!r}", "+inf",
                               start=0, num=1, withscores=True)
        return min([_NEVER, *(float(rows[0][1]) for rows in pipe.execute() if rows)])

    def _pop_marker(self, markers: list[str], left: float) -> str | None:
        if not self.per_queue_calls or len(markers) == 1:
            # in slices of at most 1 s, well inside the socket timeout
            popped = self.client.blpop(markers, timeout=min(left, _BLOCK_SLICE))
            return None if popped is None else str(popped[1])
        # one slot per command: look at every marker, then block briefly on the first
        pipe = self.client.pipeline(transaction=False)
        for marker in markers[1:]:
            pipe.lpop(marker)
        found = [str(v) for v in pipe.execute() if v is not None]
        if found:
            return min(found, key=_float)
        popped = self.client.blpop(markers[:1], timeout=min(left, _SLOT_SLICE))
        return None if popped is None else str(popped[1])


class _Claim(NamedTuple):
    """What a wait that reserves takes: up to ``limit`` jobs for ``worker``, and no job
    due later than ``bound`` by the caller's clock."""

    limit: int
    lease: float
    worker: str
    bound: float


class _WaiterState:
    """Per waiting thread: when the next scheduled job falls due, and whether to look."""

    def __init__(self) -> None:
        self.next_due = _NEVER
        self.look = True
