"""Payload encryption: ``@app.job(encrypted=True)`` seals arguments with Fernet keys from
``CONVEYOR_ENCRYPTION_KEYS`` (first encrypts, all decrypt); what cannot be opened fails
clearly and permanently."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.fernet import Fernet

from conveyor import Conveyor
from conveyor.errors import ConfigurationError, PayloadTooLarge
from conveyor.settings import load_settings
from conveyor.testing import run_until_empty

SECRET = "4111-1111-1111-1111"


def new_key() -> str:
    return Fernet.generate_key().decode()


def shop(url: str, *keys: str, **overrides: Any) -> tuple[Conveyor, list[str]]:
    """An app with a job that carries personal data, as a web app and a worker define it."""
    app = Conveyor(url, encryption_keys=keys or None, **overrides)
    seen: list[str] = []

    @app.job(name="charge", encrypted=True, tries=5, backoff=0)
    def charge(card: str) -> None:
        seen.append(card)

    @app.job(name="plain", tries=5, backoff=0)
    def plain(card: str) -> None:
        seen.append(card)

    return app, seen


def stored(app: Conveyor, job_id: str) -> dict[str, Any]:
    job = app.backend.jobs_get(job_id)
    assert job is not None
    return dict(json.loads(job.payload)) | {"_name": job.name}


def test_an_encrypted_job_stores_an_envelope_and_runs(sqlite_url: str) -> None:
    key = new_key()
    app, seen = shop(sqlite_url, key)
    job_id = app.get_job("charge").dispatch(SECRET)
    envelope = stored(app, job_id)
    assert envelope["enc"] == "fernet" and envelope["job"] == "charge"
    assert envelope["_name"] == "charge"  # the name column stays in clear
    assert SECRET not in json.dumps(envelope) and "args" not in envelope
    run_until_empty(app)
    assert seen == [SECRET]


def test_options_turn_encryption_on_and_off(sqlite_url: str) -> None:
    app, seen = shop(sqlite_url, new_key())
    sealed = app.get_job("plain").options(encrypted=True).dispatch("a")
    clear = app.get_job("charge").options(encrypted=False).dispatch("b")
    assert "enc" in stored(app, sealed)
    assert stored(app, clear)["args"] == ["b"]
    run_until_empty(app)
    assert sorted(seen) == ["a", "b"]
    with pytest.raises(ConfigurationError, match="encrypted must be True or False"):
        app.get_job("plain").options(encrypted="yes")


def test_keys_rotate_by_a_list(sqlite_url: str) -> None:
    old, new = new_key(), new_key()
    web_before, _ = shop(sqlite_url, old)
    web_before.get_job("charge").dispatch("old")
    web_after, _ = shop(sqlite_url, new, old)  # the new key first: it encrypts
    web_after.get_job("charge").dispatch("new")
    worker, seen = shop(sqlite_url, new, old)  # during the rotation both keys decrypt
    run_until_empty(worker)
    assert sorted(seen) == ["new", "old"]
    web_after.get_job("charge").dispatch("later")
    worker_after, seen_after = shop(sqlite_url, new)  # the old key retired
    run_until_empty(worker_after)
    assert seen_after == ["later"] and worker.backend.failed_list() == []


def test_a_payload_no_key_opens_fails_permanently_and_clearly(sqlite_url: str) -> None:
    removed = new_key()
    web, _ = shop(sqlite_url, removed)
    job_id = web.get_job("charge").dispatch(SECRET)
    current = new_key()
    worker, seen = shop(sqlite_url, current)
    run_until_empty(worker)
    assert seen == []
    failed = worker.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 1  # no retry of something hopeless
    assert "cannot decrypt the payload of 'charge'" in failed.exception
    assert "CONVEYOR_ENCRYPTION_KEYS" in failed.exception
    for secret in (removed, current, SECRET):
        assert secret not in failed.exception


def test_a_worker_without_keys_fails_the_job_clearly(sqlite_url: str) -> None:
    web, _ = shop(sqlite_url, new_key())
    job_id = web.get_job("charge").dispatch(SECRET)
    worker, seen = shop(sqlite_url)
    run_until_empty(worker)
    failed = worker.backend.failed_get(job_id)
    assert seen == [] and failed is not None
    assert "is encrypted but this worker has no CONVEYOR_ENCRYPTION_KEYS" in failed.exception


def test_a_tampered_envelope_is_refused(sqlite_url: str) -> None:
    app, seen = shop(sqlite_url, new_key())
    job_id = app.get_job("charge").dispatch(SECRET)
    envelope = stored(app, job_id)
    envelope["data"] = envelope["data"][:-6] + ("AAAAAA" if envelope["data"][-6:] != "AAAAAA"
                                                else "BBBBBB")
    del envelope["_name"]
    conn = app.backend.conn  # type: ignore[attr-defined]
    conn.execute("UPDATE jobs SET payload = ? WHERE id = ?", (json.dumps(envelope), job_id))
    run_until_empty(app)
    failed = app.backend.failed_get(job_id)
    assert seen == [] and failed is not None and "cannot decrypt" in failed.exception


def test_dispatching_an_encrypted_job_without_keys_says_how_to_fix_it(sqlite_url: str) -> None:
    app, _ = shop(sqlite_url)
    with pytest.raises(ConfigurationError, match="CONVEYOR_ENCRYPTION_KEYS") as info:
        app.get_job("charge").dispatch(SECRET)
    assert "Fernet.generate_key" in str(info.value)
    assert app.backend.queue_stats(0) == []  # nothing stored in clear instead


def test_the_cap_applies_to_the_sealed_payload(sqlite_url: str) -> None:
    app, _ = shop(sqlite_url, new_key(), payload_max_bytes=1000)
    app.get_job("plain").dispatch("x" * 800)  # fits in clear
    with pytest.raises(PayloadTooLarge, match="over the cap of 1000 bytes"):
        app.get_job("charge").dispatch("x" * 800)  # ~1.4x once sealed


def test_keys_come_from_the_environment_and_are_never_shown() -> None:
    first, second = new_key(), new_key()
    settings = load_settings(environ={"CONVEYOR_ENCRYPTION_KEYS": f" {first} ,{second},"})
    assert settings.encryption_keys == (first, second)
    assert first not in repr(settings)
    app = Conveyor(settings=settings)
    assert first not in repr(app.payload_cipher()) and "keys=2" in repr(app.payload_cipher())
    bad = "not-a-key-" + "z" * 30
    with pytest.raises(ConfigurationError, match="key #2 is not a Fernet key") as info:
        load_settings(environ={"CONVEYOR_ENCRYPTION_KEYS": f"{first},{bad}"})
    assert bad not in str(info.value) and first not in str(info.value)
