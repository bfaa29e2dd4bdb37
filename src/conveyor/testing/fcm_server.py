"""An FCM-shaped HTTP server on loopback, for tests and the demo.

It speaks the two endpoints ``SendNotificationJob`` uses: the OAuth2 token endpoint (it
verifies the RS256 JWT against the service account it generated) and
``POST /v1/projects/{project}/messages:send`` (it checks the bearer token and the message
shape, and answers like FCM). Tokens can be made unregistered or invalid, and answers can
be scripted per token (``fail_next(token, 429, retry_after=7)``)::

    with FcmServer() as fcm:
        push = notifications.install(app, settings=fcm.settings())
        fcm.unregistered.add("old-token")
        ...
        assert fcm.delivered("good-token") == 1
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..builtin.config import FcmSettings
from ..builtin.fcm_auth import GRANT_TYPE, SCOPE, b64url_decode


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One ``messages:send`` request that passed authentication."""

    token: str
    message: dict[str, Any]
    status: int
    at: float


@dataclass(slots=True)
class Scripted:
    status: int
    retry_after: float | None = None


@dataclass
class FcmServer:
    project_id: str = "conveyor-demo"
    token_lifetime: int = 3600
    unregistered: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)
    received: list[ReceivedMessage] = field(default_factory=list)
    token_requests: int = 0
    rejected_auth: int = 0
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        self._client_email = f"firebase-adminsdk@{self.project_id}.iam.gserviceaccount.com"
        self._issued: dict[str, float] = {}
        self._scripts: dict[str, list[Scripted]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FcmServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fcm-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FcmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def service_account(self) -> dict[str, str]:
        return {"type": "service_account", "project_id": self.project_id,
                "private_key_id": "conveyor-test-key", "private_key": self._pem,
                "client_email": self._client_email, "token_uri": self.token_url}

    def env(self) -> dict[str, str]:
        """``FCM_*`` variables pointing a ``SendNotificationJob`` at this server."""
        return {"FCM_CREDENTIALS_JSON": json.dumps(self.service_account),
                "FCM_PROJECT_ID": self.project_id, "FCM_BASE_URL": self.base_url,
                "FCM_TOKEN_URL": self.token_url}

    def settings(self, **overrides: Any) -> FcmSettings:
        """Settings for ``notifications.install(app, settings=…)``."""
        return replace(FcmSettings.from_env(self.env()), **overrides)

    # -- behaviour and inspection ---------------------------------------------------------------
    def fail_next(self, token: str, status: int, *, retry_after: float | None = None,
                  times: int = 1) -> None:
        """Answer the next ``times`` sends to ``token`` with ``status`` (429, 500, 503 …)."""
        with self._lock:
            self._scripts.setdefault(token, []).extend(
                Scripted(status, retry_after) for _ in range(times))

    def delivered(self, token: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.received
                       if r.status == 200 and (token is None or r.token == token))

    def attempts(self, token: str) -> int:
        with self._lock:
            return sum(1 for r in self.received if r.token == token)

    def expire_tokens(self) -> None:
        """Make every issued access token expire now (clients must fetch a new one)."""
        with self._lock:
            self._issued.clear()

    # -- the endpoints ----------------------------------------------------------------------------
    def issue_token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def refuse(why: str) -> tuple[int, dict[str, Any]]:
            return 400, {"error": "invalid_grant", "error_description": why}

        if form.get("grant_type") != [GRANT_TYPE]:
            return 400, {"error": "unsupported_grant_type"}
        assertion = (form.get("assertion") or [""])[0]
        parts = assertion.split(".")
        if len(parts) != 3:
            return refuse("malformed JWT")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            self._key.public_key().verify(b64url_decode(parts[2]),
                                          f"{parts[0]}.{parts[1]}".encode(),
                                          padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature):
            return refuse("Invalid JWT Signature.")
        now = self.clock()
        if header.get("alg") != "RS256":
            return refuse("alg must be RS256")
        if claims.get("iss") != self._client_email or claims.get("aud") != self.token_url:
            return refuse("Invalid JWT: iss or aud")
        if SCOPE not in str(claims.get("scope", "")).split():
            return refuse("Invalid scope")
        if not claims.get("iat", 0) - 300 <= now < claims.get("exp", 0):
            return refuse("Invalid JWT: Token must be a short-lived token and in a "
                          "reasonable timeframe")
        token = "ya29." + secrets.token_urlsafe(24)
        with self._lock:
            self.token_requests += 1
            self._issued[token] = now + self.token_lifetime
        return 200, {"access_token": token, "expires_in": self.token_lifetime,
                     "token_type": "Bearer"}

    def send(self, project: str, authorization: str, body: Any
             ) -> tuple[int, dict[str, Any], dict[str, str]]:
        bearer = authorization[7:] if authorization.startswith("Bearer ") else ""
        with self._lock:
            expires = self._issued.get(bearer)
            if expires is None or expires <= self.clock():
                self.rejected_auth += 1
                return _error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                              "credentials.", "")
        if project != self.project_id:
            # a wrong project is a configuration error, not a bad token
            return _error(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages."
                          "create' denied on resource", "")
        message = body.get("message") if isinstance(body, dict) else None
        problem = _message_problem(message)
        if problem or not isinstance(message, dict):
            return _error(400, "INVALID_ARGUMENT", problem or "no message", "INVALID_ARGUMENT")
        token = str(message["token"])
        with self._lock:
            script = self._scripts.get(token)
            scripted = script.pop(0) if script else None
        if scripted is not None:
            status, headers = scripted.status, {}
            if scripted.retry_after is not None:
                headers["Retry-After"] = f"{scripted.retry_after:g}"
            code = "QUOTA_EXCEEDED" if status == 429 else "UNAVAILABLE"
            answer = _error(status, "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE",
                            "try again later", code)
            self._record(token, message, status)
            return status, answer[1], headers
        if token in self.unregistered:
            self._record(token, message, 404)
            return _error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        if token in self.invalid:
            self._record(token, message, 400)
            return _error(400, "INVALID_ARGUMENT",
                          "The registration token is not a valid FCM registration token",
                          "INVALID_ARGUMENT")
        self._record(token, message, 200)
        return 200, {"name": f"projects/{project}/messages/{secrets.token_hex(8)}"}, {}

    def _record(self, token: str, message: dict[str, Any], status: int) -> None:
        with self._lock:
            self.received.append(ReceivedMessage(token, message, status, self.clock()))


def _error(status: int, name: str, message: str, code: str
           ) -> tuple[int, dict[str, Any], dict[str, str]]:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": code}] if code else []
    return status, {"error": {"code": status, "message": message, "status": name,
                              "details": details}}, {}


def _message_problem(message: Any) -> str:
    """What FCM would reject in a message, or ""."""
    if not isinstance(message, dict):
        return "Invalid JSON payload: message must be an object"
    if not isinstance(message.get("token"), str) or not message["token"]:
        return "Invalid JSON payload: exactly one target (token) is required"
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return "Invalid value at 'message.data': values must be strings"
    android = message.get("android", {}).get("priority", "NORMAL")
    if android not in ("HIGH", "NORMAL"):
        return "Invalid value at 'message.android.priority'"
    apns = message.get("apns", {}).get("headers", {}).get("apns-priority", "10")
    if apns not in ("5", "10"):
        return "Invalid apns-priority"
    return ""


def _handler_for(fcm: FcmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # one write per answer, no Nagle: otherwise keep-alive requests stall on
        # delayed ACKs (~40 ms each)
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read fcm.received instead

        def _answer(self, status: int, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            path = urllib.parse.urlparse(self.path).path
            if path == "/token":
                status, body = fcm.issue_token(urllib.parse.parse_qs(raw.decode()))
                self._answer(status, body)
                return
            prefix, suffix = "/v1/projects/", "/messages:send"
            if path.startswith(prefix) and path.endswith(suffix):
                try:
                    payload = json.loads(raw or b"null")
                except ValueError:
                    payload = None
                status, body, headers = fcm.send(path[len(prefix):-len(suffix)],
                                                 self.headers.get("Authorization", ""), payload)
                self._answer(status, body, headers)
                return
            self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND",
                                         "message": f"no endpoint {path}"}})

    return Handler
