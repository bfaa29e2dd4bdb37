"""``SendEmailJob``: email from a mailable, over SMTP or a development mailer.

    from conveyor.builtin import email
    mail = email.install(app)                      # MAIL_* settings; returns an EmailService
    mail.send(Mailable(subject="Your order", to=["ann@example.com"], template="order",
                       context={...}), type="order_confirmation")   # -> emails_high

The job is ``conveyor.send_email(mailable, type)``. Routing by ``type`` (password_reset and
order_confirmation high, newsletter and promotional low) is a table: ``MAIL_ROUTES``, the
``routes=`` argument, or ``routing`` rules in conveyor.toml override it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import Fail
from ..jobs import JobDefinition, PreparedJob
from .common import add_routes, attempt, exponential_delay, installed, register, retry_later
from .config import MailSettings, app_env
from .mailable import Attachment, Mailable, MailError, Renderer, build_message, sender_address
from .mailers import FileMailer, LogMailer, Mailer, SmtpMailer, classify_refused, make_mailer

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["JOB_NAME", "Attachment", "EmailService", "FileMailer", "LogMailer", "MailError",
           "Mailable", "Mailer", "SmtpMailer", "install", "service"]

KEY = "conveyor.email"
JOB_NAME = "conveyor.send_email"
log = logging.getLogger("conveyor.mail")


class EmailService:
    """The installed email job of one app: its mailer, renderer, settings and job."""

    def __init__(self, app: Conveyor, settings: MailSettings, mailer: Mailer) -> None:
        self.app = app
        self.settings = settings
        self.mailer = mailer
        self.renderer = Renderer(settings.templates)
        self.sender = sender_address(settings.from_address, settings.from_name)

        def send_email(mailable: dict[str, Any], type: str = "default",
                       round: int = 1) -> dict[str, Any]:
            """Send one email (``round`` counts re-sends to recipients refused with 4xx)."""
            return self.deliver(mailable, type, round)

        self.job: JobDefinition[..., dict[str, Any]] = app.job(
            name=JOB_NAME, queue="emails", tries=settings.tries,
            timeout=max(30.0, settings.timeout * 4))(send_email)

    def prepare(self, mailable: Mailable | Mapping[str, Any], type: str = "default",
                **options: Any) -> PreparedJob:
        data = mailable.to_data() if isinstance(mailable, Mailable) else dict(mailable)
        Mailable.from_data(dict(data))  # fail at dispatch, not on a worker
        if options:
            return self.job.options(**options).prepare(data, type)
        return self.job.prepare(data, type)

    def send(self, mailable: Mailable | Mapping[str, Any], type: str = "default",
             **options: Any) -> str:
        """Dispatch the email; returns the job id."""
        return self.app.dispatch(self.prepare(mailable, type, **options))

    def _delay(self, n: int) -> float:
        return exponential_delay(self.settings.retry_base, self.settings.retry_cap, n)

    def deliver(self, data: dict[str, Any], type: str = "default", round: int = 1
                ) -> dict[str, Any]:
        """The job's body: build, send, and turn failures into Retry or Fail."""
        try:
            mailable = Mailable.from_data(data)
            message, sender, recipients = build_message(mailable, self.renderer, self.sender)
            refused = self.mailer.send(message, sender, recipients)
        except MailError as exc:
            if not exc.transient:
                raise Fail(f"email ({type}) not sent, not retried: {exc}") from None
            retry_later(f"email ({type}) not sent: {exc}", self._delay(attempt()))
        except (TypeError, ValueError) as exc:
            raise Fail(f"invalid mailable: {exc}") from None
        sent = [r for r in recipients if r not in refused]
        log.info("email %s (%s) sent to %d recipient(s) via %s", message["Message-ID"], type,
                 len(sent), getattr(self.mailer, "describe", lambda: self.mailer.name)())
        result: dict[str, Any] = {"sent": sent, "refused": {a: r for a, (_c, r) in refused.items()}}
        transient, hard = classify_refused(refused)
        if hard:
            log.warning("email %s (%s): refused for good: %s", message["Message-ID"], type,
                        "; ".join(f"{a}: {r}" for a, (_c, r) in hard.items()))
        if transient:
            self._resend(mailable, type, round, list(transient))
            result["retrying"] = list(transient)
        return result

    def _resend(self, mailable: Mailable, type: str, round: int, recipients: list[str]) -> None:
        """Some recipients got a 4xx while others accepted: send again to those only, so a
        retry never mails someone twice."""
        if round >= self.settings.tries:
            raise Fail(f"email ({type}): recipients still refused after {round} rounds: "
                       + ", ".join(recipients))
        mailable.envelope_to = recipients
        self.job.options(delay=self._delay(round)).dispatch(mailable.to_data(), type, round + 1)


def install(app: Conveyor, *, mailer: Mailer | str | None = None,
            settings: MailSettings | None = None,
            routes: Mapping[str, str] | None = None) -> EmailService:
    """Register ``conveyor.send_email`` on ``app`` and return its service.

    ``mailer``: ``"smtp"``, ``"log"``, ``"file"`` or any object with
    ``send(message, sender, recipients)``; default from ``MAIL_MAILER``.
    """
    settings = settings or MailSettings.from_env(app_env(app))
    if isinstance(mailer, str):
        from dataclasses import replace

        from .config import MAILERS, get_choice

        settings = replace(settings, mailer=get_choice({"mailer": mailer}, "mailer", "log",
                                                       MAILERS))
        mailer = None
    chosen: Mailer = mailer if mailer is not None else make_mailer(settings)
    email_service = register(app, KEY, lambda: EmailService(app, settings, chosen))
    add_routes(app, JOB_NAME, "emails", {**settings.routes, **(routes or {})})
    return email_service


def service(app: Conveyor) -> EmailService:
    """The email service installed on ``app``."""
    result: EmailService = installed(app, KEY, "conveyor.builtin.email.install(app)")
    return result
