"""The worker: fetcher, executor, completer, heartbeat and maintenance around one loop.

The main thread owns the store's job transitions: it acks what finished and reserves up
to the free slots in one round, then waits on a single inbox fed by the job threads, the
store's waiter (notify / poll) and signals. Sync jobs run on a thread pool, async jobs on
one event loop thread. At ``--concurrency 1`` a sync job runs on the main thread itself:
two thread hand-offs a job fewer (on SQLite that nearly doubles the drain rate); the
watchdog and a grace timer then act for the blocked main thread (``_on_stuck``,
``_grace_over``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConveyorError, JobTimeout, StoreError
from ..monitoring.metrics import MetricsRecorder
from ..records import Failure, Lease, Release, ReservedJob
from .executor import Execution, call_async, call_sync, prepare, settle
from .followups import Ended, Followups, ended
from .logs import LOGGER, log_job
from .options import EXIT_OK, EXIT_STUCK, WorkerOptions
from .services import _WAKE, MemoryGauge, WorkerServices
from .threads import JobThreads
from .watchdog import Watch, Watchdog

if TYPE_CHECKING:
    from ..app import Conveyor

_STORE_RETRY_MAX = 5.0
_OWN_WAIT_SLICE = 0.25  # an idle inline worker looks at its inbox (signals) this often
_MEMORY_EVERY = 0.1  # seconds between two reads of the RSS for --memory (a syscall each)


@dataclass(slots=True)
class Outcomes:
    """Finished attempts waiting to be written (with the next reserve, or on a flush)."""

    completes: list[Lease] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def extend(self, other: Outcomes) -> None:
        self.completes.extend(other.completes)
        self.releases.extend(other.releases)
        self.failures.extend(other.failures)


class Worker(WorkerServices):
    def __init__(self, app: Conveyor, options: WorkerOptions) -> None:
        self.app = app
        self.opts = options
        self.backend = app.backend
        self.log = logging.getLogger(LOGGER)
        self.inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.in_flight: dict[str, Execution] = {}
        self.watches: dict[str, Watch] = {}
        self.stopping = False
        self.stopped_mono = 0.0
        self.stop_reason = ""
        self.exit_code = EXIT_OK
        self.processed = 0
        self.failed = 0
        self.started_at = app.clock()
        self.memory = MemoryGauge()
        self._memory_due = 0.0  # the first job's end reads it
        self.started_mono = time.monotonic()
        self._threads = JobThreads(options.concurrency)
        self._inline = options.concurrency == 1
        self._running_inline: Execution | None = None
        self._grace_timer: threading.Timer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._stuck: list[str] = []
        self._closing = threading.Event()
        self._restart_seen: float | None = None
        self._restart_checked = 0.0
        # set while the last reserve left slots free: only then is the waiter worth running
        # (a busy worker reserves again after every job anyway, and a 2 ms poll costs CPU)
        self._idle = threading.Event()
        self._idle.set()
        self._rng = random.Random()
        self._heartbeat_lock = threading.Lock()
        self._watchdog = Watchdog(options.kill_grace, self._on_stuck)
        self._paused: set[str] = set()
        self._beat_now = threading.Event()  # an early heartbeat: the record shows "stopping"
        self.metrics = MetricsRecorder(
            self.backend, options.name, app.clock,
            flush_interval=app.settings.metrics_flush_interval,
            retention=app.settings.metrics_retention)
        self._old_handlers: dict[int, Any] = {}
        self._pending = Outcomes()
        # finished attempts whose outcome is not written yet: their leases are renewed too,
        # so an ack delayed by the store (a lock wait, a reconnect) does not let the job
        # run again elsewhere while this worker is alive
        self._unacked: dict[tuple[str, str], Lease] = {}
        self.followups = Followups(app)
        from ..chains import ensure_internal_jobs

        ensure_internal_jobs(app)

    # -- lifecycle ----------------------------------------------------------------------
    def run(self) -> int:
        """Run until told to stop; returns the process exit code."""
        self._install_signals()
        self.app.payload_cipher()  # a bad encryption key fails at start, not on a job
        self.backend.ping()
        self._restart_seen = self.backend.restart_signal_read()
        self.backend.worker_register(self._info())
        self.metrics.start()
        self.app.events.emit("worker_started", worker=self.opts.name, host=socket.gethostname(),
                             pid=os.getpid(), queues=list(self.opts.queues),
                             concurrency=self.opts.concurrency)
        self.log.info("worker %s started: queues=%s concurrency=%d store=%s", self.opts.name,
                      ",".join(self.opts.queues), self.opts.concurrency, self.app.display_url,
                      extra={"fields": {"event": "worker_started", "worker": self.opts.name}})
        threads = [threading.Thread(target=self._heartbeat_loop, name="conveyor-heartbeat",
                                    daemon=True)]
        if not self._inline:  # inline, the main loop waits on the store itself
            threads.append(threading.Thread(target=self._waiter_loop, name="conveyor-waiter",
                                            daemon=True))
        for thread in threads:
            thread.start()
        try:
            if self.opts.recover_on_start:
                self._recover()
            self._main_loop()
        finally:
            self._shutdown()
        return self.exit_code

    def request_stop(self, reason: str) -> None:
        if not self.stopping:
            self.stopping = True
            self.stopped_mono = time.monotonic()
            self.stop_reason = reason
            self._beat_now.set()  # an early heartbeat: the worker's record says "stopping"
            for execution in list(self.in_flight.values()):
                if execution.ctx is not None:
                    execution.ctx.ask_to_stop()
            self.log.info("worker %s stopping: %s", self.opts.name, reason,
                          extra={"fields": {"event": "worker_stopping", "reason": reason}})
            if self._inline:  # the main loop cannot time the grace while it runs a job
                self._grace_timer = threading.Timer(self.opts.grace, self._grace_over)
                self._grace_timer.daemon = True
                self._grace_timer.start()
        self.inbox.put(_WAKE)

    def _grace_over(self) -> None:
        """Grace is over while a job runs on the main thread: give it back and leave, as the
        main loop does for jobs on other threads."""
        execution = self._running_inline
        if execution is None:
            return
        self._flush()
        self.log.warning("grace period over: releasing 1 running job(s)")
        self._abandon([execution.reserved.id], "worker stopped past its grace period")
        self._exit_now(EXIT_OK)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._old_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM,
                                                                     signal.SIGINT)}

        def handler(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.stopping and self.stop_reason.startswith("signal"):
                self.log.warning("second %s: releasing running jobs and exiting now", name)
                self._abandon(list(self.in_flight), "worker stopped by a second signal")
                self._flush()
                self._exit_now(EXIT_OK)
            self.request_stop(f"signal {name}")

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _shutdown(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old)
            self._old_handlers = {}
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._closing.set()
        self._idle.set()
        self._watchdog.stop()
        self._threads.shutdown()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self.metrics.stop()
        self._beat_now.set()
        try:
            with self._heartbeat_lock:  # after any heartbeat in progress
                self.backend.worker_remove(self.opts.name)
        except ConveyorError:
            self.log.warning("could not remove the worker record of %s", self.opts.name)
        self.app.events.emit("worker_stopped", worker=self.opts.name, reason=self.stop_reason,
                             processed=self.processed, failed=self.failed)
        self.log.info("worker %s stopped (%s): processed=%d failed=%d", self.opts.name,
                      self.stop_reason or "done", self.processed, self.failed,
                      extra={"fields": {"event": "worker_stopped", "processed": self.processed,
                                        "failed": self.failed, "reason": self.stop_reason}})

    # -- the loop ---------------------------------------------------------------------------
    def _main_loop(self) -> None:
        opts = self.opts
        idle_wait = min(0.05, opts.sleep) if opts.sleep > 0 else 0.0
        fetch = True
        stop_deadline: float | None = None
        while True:
            if self.stopping:
                if stop_deadline is None:
                    stop_deadline = time.monotonic() + opts.grace
                if not self.in_flight:
                    self._flush()
                    return
                if time.monotonic() >= stop_deadline:
                    self._flush()
                    self.log.warning("grace period over: releasing %d running job(s)",
                                     len(self.in_flight))
                    self._abandon(list(self.in_flight), "worker stopped past its grace period")
                    self._exit_now(EXIT_OK)
            if self._stuck:
                self._handle_stuck()
                return
            if fetch and not self.stopping:
                got = self._fetch()  # writes the pending outcomes in the same round trip
                if got < 0:  # the store failed: not "empty"; try again after the wait
                    got = 0
                elif got == 0 and not self.in_flight and (opts.stop_when_empty or opts.once):
                    self.request_stop("queues empty")
                    continue
                if got > 0:
                    idle_wait = min(0.05, opts.sleep) if opts.sleep > 0 else 0.0
            # wait for something to happen
            free = opts.concurrency - len(self.in_flight)
            if self.stopping:
                timeout: float | None = max(0.0, min(1.0, (stop_deadline or 0) - time.monotonic()))
            elif free > 0:
                timeout = idle_wait
            else:
                timeout = 1.0
            events: list[tuple[Any, ...]] = []
            if self._inline and not self.in_flight and timeout is not None \
                    and not self.stopping:
                events.extend(self._wait_here(timeout))
            else:
                with contextlib.suppress(queue.Empty):
                    events.append(self.inbox.get(timeout=timeout))
            while True:
                try:
                    events.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            reserved = [job for e in events if e[0] == "reserved" for job in e[1]]
            if reserved:  # by the wait itself, in the wake-up's round trip
                self._take(reserved, free)
            finished = [e[1] for e in events if e[0] == "done"]
            woken = any(e[0] == "wake" for e in events)
            if finished:
                self._complete(finished)
                self._after_jobs()
                if self.stopping:
                    self._flush()
            if not events and free > 0:
                # poll backstop: back off towards --sleep while idle
                # (±10 % jitter: idle workers started together do not poll in step)
                idle_wait = (min(opts.sleep, max(idle_wait * 2, 0.05)) * self._rng.uniform(
                    0.9, 1.1) if opts.sleep > 0 else 0.0)
            # (a job taken from the wait ran inline: its outcome is in the inbox)
            fetch = bool(finished) or (woken and not reserved) or not events
            self._check_restart()

    def _wait_here(self, timeout: float) -> list[tuple[Any, ...]]:
        """Idle at concurrency 1: wait on the store on this thread (a waiter thread would
        cost a hand-off per wake-up), in slices so that a stop request is seen. Returns
        [("reserved", jobs)] when the store reserved jobs with its wake-up (Redis), [_WAKE]
        when it only announced them; a store that fails is waited out on the inbox, as
        the waiter thread would, and what arrived there is returned."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            try:
                woken, reserved = self.backend.wait_and_reserve(
                    self._queue_order(), min(left, _OWN_WAIT_SLICE), self._free_slots(),
                    self.opts.defaults.lease, self.opts.name, self.app.clock())
                if reserved:
                    return [("reserved", reserved)]
                if woken:
                    return [_WAKE]
            except ConveyorError as exc:
                self._store_trouble("wait", exc)
                with contextlib.suppress(queue.Empty):
                    return [self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))]
                return []
            if not self.inbox.empty():  # a signal's stop request
                return []

    def _queue_order(self) -> Sequence[str]:
        weights = self.opts.weights
        if not weights:
            return self.opts.queues
        # weighted random order without replacement: every queue leads sometimes
        keyed = sorted(self.opts.queues,
                       key=lambda q: -self._rng.random() ** (1.0 / weights[q]))
        return keyed

    def _free_slots(self) -> int:
        """How many jobs to reserve now: the free slots, within --once and --max-jobs."""
        free = self.opts.concurrency - len(self.in_flight)
        if self.opts.once and (self.processed or self.in_flight):
            free = 0
        if self.opts.max_jobs:
            free = min(free, self.opts.max_jobs - self.processed - len(self.in_flight))
        if self.opts.once:
            free = min(free, 1)
        return max(free, 0)

    def _fetch(self) -> int:
        """Write pending outcomes and reserve up to the free slots, in one store call."""
        free = self._free_slots()
        pending = self._pending
        if free == 0:
            self._flush()
            return 0
        self._pending = Outcomes()
        try:
            reserved = self.backend.jobs_ack_and_reserve(
                pending.completes, pending.releases, pending.failures, self._queue_order(),
                free, self.opts.defaults.lease, self.opts.name, self.app.clock())
        except StoreError as exc:
            self._store_trouble("reserve", exc)
            self._pending.extend(pending)
            self._flush()
            return -1
        self._written(pending.completes, pending.releases, pending.failures)
        self._take(reserved, free)
        return len(reserved)

    def _take(self, reserved: list[ReservedJob], free: int) -> None:
        if len(reserved) < free:
            self._idle.set()
        else:
            self._idle.clear()
        for job in reserved:
            self._start(job)

    def _start(self, reserved: ReservedJob) -> None:
        execution = prepare(self.app, reserved, self.opts.defaults)
        self.in_flight[reserved.id] = execution
        if self.stopping and execution.ctx is not None:  # reserved as the stop came
            execution.ctx.ask_to_stop()
        if execution.error is not None or self._batch_cancelled(reserved):
            execution.skipped = execution.error is None
            self.inbox.put(("done", execution))
            return
        if self.app.events.has("job_started"):
            self.app.events.emit("job_started", job_id=reserved.id, name=reserved.name,
                                 queue=reserved.queue, attempt=reserved.attempts,
                                 worker=self.opts.name, wait=_wait_of(reserved))
        timeout = execution.policy.timeout
        watch: Watch | None = None
        if timeout:
            watch = self._watchdog.watch(reserved.id, timeout, inject=not execution.is_async)
            self.watches[reserved.id] = watch
        if execution.is_async:
            loop = self._event_loop()
            future = asyncio.run_coroutine_threadsafe(call_async(execution), loop)
            future.add_done_callback(lambda _f: self._finished(execution, watch))
        elif self._inline:
            self._running_inline = execution
            try:
                self._run_sync(execution, watch)
            except JobTimeout:  # the watchdog's, landing after the outcome was recorded
                pass
            finally:
                self._running_inline = None
        else:
            self._threads.submit(self._run_sync, execution, watch)

    def _batch_cancelled(self, reserved: ReservedJob) -> bool:
        try:
            return self.followups.cancelled(reserved.batch_id)
        except StoreError as exc:
            self._store_trouble("batch state", exc)
            return False  # run it: a job of a cancelled batch may run, none may be lost

    def _run_sync(self, execution: Execution, watch: Watch | None) -> None:
        try:
            if watch is not None:
                watch.thread_id = threading.get_ident()
            call_sync(execution)
            self._finished(execution, watch)
        except JobTimeout as exc:  # injected after the job itself had returned
            if execution.error is None:
                execution.record_error(exc)
            self._finished(execution, watch)

    def _finished(self, execution: Execution, watch: Watch | None) -> None:
        if watch is not None:
            watch.finish()
            if watch.timed_out:
                execution.timed_out = True
                # keep the traceback of where the job was stopped, with a message saying why
                stopped = JobTimeout(f"job {execution.name} ran past its timeout of "
                                     f"{execution.policy.timeout:g}s")
                if isinstance(execution.error, JobTimeout):
                    stopped.__traceback__ = execution.error.__traceback__
                execution.record_error(stopped)
        self.inbox.put(("done", execution))

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="conveyor-asyncio",
                                      daemon=True)
            thread.start()
            self._loop, self._loop_thread = loop, thread
        return self._loop

    # -- completion ---------------------------------------------------------------------------
    def _complete(self, executions: list[Execution]) -> None:
        """Decide each finished attempt; the store writes wait for the next round trip, except
        batch and chain follow-ups, written now: before their jobs' acks (mark-then-ack)."""
        held, followups = Outcomes(), list[Ended]()
        now = self.app.clock()
        for execution in executions:
            job_id = execution.reserved.id
            if self.in_flight.pop(job_id, None) is None:
                continue  # already abandoned
            self.watches.pop(job_id, None)
            decision, op = settle(execution, now)
            self._unacked[(op.id, op.token)] = Lease(op.id, op.token)
            item = ended(execution, op)
            if item is not None:
                followups.append(item)
            target = held if item is not None else self._pending
            if isinstance(op, Lease):
                target.completes.append(op)
            elif isinstance(op, Release):
                target.releases.append(op)
            else:
                target.failures.append(op)
            self._report(execution, op, now, execution.runtime, delay=decision.delay)
        if followups and self.followups.run_retrying(followups, self._give_up_writing):
            self._pending.extend(held)
        else:  # not acked, so those jobs run again after their lease and mark again
            self._written(held.completes, held.releases, held.failures)

    def _give_up_writing(self) -> bool:
        return self.stopping and time.monotonic() - self.stopped_mono > self.opts.grace

    def _report(self, execution: Execution, op: Lease | Release | Failure, now: float,
                runtime: float, *, delay: float | None = None, abandoned: bool = False) -> None:
        """Count, log, record metrics and emit the events of one finished attempt."""
        reserved = execution.reserved
        outcome = ("done" if isinstance(op, Lease) else
                   "released" if isinstance(op, Release) else "failed")
        event = {"done": "job_succeeded", "released": "job_released"}.get(outcome, "job_failed")
        self.processed += 1
        if outcome == "failed":
            self.failed += 1
        error = ""
        if execution.error is not None:
            error = f"{type(execution.error).__name__}: {execution.error}"
        wait = _wait_of(reserved)
        shown = ("abandoned" if abandoned else
                 "cancelled with its batch" if execution.skipped else outcome)
        log_job(self.log, queue=reserved.queue, name=reserved.name, job_id=reserved.id,
                attempt=reserved.attempts, tries=execution.policy.tries, duration=runtime,
                outcome=shown, error=error,
                worker=self.opts.name, wait=wait, timed_out=execution.timed_out)
        self.metrics.record(queue=reserved.queue, name=reserved.name, outcome=outcome,
                            runtime=runtime, wait=wait, timed_out=execution.timed_out, now=now)
        events = self.app.events
        if not (execution.timed_out or events.has(event)):
            return  # nobody listens: no event data to build
        data = {"job_id": reserved.id, "name": reserved.name, "queue": reserved.queue,
                "attempt": reserved.attempts, "worker": self.opts.name, "runtime": runtime,
                "wait": wait}
        if execution.timed_out:
            events.emit("job_timed_out", timeout=execution.policy.timeout, outcome=outcome,
                        **data)
        if events.has(event):
            events.emit(event, error=execution.error, traceback=execution.error_text or None,
                        delay=delay, **data)

    def _flush(self) -> None:
        """Write pending outcomes now, retrying while the store is unreachable."""
        pending, self._pending = self._pending, Outcomes()
        completes, releases, failures = pending.completes, pending.releases, pending.failures
        delay = 0.05
        while completes or releases or failures:
            try:
                if completes:
                    self.backend.jobs_complete(completes)
                    completes = self._written(completes)
                if releases:
                    self.backend.jobs_release(releases)
                    releases = self._written(releases)
                if failures:
                    self.backend.jobs_fail(failures)
                    failures = self._written(failures)
            except StoreError as exc:
                # the outcome must not be dropped: retry until the store is back (the lease
                # keeps the job ours meanwhile; if it expires the job is simply run again).
                # A worker told to stop gives up after its grace period: at-least-once holds.
                self._store_trouble("ack", exc)
                if self.stopping and time.monotonic() - self.stopped_mono > self.opts.grace:
                    self.log.error("store unreachable while stopping: %d outcome(s) not "
                                   "written; those jobs run again after their lease",
                                   len(completes) + len(releases) + len(failures))
                    return
                time.sleep(delay)
                delay = min(_STORE_RETRY_MAX, delay * 2)

    def _written(self, *written: Sequence[Lease | Release | Failure]) -> list[Any]:
        """Outcomes now in the store (or given up): their leases need no renewal.
        Returns [] for the caller's list of what is left to write."""
        for ops in written:
            for op in ops:
                self._unacked.pop((op.id, op.token), None)
        return []

    def _after_jobs(self) -> None:
        opts = self.opts
        if opts.once and self.processed >= 1:
            self.request_stop("--once: one job done")
        if opts.max_jobs and self.processed >= opts.max_jobs:
            self.request_stop(f"--max-jobs {opts.max_jobs} reached")
        if opts.max_time and time.monotonic() - self.started_mono >= opts.max_time:
            self.request_stop(f"--max-time {opts.max_time:g}s reached")
        if opts.memory_mb and time.monotonic() >= self._memory_due:
            self._memory_due = time.monotonic() + _MEMORY_EVERY
            rss = self.memory.mb()
            if rss > opts.memory_mb:
                self.request_stop(f"--memory {opts.memory_mb} MB exceeded ({rss:.0f} MB)")

    def _check_restart(self) -> None:
        now = time.monotonic()
        if now - self._restart_checked < 1.0:
            return
        self._restart_checked = now
        if self.opts.max_time and now - self.started_mono >= self.opts.max_time:
            self.request_stop(f"--max-time {self.opts.max_time:g}s reached")
        try:
            stamp = self.backend.restart_signal_read()
        except StoreError as exc:
            self._store_trouble("restart check", exc)
            return
        if stamp is not None and stamp != self._restart_seen:
            self.request_stop("restart requested")

    # -- timeouts that cannot be stopped ----------------------------------------------------
    def _on_stuck(self, key: object) -> None:
        self._stuck.append(str(key))
        running = self._running_inline
        if running is not None and running.reserved.id == str(key):
            # the main thread is the one stuck in the job: handle it from here, the
            # watchdog's thread (no other job runs at concurrency 1); it exits the process
            self._handle_stuck()
            return
        self.request_stop("a timed-out job could not be stopped")

    def _handle_stuck(self) -> None:
        """Let healthy jobs finish, record the stuck ones' timeouts, then exit at once."""
        stuck = set(self._stuck)
        deadline = time.monotonic() + self.opts.grace
        while set(self.in_flight) - stuck and time.monotonic() < deadline:
            try:
                event = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if event[0] == "done" and event[1].reserved.id not in stuck:
                self._complete([event[1]])
        self._flush()
        self._abandon(list(self.in_flight), "", timed_out=stuck)
        self.exit_code = EXIT_STUCK
        self.log.error("worker %s exits with %d so that its supervisor starts a fresh one",
                       self.opts.name, EXIT_STUCK)
        self._shutdown()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_STUCK)

    def _exit_now(self, code: int) -> None:
        """Leave at once (jobs already given back), keeping this process's metrics."""
        self.metrics.stop()
        os._exit(code)

    def _abandon(self, job_ids: list[str], reason: str, timed_out: set[str] | None = None) -> None:
        """Give jobs back before the process exits under them: a timed-out one as a failed
        attempt (retry or fail by its policy), others released to run again now."""
        now = self.app.clock()
        releases: list[Release] = []
        failures: list[Failure] = []
        followups: list[Ended] = []
        for job_id in job_ids:
            execution = self.in_flight.pop(job_id, None)
            if execution is None:
                continue
            reserved = execution.reserved
            if timed_out and job_id in timed_out:
                execution.timed_out = True
                execution.record_error(JobTimeout(
                    f"job {reserved.name} ran past its timeout of "
                    f"{execution.policy.timeout:g}s and could not be stopped; "
                    "the worker exited to end it"))
                decision, op = settle(execution, now)
                self._report(execution, op, now, time.monotonic() - execution.started,
                             delay=decision.delay, abandoned=True)
                if isinstance(op, Release):
                    releases.append(op)
                elif isinstance(op, Failure):
                    failures.append(op)
                    item = ended(execution, op)
                    if item is not None:
                        followups.append(item)
            else:
                releases.append(Release(reserved.id, reserved.token, now))
                self.log.warning("released %s %s: %s", reserved.name, job_id, reason)
        try:
            if followups:
                self.followups.run(followups)
            self._write_once(releases, failures)
        except StoreError as exc:
            self.log.error("could not release jobs (%s); they return after their lease", exc)

    def _write_once(self, releases: list[Release], failures: list[Failure]) -> None:
        if releases:
            self.backend.jobs_release(releases)
        if failures:
            self.backend.jobs_fail(failures)


def _wait_of(reserved: ReservedJob) -> float:
    """Seconds the job waited between becoming available and being taken."""
    return max(0.0, reserved.reserved_at - reserved.available_at)
