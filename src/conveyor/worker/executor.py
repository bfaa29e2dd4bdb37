"""Run one reserved job: decode, look up, bind, call, and turn the result into a store
operation. Used by the worker and by the inline ``sync`` connection."""

from __future__ import annotations

import inspect
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..context import JobContext, reset_current, set_current
from ..errors import (
    BadArguments,
    ConfigurationError,
    ConveyorError,
    JobTimeout,
    SerializationError,
    UnknownJob,
)
from ..records import Failure, Lease, Release, ReservedJob
from ..retry import Decision
from ..serialization import Payload, decode_payload
from .policy import JobPolicy, WorkerDefaults, decide, resolve_policy

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..jobs import JobDefinition


@dataclass(slots=True)
class Execution:
    """One attempt of one job, from reservation to decision."""

    reserved: ReservedJob
    policy: JobPolicy
    job: JobDefinition[Any, Any] | None = None
    payload: Payload | None = None
    call_args: tuple[Any, ...] = ()
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    ctx: JobContext | None = None
    error: BaseException | None = None
    error_text: str = ""
    permanent: bool = False  # bad input: retrying cannot help
    timed_out: bool = False
    skipped: bool = False  # its batch was cancelled: not run, acked, counted as cancelled
    started: float = 0.0  # monotonic
    runtime: float = 0.0

    @property
    def name(self) -> str:
        return self.reserved.name

    @property
    def is_async(self) -> bool:
        return self.job is not None and self.job.is_async and self.error is None

    def record_error(self, exc: BaseException) -> None:
        self.error = exc
        self.error_text = "".join(traceback.format_exception(exc)).rstrip()


def prepare(app: Conveyor, reserved: ReservedJob, defaults: WorkerDefaults) -> Execution:
    """Decode and bind; bad input becomes a permanent error on the execution, never a raise."""
    job = app.registry.get(reserved.name)
    try:
        payload, policy = _decode(app, reserved, job, defaults)
    except (SerializationError, UnknownJob) as exc:
        execution = Execution(reserved, resolve_policy(job, {}, reserved.max_tries, defaults),
                              job)
        execution.record_error(exc)
        execution.permanent = True
        return execution
    assert job is not None  # _decode refuses unknown jobs
    execution = Execution(reserved, policy, job, payload=payload)
    ctx = JobContext(app=app, id=reserved.id, name=reserved.name, queue=reserved.queue,
                     attempt=reserved.attempts, tries=policy.tries,
                     batch_id=reserved.batch_id or _callback_of(payload.meta))
    execution.ctx = ctx
    try:
        execution.call_args, execution.call_kwargs = job.call_arguments(
            payload.args, payload.kwargs, ctx)
    except BadArguments as exc:
        execution.record_error(exc)
        execution.permanent = True
    return execution


def _decode(app: Conveyor, reserved: ReservedJob, job: JobDefinition[Any, Any] | None,
            defaults: WorkerDefaults) -> tuple[Payload, JobPolicy]:
    """The payload and the policy it asks for; SerializationError / UnknownJob otherwise."""
    payload = decode_payload(reserved.payload, app.settings.payload_max_bytes,
                             app.payload_cipher())
    if payload.job != reserved.name:
        raise SerializationError(
            f"payload names job {payload.job!r} but the row names {reserved.name!r}")
    if job is None:
        raise UnknownJob(
            f"no job named {reserved.name!r} is registered in this worker's app; register "
            "it (or deploy the code that does) and run `conveyor retry " + reserved.id + "`"
        )
    try:
        policy = resolve_policy(job, payload.meta, reserved.max_tries, defaults)
    except (ConfigurationError, TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(
            f"payload of {reserved.name!r} has invalid options (meta): {exc}") from exc
    return payload, policy


def _callback_of(meta: dict[str, Any]) -> str | None:
    value = meta.get("callback_of")
    return value if isinstance(value, str) else None


def call_sync(execution: Execution) -> None:
    """Run a sync job in the calling thread. A JobTimeout arriving late is still caught."""
    assert execution.job is not None and execution.ctx is not None
    token = set_current(execution.ctx)
    execution.started = time.monotonic()
    try:
        try:
            execution.job.func(*execution.call_args, **execution.call_kwargs)
        except BaseException as exc:  # the job's own failure, whatever it is
            execution.record_error(exc)
        finally:
            execution.runtime = time.monotonic() - execution.started
    except JobTimeout as exc:  # delivered between the job's return and here
        execution.record_error(exc)
    finally:
        reset_current(token)


async def call_async(execution: Execution) -> None:
    """Run an async job with its timeout; a timed-out coroutine is cancelled."""
    import asyncio

    assert execution.job is not None and execution.ctx is not None
    token = set_current(execution.ctx)
    execution.started = time.monotonic()
    try:
        coroutine = execution.job.func(*execution.call_args, **execution.call_kwargs)
        if not inspect.isawaitable(coroutine):
            raise ConveyorError(f"async job {execution.name} did not return an awaitable")
        timeout = execution.policy.timeout
        try:
            await asyncio.wait_for(coroutine, timeout)
        except TimeoutError:
            execution.timed_out = True
            raise JobTimeout(
                f"job {execution.name} ran past its timeout of {timeout:g}s and was cancelled"
            ) from None
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError) and not execution.timed_out:
            execution.record_error(JobTimeout(f"job {execution.name} was cancelled"))
        else:
            execution.record_error(exc)
    finally:
        execution.runtime = time.monotonic() - execution.started
        reset_current(token)


def settle(execution: Execution, now: float) -> tuple[Decision, Lease | Release | Failure]:
    """The decision and the store operation that carries it out."""
    reserved = execution.reserved
    decision = decide(execution.error, attempt=reserved.attempts, policy=execution.policy,
                      now=now, permanent=execution.permanent)
    if decision.action == "complete":
        return decision, reserved.lease
    if decision.action == "release":
        return decision, Release(reserved.id, reserved.token, now + decision.delay)
    text = execution.error_text or decision.reason
    if decision.reason and decision.reason not in ("not retryable",) and not execution.permanent:
        text = f"{text}\n\n[conveyor] final failure: {decision.reason}"
    return decision, Failure(reserved.id, reserved.token, text, now)
