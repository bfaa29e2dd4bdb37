"""``mysql://user:pass@host:3306/db?option=value`` -> connection options, and the server
version check (claims need ``SKIP LOCKED``: MySQL 8.0.1+, MariaDB 10.6+)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pymysql.constants import CLIENT

from ...errors import ConfigurationError, StoreUnavailable
from ..base import redact_url

_DATABASE = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")

# URL option -> (type, default, what it means); unknown options are refused
_OPTIONS: dict[str, tuple[type, Any]] = {
    "connect_timeout": (float, 5.0),  # seconds to open a connection
    "read_timeout": (float, 30.0),  # seconds a statement may take before the link counts as dead
    "write_timeout": (float, 30.0),
    "lock_wait_timeout": (int, 10),  # innodb_lock_wait_timeout of conveyor's sessions
    "pool_size": (int, 8),  # idle connections kept per process
    "poll_min": (float, 0.005),  # wait_for_jobs: first poll interval after activity
    "poll_max": (float, 0.05),  # ... backing off to this while idle
    "retries": (int, 10),  # deadlock / lock-wait-timeout retries before giving up
    "unix_socket": (str, ""),
    "ssl_ca": (str, ""),
    "ssl_cert": (str, ""),
    "ssl_key": (str, ""),
}


@dataclass(frozen=True, slots=True)
class MySQLOptions:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    write_timeout: float = 30.0
    lock_wait_timeout: int = 10
    pool_size: int = 8
    poll_min: float = 0.005
    poll_max: float = 0.05
    retries: int = 10
    unix_socket: str = ""
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""

    @property
    def where(self) -> str:
        """Where the server was looked for, for error messages (never the password)."""
        place = self.unix_socket or f"{self.host}:{self.port}"
        return f"{place}/{self.database}"

    def connection_name(self, scheme: str) -> str:
        """What failed rows record as their connection: the store without any credentials
        (not even the user name: a failed row is shown to operators and dashboards)."""
        return f"{scheme}://{self.unix_socket or f'{self.host}:{self.port}'}/{self.database}"

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": self.host, "port": self.port, "user": self.user,
            "password": self.password, "database": self.database,
            # utf8mb4_bin: ids, tokens and queue names compare byte for byte, as on SQLite
            "charset": "utf8mb4", "collation": "utf8mb4_bin",
            "connect_timeout": self.connect_timeout, "read_timeout": self.read_timeout,
            "write_timeout": self.write_timeout, "autocommit": True,
            "program_name": "conveyor",
            # rowcount = rows matched, not rows changed: a token-checked UPDATE that matched
            # counts even when it wrote the same values
            "client_flag": CLIENT.FOUND_ROWS,
        }
        if self.unix_socket:
            kwargs["unix_socket"] = self.unix_socket
        if self.ssl_ca or self.ssl_cert:
            kwargs["ssl"] = {k: v for k, v in (("ca", self.ssl_ca), ("cert", self.ssl_cert),
                                               ("key", self.ssl_key)) if v}
        return kwargs


def parse_mysql_url(url: str) -> MySQLOptions:
    """Parse a ``mysql://`` or ``mariadb://`` URL; a clear error names what is wrong."""
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("mysql", "mariadb"):
        raise ConfigurationError(f"{shown!r} is not a mysql:// or mariadb:// URL")
    database = unquote(parts.path.lstrip("/"))
    if not _DATABASE.match(database):
        raise ConfigurationError(
            f"MySQL URL {shown!r} needs a database name (letters, digits, _ $ -), "
            "e.g. mysql://user:password@127.0.0.1:3306/shop"
        )
    try:
        port = parts.port or 3306
    except ValueError:
        raise ConfigurationError(f"MySQL URL {shown!r}: the port is not a number") from None
    values: dict[str, Any] = {}
    for key, raw in parse_qs(parts.query, keep_blank_values=True).items():
        spec = _OPTIONS.get(key)
        if spec is None:
            raise ConfigurationError(
                f"MySQL URL option {key!r} is not known: accepted options are "
                + ", ".join(sorted(_OPTIONS))
            )
        kind, _default = spec
        try:
            value = kind(raw[-1])
        except ValueError:
            raise ConfigurationError(
                f"MySQL URL option {key}={raw[-1]!r} must be a {kind.__name__}") from None
        if kind in (int, float) and value < 0:
            raise ConfigurationError(f"MySQL URL option {key}={raw[-1]!r} must not be negative")
        values[key] = value
    if values.get("poll_min", 0.005) > values.get("poll_max", 0.05):
        raise ConfigurationError("MySQL URL options: poll_min must not exceed poll_max")
    return MySQLOptions(
        host=parts.hostname or "127.0.0.1", port=port,
        user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
        database=database, **values,
    )


def parse_server_version(version: str) -> tuple[str, tuple[int, ...]]:
    """``"10.11.6-MariaDB-0+deb12u1"`` -> ``("MariaDB", (10, 11, 6))``; MySQL otherwise.

    MariaDB 10.x once reported itself as ``5.5.5-10.x.y-MariaDB``: the real version follows.
    """
    text = version.removeprefix("5.5.5-")
    flavour = "MariaDB" if "mariadb" in text.lower() else "MySQL"
    numbers = re.match(r"^(\d+)\.(\d+)\.(\d+)", text)
    if numbers is None:
        return flavour, (0, 0, 0)
    return flavour, tuple(int(n) for n in numbers.groups())


MINIMUM = {"MySQL": (8, 0, 1), "MariaDB": (10, 6, 0)}


def check_server_version(version: str, where: str) -> None:
    """Refuse servers without ``SELECT … FOR UPDATE SKIP LOCKED``."""
    flavour, numbers = parse_server_version(version)
    need = MINIMUM[flavour]
    if numbers < need:
        raise StoreUnavailable(
            f"the {flavour} server at {where} is version {version}; conveyor's claims need "
            "the SKIP LOCKED clause of locking reads, which " + flavour + " has from "
            + ".".join(map(str, need)) + ": upgrade the server (MySQL 8.0.1+ or MariaDB 10.6+)"
        )
