"""Where conveyor keeps things in Redis: the URL options and the key names.

Every key of one queue carries the hash tag ``{queue}``, so a queue lives on one Cluster
slot and each Lua script touches one slot when it covers one queue. Store-wide keys share
the tag ``{#}``, which no queue name can take. See docs/redis.md for the whole layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import ConfigurationError
from ...routing import validate_queue
from ..base import redact_url

DEFAULT_PREFIX = "conveyor"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_OUR_OPTIONS = ("prefix", "chunk", "marker_cap", "poll_us", "single_slot", "cluster")
_TRUE = ("1", "true", "yes", "on")
_LOWEST = {"chunk": 1, "marker_cap": 1, "poll_us": 0}  # the integer options' lower bounds


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """What conveyor reads from the URL; everything else goes to redis-py."""

    client_url: str
    prefix: str
    chunk: int = 500  # jobs per insert script call (dispatch_many streams them)
    marker_cap: int = 16  # wake-up markers kept per queue
    poll_us: int = 200  # a call in a burst polls for its reply this long (0: never)
    single_slot: bool = False  # each script call covers one queue (Cluster, proxies)
    cluster: bool = False  # connect with redis-py's Cluster client (implies single_slot)


def parse_redis_url(url: str, table_prefix: str = "") -> RedisOptions:
    """``redis://h:6379/0?prefix=shop`` -> client URL without our options, and our options.

    The key prefix is the URL's ``prefix`` option, else the backend's ``table_prefix``,
    else ``conveyor``.
    """
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        (ours.__setitem__(key, value) if key in _OUR_OPTIONS
         else theirs.append((key, value)))
    prefix = (ours.get("prefix") or table_prefix or DEFAULT_PREFIX).rstrip(":")
    if not _PREFIX_RE.match(prefix):
        raise ConfigurationError(
            f"Redis key prefix {prefix!r} (from {redact_url(url)!r}) is not valid: use 1-64 "
            "characters among letters, digits and _ . : - (no braces: they are hash tags)"
        )
    numbers: dict[str, int] = {}
    defaults = {f.name: f.default for f in fields(RedisOptions)}
    for name, low in _LOWEST.items():
        raw = ours.get(name, str(defaults[name]))
        try:
            numbers[name] = int(raw)
        except ValueError:
            numbers[name] = -1  # refused below, with the value given
        if numbers[name] < low or numbers[name] > 5000:
            raise ConfigurationError(
                f"Redis URL option {name}={raw!r} is not valid: expected an integer "
                f"from {low} to 5000"
            )
    cluster = ours.get("cluster", "").lower() in _TRUE
    single_slot = cluster or ours.get("single_slot", "").lower() in _TRUE
    client_url = urlunsplit(parts._replace(query=urlencode(theirs)))
    return RedisOptions(client_url, prefix, single_slot=single_slot, cluster=cluster, **numbers)


def checked(queue: str) -> str:
    """A queue name that cannot break the key layout: conveyor's own queue-name rule (no
    braces, which are hash tags; no ``#``, the store-wide tag)."""
    return validate_queue(queue)


class Keys:
    """Key names for one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        g = f"{prefix}:{{#}}:"
        self.queues = g + "queues"  # set: every queue that ever held a job
        self.paused = g + "paused"  # set: paused queues, for listing
        self.restart = g + "restart"  # string: the restart stamp
        self.workers = g + "workers"  # hash: worker name -> JSON record
        self.metrics = g + "metrics"  # hash: minute|queue|name|worker -> JSON sample
        self.metrics_minutes = g + "metrics:minutes"  # zset: same fields, scored by minute
        self.schema = g + "schema"  # string: layout version
        self._checked: dict[str, str] = {}  # names already validated (a hot-path lookup)

    def checked(self, queue: str) -> str:
        name = self._checked.get(queue)
        if name is None:
            name = checked(queue)
            if len(self._checked) < 10_000:
                self._checked[queue] = name
        return name

    def queue(self, queue: str, suffix: str) -> str:
        """``wait`` (zset by available_at), ``run`` (zset by lease expiry), ``failed``
        (zset by failed_at), ``marker`` (list), ``paused`` (string)."""
        return f"{self.prefix}:{{{self.checked(queue)}}}:{suffix}"

    def job(self, queue: str, job_id: str) -> str:
        return f"{self.prefix}:{{{queue}}}:job:{job_id}"

    def failed(self, queue: str, job_id: str) -> str:
        return f"{self.prefix}:{{{queue}}}:failed:{job_id}"
