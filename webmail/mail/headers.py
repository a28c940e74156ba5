"""Parsing the header block fetched during sync into the fields a message list needs."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from webmail.mail.text import clean, decode_bytes

# The fields fetched with BODY.PEEK[HEADER.FIELDS (...)] — far cheaper than ENVELOPE to parse.
FETCHED_FIELDS = (
    "FROM",
    "TO",
    "CC",
    "REPLY-TO",
    "SUBJECT",
    "DATE",
    "MESSAGE-ID",
    "IN-REPLY-TO",
    "REFERENCES",
    "CONTENT-TYPE",
)

_MSGID = re.compile(r"<[^<>\s]+>")
_parser = BytesHeaderParser(policy=compat32)


@dataclass
class Headers:
    subject: str = ""
    from_name: str = ""
    from_address: str = ""
    to: list[list[str]] = field(default_factory=list)
    cc: list[list[str]] = field(default_factory=list)
    reply_to: list[list[str]] = field(default_factory=list)
    date: datetime | None = None
    message_id: str = ""
    in_reply_to: str = ""
    references: str = ""
    content_type: str = "text/plain"

    @property
    def is_multipart_mixed(self) -> bool:
        return self.content_type in {"multipart/mixed", "multipart/report"}

    def stable_id(self) -> str:
        """A server-independent identity for remapping after a UIDVALIDITY change."""
        date = self.date.isoformat() if self.date else ""
        key = "\0".join([self.message_id, date, self.from_address, self.subject])
        return "h:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", value).strip()


def _raw_to_text(value: str) -> str:
    """compat32 keeps 8-bit header bytes as surrogates; they are almost always raw UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return decode_bytes(value.encode("ascii", "surrogateescape"))
    return value


def decode_header_value(value: str | None) -> str:
    """Decode RFC 2047 encoded words, with charset fallbacks; never raises."""
    if not value:
        return ""
    value = _raw_to_text(_unfold(str(value)))
    try:
        chunks = decode_header(value)
    except Exception:  # noqa: BLE001 — malformed encoded words: show the raw text
        return clean(value)
    parts = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            parts.append(decode_bytes(chunk, charset))
        else:
            parts.append(chunk)
    # decode_header drops the whitespace between an encoded word and plain text inconsistently;
    # joining with "" when it returned mixed chunks is what mail clients show.
    joined = "".join(parts) if len(chunks) > 1 else parts[0]
    return clean(re.sub(r"\s+", " ", joined).strip())


def parse_addresses(value: str | None) -> list[list[str]]:
    if not value:
        return []
    text = _raw_to_text(_unfold(str(value)))
    try:
        pairs = getaddresses([text])
    except Exception:  # noqa: BLE001
        return [["", clean(text)[:320]]]
    result = []
    for name, address in pairs:
        if not name and not address:
            continue
        result.append([decode_header_value(name)[:998], clean(address)[:320]])
    return result


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(_unfold(str(value)))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 1970 <= parsed.year <= 9999:
        return None
    return parsed


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    return _MSGID.findall(_raw_to_text(str(value)))


def parse_headers(raw: bytes) -> Headers:
    """Parse a header block. Malformed input gives partial results rather than an exception."""
    message = _parser.parsebytes(raw)
    from_pairs = parse_addresses(message.get("From"))
    from_name, from_address = from_pairs[0] if from_pairs else ("", "")
    message_ids = _message_ids(message.get("Message-ID"))
    in_reply_to = _message_ids(message.get("In-Reply-To"))
    references = _message_ids(message.get("References"))
    content_type = (message.get_content_type() or "text/plain").lower()
    return Headers(
        subject=decode_header_value(message.get("Subject")),
        from_name=from_name,
        from_address=from_address,
        to=parse_addresses(message.get("To")),
        cc=parse_addresses(message.get("Cc")),
        reply_to=parse_addresses(message.get("Reply-To")),
        date=parse_date(message.get("Date")),
        message_id=message_ids[0][:998] if message_ids else "",
        in_reply_to=" ".join(in_reply_to),
        references=" ".join(references),
        content_type=content_type,
    )
