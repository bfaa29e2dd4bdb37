"""The PostgreSQL store's URL: conveyor's own query options are taken out, the rest is
handed to libpq unchanged (``sslmode``, ``connect_timeout``, ``application_name`` …)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import ConfigurationError
from ..base import redact_url

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_]{0,24}$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
#: options conveyor reads itself; never passed to the server
OWN_OPTIONS = ("schema", "pool_min", "pool_max", "pool_timeout", "prepare", "fast_acks")


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    conninfo: str  # the URL libpq sees
    schema: str
    pool_min: int
    pool_max: int
    pool_timeout: float
    prepare: bool
    fast_acks: bool  # claims, acks and renewals commit without waiting for the WAL flush

    def lock_key(self, prefix: str, purpose: str) -> int:
        """A stable signed 64-bit advisory lock key for one schema + prefix + purpose."""
        digest = hashlib.blake2b(f"conveyor:{self.schema}.{prefix}:{purpose}".encode(),
                                 digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    def channel(self, prefix: str) -> str:
        """The LISTEN/NOTIFY channel of one schema + prefix (a lower-case identifier)."""
        digest = hashlib.blake2b(f"{self.schema}.{prefix}".encode(), digest_size=8).hexdigest()
        return f"conveyor_{digest}"


def _number(url: str, key: str, raw: str, kind: type[int] | type[float], low: float) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(
            f"PostgreSQL URL {redact_url(url)!r}: option {key}={raw!r} must be a number"
        ) from None
    if value < low:
        raise ConfigurationError(
            f"PostgreSQL URL {redact_url(url)!r}: option {key} must be at least {low:g}"
        )
    return value


def parse_postgres_url(url: str, prefix: str) -> PostgresOptions:
    """Validate ``url`` and the table prefix; split conveyor's options from libpq's."""
    if not _PREFIX.match(prefix):
        raise ConfigurationError(
            f"table prefix {prefix!r} is not valid for PostgreSQL: up to 24 letters, digits or _"
        )
    parts = urlsplit(url)
    own: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        (own.__setitem__(key, value) if key in OWN_OPTIONS else rest.append((key, value)))
    schema = own.get("schema", "public") or "public"
    if not _IDENTIFIER.match(schema):
        raise ConfigurationError(
            f"PostgreSQL URL {redact_url(url)!r}: schema={schema!r} is not valid: a letter or _ "
            "then up to 47 letters, digits or _"
        )
    flags = {}
    for key in ("prepare", "fast_acks"):
        raw = own.get(key, "true").lower()
        if raw not in _TRUE + _FALSE:
            raise ConfigurationError(
                f"PostgreSQL URL {redact_url(url)!r}: {key}={raw!r}: use true or false"
            )
        flags[key] = raw in _TRUE
    pool_min = int(_number(url, "pool_min", own.get("pool_min", "1"), int, 0))
    pool_max = int(_number(url, "pool_max", own.get("pool_max", "10"), int, 1))
    if pool_max < pool_min:
        raise ConfigurationError(
            f"PostgreSQL URL {redact_url(url)!r}: pool_max ({pool_max}) is below "
            f"pool_min ({pool_min})"
        )
    given = {key for key, _ in rest}
    # An unreachable host must fail in seconds, not after the OS's TCP timeout; a silent
    # partition (no RST, no ACK) must break a connection in tens of seconds, not minutes:
    # TCP keepalives for idle connections, tcp_user_timeout for unacknowledged writes.
    for key, value in (("connect_timeout", "10"), ("keepalives", "1"),
                       ("keepalives_idle", "15"), ("keepalives_interval", "5"),
                       ("keepalives_count", "3"), ("tcp_user_timeout", "30000")):
        if key not in given:
            rest.append((key, value))
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
    return PostgresOptions(
        conninfo=conninfo, schema=schema, pool_min=pool_min, pool_max=pool_max,
        pool_timeout=_number(url, "pool_timeout", own.get("pool_timeout", "10"), float, 0.1),
        prepare=flags["prepare"], fast_acks=flags["fast_acks"],
    )


def store_label(url: str) -> str:
    """What failed rows record as their ``connection``: scheme, host and database, no user
    and no password (the seed stored a connection name there, never credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
