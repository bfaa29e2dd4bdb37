"""Job definitions (``@app.job``), per-dispatch options and prepared jobs."""

from __future__ import annotations

import datetime as dt
import inspect
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .errors import BadArguments, ConfigurationError
from .records import NewJob
from .retry import Backoff, parse_backoff
from .routing import queue_name, validate_priority, validate_queue
from .serialization import bind_arguments, encode_payload, type_hints

if TYPE_CHECKING:
    from .app import Conveyor

P = ParamSpec("P")
R = TypeVar("R")

_OPTION_NAMES = frozenset(
    {"queue", "priority", "delay", "tries", "backoff", "timeout", "retry_until", "connection",
     "batch_id", "encrypted"}
)


class JobIds:
    """Time-ordered job ids in the UUID version 7 layout, strictly increasing within one
    app (a 12-bit counter orders ids made in the same millisecond), unique across hosts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> str:
        return self.many(1)[0]

    def many(self, count: int) -> list[str]:
        """``count`` ids in order: one lock, one clock reading and one read of the random
        source for all. The ids of one call share its millisecond, the counter ordering
        them (4,096 a millisecond; past that, the next millisecond's)."""
        if count <= 0:
            return []
        runs: list[tuple[int, int, int]] = []  # (millisecond, first counter, how many)
        with self._lock:
            millis = time.time_ns() // 1_000_000
            if millis <= self._last_ms:
                millis, counter = self._last_ms, self._counter + 1
            else:
                counter = 0
            left = count
            while left:
                if counter > 0xFFF:
                    millis, counter = millis + 1, 0
                n = min(left, 0x1000 - counter)
                runs.append((millis, counter, n))
                counter, left = counter + n, left - n
            self._last_ms, self._counter = millis, counter - 1
        noise = os.urandom(8 * count).hex()  # 16 hex digits an id: variant + 62 bits
        ids: list[str] = []
        at = 0
        for millis, first, n in runs:
            m = f"{millis & 0xFFFFFFFFFFFF:012x}"
            head = f"{m[:8]}-{m[8:]}-7"
            for counter in range(first, first + n):
                r = noise[at:at + 16]
                at += 16
                ids.append(f"{head}{counter:03x}-{_VARIANT[r[0]]}{r[1:4]}-{r[4:]}")
        return ids


#: a random hex digit -> the digit with the RFC 4122 variant bits (10xx) set
_VARIANT = {f"{d:x}": f"{0b1000 | (d & 0b11):x}" for d in range(16)}


def _seconds(value: float | dt.timedelta | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value < math.inf):
        raise ConfigurationError(f"{what} must be a number of seconds >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Options of one dispatch; None means "the job's default"."""

    queue: str | None = None
    priority: str | None = None
    delay: float | None = None
    tries: int | None = None
    backoff: Any = None
    timeout: float | None = None
    retry_until: float | dt.datetime | dt.timedelta | None = None
    connection: Any = None
    batch_id: str | None = None
    encrypted: bool | None = None

    def merged(self, **values: Any) -> JobOptions:
        unknown = set(values) - _OPTION_NAMES
        if unknown:
            raise ConfigurationError(
                f"unknown job option(s) {', '.join(sorted(unknown))}: accepted options are "
                + ", ".join(sorted(_OPTION_NAMES))
            )
        if values.get("queue") is not None:
            validate_queue(values["queue"])
        if values.get("priority") is not None:
            validate_priority(values["priority"])
        if values.get("tries") is not None and (
            not isinstance(values["tries"], int) or values["tries"] < 1
        ):
            raise ConfigurationError(f"tries must be an integer >= 1, got {values['tries']!r}")
        if values.get("backoff") is not None:
            parse_backoff(values["backoff"])
        if not isinstance(values.get("encrypted", False), bool | None):
            raise ConfigurationError(
                f"encrypted must be True or False, got {values['encrypted']!r}")
        if "delay" in values:
            if isinstance(values["delay"], dt.datetime):
                values["delay"] = max(0.0, values["delay"].timestamp() - time.time())
            values["delay"] = _seconds(values["delay"], "delay")
        if "timeout" in values:
            values["timeout"] = _seconds(values["timeout"], "timeout")
        return replace(self, **values)


#: every option at the job's default. JobOptions is frozen, so one instance serves every
#: dispatch without options (building one costs ~1.2 µs)
NO_OPTIONS = JobOptions()


class JobDefinition(Generic[P, R]):
    """A registered job. Call it to run it here; ``dispatch`` it to run it on a worker."""

    def __init__(
        self,
        app: Conveyor,
        func: Callable[P, R],
        *,
        name: str | None = None,
        queue: str = "default",
        priority: str = "normal",
        tries: int | None = None,
        backoff: Any = None,
        timeout: float | None = None,
        retry_until: float | dt.timedelta | None = None,
        retry_on: tuple[type[BaseException], ...] | None = None,
        context: bool = False,
        encrypted: bool = False,
    ) -> None:
        self.app = app
        self.func = func
        self.name = name or f"{func.__module__}.{func.__qualname__}"
        self.queue = validate_queue(queue)
        self.priority = validate_priority(priority)
        if tries is not None and (not isinstance(tries, int) or tries < 1):
            raise ConfigurationError(f"job {self.name}: tries must be an integer >= 1")
        self.tries = tries
        self.backoff: Backoff | None = None if backoff is None else parse_backoff(backoff)
        self.timeout = _seconds(timeout, f"job {self.name}: timeout")
        self.retry_until = _seconds(retry_until, f"job {self.name}: retry_until")
        self.retry_on = tuple(retry_on) if retry_on else None
        self.context = context
        if not isinstance(encrypted, bool):
            raise ConfigurationError(f"job {self.name}: encrypted must be True or False")
        self.encrypted = encrypted  # arguments sealed with CONVEYOR_ENCRYPTION_KEYS
        self.is_async = inspect.iscoroutinefunction(func)
        self._type_index = self._find_type_parameter(func)
        try:
            self.signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            self.signature = None
        self._hints: dict[str, Any] | None = None
        # whether arguments bind depends only on their shape (how many positional, which
        # keywords), never on their values: a shape that bound once is not checked again
        self._bound_shapes: set[tuple[int, frozenset[str]]] = set()
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", self.name)

    @staticmethod
    def _find_type_parameter(func: Callable[..., Any]) -> int | None:
        try:
            params = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            return None
        for index, param in enumerate(params):
            if param.name == "type" and param.kind in (
                param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD
            ):
                return index
        return None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<job {self.name} queue={self.queue}>"

    # -- dispatch -----------------------------------------------------------------
    def options(self, **values: Any) -> PendingDispatch[P, R]:
        return PendingDispatch(self, NO_OPTIONS.merged(**values))

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> PreparedJob:
        return PreparedJob(self, args, kwargs, NO_OPTIONS)

    def dispatch(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue one run; returns the job id."""
        return self.app.dispatch(PreparedJob(self, args, kwargs, NO_OPTIONS))

    @property
    def hints(self) -> dict[str, Any]:
        """The function's resolved annotations, computed once."""
        if self._hints is None:
            self._hints = type_hints(self.func)
        return self._hints

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Fail at dispatch, not on a worker, when arguments cannot bind."""
        if self.signature is None:
            return
        shape = (len(args), frozenset(kwargs))
        if shape in self._bound_shapes:
            return
        try:
            if self.context:
                self.signature.bind(None, *args, **kwargs)
            else:
                self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise BadArguments(
                f"job {self.name}: arguments do not match {self.func.__qualname__}"
                f"{self.signature}: {exc}") from None
        self._remember_shape(shape)

    def _remember_shape(self, shape: tuple[int, frozenset[str]]) -> None:
        if len(self._bound_shapes) < 256:  # bounded: a caller varying keywords endlessly
            self._bound_shapes.add(shape)

    def call_arguments(self, args: Sequence[Any], kwargs: dict[str, Any],
                       ctx: Any = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """What a worker calls the function with: the decoded arguments bound, and values
        rebuilt from the annotations (dataclasses, models; BadArguments when they cannot).
        Only a list or dict can need rebuilding, so arguments of a shape that bound before
        and without such values go through as they are."""
        full = (ctx, *args) if self.context else tuple(args)
        shape = (len(args), frozenset(kwargs))
        if shape in self._bound_shapes and not any(
                isinstance(v, list | dict) for v in (*args, *kwargs.values())):
            return full, kwargs
        bound = bind_arguments(self.func, list(full), kwargs, self.signature, self.hints)
        if self.signature is not None:
            self._remember_shape(shape)
        return bound.args, bound.kwargs

    def type_value(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if "type" in kwargs:
            return kwargs["type"]
        if self._type_index is not None and len(args) > self._type_index:
            return args[self._type_index]
        return None


class PendingDispatch(Generic[P, R]):
    """``job.options(priority="high", delay=30)``: a job with per-dispatch options."""

    def __init__(self, job: JobDefinition[P, R], options: JobOptions) -> None:
        self.job = job
        self.opts = options

    def options(self, **values: Any) -> PendingDispatch[P, R]:
        return PendingDispatch(self.job, self.opts.merged(**values))

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> PreparedJob:
        return PreparedJob(self.job, args, kwargs, self.opts)

    def dispatch(self, *args: P.args, **kwargs: P.kwargs) -> str:
        return self.job.app.dispatch(PreparedJob(self.job, args, kwargs, self.opts))


@dataclass(slots=True)
class PreparedJob:
    """A job with its arguments, ready to be dispatched (alone or with ``dispatch_many``)."""

    job: JobDefinition[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: JobOptions = NO_OPTIONS

    @property
    def name(self) -> str:
        return self.job.name

    def resolve_queue(self) -> str:
        opts = self.options
        queue_type = opts.queue
        priority = opts.priority
        if queue_type is None or priority is None:
            route = self.job.app.router.route(
                self.job.name, self.job.type_value(self.args, self.kwargs)
            )
            if route is not None:
                queue_type = queue_type or route.queue
                priority = priority or route.priority
        return queue_name(queue_type or self.job.queue, priority or self.job.priority)

    def to_record(self, now: float, max_bytes: int, job_id: str) -> NewJob:
        self.job.check_arguments(self.args, self.kwargs)
        opts = self.options
        meta: dict[str, Any] = {}
        if opts.tries is not None:
            meta["tries"] = opts.tries
        if opts.backoff is not None:
            meta["backoff"] = parse_backoff(opts.backoff).to_data()
        if opts.timeout is not None:
            meta["timeout"] = opts.timeout
        retry_until = opts.retry_until
        if retry_until is None and self.job.retry_until is not None:
            retry_until = self.job.retry_until
        if retry_until is not None:
            if isinstance(retry_until, dt.datetime):
                meta["retry_until"] = retry_until.timestamp()
            else:
                meta["retry_until"] = now + (_seconds(retry_until, "retry_until") or 0.0)
        if opts.batch_id is not None:
            meta["batch"] = opts.batch_id  # so a failed row still names its batch
        encrypted = self.job.encrypted if opts.encrypted is None else opts.encrypted
        cipher = self.job.app.payload_cipher(required=True) if encrypted else None
        payload = encode_payload(self.job.name, self.args, self.kwargs, meta, max_bytes, cipher)
        return NewJob(
            id=job_id,
            queue=self.resolve_queue(),
            name=self.job.name,
            payload=payload,
            available_at=now + (opts.delay or 0.0),
            created_at=now,
            max_tries=opts.tries or self.job.tries,
            batch_id=opts.batch_id,
        )
