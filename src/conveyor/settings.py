"""Settings: environment first (seed-compatible names), then ``.env``, then
``conveyor.toml`` or ``[tool.conveyor]`` in ``pyproject.toml``, then defaults.

Invalid values fail at start with one line naming the setting and what it accepts.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

CONNECTIONS = ("sqlite", "database", "postgres", "postgresql", "redis", "mysql", "sync")
DEFAULT_SQLITE_URL = "sqlite:///conveyor.db"

# environment name -> settings field
ENV_FIELDS = {
    "CONVEYOR_APP": "app",
    "QUEUE_WORKER_TIMEOUT": "worker_timeout",
    "QUEUE_WORKER_MEMORY": "worker_memory",
    "QUEUE_WORKER_SLEEP": "worker_sleep",
    "QUEUE_WORKER_TRIES": "worker_tries",
    "QUEUE_WORKER_BACKOFF": "worker_backoff",
    "QUEUE_WORKER_LEASE": "worker_lease",
    "QUEUE_WORKER_CONCURRENCY": "worker_concurrency",
    "CONVEYOR_PAYLOAD_MAX_BYTES": "payload_max_bytes",
    "CONVEYOR_TABLE_PREFIX": "table_prefix",
    "CONVEYOR_LOG_FORMAT": "log_format",
    "CONVEYOR_METRICS_RETENTION": "metrics_retention",
    "CONVEYOR_METRICS_FLUSH_INTERVAL": "metrics_flush_interval",
    "CONVEYOR_ALERT_WEBHOOK": "alert_webhook",
    "CONVEYOR_ALERT_EMAIL": "alert_email",
    "CONVEYOR_ALERT_COOLDOWN": "alert_cooldown",
    "CONVEYOR_ALERT_STATE_FILE": "alert_state_file",
    "CONVEYOR_ENCRYPTION_KEYS": "encryption_keys",
}


@dataclass(frozen=True, slots=True)
class Settings:
    url: str = DEFAULT_SQLITE_URL
    app: str | None = None
    worker_timeout: float = 60.0
    worker_memory: int = 512
    worker_sleep: float = 3.0
    worker_tries: int = 3
    worker_backoff: str = "exponential:5"
    worker_lease: float = 30.0
    worker_concurrency: int = 1
    payload_max_bytes: int = 1024 * 1024
    table_prefix: str = ""
    log_format: str = "text"
    routing: tuple[dict[str, Any], ...] = ()
    # monitoring (docs/monitoring.md)
    metrics_retention: float = 24 * 3600.0  # seconds of per-minute samples kept
    metrics_flush_interval: float = 5.0  # a crashed worker loses at most this much
    alert_webhook: str = field(default="", repr=False)  # a Slack webhook URL is a secret
    alert_email: str = ""  # comma-separated recipients, sent through MAIL_* settings
    alert_cooldown: float = 900.0  # seconds between two alerts of one rule
    alert_state_file: str = ""  # where cooldowns are kept; default in the user's state dir
    # Fernet keys for encrypted jobs: the first encrypts, all decrypt. Secret: never shown.
    encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        """Settings end up in logs and tracebacks: the URL without its password, and no
        keys (``encryption_keys`` and ``env`` are left out)."""
        from .backends.base import redact_url

        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        shown["url"] = redact_url(self.url)
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def with_overrides(self, **values: Any) -> Settings:
        clean = {k: v for k, v in values.items() if v is not None}
        return _validated(replace(self, **clean))


def _number(name: str, value: Any, kind: type, minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"setting {name}={value!r} is not valid: expected a {kind.__name__} >= {minimum}"
        ) from None
    if number < minimum:
        raise ConfigurationError(
            f"setting {name}={value!r} is not valid: expected a {kind.__name__} >= {minimum}"
        )
    return number


def _validated(s: Settings) -> Settings:
    from .retry import parse_backoff

    s = replace(
        s,
        worker_timeout=_number("worker_timeout", s.worker_timeout, float, 0),
        worker_memory=_number("worker_memory", s.worker_memory, int, 0),
        worker_sleep=_number("worker_sleep", s.worker_sleep, float, 0),
        worker_tries=_number("worker_tries", s.worker_tries, int, 1),
        worker_lease=_number("worker_lease", s.worker_lease, float, 1),
        worker_concurrency=_number("worker_concurrency", s.worker_concurrency, int, 1),
        payload_max_bytes=_number("payload_max_bytes", s.payload_max_bytes, int, 64),
        metrics_retention=_number("metrics_retention", s.metrics_retention, float, 120),
        metrics_flush_interval=_number("metrics_flush_interval", s.metrics_flush_interval,
                                       float, 0.1),
        alert_cooldown=_number("alert_cooldown", s.alert_cooldown, float, 0),
    )
    parse_backoff(s.worker_backoff)
    s = replace(s, encryption_keys=_key_list(s.encryption_keys))
    if s.log_format not in ("text", "json"):
        raise ConfigurationError(
            f"setting log_format={s.log_format!r} is not valid: accepted values are text, json"
        )
    if s.table_prefix and not s.table_prefix.replace("_", "").isalnum():
        raise ConfigurationError(
            f"setting table_prefix={s.table_prefix!r} is not valid: letters, digits and _ only"
        )
    if "://" not in s.url and s.url != "sync":
        raise ConfigurationError(
            f"setting url={s.url!r} is not valid: expected sqlite:///path.db, postgresql://…, "
            "redis://…, mysql://… or sync://"
        )
    return s


def _key_list(value: Any) -> tuple[str, ...]:
    """``"k1,k2"`` (environment) or ``["k1", "k2"]`` (toml) -> validated keys."""
    from .encryption import validate_keys

    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(k, str) for k in value):
        raise ConfigurationError(
            "setting encryption_keys is not valid: expected a comma-separated string or a "
            "list of Fernet keys")
    return validate_keys([k.strip() for k in value if k.strip()])


def read_dotenv(path: Path) -> dict[str, str]:
    """A small ``.env`` reader: KEY=VALUE lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigurationError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def _file_table(directory: Path) -> dict[str, Any]:
    own = directory / "conveyor.toml"
    if own.is_file():
        with own.open("rb") as handle:
            return dict(tomllib.load(handle))
    project = directory / "pyproject.toml"
    if project.is_file():
        with project.open("rb") as handle:
            data = tomllib.load(handle)
        table = data.get("tool", {}).get("conveyor", {})
        return dict(table) if isinstance(table, dict) else {}
    return {}


def url_from_env(env: Mapping[str, str]) -> str | None:
    """The store URL the seed-compatible variables describe, or None for the default."""
    if env.get("CONVEYOR_URL"):
        return env["CONVEYOR_URL"]
    connection = env.get("QUEUE_CONNECTION", "").strip().lower()
    if not connection:
        return None
    if connection not in CONNECTIONS:
        raise ConfigurationError(
            f"setting QUEUE_CONNECTION={connection!r} is not valid: accepted values are "
            + ", ".join(CONNECTIONS)
        )
    if connection == "sync":
        return "sync://"
    if connection == "sqlite":
        return env.get("CONVEYOR_SQLITE_URL") or DEFAULT_SQLITE_URL
    if connection == "redis":
        return env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    url = env.get("DATABASE_URL")
    if not url:
        raise ConfigurationError(
            f"setting QUEUE_CONNECTION={connection} needs DATABASE_URL "
            "(for example postgresql://user@host/db) or CONVEYOR_URL"
        )
    return url


def load_settings(
    directory: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from files, ``.env`` and the environment, then ``overrides``."""
    directory = directory or Path.cwd()
    env: dict[str, str] = {}
    dotenv = directory / ".env"
    if dotenv.is_file():
        env.update(read_dotenv(dotenv))
    env.update(os.environ if environ is None else environ)

    known = {f.name for f in fields(Settings)} - {"env"}
    values: dict[str, Any] = {}
    for key, value in _file_table(directory).items():
        if key not in known:
            raise ConfigurationError(
                f"unknown setting {key!r} in conveyor.toml/[tool.conveyor]: "
                f"accepted keys are {', '.join(sorted(known))}"
            )
        values[key] = tuple(value) if key in ("routing", "encryption_keys") else value
    url = url_from_env(env)
    if url:
        values["url"] = url
    for env_name, field_name in ENV_FIELDS.items():
        if env.get(env_name, "") != "":
            values[field_name] = env[env_name]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _validated(Settings(env=env, **values))
