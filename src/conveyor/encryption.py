"""Payload encryption for jobs that carry personal data (``@app.job(encrypted=True)``).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with the keys of the setting
``CONVEYOR_ENCRYPTION_KEYS``: a comma-separated list whose first key encrypts and every key
decrypts, so keys rotate by putting a new key first and dropping the old one once no job
sealed with it is left.

The stored payload is an envelope, ``{"v": 1, "job": NAME, "enc": "fernet", "data": TOKEN}``:
the job name stays readable (it is also the row's own column) for monitoring; arguments
and per-dispatch options are inside the token.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from .errors import ConfigurationError, SerializationError

SCHEME = "fernet"
KEY_HELP = (
    "generate one with: python -c \"from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())\""
)


def validate_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """Check each key is a Fernet key (32 url-safe base64 bytes). Messages never quote a key."""
    for number, key in enumerate(keys, 1):
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ConfigurationError(
                f"setting CONVEYOR_ENCRYPTION_KEYS is not valid: key #{number} is not a Fernet "
                f"key (32 url-safe base64-encoded bytes); {KEY_HELP}")
    return tuple(keys)


class PayloadCipher:
    """Seals and opens payload envelopes with a list of keys (the first one encrypts)."""

    def __init__(self, keys: Sequence[str]) -> None:
        try:
            from cryptography.fernet import Fernet, MultiFernet
        except ModuleNotFoundError as exc:
            raise ConfigurationError(
                "payload encryption needs the 'cryptography' package: "
                "pip install 'conveyor[encryption]'") from exc
        if not keys:
            raise ConfigurationError(
                f"encrypted jobs need CONVEYOR_ENCRYPTION_KEYS to be set; {KEY_HELP}")
        self.key_count = len(keys)
        self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in validate_keys(keys)])

    def __repr__(self) -> str:  # never show the keys
        return f"<PayloadCipher keys={self.key_count}>"

    def seal(self, job: str, text: str) -> dict[str, Any]:
        token = self._fernet.encrypt(text.encode("utf-8")).decode("ascii")
        return {"v": 1, "job": job, "enc": SCHEME, "data": token}

    def open(self, job: str, envelope: dict[str, Any]) -> str:
        from cryptography.fernet import InvalidToken

        if envelope.get("enc") != SCHEME or not isinstance(envelope.get("data"), str):
            raise SerializationError(
                f"payload of {job!r} is encrypted with an unknown scheme "
                f"{str(envelope.get('enc'))[:40]!r}: this worker knows {SCHEME!r}")
        try:
            return self._fernet.decrypt(envelope["data"].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError):
            raise SerializationError(
                f"cannot decrypt the payload of {job!r}: none of the {self.key_count} key(s) "
                "in CONVEYOR_ENCRYPTION_KEYS opens it (was it sealed with a key since "
                "removed? put that key back, after the current one, and retry the job)"
            ) from None
