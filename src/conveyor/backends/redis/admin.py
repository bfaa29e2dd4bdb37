"""The Redis store's failed jobs, control keys, worker registry and monitoring reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ...records import FailedRecord, MetricSample, QueueStats, WorkerInfo
from .connection import RedisBase
from .risks import store_risks

_FAILED_FIELDS = ("queue", "name", "payload", "exception", "failed_at", "attempts",
                  "connection")


class RedisAdmin(RedisBase):
    # -- failed store ------------------------------------------------------------------
    def _failed_queues(self, queue: str | None) -> list[str]:
        return [queue] if queue else self.known_queues()

    def failed_list(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[FailedRecord]:
        queues = self._failed_queues(queue)
        if limit <= 0 or not queues:
            return []
        with self._errors("failed_list"):
            pipe = self.client.pipeline(transaction=False)
            for q in queues:  # each queue's newest offset+limit, merged here
                pipe.zrevrange(self.keys.queue(q, "failed"), 0, offset + limit - 1,
                               withscores=True)
            newest = sorted(((score, job_id, q) for q, rows in zip(queues, pipe.execute(),
                                                                    strict=True)
                             for job_id, score in rows), reverse=True)
            page = newest[offset:offset + limit]
            pipe = self.client.pipeline(transaction=False)
            for _, job_id, q in page:
                pipe.hmget(self.keys.failed(q, job_id), _FAILED_FIELDS)
            rows = pipe.execute()
        return [self._failed(job_id, row) for (_, job_id, _), row in zip(page, rows, strict=True)
                if row[0] is not None]

    def _failed(self, job_id: str, row: Sequence[str | None]) -> FailedRecord:
        queue, name, payload, exception, failed_at, attempts, connection = row
        return FailedRecord(id=job_id, connection=connection or "", queue=queue or "",
                            name=name or "", payload=payload or "", exception=exception or "",
                            failed_at=float(failed_at or 0), attempts=int(attempts or 0))

    def failed_get(self, job_id: str) -> FailedRecord | None:
        queues = self.known_queues()
        with self._errors("failed_get"):
            pipe = self.client.pipeline(transaction=False)
            for q in queues:
                pipe.hmget(self.keys.failed(q, job_id), _FAILED_FIELDS)
            rows = pipe.execute()
        for row in rows:
            if row[0] is not None:
                return self._failed(job_id, row)
        return None

    def failed_retry(
        self, ids: Iterable[str] | None, now: float, queue: str | None = None
    ) -> list[str]:
        wanted = None if ids is None else list(dict.fromkeys(ids))
        if wanted == []:
            return []
        tail = ("all",) if wanted is None else ("ids", *wanted)
        retried: list[str] = []
        for group in self.groups(self._failed_queues(queue)):
            retried.extend(self.run("failed_retry", "failed_retry", group, now,
                                    self.options.marker_cap, *tail))
        if wanted is not None:
            order = {job_id: i for i, job_id in enumerate(wanted)}
            retried.sort(key=order.__getitem__)
        return retried

    def failed_forget(self, job_id: str) -> bool:
        return any(self.run("failed_forget", "failed_forget", group, job_id)
                   for group in self.groups(self.known_queues()))

    def failed_flush(self, older_than: float | None = None) -> int:
        bound = "" if older_than is None else older_than
        return sum(int(self.run("failed_flush", "failed_flush", group, bound))
                   for group in self.groups(self.known_queues()))

    # -- control --------------------------------------------------------------------------
    def queue_pause(self, queue: str) -> None:
        with self._errors("queue_pause"):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.keys.queue(queue, "paused"), "1")
            pipe.sadd(self.keys.paused, queue)
            pipe.execute()

    def queue_resume(self, queue: str) -> None:
        with self._errors("queue_resume"):
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.keys.queue(queue, "paused"))
            pipe.srem(self.keys.paused, queue)
            pipe.execute()
            # wake workers: jobs may have piled up while the queue was paused
            self.client.lpush(self.keys.queue(queue, "marker"), "0")
            self.client.ltrim(self.keys.queue(queue, "marker"), 0,
                              self.options.marker_cap - 1)

    def queues_paused(self) -> set[str]:
        with self._errors("queues_paused"):
            return {str(q) for q in self.client.smembers(self.keys.paused)}

    def queue_clear(self, queues: Sequence[str]) -> int:
        return sum(int(self.run("queue_clear", "clear", group))
                   for group in self.groups(queues))

    def restart_signal_write(self, stamp: float) -> None:
        with self._errors("restart_signal_write"):
            self.client.set(self.keys.restart, repr(stamp))

    def restart_signal_read(self) -> float | None:
        with self._errors("restart_signal_read"):
            value = self.client.get(self.keys.restart)
        return None if value is None else float(value)

    def worker_register(self, worker: WorkerInfo) -> None:
        self.worker_heartbeat(worker)

    def worker_heartbeat(self, worker: WorkerInfo) -> None:
        with self._errors("worker_heartbeat"):
            self.client.hset(self.keys.workers, worker.name, json.dumps(worker.to_dict()))

    def worker_list(self) -> list[WorkerInfo]:
        with self._errors("worker_list"):
            rows = self.client.hgetall(self.keys.workers)
        return [WorkerInfo.from_dict(json.loads(rows[name])) for name in sorted(rows)]

    def worker_remove(self, name: str) -> None:
        with self._errors("worker_remove"):
            self.client.hdel(self.keys.workers, name)

    # -- monitoring ------------------------------------------------------------------------
    def queue_stats(self, now: float) -> list[QueueStats]:
        paused = self.queues_paused()
        queues = sorted(set(self.known_queues()) | paused)
        with self._errors("queue_stats"):
            pipe = self.client.pipeline(transaction=False)
            for q in queues:
                wait = self.keys.queue(q, "wait")
                pipe.zcount(wait, "-inf", repr(now))
                pipe.zcount(wait, f"({now!r}", "+inf")
                pipe.zcard(self.keys.queue(q, "run"))
                pipe.zcard(self.keys.queue(q, "failed"))
                pipe.zrange(wait, 0, 0, withscores=True)
            raw = pipe.execute()
        stats: list[QueueStats] = []
        for i, q in enumerate(queues):
            available, scheduled, running, failed, first = raw[i * 5:i * 5 + 5]
            if not (available or scheduled or running or failed or q in paused):
                continue
            oldest = first[0][1] if available and first else None
            stats.append(QueueStats(q, int(available), int(scheduled), int(running),
                                    int(failed), oldest, q in paused))
        return stats

    @staticmethod
    def _metric_field(s: MetricSample) -> str:
        return json.dumps([s.minute, s.queue, s.name, s.worker])

    def metrics_record(self, samples: Sequence[MetricSample]) -> None:
        if not samples:
            return
        mapping: dict[str | bytes | bytearray | memoryview[int] | int | float,
                      str | bytes | bytearray | memoryview[int] | int | float] = {}
        minutes: dict[str, float] = {}
        for s in samples:
            field = self._metric_field(s)
            mapping[field] = json.dumps([s.processed, s.failed, s.released, s.timed_out,
                                         s.runtime_sum, s.runtime_max, s.wait_sum, s.wait_max,
                                         s.histogram])
            minutes[field] = s.minute
        with self._errors("metrics_record"):
            pipe = self.client.pipeline(transaction=True)  # both keys share the {#} slot
            pipe.hset(self.keys.metrics, mapping=mapping)
            pipe.zadd(self.keys.metrics_minutes, minutes)
            pipe.execute()

    def metrics_read(self, since: float, until: float | None = None) -> list[MetricSample]:
        upper = "+inf" if until is None else f"({until!r}"
        with self._errors("metrics_read"):
            fields = [str(f) for f in self.client.zrangebyscore(self.keys.metrics_minutes,
                                                                 repr(since), upper)]
            values = self.client.hmget(self.keys.metrics, fields) if fields else []
        samples: list[MetricSample] = []
        for field, value in zip(fields, values, strict=True):
            if value is None:
                continue
            minute, queue, name, worker = json.loads(field)
            (processed, failed, released, timed_out, runtime_sum, runtime_max, wait_sum,
             wait_max, histogram) = json.loads(value)
            samples.append(MetricSample(int(minute), queue, name, worker, int(processed),
                                        int(failed), int(released), int(timed_out),
                                        float(runtime_sum), float(runtime_max),
                                        float(wait_sum), float(wait_max),
                                        [int(v) for v in histogram]))
        samples.sort(key=MetricSample.key)
        return samples

    def metrics_prune(self, older_than: float) -> int:
        return int(self.run("metrics_prune", "metrics_prune", [], older_than))

    # -- operations -----------------------------------------------------------------------
    def store_risks(self) -> list[str]:
        """Settings of this Redis server under which jobs can be lost (see docs/redis.md)."""
        with self._errors("store_risks"):
            if not self.options.cluster:
                return store_risks(self.client)
            risks: list[str] = []
            cluster: Any = self.client
            for node in cluster.get_primaries():  # each primary holds some of the jobs
                node_risks = store_risks(cluster.get_redis_connection(node))
                risks.extend(f"{node.host}:{node.port}: {r}" for r in node_risks)
            return risks
