"""Reading a message attached to another one (message/rfc822) for display."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message as EmailMessage

from webmail.mail.headers import parse_headers
from webmail.mail.text import clean, decode_bytes


@dataclass
class AttachedPart:
    filename: str
    type: str
    size: int


@dataclass
class AttachedMessage:
    subject: str = ""
    from_name: str = ""
    from_address: str = ""
    to: list[list[str]] = field(default_factory=list)
    cc: list[list[str]] = field(default_factory=list)
    date: datetime | None = None
    text: str = ""
    html: str = ""
    attachments: list[AttachedPart] = field(default_factory=list)
    is_damaged: bool = False  # the parser gave up on part of it


def parse_attached_message(raw: bytes) -> AttachedMessage:
    """Headers, the first text and HTML bodies, and the other parts' names; never raises."""
    head, _, _ = _split(raw)
    # The same header parser as the sync: it already copes with every broken header we know.
    headers = parse_headers(head)
    result = AttachedMessage(
        subject=headers.subject,
        from_name=headers.from_name,
        from_address=headers.from_address,
        to=headers.to,
        cc=headers.cc,
        date=headers.date,
    )
    try:
        # policy.default for its MIME handling; it records defects instead of raising.
        message = email.message_from_bytes(raw, policy=email.policy.default)
        _collect(message, result, depth=0)
    except Exception:  # noqa: BLE001 — a hostile message must still show its headers
        result.is_damaged = True
    return result


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(separator)
        if found:
            return head + separator, found, body
    return raw, b"", b""


MAX_DEPTH = 50


def _collect(part: EmailMessage, result: AttachedMessage, depth: int) -> None:
    if depth > MAX_DEPTH:
        result.is_damaged = True
        return
    content_type = part.get_content_type()
    if content_type.startswith("multipart/"):
        children = part.get_payload()
        if isinstance(children, list):
            for child in children:
                if isinstance(child, EmailMessage):
                    _collect(child, result, depth + 1)
        return
    filename = _filename(part)
    is_attachment = part.get_content_disposition() == "attachment" or bool(filename)
    if not is_attachment and content_type == "text/plain" and not result.text:
        result.text = _text(part)
        return
    if not is_attachment and content_type == "text/html" and not result.html:
        result.html = _text(part)
        return
    # An attached message inside this one is listed, not opened: one level at a time.
    result.attachments.append(AttachedPart(filename, content_type, len(_payload(part))))


def _filename(part: EmailMessage) -> str:
    try:
        return clean(part.get_filename() or "")
    except Exception:  # noqa: BLE001 — malformed RFC 2231 parameters
        return ""


def _payload(part: EmailMessage) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        return b""
    if isinstance(payload, bytes):
        return payload
    return str(part.get_payload()).encode("utf-8", "surrogateescape")


def _text(part: EmailMessage) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    return clean(decode_bytes(_payload(part), charset))
