"""A "mailable": the data of one email (JSON, so it travels in a job), and how it becomes
an ``email.message.EmailMessage`` with Jinja2-rendered bodies."""

from __future__ import annotations

import mimetypes
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from ..errors import ConveyorError


class MailError(ConveyorError):
    """Sending an email failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


def permanent(message: str, code: int | None = None) -> MailError:
    return MailError(message, transient=False, code=code)


@dataclass(slots=True)
class Attachment:
    """A file to attach: ``path`` (read when the job runs) or small inline ``content``."""

    filename: str
    path: str | None = None
    content: bytes | None = None
    mimetype: str | None = None

    def data(self) -> bytes:
        if self.content is not None:
            return self.content
        if self.path is None:
            raise permanent(f"attachment {self.filename!r} has neither path nor content")
        try:
            return Path(self.path).read_bytes()
        except OSError as exc:
            raise permanent(f"attachment {self.filename!r}: cannot read {self.path}: "
                            f"{exc.strerror}") from None


@dataclass(slots=True)
class Mailable:
    """One email. ``text``/``html`` are Jinja2 template sources rendered with ``context``;
    ``template`` names files ``NAME.txt``/``NAME.html`` in the templates folder instead."""

    subject: str
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    sender: str | None = None
    text: str | None = None
    html: str | None = None
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    #: envelope recipients when not everyone in to/cc/bcc (a retry of refused ones only)
    envelope_to: list[str] | None = None

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Mailable:
        if not isinstance(data, dict):
            raise permanent(f"a mailable must be an object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown or "subject" not in data or "to" not in data:
            raise permanent(
                f"invalid mailable: needs subject and to; unknown keys {sorted(unknown)}")
        values = dict(data)
        for key in ("to", "cc", "bcc", "reply_to"):
            if isinstance(values.get(key), str):
                values[key] = [values[key]]
        values["attachments"] = [a if isinstance(a, Attachment) else Attachment(**a)
                                 for a in values.get("attachments") or []]
        return cls(**values)


def check_address(value: str, what: str) -> str:
    """Validate ``a@b.c`` or ``Name <a@b.c>``; returns the bare address."""
    _name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if (not at or not local or not domain or domain.startswith(".") or domain.endswith(".")
            or not all(c.isalnum() or c in "-.[]:" for c in domain)
            or any(c.isspace() for c in address)):
        raise permanent(f"invalid {what} address {value!r}: expected name@example.com")
    return address


class Renderer:
    """Jinja2 environments: HTML autoescaped, text not; undefined variables are errors."""

    def __init__(self, templates: Path | None) -> None:
        import jinja2

        loader = jinja2.FileSystemLoader(str(templates)) if templates else None
        self._jinja = jinja2
        self.text_env = jinja2.Environment(loader=loader, autoescape=False,
                                           undefined=jinja2.StrictUndefined)
        self.html_env = jinja2.Environment(loader=loader, autoescape=True,
                                           undefined=jinja2.StrictUndefined)

    def render(self, mailable: Mailable) -> tuple[str, str | None, str | None]:
        """Subject, text body, HTML body."""
        ctx = mailable.context
        try:
            subject = self.text_env.from_string(mailable.subject).render(ctx)
            text = html = None
            if mailable.template:
                text = self._named(self.text_env, f"{mailable.template}.txt", ctx)
                html = self._named(self.html_env, f"{mailable.template}.html", ctx)
                if text is None and html is None:
                    raise permanent(f"template {mailable.template!r}: neither "
                                    f"{mailable.template}.txt nor .html exists in MAIL_TEMPLATES")
            if mailable.text is not None:
                text = self.text_env.from_string(mailable.text).render(ctx)
            if mailable.html is not None:
                html = self.html_env.from_string(mailable.html).render(ctx)
        except self._jinja.TemplateError as exc:
            raise permanent(f"template error: {type(exc).__name__}: {exc}") from None
        if text is None and html is None:
            raise permanent("the mailable has no body: give text, html or template")
        return " ".join(subject.split()), text, html

    def _named(self, env: Any, name: str, ctx: dict[str, Any]) -> str | None:
        if env.loader is None:
            raise permanent(f"template {name!r} needs MAIL_TEMPLATES (a folder of templates)")
        try:
            template = env.get_template(name)
        except self._jinja.TemplateNotFound:
            return None
        return str(template.render(ctx))


def build_message(mailable: Mailable, renderer: Renderer, default_sender: str
                  ) -> tuple[EmailMessage, str, list[str]]:
    """The message, the envelope sender and the envelope recipients."""
    sender = mailable.sender or default_sender
    envelope_from = check_address(sender, "sender")
    recipients = [check_address(a, "recipient")
                  for a in [*mailable.to, *mailable.cc, *mailable.bcc]]
    for address in mailable.reply_to:
        check_address(address, "reply-to")
    if not recipients:
        raise permanent("the mailable has no recipient (to, cc or bcc)")
    if mailable.envelope_to is not None:
        recipients = [check_address(a, "recipient") for a in mailable.envelope_to]
    subject, text, html = renderer.render(mailable)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    if mailable.to:
        msg["To"] = ", ".join(mailable.to)
    if mailable.cc:
        msg["Cc"] = ", ".join(mailable.cc)
    if mailable.reply_to:
        msg["Reply-To"] = ", ".join(mailable.reply_to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=envelope_from.rpartition("@")[2])
    for name, value in mailable.headers.items():
        if "\n" in name or "\n" in value or "\r" in value:
            raise permanent(f"header {name!r} contains a line break")
        msg[name] = value
    # Bcc is never a header: only the envelope carries it
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for attachment in mailable.attachments:
        mimetype = attachment.mimetype or mimetypes.guess_type(attachment.filename)[0]
        maintype, _, subtype = (mimetype or "application/octet-stream").partition("/")
        msg.add_attachment(attachment.data(), maintype=maintype, subtype=subtype,
                           filename=attachment.filename)
    return msg, envelope_from, recipients


def sender_address(address: str, name: str) -> str:
    return formataddr((name, address)) if name else address
