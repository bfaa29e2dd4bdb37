"""Alerts: post crossed health rules to a webhook (Slack-compatible JSON) and/or email
them through the ``MAIL_*`` settings, at most once per rule and channel per cooldown.

Cooldowns are kept in a small JSON state file (``alert_state_file``), locked while it is
read and written, so overlapping cron runs do not double-send. It is local on purpose:
the store protocol stays storage primitives, and the notifier runs on one host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from ..builtin.config import MailSettings, app_env
from ..builtin.mailable import MailError
from ..builtin.mailers import make_mailer
from ..errors import ConfigurationError
from .health import Problem

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.alerts")


def default_state_path(app: Conveyor) -> Path:
    """One file per store under the user's state directory."""
    if app.settings.alert_state_file:
        return Path(app.settings.alert_state_file)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(f"{app.settings.url}|{app.settings.table_prefix}".encode())
    return Path(base) / "conveyor" / f"alerts-{digest.hexdigest()[:12]}.json"


class Notifier:
    def __init__(self, *, store: str, state_path: Path, cooldown: float,
                 clock: Callable[[], float], webhook: str = "",
                 emails: Sequence[str] = (), mail: MailSettings | None = None) -> None:
        if not webhook and not emails:
            raise ConfigurationError(
                "--notify needs somewhere to send: --webhook URL / CONVEYOR_ALERT_WEBHOOK or "
                "--email ADDRESS / CONVEYOR_ALERT_EMAIL")
        self.store = store
        self.state_path = state_path
        self.cooldown = cooldown
        self.clock = clock
        self.webhook = webhook
        self.emails = list(emails)
        self.mail = mail or MailSettings()
        self.errors: list[str] = []

    @classmethod
    def from_app(cls, app: Conveyor, *, webhook: str | None = None,
                 emails: Sequence[str] | None = None, cooldown: float | None = None,
                 state_path: Path | None = None) -> Notifier:
        s = app.settings
        recipients = emails if emails is not None else [
            e.strip() for e in s.alert_email.split(",") if e.strip()]
        return cls(store=app.display_url, state_path=state_path or default_state_path(app),
                   cooldown=s.alert_cooldown if cooldown is None else cooldown,
                   clock=app.clock, webhook=s.alert_webhook if webhook is None else webhook,
                   emails=recipients, mail=MailSettings.from_env(app_env(app)))

    def notify(self, problems: Sequence[Problem]) -> dict[str, list[Problem]]:
        """Send what is due; returns the problems sent per channel (webhook, email)."""
        sent: dict[str, list[Problem]] = {}
        with self._state() as state:
            now = self.clock()
            for channel, deliver in (("webhook", self._post), ("email", self._mail)):
                if (channel == "webhook" and not self.webhook) or (
                        channel == "email" and not self.emails):
                    continue
                due = [p for p in problems
                       if now - state.get(f"{channel}|{p.key}", float("-inf")) >= self.cooldown]
                if not due:
                    continue
                delivered = deliver(due)
                for problem in delivered:
                    state[f"{channel}|{problem.key}"] = now
                if delivered:
                    sent[channel] = delivered
        return sent

    # -- channels ---------------------------------------------------------------------------
    def _post(self, problems: list[Problem]) -> list[Problem]:
        """One message per rule, so a Slack channel reads as a list of alerts."""
        delivered = []
        for problem in problems:
            body = json.dumps({
                "text": f":rotating_light: conveyor on {self.store}: {problem.message}",
                "conveyor": problem.to_dict() | {"store": self.store},
            }).encode()
            request = urllib.request.Request(self.webhook, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
            except OSError as exc:
                self.errors.append(f"webhook: {exc}")
                log.error("could not post the alert to the webhook: %s", exc)
                break
            delivered.append(problem)
        return delivered

    def _mail(self, problems: list[Problem]) -> list[Problem]:
        """One message listing the problems due, through the MAIL_* mailer the email jobs
        use (smtp; log or file in development)."""
        mail = self.mail
        message = EmailMessage()
        message["Subject"] = f"conveyor: {len(problems)} problem(s) on {self.store}"
        message["From"] = mail.from_address
        message["To"] = ", ".join(self.emails)
        message.set_content("\n".join(p.message for p in problems) + "\n")
        try:
            refused = make_mailer(mail).send(message, mail.from_address, self.emails)
        except MailError as exc:
            self.errors.append(f"email: {exc}")
            log.error("could not email the alert: %s", exc)
            return []
        for address, (_code, reply) in refused.items():
            self.errors.append(f"email: {address} refused: {reply}")
        return list(problems)

    # -- state ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, float]]:
        path = self.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state: dict[str, float] = {}
                if path.exists():
                    try:
                        state = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
                    except (ValueError, AttributeError):
                        log.warning("alert state %s is unreadable; starting afresh", path)
                yield state
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
                os.replace(tmp, path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
