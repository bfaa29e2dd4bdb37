"""MAIL_* and FCM_* settings: defaults, parsing, one clear line for a bad value."""

from __future__ import annotations

import json

import pytest

from conveyor import ConfigurationError, Conveyor
from conveyor.builtin import email, notifications
from conveyor.builtin.config import FcmSettings, MailSettings, Secret


def test_mail_defaults_and_overrides() -> None:
    assert MailSettings.from_env({}).mailer == "log"
    s = MailSettings.from_env({"MAIL_HOST": "smtp.example.com", "MAIL_ENCRYPTION": "tls",
                               "MAIL_PASSWORD": "pw", "MAIL_ROUTES": "newsletter=normal"})
    assert (s.mailer, s.port, s.encryption) == ("smtp", 587, "starttls")
    assert s.routes["newsletter"] == "normal" and s.routes["password_reset"] == "high"
    assert "pw" not in repr(s) and "pw" not in str(s.password) and s.password.reveal() == "pw"
    assert MailSettings.from_env({"MAIL_ENCRYPTION": "ssl"}).port == 465


@pytest.mark.parametrize(("name", "value", "accepted"), [
    ("MAIL_MAILER", "sendmail", "smtp, log, file"),
    ("MAIL_PORT", "abc", "number"),
    ("MAIL_ROUTES", "newsletter=urgent", "high, normal, low"),
])
def test_bad_mail_settings_name_the_setting(name: str, value: str, accepted: str) -> None:
    with pytest.raises(ConfigurationError, match=name if name != "MAIL_ROUTES" else "urgent") \
            as info:
        MailSettings.from_env({name: value})
    assert accepted in str(info.value)


def test_fcm_settings_from_credentials_json() -> None:
    account = {"client_email": "x@p.iam", "private_key": "k", "project_id": "shop-1"}
    s = FcmSettings.from_env({"FCM_CREDENTIALS_JSON": json.dumps(account),
                              "FCM_BASE_URL": "http://127.0.0.1:9/", "FCM_CONCURRENCY": "3"})
    assert (s.project_id, s.base_url, s.concurrency) == ("shop-1", "http://127.0.0.1:9", 3)
    assert "private_key" not in repr(s)
    with pytest.raises(ConfigurationError, match="lacks private_key"):
        FcmSettings.from_env({"FCM_CREDENTIALS_JSON": json.dumps({"client_email": "x"})})
    with pytest.raises(ConfigurationError, match="cannot read the service-account file"):
        FcmSettings.from_env({"FCM_CREDENTIALS": "/nope.json"})


def test_routing_table_is_data_and_settings_win() -> None:
    app = Conveyor("sync://", routing=({"job": "conveyor.send_email", "type": "newsletter",
                                        "priority": "normal"},))
    mail = email.install(app, mailer="log")
    push = notifications.install(app)

    def queue(prepared: object) -> str:
        return prepared.resolve_queue()  # type: ignore[attr-defined]

    msg = {"subject": "s", "to": ["a@b.c"], "text": "t"}
    assert queue(mail.prepare(msg, "password_reset")) == "emails_high"
    assert queue(mail.prepare(msg, "newsletter")) == "emails"  # conveyor.toml rule first
    assert queue(mail.prepare(msg, "promotional")) == "emails_low"
    assert queue(mail.prepare(msg, "welcome")) == "emails"
    assert queue(push.prepare({"title": "t"}, ["x"], "delivery_alert")) == "notifications_high"
    assert queue(push.prepare({"title": "t"}, ["x"], "marketing")) == "notifications_low"
    with pytest.raises(ConfigurationError, match="already installed"):
        email.install(app)


def test_secret_hides_itself() -> None:
    assert repr(Secret("x")) == "Secret('***')" and not Secret("")
