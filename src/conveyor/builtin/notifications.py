"""``SendNotificationJob``: push notifications over Firebase Cloud Messaging HTTP v1.

    from conveyor.builtin import notifications
    push = notifications.install(app, on_invalid_tokens=remove_tokens)   # FCM_* settings
    push.send({"title": "On its way", "body": "…", "data": {"order_id": 7}}, tokens,
              type="delivery_alert")                                     # -> notifications_high

One job carries any number of device tokens; they are sent concurrently (a bounded pool,
``FCM_CONCURRENCY``) in chunks (``FCM_CHUNK_SIZE``). Tokens FCM calls unregistered or
invalid go to the app's cleanup hooks. Tokens that failed transiently (429, 5xx, network)
are sent again by a follow-up job that carries only them, after ``Retry-After`` (or an
exponential backoff): a retry never re-sends to a token that already got the message.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ..context import current_job
from ..errors import ConveyorError, Fail
from ..jobs import JobDefinition, PreparedJob
from ..routing import split_queue, validate_priority
from .common import (
    add_routes,
    attempt,
    exponential_delay,
    installed,
    progress,
    register,
    retry_later,
    stopping,
)
from .config import DEFAULT_FCM_TOKEN_URL, FcmSettings, app_env
from .fcm_auth import AccessTokens, PushError

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["JOB_NAME", "NotificationService", "PushError", "build_message", "install",
           "service"]

KEY = "conveyor.notifications"
JOB_NAME = "conveyor.send_notification"
INVALID_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
RETRYABLE_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
log = logging.getLogger("conveyor.push")

InvalidTokensHook = Callable[[list[str]], Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one token: ``sent``, ``invalid``, ``retry`` or ``failed``."""

    token: str
    status: str
    error: str = ""
    retry_after: float | None = None


def build_message(notification: Mapping[str, Any], priority: str) -> dict[str, Any]:
    """The v1 ``message`` (without its token) for a notification dict:
    ``title``, ``body``, optional ``image``, ``data`` (values sent as strings)."""
    if not isinstance(notification, Mapping):
        raise PushError("invalid notification: expected an object, got "
                        f"{type(notification).__name__}", transient=False)
    unknown = set(notification) - {"title", "body", "image", "data"}
    if unknown:
        raise PushError(f"invalid notification: unknown keys {sorted(unknown)} "
                        "(accepted: title, body, image, data)", transient=False)
    shown = {k: str(notification[k]) for k in ("title", "body", "image") if notification.get(k)}
    data = notification.get("data") or {}
    if not isinstance(data, Mapping):
        raise PushError("invalid notification: data must be an object", transient=False)
    if not shown and not data:
        raise PushError("invalid notification: give a title/body or data", transient=False)
    high = validate_priority(priority) == "high"
    message: dict[str, Any] = {
        "android": {"priority": "HIGH" if high else "NORMAL"},
        "apns": {"headers": {"apns-priority": "10" if high else "5"}},
    }
    if shown:
        message["notification"] = shown
    if data:
        message["data"] = {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}
    return message


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After``: delta seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        stamp = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, stamp - now)


def _error_of(response: httpx.Response) -> tuple[str, str, str]:
    """(status, FCM errorCode, message) of an error answer."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return "", "", response.text[:200]
    code = ""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = str(detail["errorCode"])
    return str(error.get("status", "")), code, str(error.get("message", ""))[:200]


class NotificationService:
    """The installed push job of one app: settings, token cache, HTTP client, hooks."""

    def __init__(self, app: Conveyor, settings: FcmSettings) -> None:
        self.app = app
        self.settings = settings
        self.hooks: list[InvalidTokensHook] = []
        self._client: httpx.Client | None = None
        self._tokens: AccessTokens | None = None
        self._lock = threading.Lock()

        def send_notification(notification: dict[str, Any], tokens: list[str],
                              type: str = "default", priority: str | None = None,
                              round: int = 1) -> dict[str, Any]:
            """Push one notification to many device tokens (``round``: re-send count)."""
            return self.deliver(notification, tokens, type, priority, round)

        self.job: JobDefinition[..., dict[str, Any]] = app.job(
            name=JOB_NAME, queue="notifications", tries=5,
            timeout=max(60.0, settings.timeout * 6))(send_notification)

    # -- the app's side ----------------------------------------------------------------
    def on_invalid_tokens(self, hook: InvalidTokensHook) -> InvalidTokensHook:
        """Register a hook called with tokens FCM no longer accepts (remove them)."""
        self.hooks.append(hook)
        return hook

    def priority_for(self, type: str) -> str:
        return "high" if self.settings.routes.get(type) == "high" else "normal"

    def prepare(self, notification: Mapping[str, Any], tokens: Sequence[str],
                type: str = "default", priority: str | None = None,
                **options: Any) -> PreparedJob:
        build_message(notification, priority or self.priority_for(type))  # fail at dispatch
        args = (dict(notification), list(tokens), type, priority)
        if options:
            return self.job.options(**options).prepare(*args)
        return self.job.prepare(*args)

    def send(self, notification: Mapping[str, Any], tokens: Sequence[str],
             type: str = "default", priority: str | None = None, **options: Any) -> str:
        """Dispatch the notification; returns the job id."""
        return self.app.dispatch(self.prepare(notification, tokens, type, priority, **options))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- the worker's side -------------------------------------------------------------
    def _connection(self) -> tuple[httpx.Client, AccessTokens]:
        with self._lock:
            if self._client is None or self._tokens is None:
                s = self.settings
                if not s.credentials or not s.project_id:
                    raise Fail("push notifications are not configured: set FCM_CREDENTIALS "
                               "(a service-account JSON file) and FCM_PROJECT_ID")
                # each job sends over at most `concurrency` threads; several jobs of one
                # worker share this client, so the process-wide cap is a few times that
                limits = httpx.Limits(max_connections=4 * s.concurrency,
                                      max_keepalive_connections=s.concurrency)
                self._client = httpx.Client(timeout=s.timeout, limits=limits)
                token_url = (s.token_url or str(s.credentials.get("token_uri") or "")
                             or DEFAULT_FCM_TOKEN_URL)
                self._tokens = AccessTokens(s.credentials, token_url, self._client)
            return self._client, self._tokens

    def deliver(self, notification: dict[str, Any], tokens: list[str], type: str = "default",
                priority: str | None = None, round: int = 1) -> dict[str, Any]:
        """The job's body: send to every token, then clean up, re-send or fail."""
        try:
            message = build_message(notification, priority or self.priority_for(type))
        except PushError as exc:
            raise Fail(str(exc)) from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise Fail("invalid tokens: expected a list of non-empty strings")
        client, access = self._connection()
        try:
            access.get()  # one exchange before the fan-out, not one per thread
        except PushError as exc:
            if not exc.transient:
                raise Fail(str(exc)) from None
            retry_later(str(exc), exponential_delay(self.settings.retry_base,
                                                    self.settings.retry_cap, attempt()))
        unique = list(dict.fromkeys(tokens))
        outcomes = self._send_all(client, access, message, unique)
        unsent = unique[len(outcomes):]
        if unsent:
            # out of time budget or the worker is stopping: hand the rest to a
            # continuation rather than let a timeout re-run (and re-send) the whole job
            log.info("push %s: %d token(s) continue in a follow-up job", type, len(unsent))
            self._follow_up(notification, unsent, type, priority, round, 0.0)
        result = self._conclude(notification, type, priority, round, outcomes)
        result["continued"] = len(unsent)
        return result

    def _send_all(self, client: httpx.Client, access: AccessTokens, message: dict[str, Any],
                  tokens: list[str]) -> list[Outcome]:
        s = self.settings
        url = f"{s.base_url}/v1/projects/{s.project_id}/messages:send"
        outcomes: list[Outcome] = []
        budget = s.time_budget or 0.5 * (self.job.timeout or 60.0)
        deadline = time.monotonic() + budget
        with ThreadPoolExecutor(max_workers=min(s.concurrency, max(1, len(tokens))),
                                thread_name_prefix="conveyor-push") as pool:
            for start in range(0, len(tokens), s.chunk_size):
                if outcomes and (time.monotonic() >= deadline or stopping()):
                    break
                chunk = tokens[start:start + s.chunk_size]
                outcomes.extend(pool.map(
                    lambda token: self._send_one(client, access, url, message, token), chunk))
                progress(100.0 * len(outcomes) / len(tokens), f"{len(outcomes)} tokens sent")
        return outcomes

    def _send_one(self, client: httpx.Client, access: AccessTokens, url: str,
                  message: dict[str, Any], token: str) -> Outcome:
        body = {"message": {**message, "token": token}}
        for refresh in (False, True):
            try:
                bearer = access.get()
                response = client.post(url, json=body,
                                       headers={"Authorization": f"Bearer {bearer}"})
            except PushError as exc:
                return Outcome(token, "retry" if exc.transient else "failed", str(exc))
            except httpx.HTTPError as exc:
                return Outcome(token, "retry", f"{type(exc).__name__}: {exc}")
            if response.status_code == 401 and not refresh:
                access.invalidate(bearer)  # expired or revoked early: one fresh token
                continue
            break
        if response.status_code == 200:
            return Outcome(token, "sent")
        status, code, text = _error_of(response)
        error = f"{response.status_code} {code or status}: {text}"
        if code in INVALID_TOKEN_CODES or (
                code == "INVALID_ARGUMENT" and "registration token" in text.lower()):
            return Outcome(token, "invalid", error)
        if (response.status_code == 429 or response.status_code >= 500
                or code in RETRYABLE_CODES):
            return Outcome(token, "retry", error,
                           retry_after_seconds(response.headers.get("Retry-After"), time.time()))
        if response.status_code in (401, 403):
            error += (" (check FCM_PROJECT_ID and that the service account may send "
                      "Firebase Cloud Messaging)")
        return Outcome(token, "failed", error)

    def _conclude(self, notification: dict[str, Any], type: str, priority: str | None,
                  round: int, outcomes: list[Outcome]) -> dict[str, Any]:
        by: dict[str, list[Outcome]] = {"sent": [], "invalid": [], "retry": [], "failed": []}
        for outcome in outcomes:
            by[outcome.status].append(outcome)
        invalid = [o.token for o in by["invalid"]]
        if invalid:
            self._cleanup(invalid)
        result: dict[str, Any] = {"sent": len(by["sent"]), "invalid": invalid,
                                  "retrying": [o.token for o in by["retry"]],
                                  "failed": {o.token: o.error for o in by["failed"]}}
        log.info("push %s: %d sent, %d invalid, %d to retry, %d failed (round %d)", type,
                 len(by["sent"]), len(invalid), len(by["retry"]), len(by["failed"]), round)
        if by["retry"]:
            self._resend(notification, type, priority, round, by["retry"])
        if by["failed"] and not by["sent"] and not by["retry"]:
            raise Fail(f"push {type}: every token failed: {by['failed'][0].error}")
        return result

    def _cleanup(self, tokens: list[str]) -> None:
        for hook in self.hooks:
            try:
                hook(list(tokens))
            except Exception:
                # a failing hook must not re-send the notification to everyone
                log.exception("invalid-token hook %r failed for %d token(s)", hook, len(tokens))

    def _resend(self, notification: dict[str, Any], type: str, priority: str | None,
                round: int, retry: list[Outcome]) -> None:
        """A follow-up job for the failed tokens only (a plain Retry would re-send to all)."""
        if round >= self.settings.rounds:
            raise Fail(f"push {type}: {len(retry)} token(s) still failing after {round} "
                       f"rounds: {retry[0].error}")
        waits = [o.retry_after for o in retry if o.retry_after is not None]
        delay = (max(waits) if waits else
                 exponential_delay(self.settings.retry_base, self.settings.retry_cap, round))
        self._follow_up(notification, [o.token for o in retry], type, priority, round + 1,
                        delay)

    def _follow_up(self, notification: dict[str, Any], tokens: list[str], type: str,
                   priority: str | None, round: int, delay: float) -> None:
        """Dispatch the same notification for ``tokens`` only, on the current queue."""
        options: dict[str, Any] = {"delay": delay}
        try:
            queue_type, queue_priority = split_queue(current_job().queue)
            options.update(queue=queue_type, priority=queue_priority)
        except ConveyorError:
            pass  # called outside a worker: routing decides
        self.job.options(**options).dispatch(notification, tokens, type, priority, round)


def install(app: Conveyor, *, settings: FcmSettings | None = None,
            on_invalid_tokens: InvalidTokensHook | Iterable[InvalidTokensHook] = (),
            routes: Mapping[str, str] | None = None) -> NotificationService:
    """Register ``conveyor.send_notification`` on ``app`` and return its service."""
    settings = settings or FcmSettings.from_env(app_env(app))
    if routes:
        from dataclasses import replace

        settings = replace(settings, routes={**settings.routes, **routes})
    push = register(app, KEY, lambda: NotificationService(app, settings))
    hooks = [on_invalid_tokens] if callable(on_invalid_tokens) else list(on_invalid_tokens)
    for hook in hooks:
        push.on_invalid_tokens(hook)
    add_routes(app, JOB_NAME, "notifications", settings.routes)
    return push


def service(app: Conveyor) -> NotificationService:
    """The notification service installed on ``app``."""
    result: NotificationService = installed(app, KEY,
                                            "conveyor.builtin.notifications.install(app)")
    return result


