"""Queue names (type x priority) and routing rules that are data, not ``if`` chains."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

PRIORITIES = ("high", "normal", "low")
QUEUE_TYPES = ("default", "emails", "notifications", "reports", "images", "data")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

DEFAULT_WORKER_QUEUES = [
    "default_high", "emails_high", "notifications_high",
    "default", "emails", "notifications", "reports", "images", "data",
    "default_low", "emails_low", "notifications_low",
]


def validate_queue(name: str) -> str:
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        raise ConfigurationError(
            f"invalid queue name {name!r}: use 1-128 characters of letters, digits and _ . : -"
        )
    return name


def validate_priority(priority: str) -> str:
    if priority not in PRIORITIES:
        raise ConfigurationError(
            f"invalid priority {priority!r}: accepted values are {', '.join(PRIORITIES)}"
        )
    return priority


def queue_name(queue_type: str, priority: str = "normal") -> str:
    """``emails`` + ``high`` -> ``emails_high``; ``normal`` keeps the bare type."""
    if not (isinstance(queue_type, str) and isinstance(priority, str)):
        validate_priority(priority)  # each refuses what is not a str, with its message
        validate_queue(queue_type)
    return _queue_name(queue_type, priority)  # every dispatch: checked once per pair


@functools.lru_cache(maxsize=1024)
def _queue_name(queue_type: str, priority: str) -> str:
    validate_priority(priority)  # an invalid pair raises, and is not cached
    validate_queue(queue_type)
    return queue_type if priority == "normal" else f"{queue_type}_{priority}"


def split_queue(name: str) -> tuple[str, str]:
    """``emails_high`` -> (``emails``, ``high``); a bare name is normal priority."""
    for priority in ("high", "low"):
        suffix = f"_{priority}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], priority
    return name, "normal"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a rule sends a job: a queue type and/or a priority (None keeps the job's own)."""

    queue: str | None = None
    priority: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """Match a job by name (``*`` for any) and optionally by the value of its ``type`` argument."""

    job: str
    route: Route
    type: str | None = None

    def matches(self, job: str, type_value: Any) -> bool:
        if self.job not in ("*", job):
            return False
        return self.type is None or self.type == type_value


@dataclass(slots=True)
class Router:
    """An ordered list of rules; the first that matches decides."""

    rules: list[Rule]

    def route(self, job: str, type_value: Any) -> Route | None:
        for rule in self.rules:
            if rule.matches(job, type_value):
                return rule.route
        return None

    def add(self, job: str, *, type: str | None = None, queue: str | None = None,
            priority: str | None = None) -> None:
        if queue is not None:
            validate_queue(queue)
        if priority is not None:
            validate_priority(priority)
        self.rules.append(Rule(job=job, type=type, route=Route(queue=queue, priority=priority)))

    @classmethod
    def from_data(cls, data: Iterable[Mapping[str, Any]]) -> Router:
        """Rules from settings, e.g. ``[{"job": "send_email", "type": "newsletter",
        "priority": "low"}]``."""
        router = cls(rules=[])
        for index, item in enumerate(data):
            unknown = set(item) - {"job", "type", "queue", "priority"}
            if unknown or "job" not in item:
                raise ConfigurationError(
                    f"routing rule {index}: expected keys job, type, queue, priority; "
                    f"got {sorted(item)}"
                )
            router.add(str(item["job"]), type=item.get("type"), queue=item.get("queue"),
                       priority=item.get("priority"))
        return router


def parse_worker_queues(spec: str | None) -> tuple[list[str], dict[str, int] | None]:
    """``a,b,c`` -> strict order; ``a:5,b:2,c:1`` -> weighted (weights returned)."""
    if not spec:
        return list(DEFAULT_WORKER_QUEUES), None
    queues: list[str] = []
    weights: dict[str, int] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, weight = part.rpartition(":")
        if sep and weight.isdigit() and int(weight) > 0 and name:
            weights[validate_queue(name)] = int(weight)
            queues.append(name)
        else:
            queues.append(validate_queue(part))
    if not queues:
        raise ConfigurationError("--queue: give at least one queue name")
    if weights and len(weights) != len(queues):
        raise ConfigurationError("--queue: give a weight to every queue or to none (a:5,b:1)")
    if len(set(queues)) != len(queues):
        raise ConfigurationError("--queue: a queue is named twice")
    return queues, (weights or None)
