"""Settings of the built-in jobs, read from the app's environment (``app.settings.env``:
the process environment plus ``.env``): ``MAIL_*`` for email, ``FCM_*`` for push.

Invalid values fail at install with one line naming the variable and what it accepts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..routing import validate_priority

Env = Mapping[str, str]


class Secret:
    """A value that never shows itself in ``repr``/``str`` (logs, tracebacks, monitors)."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def app_env(app: Any) -> Env:
    """The app's raw environment; an app built from explicit settings falls back to
    the process environment."""
    env = getattr(app.settings, "env", None)
    return env if env else os.environ


def get_str(env: Env, name: str, default: str = "") -> str:
    value = env.get(name, "")
    return value if value != "" else default


def get_choice(env: Env, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = get_str(env, name, default).strip().lower()
    if value not in choices:
        raise ConfigurationError(
            f"setting {name}={value!r} is not valid: accepted values are {', '.join(choices)}")
    return value


def get_number(env: Env, name: str, default: float, minimum: float = 0.0) -> float:
    raw = get_str(env, name)
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigurationError(
            f"setting {name}={raw!r} is not valid: expected a number >= {minimum:g}")
    return value


def get_bool(env: Env, name: str, default: bool) -> bool:
    raw = get_str(env, name).strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"setting {name}={raw!r} is not valid: expected true or false")


def parse_routes(text: str, what: str) -> dict[str, str]:
    """``"newsletter=low,password_reset=high"`` -> ``{"newsletter": "low", …}``."""
    routes: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        kind, sep, priority = part.partition("=")
        if not sep or not kind.strip():
            raise ConfigurationError(
                f"setting {what}={text!r} is not valid: expected type=priority[,type=priority…]")
        routes[kind.strip()] = validate_priority(priority.strip())
    return routes


# -- email ---------------------------------------------------------------------------------
MAILERS = ("smtp", "log", "file")
ENCRYPTIONS = ("none", "starttls", "tls", "ssl")
DEFAULT_EMAIL_ROUTES = {"password_reset": "high", "order_confirmation": "high",
                        "newsletter": "low", "promotional": "low"}


@dataclass(frozen=True, slots=True)
class MailSettings:
    mailer: str = "log"
    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: Secret = field(default_factory=Secret, repr=False)
    encryption: str = "none"  # none | starttls (alias tls) | ssl
    verify_peer: bool = True
    timeout: float = 10.0
    from_address: str = "noreply@localhost"
    from_name: str = ""
    file_path: Path = Path("mail")
    templates: Path | None = None
    tries: int = 5
    retry_base: float = 10.0
    retry_cap: float = 3600.0
    routes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_EMAIL_ROUTES))

    @classmethod
    def from_env(cls, env: Env) -> MailSettings:
        # without MAIL_MAILER, a configured host means SMTP; otherwise log for development
        mailer = get_choice(env, "MAIL_MAILER", "smtp" if env.get("MAIL_HOST") else "log",
                            MAILERS)
        encryption = get_choice(env, "MAIL_ENCRYPTION", "none", (*ENCRYPTIONS, "null", ""))
        encryption = {"tls": "starttls", "null": "none", "": "none"}.get(encryption, encryption)
        default_port = {"ssl": 465, "starttls": 587}.get(encryption, 25)
        templates = get_str(env, "MAIL_TEMPLATES")
        routes = dict(DEFAULT_EMAIL_ROUTES)
        routes.update(parse_routes(get_str(env, "MAIL_ROUTES"), "MAIL_ROUTES"))
        return cls(
            mailer=mailer,
            host=get_str(env, "MAIL_HOST", "127.0.0.1"),
            port=int(get_number(env, "MAIL_PORT", default_port, 1)),
            username=get_str(env, "MAIL_USERNAME"),
            password=Secret(get_str(env, "MAIL_PASSWORD")),
            encryption=encryption,
            verify_peer=get_bool(env, "MAIL_VERIFY_PEER", True),
            timeout=get_number(env, "MAIL_TIMEOUT", 10.0, 0.1),
            from_address=get_str(env, "MAIL_FROM_ADDRESS", "noreply@localhost"),
            from_name=get_str(env, "MAIL_FROM_NAME"),
            file_path=Path(get_str(env, "MAIL_FILE_PATH", "mail")),
            templates=Path(templates) if templates else None,
            tries=int(get_number(env, "MAIL_TRIES", 5, 1)),
            retry_base=get_number(env, "MAIL_RETRY_BASE", 10.0),
            retry_cap=get_number(env, "MAIL_RETRY_CAP", 3600.0),
            routes=routes,
        )


# -- push notifications --------------------------------------------------------------------
DEFAULT_FCM_BASE_URL = "https://fcm.googleapis.com"
DEFAULT_FCM_TOKEN_URL = "https://oauth2.googleapis.com/token"
DEFAULT_NOTIFICATION_ROUTES = {"order_update": "high", "delivery_alert": "high",
                               "marketing": "low"}


@dataclass(frozen=True, slots=True)
class FcmSettings:
    credentials: Mapping[str, Any] | None = field(default=None, repr=False)
    project_id: str = ""
    base_url: str = DEFAULT_FCM_BASE_URL
    token_url: str = ""  # empty: the service account's token_uri, else Google's
    concurrency: int = 8
    chunk_size: int = 500
    timeout: float = 10.0
    rounds: int = 5  # sending rounds for tokens that keep failing transiently
    time_budget: float = 0.0  # seconds one job sends before continuing; 0: half its timeout
    retry_base: float = 5.0
    retry_cap: float = 3600.0
    routes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_NOTIFICATION_ROUTES))

    @classmethod
    def from_env(cls, env: Env) -> FcmSettings:
        credentials = load_credentials(env)
        routes = dict(DEFAULT_NOTIFICATION_ROUTES)
        routes.update(parse_routes(get_str(env, "FCM_ROUTES"), "FCM_ROUTES"))
        project = get_str(env, "FCM_PROJECT_ID",
                          str(credentials.get("project_id", "")) if credentials else "")
        return cls(
            credentials=credentials,
            project_id=project,
            base_url=get_str(env, "FCM_BASE_URL", DEFAULT_FCM_BASE_URL).rstrip("/"),
            token_url=get_str(env, "FCM_TOKEN_URL"),
            concurrency=int(get_number(env, "FCM_CONCURRENCY", 8, 1)),
            chunk_size=int(get_number(env, "FCM_CHUNK_SIZE", 500, 1)),
            timeout=get_number(env, "FCM_TIMEOUT", 10.0, 0.1),
            rounds=int(get_number(env, "FCM_ROUNDS", 5, 1)),
            time_budget=get_number(env, "FCM_TIME_BUDGET", 0.0),
            retry_base=get_number(env, "FCM_RETRY_BASE", 5.0),
            retry_cap=get_number(env, "FCM_RETRY_CAP", 3600.0),
            routes=routes,
        )


def load_credentials(env: Env) -> dict[str, Any] | None:
    """The service account from ``FCM_CREDENTIALS_JSON`` (the JSON itself) or
    ``FCM_CREDENTIALS`` / ``GOOGLE_APPLICATION_CREDENTIALS`` (a path to it)."""
    text = get_str(env, "FCM_CREDENTIALS_JSON")
    source = "FCM_CREDENTIALS_JSON"
    if not text:
        for name in ("FCM_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"):
            path = get_str(env, name)
            if path:
                source = name
                try:
                    text = Path(path).read_text(encoding="utf-8")
                except OSError as exc:
                    raise ConfigurationError(
                        f"setting {name}={path!r}: cannot read the service-account file "
                        f"({exc.strerror})") from None
                break
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigurationError(
            f"setting {source}: the service account is not valid JSON") from None
    missing = [k for k in ("client_email", "private_key") if not data.get(k)]
    if not isinstance(data, dict) or missing:
        raise ConfigurationError(
            f"setting {source}: the service account lacks {', '.join(missing)}; download it "
            "from the Firebase console (Project settings > Service accounts)")
    return data
