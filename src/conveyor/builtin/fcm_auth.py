"""OAuth2 for FCM HTTP v1: a service account signs an RS256 JWT, the token endpoint trades
it for an access token, and the token is reused until shortly before it expires."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..errors import ConveyorError

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_MARGIN = 60.0  # seconds before expiry when a cached token is replaced


class PushError(ConveyorError):
    """A push request failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(claims: Mapping[str, Any], private_key_pem: str, key_id: str | None = None) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PushError("the service account's private_key is not an RSA key", transient=False)
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if key_id:
        header["kid"] = key_id
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(dict(claims), separators=(",", ":")).encode()))
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


class AccessTokens:
    """A cached OAuth2 access token for one service account (thread-safe)."""

    def __init__(self, credentials: Mapping[str, Any], token_url: str, client: httpx.Client,
                 clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self.token_url = token_url
        self.client = client
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.exchanges = 0  # how many times a token was fetched (visible to tests)

    def get(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._expires_at - REFRESH_MARGIN:
                self._token, self._expires_at = self._exchange()
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (answered 401) so the next ``get`` fetches a fresh one."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _exchange(self) -> tuple[str, float]:
        now = self.clock()
        claims = {"iss": self.credentials["client_email"], "scope": SCOPE,
                  "aud": self.token_url, "iat": int(now), "exp": int(now) + 3600}
        assertion = sign_jwt(claims, str(self.credentials["private_key"]),
                             self.credentials.get("private_key_id"))
        try:
            response = self.client.post(self.token_url, data={"grant_type": GRANT_TYPE,
                                                              "assertion": assertion})
        except httpx.HTTPError as exc:
            raise PushError(f"OAuth token endpoint {self.token_url} unreachable: "
                            f"{type(exc).__name__}: {exc}", transient=True) from None
        if response.status_code != 200:
            transient = response.status_code == 429 or response.status_code >= 500
            try:
                detail = response.json().get("error_description") or response.text
            except ValueError:
                detail = response.text
            raise PushError(
                f"OAuth token endpoint {self.token_url} answered {response.status_code}: "
                f"{str(detail)[:200]}" + ("" if transient else
                                          "; check the service account (FCM_CREDENTIALS)"),
                transient=transient)
        data = response.json()
        self.exchanges += 1
        return str(data["access_token"]), now + float(data.get("expires_in", 3600))
