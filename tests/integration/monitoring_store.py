"""A store with known contents for the monitor, health and Prometheus tests.

Time is fixed (``NOW``) through the app's injectable clock; metric samples and worker
records are written directly through the store protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from click.testing import CliRunner, Result

from conveyor import Conveyor
from conveyor.cli.context import CliContext
from conveyor.cli.main import cli
from conveyor.records import RUNTIME_BUCKETS, Failure, MetricSample, NewJob, WorkerInfo

MINUTE = 1_900_000_020  # a minute boundary
NOW = MINUTE + 30.0
TRACEBACK = ('Traceback (most recent call last):\n  File "shop/jobs.py", line 12, in charge\n'
             "    raise ValueError('card declined')\nValueError: card declined")


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_job(n: int, queue: str, at: float, name: str = "shop.send") -> NewJob:
    return NewJob(id=f"00000000-0000-7000-8000-{n:012d}", queue=queue, name=name,
                  payload=f'{{"v":1,"job":"{name}","args":[{n}],"kwargs":{{}},"meta":{{}}}}',
                  available_at=at, created_at=at - 1, max_tries=3)


def histogram(**counts: int) -> list[int]:
    """histogram(b6=5, b8=1): counts per bucket index."""
    h = [0] * (len(RUNTIME_BUCKETS) + 1)
    for key, value in counts.items():
        h[int(key[1:])] = value
    return h


@dataclass
class Contents:
    failed_ids: list[str] = field(default_factory=list)
    running_id: str = ""


def populate(app: Conveyor) -> Contents:
    """emails: 3 waiting (oldest 100 s), 1 scheduled, 1 running, 2 failed;
    default: 1 waiting; images: 1 waiting, no worker; reports: paused, 1 waiting.
    Metrics: emails/shop.send 10 attempts in the last two minutes (2 failed, 3 released,
    1 timed out), default/shop.report 4 attempts, and 5 old attempts two hours ago.
    Workers: w1 (live, 123.4 MB) and w-dead (heartbeat 1000 s ago)."""
    b = app.backend
    contents = Contents()
    b.jobs_insert([new_job(1, "emails", NOW - 500), new_job(2, "emails", NOW - 400)])
    reserved = b.jobs_reserve(["emails"], 2, 30.0, "w1", NOW - 300)
    b.jobs_fail([Failure(r.id, r.token, TRACEBACK, NOW - 20 + i)
                 for i, r in enumerate(reserved)])
    contents.failed_ids = [r.id for r in reserved]
    b.jobs_insert([new_job(3, "emails", NOW - 200)])
    (running,) = b.jobs_reserve(["emails"], 1, 30.0, "w1", NOW - 3)
    contents.running_id = running.id
    b.jobs_insert([new_job(4, "emails", NOW - 100), new_job(5, "emails", NOW - 50),
                   new_job(6, "emails", NOW - 10), new_job(7, "emails", NOW + 60),
                   new_job(8, "default", NOW - 5, "shop.report"),
                   new_job(9, "images", NOW - 30, "shop.resize"),
                   new_job(10, "reports", NOW - 30, "shop.report")])
    b.queue_pause("reports")
    b.metrics_record([
        MetricSample(MINUTE, "emails", "shop.send", "w1", processed=6, failed=1, released=2,
                     timed_out=1, runtime_sum=0.85, runtime_max=0.45, wait_sum=3.0, wait_max=2.0,
                     histogram=histogram(b6=5, b8=1)),
        MetricSample(MINUTE - 60, "emails", "shop.send", "w1", processed=4, failed=1,
                     released=1, runtime_sum=0.54, runtime_max=0.3, wait_sum=1.0, wait_max=0.5,
                     histogram=histogram(b6=3, b8=1)),
        MetricSample(MINUTE, "default", "shop.report", "w2", processed=4, runtime_sum=12.0,
                     runtime_max=3.0, wait_sum=0.4, wait_max=0.2, histogram=histogram(b11=4)),
        MetricSample(MINUTE - 7200, "emails", "shop.send", "w1", processed=5, failed=5,
                     runtime_sum=0.05, runtime_max=0.01, histogram=histogram(b3=5)),
    ])
    b.worker_heartbeat(WorkerInfo(
        "w1", "web-1", 4242, ["emails", "default"], 4, NOW - 600, NOW - 5,
        info={"processed": 14, "failed": 2, "memory_mb": 123.4, "lease": 30.0,
              "current": [{"id": running.id, "name": "shop.send", "queue": "emails",
                           "attempt": 1, "started": NOW - 3, "progress": 40.0}]}))
    b.worker_heartbeat(WorkerInfo("w-dead", "web-2", 1, ["images"], 1, NOW - 5000, NOW - 1000,
                                  info={"lease": 30.0}))
    return contents


def run_cli(app: Conveyor, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=CliContext(None, None, _app=app),
                              catch_exceptions=False)
