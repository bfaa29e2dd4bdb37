"""Mailers: ``smtp`` (a real SMTP client), ``log`` and ``file`` (.eml) for development.

A mailer sends one message to envelope recipients and returns the recipients the server
refused while accepting the others. Every failure is a ``MailError`` that says whether
trying again may help: 4xx answers, dropped connections and timeouts are transient; 5xx
answers (recipient refused, authentication failed) are permanent.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import tempfile
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Protocol

from .config import MailSettings
from .mailable import MailError

log = logging.getLogger("conveyor.mail")

Refused = dict[str, tuple[int, str]]


class Mailer(Protocol):
    name: str

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> Refused: ...


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def classify_refused(refused: Refused) -> tuple[Refused, Refused]:
    """Split refused recipients into transient (4xx) and permanent (anything else)."""
    transient = {a: r for a, r in refused.items() if 400 <= r[0] < 500}
    return transient, {a: r for a, r in refused.items() if a not in transient}


class SmtpMailer:
    """smtplib with STARTTLS or implicit TLS, login and a timeout. The password is only
    ever handed to ``SMTP.login``; nothing here formats it."""

    name = "smtp"

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    def describe(self) -> str:
        s = self.settings
        user = f"{s.username}@" if s.username else ""
        return f"smtp://{user}{s.host}:{s.port} ({s.encryption})"

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.settings.verify_peer:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> Refused:
        s = self.settings
        where = self.describe()
        try:
            smtp: smtplib.SMTP
            if s.encryption == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                        context=self._context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                if s.encryption == "starttls":
                    smtp.starttls(context=self._context())
                if s.username:
                    smtp.login(s.username, s.password.reveal())
                refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
                return {a: (code, _reply(code, text)) for a, (code, text) in refused.items()}
        except smtplib.SMTPRecipientsRefused as exc:
            replies = {a: (code, _reply(code, text)) for a, (code, text) in exc.recipients.items()}
            transient, _ = classify_refused(replies)
            detail = "; ".join(f"{a}: {r}" for a, (_c, r) in replies.items())
            raise MailError(f"{where} refused every recipient: {detail}",
                            transient=len(transient) == len(replies)) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(
                f"{where}: authentication failed ({_reply(exc.smtp_code, exc.smtp_error)}); "
                "check MAIL_USERNAME and MAIL_PASSWORD",
                transient=400 <= exc.smtp_code < 500, code=exc.smtp_code) from None
        except smtplib.SMTPResponseException as exc:
            raise MailError(f"{where} answered {_reply(exc.smtp_code, exc.smtp_error)}",
                            transient=400 <= exc.smtp_code < 500 or exc.smtp_code < 0,
                            code=exc.smtp_code) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise MailError(f"{where}: {exc} (check MAIL_ENCRYPTION and MAIL_USERNAME)",
                            transient=False) from None
        except ssl.SSLCertVerificationError as exc:
            raise MailError(f"{where}: TLS certificate not trusted ({exc.verify_message}); "
                            "fix the certificate or set MAIL_VERIFY_PEER=false for a test "
                            "server", transient=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            # connection refused/reset/dropped, DNS, timeouts: the server may come back
            raise MailError(f"{where}: {type(exc).__name__}: {exc}", transient=True) from None


class LogMailer:
    """Writes each message to the ``conveyor.mail`` log (development)."""

    name = "log"

    def describe(self) -> str:
        return "log"

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> Refused:
        log.info("mail to %s from %s:\n%s", ", ".join(recipients), sender,
                 message.as_string(policy=SMTP.clone(linesep="\n")))
        return {}


class FileMailer:
    """Writes each message as an ``.eml`` file (atomically) into a folder (development)."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self) -> str:
        return f"file:{self.directory}"

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> Refused:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        data = (f"X-Envelope-From: {sender}\r\nX-Envelope-To: {', '.join(recipients)}\r\n"
                ).encode() + message.as_bytes(policy=SMTP)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".mail-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.directory / f"{stamp}-{os.urandom(6).hex()}.eml")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return {}


def make_mailer(settings: MailSettings) -> SmtpMailer | LogMailer | FileMailer:
    if settings.mailer == "smtp":
        return SmtpMailer(settings)
    if settings.mailer == "file":
        return FileMailer(settings.file_path)
    return LogMailer()
