"""SendEmailJob against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import email.policy
import logging
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.builtin import email as mail
from conveyor.builtin.config import MailSettings, Secret
from conveyor.testing import run_until_empty

from .smtp_server import smtp_server

PASSWORD = "s3cr3t-Pa55word-do-not-log"


def make_app(tmp_path: Path, port: int, **overrides: object) -> tuple[Conveyor, mail.EmailService]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = Conveyor(f"sqlite:///{tmp_path / 'q.db'}")
    values: dict[str, object] = dict(mailer="smtp", host="127.0.0.1", port=port, timeout=5.0,
                                     from_address="shop@grofresh.test", retry_base=0.0)
    values.update(overrides)
    service = mail.install(app, settings=MailSettings(**values))  # type: ignore[arg-type]
    return app, service


def counting(app: Conveyor) -> dict[str, int]:
    counts = {"job_succeeded": 0, "job_released": 0, "job_failed": 0}
    for event in counts:
        app.on(event, lambda event, **_: counts.__setitem__(event, counts[event] + 1))
    return counts


def test_exact_message_with_both_bodies_and_attachment(tmp_path: Path) -> None:
    with smtp_server() as (handler, port):
        app, service = make_app(tmp_path, port)
        service.send(mail.Mailable(
            subject="Order {{ number }} confirmed", to=["Ann <ann@example.com>"],
            cc=["cc@example.com"], bcc=["audit@example.com"], reply_to=["help@grofresh.test"],
            text="Hello {{ name }}, total {{ total }}", html="<p>Hello {{ name }}</p>",
            context={"number": 42, "name": "Ann & co", "total": "9.50"},
            attachments=[mail.Attachment("receipt.csv", content=b"a,b\r\n1,2\r\n")]),
            type="order_confirmation")
        assert app.backend.queue_stats(app.clock())[0].queue == "emails_high"
        run_until_empty(app)
    assert len(handler.messages) == 1
    received = handler.messages[0]
    assert received.mail_from == "shop@grofresh.test"
    assert sorted(received.rcpt_tos) == ["ann@example.com", "audit@example.com",
                                         "cc@example.com"]
    msg = email.message_from_bytes(received.content, policy=email.policy.default)
    assert msg["Subject"] == "Order 42 confirmed"
    assert msg["From"] == "shop@grofresh.test"
    assert msg["To"] == "Ann <ann@example.com>"
    assert msg["Cc"] == "cc@example.com"
    assert msg["Reply-To"] == "help@grofresh.test"
    assert msg["Bcc"] is None
    assert msg["Message-ID"] and msg["Date"]
    assert msg.get_content_type() == "multipart/mixed"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content() == "Hello Ann & co, total 9.50\r\n"
    assert html.get_content() == "<p>Hello Ann &amp; co</p>\r\n"
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["receipt.csv"]
    assert attachments[0].get_content_type() == "text/csv"
    assert attachments[0].get_payload(decode=True) == b"a,b\r\n1,2\r\n"


def test_4xx_is_retried_then_delivered(tmp_path: Path) -> None:
    with smtp_server() as (handler, port):
        app, service = make_app(tmp_path, port)
        counts = counting(app)
        handler.rcpt_script["ann@example.com"] = ["451 4.7.1 greylisted, try again later"]
        service.send(mail.Mailable(subject="Hi", to=["ann@example.com"], text="x"))
        run_until_empty(app)
    assert counts == {"job_succeeded": 1, "job_released": 1, "job_failed": 0}
    assert handler.rcpt_seen == ["ann@example.com", "ann@example.com"]
    assert len(handler.messages) == 1


def test_retry_delay_grows_exponentially(tmp_path: Path) -> None:
    with smtp_server() as (handler, port):
        now = [1_000_000.0]
        app = Conveyor(f"sqlite:///{tmp_path / 'q.db'}", clock=lambda: now[0])
        service = mail.install(app, settings=MailSettings(
            mailer="smtp", host="127.0.0.1", port=port, retry_base=10.0))
        handler.rcpt_script["ann@example.com"] = ["421 4.3.0 busy"] * 2
        job_id = service.send(mail.Mailable(subject="Hi", to=["ann@example.com"], text="x"))
        delays = []
        for _ in range(2):
            run_until_empty(app)
            job = app.backend.jobs_get(job_id)
            assert job is not None
            delays.append(job.available_at - now[0])
            now[0] = job.available_at
        run_until_empty(app)
    assert 5.0 <= delays[0] <= 10.0 and 10.0 <= delays[1] <= 20.0
    assert len(handler.messages) == 1


def test_5xx_fails_without_retry(tmp_path: Path) -> None:
    with smtp_server() as (handler, port):
        app, service = make_app(tmp_path, port)
        counts = counting(app)
        handler.rcpt_script["nobody@example.com"] = ["550 5.1.1 no such user"]
        job_id = service.send(mail.Mailable(subject="Hi", to=["nobody@example.com"], text="x"))
        run_until_empty(app)
    assert counts == {"job_succeeded": 0, "job_released": 0, "job_failed": 1}
    assert handler.rcpt_seen == ["nobody@example.com"]
    failed = app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 1
    assert "550 5.1.1 no such user" in failed.summary and "not retried" in failed.summary


def test_partial_4xx_resends_only_to_refused_recipients(tmp_path: Path) -> None:
    with smtp_server() as (handler, port):
        app, service = make_app(tmp_path, port)
        handler.rcpt_script["bob@example.com"] = ["452 4.2.2 mailbox full"]
        service.send(mail.Mailable(subject="Hi", to=["ann@example.com", "bob@example.com"],
                                   text="x"))
        run_until_empty(app)
    assert [m.rcpt_tos for m in handler.messages] == [["ann@example.com"], ["bob@example.com"]]


def test_invalid_address_fails_at_once(tmp_path: Path) -> None:
    with smtp_server() as (handler, port):
        app, service = make_app(tmp_path, port)
        job_id = service.send({"subject": "Hi", "to": ["not-an-address"], "text": "x"})
        run_until_empty(app)
    failed = app.backend.failed_get(job_id)
    assert failed is not None and "invalid recipient address" in failed.summary
    assert handler.rcpt_seen == []


def test_password_is_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    with smtp_server(username="shop", password=PASSWORD) as (handler, port):
        app, good = make_app(tmp_path, port, username="shop", password=Secret(PASSWORD))
        good.send(mail.Mailable(subject="Hi", to=["ann@example.com"], text="x"))
        run_until_empty(app)
        assert len(handler.messages) == 1
        bad_app, bad = make_app(tmp_path / "bad", port, username="shop",
                                password=Secret(PASSWORD + "-wrong"))
        job_id = bad.send(mail.Mailable(subject="Hi", to=["ann@example.com"], text="x"))
        run_until_empty(bad_app)
    failed = bad_app.backend.failed_get(job_id)
    assert failed is not None and "authentication failed" in failed.summary
    out, err = capfd.readouterr()
    seen = caplog.text + out + err + failed.exception + repr(bad.settings) + repr(bad)
    assert PASSWORD not in seen
    assert "535" in failed.exception


def test_file_and_log_mailers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.mail")
    app = Conveyor("sync://")
    service = mail.install(app, settings=MailSettings(mailer="file",
                                                      file_path=tmp_path / "mail"))
    service.send(mail.Mailable(subject="Saved", to=["ann@example.com"], text="body"))
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "Saved" and msg["X-Envelope-To"] == "ann@example.com"
    log_app = Conveyor("sync://")
    mail.install(log_app, mailer="log").send(
        mail.Mailable(subject="Logged", to=["ann@example.com"], text="body"))
    assert "Subject: Logged" in caplog.text


def test_transient_errors_give_up_after_tries(tmp_path: Path) -> None:
    with smtp_server() as (handler, port):
        app, service = make_app(tmp_path, port, tries=3)
        handler.rcpt_script["ann@example.com"] = ["421 4.3.2 shutting down"] * 5
        job_id = service.send(mail.Mailable(subject="Hi", to=["ann@example.com"], text="x"))
        run_until_empty(app)
    failed = app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 3
    assert "421 4.3.2 shutting down" in failed.summary and "gave up after 3 attempts" in \
        failed.summary
    assert handler.messages == []


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    from .smtp_server import free_port

    app, service = make_app(tmp_path, free_port(), tries=2)
    job_id = service.send(mail.Mailable(subject="Hi", to=["ann@example.com"], text="x"))
    run_until_empty(app)
    failed = app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 2 and "Connection" in failed.summary


def test_starttls_with_login(tmp_path: Path) -> None:
    from .smtp_server import self_signed_context

    context = self_signed_context(tmp_path)
    with smtp_server(username="shop", password=PASSWORD, starttls=context) as (handler, port):
        app, service = make_app(tmp_path, port, encryption="starttls", verify_peer=False,
                                username="shop", password=Secret(PASSWORD))
        service.send(mail.Mailable(subject="Over TLS", to=["ann@example.com"], text="x"))
        run_until_empty(app)
    assert len(handler.messages) == 1


def test_implicit_tls_and_untrusted_certificate(tmp_path: Path) -> None:
    from .smtp_server import self_signed_context

    context = self_signed_context(tmp_path)
    with smtp_server(implicit_tls=context) as (handler, port):
        app, service = make_app(tmp_path, port, encryption="ssl", verify_peer=False)
        service.send(mail.Mailable(subject="Over SSL", to=["ann@example.com"], text="x"))
        run_until_empty(app)
        assert len(handler.messages) == 1
        strict_app, strict = make_app(tmp_path / "strict", port, encryption="ssl")
        job_id = strict.send(mail.Mailable(subject="Hi", to=["ann@example.com"], text="x"))
        run_until_empty(strict_app)
    failed = strict_app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 1
    assert "certificate not trusted" in failed.summary
