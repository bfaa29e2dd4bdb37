"""Jobs kept as data to be dispatched later: batch callbacks and chain links.

A link is the encoded form of a prepared job (``name``, ``queue``, ``payload`` text,
``max_tries``, ``delay``), stored in a batch's options or a running job's payload meta and
turned into a ``NewJob`` when its time comes, with a deterministic id so that whoever
dispatches it twice dispatches the same job.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from .records import NewJob

if TYPE_CHECKING:
    from .app import Conveyor
    from .jobs import PreparedJob

Link = dict[str, Any]

_NAMESPACE = uuid.UUID("6f1c2d0e-9b1a-4f7e-8a53-0c0e7f3b5a11")


def derived_id(*parts: str) -> str:
    """A stable job id from its origin, e.g. ``derived_id(batch_id, "then", "0")``."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def job_link(app: Conveyor, prepared: PreparedJob) -> Link:
    record = prepared.to_record(app.clock(), app.settings.payload_max_bytes, "")
    return {"name": record.name, "queue": record.queue, "payload": record.payload,
            "max_tries": record.max_tries, "delay": record.available_at - record.created_at}


def with_meta(app: Conveyor, payload: str, meta: dict[str, Any]) -> str:
    """The payload text with ``meta`` keys added to its meta object; an encrypted payload
    is opened and sealed again (its meta travels inside the envelope)."""
    if not meta:
        return payload
    document = json.loads(payload)
    cipher = app.payload_cipher(required=True) if "enc" in document else None
    if cipher is not None:
        document = json.loads(cipher.open(str(document.get("job")), document))
    document.setdefault("meta", {}).update(meta)
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    if cipher is not None:
        text = json.dumps(cipher.seal(str(document.get("job")), text), separators=(",", ":"))
    return text


def link_record(app: Conveyor, link: Link, job_id: str, now: float, *,
                batch_id: str | None = None, meta: dict[str, Any] | None = None) -> NewJob:
    extra = dict(meta or {})
    if batch_id is not None:
        extra["batch"] = batch_id
    return NewJob(
        id=job_id, queue=str(link["queue"]), name=str(link["name"]),
        payload=with_meta(app, str(link["payload"]), extra),
        available_at=now + float(link.get("delay") or 0.0), created_at=now,
        max_tries=link.get("max_tries"), batch_id=batch_id,
    )
