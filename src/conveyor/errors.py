"""The one exception tree of conveyor: everything it raises derives from ConveyorError."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base of every error conveyor raises."""


class ConfigurationError(ConveyorError):
    """A setting or argument is invalid; the message names it and the accepted values."""


class SerializationError(ConveyorError):
    """Job arguments could not be encoded, or a stored payload could not be decoded."""


class PayloadTooLarge(SerializationError):
    """An encoded payload is over the configured cap (``payload_max_bytes``)."""


class UnknownJob(ConveyorError):
    """A payload names a job that is not registered in the worker's app."""


class BadArguments(ConveyorError):
    """Stored arguments do not bind to the job function's signature."""


class StoreError(ConveyorError):
    """The store failed an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; the message says where it was looked for."""


class NotFound(ConveyorError):
    """A job, failed record or worker with the given id does not exist."""


class JobTimeout(ConveyorError):
    """A job ran past its timeout. Raised inside the job (async jobs: by cancellation)."""


class JobControl(ConveyorError):
    """Base of the control-flow exceptions a job raises to steer its own fate."""


class Retry(JobControl):
    """Try this job again later: ``raise Retry(delay=30)``.

    The attempt counts against ``tries`` (as every attempt does); ``delay=None`` uses the
    job's backoff.
    """

    def __init__(self, delay: float | None = None, reason: str = ""):
        super().__init__(reason or "retry requested")
        self.delay = delay
        self.reason = reason


class Fail(JobControl):
    """Give up now: no more attempts. The job goes to the failed store with ``reason``."""

    def __init__(self, reason: str = "failed by the job"):
        super().__init__(reason)
        self.reason = reason
