"""Loading the .eml fixtures in tests/fixtures/mail the way the sync code sees them."""

from __future__ import annotations

import email
import re
from email.policy import compat32
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def load(name: str) -> bytes:
    """The raw bytes of tests/fixtures/mail/<name>."""
    return (FIXTURES / name).read_bytes()


def split(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, body) split at the first empty line; a message may have no body."""
    match = _BLANK_LINE.search(raw)
    if not match:
        return raw, b""
    return raw[: match.start()], raw[match.end() :]


def header_block(name: str) -> bytes:
    """The header block as BODY[HEADER] returns it: CRLF lines and a final empty line."""
    head, _ = split(load(name))
    return head.rstrip(b"\r\n") + b"\r\n\r\n"


def single_part(name: str) -> tuple[bytes, str, str]:
    """(encoded body bytes, Content-Transfer-Encoding, charset) of a single-part fixture.

    Parsed with the standard library, independently of the code under test.
    """
    raw = load(name)
    _, body = split(raw)
    message = email.message_from_bytes(raw, policy=compat32)
    assert not message.is_multipart(), name
    encoding = str(message.get("Content-Transfer-Encoding", "7bit")).strip()
    charset = message.get_content_charset() or ""
    return body, encoding, charset
