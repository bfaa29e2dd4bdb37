"""conveyor: background jobs and queue management for Python."""

from .app import Conveyor
from .context import JobContext, current_job
from .errors import (
    BadArguments,
    ConfigurationError,
    ConveyorError,
    Fail,
    JobTimeout,
    NotFound,
    PayloadTooLarge,
    Retry,
    SerializationError,
    StoreError,
    StoreUnavailable,
    UnknownJob,
)
from .jobs import JobDefinition, PreparedJob

__version__ = "0.1.0"

__all__ = [
    "BadArguments",
    "ConfigurationError",
    "Conveyor",
    "ConveyorError",
    "Fail",
    "JobContext",
    "JobDefinition",
    "JobTimeout",
    "NotFound",
    "PayloadTooLarge",
    "PreparedJob",
    "Retry",
    "SerializationError",
    "StoreError",
    "StoreUnavailable",
    "UnknownJob",
    "current_job",
]
