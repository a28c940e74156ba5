"""The hostile and malformed mail corpus: tests/fixtures/{hostile,malformed}/*.eml, plus the
messages too big to keep in the repository, built here.

Hostile messages point every fetch they try at BEACON_URL, which a test replaces with the
address of a listener it runs, so any request that gets out is seen.
"""

from __future__ import annotations

import base64
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HOSTILE = FIXTURES / "hostile"
MALFORMED = FIXTURES / "malformed"
PLACEHOLDER = b"BEACON_URL"

_HEAD = (
    b"From: Sender <sender@example.org>\r\nTo: support@example.com\r\n"
    b"Date: Tue, 03 Mar 2026 08:00:00 +0000\r\nMIME-Version: 1.0\r\n"
)


def hostile_names() -> list[str]:
    return sorted(path.stem for path in HOSTILE.glob("*.eml"))


def hostile_message(name: str, beacon: str) -> bytes:
    """One hostile message with its beacon URL filled in (e.g. http://127.0.0.1:PORT/beacon)."""
    return (HOSTILE / f"{name}.eml").read_bytes().replace(PLACEHOLDER, beacon.encode())


def hostile_messages(beacon: str) -> list[tuple[str, bytes]]:
    return [(name, hostile_message(name, beacon)) for name in hostile_names()]


def malformed_names() -> list[str]:
    return sorted([path.stem for path in MALFORMED.glob("*.eml")] + list(GENERATED))


def malformed_message(name: str) -> bytes:
    if name in GENERATED:
        return GENERATED[name]()
    return (MALFORMED / f"{name}.eml").read_bytes()


def deep_nesting(levels: int = 100) -> bytes:
    """multipart/mixed inside multipart/mixed, levels deep, with a text part at the bottom."""
    opening, closing = [], []
    for level in range(levels):
        boundary = f"level{level}".encode()
        opening.append(
            b"Content-Type: multipart/mixed; boundary="
            + boundary
            + b"\r\n\r\n--"
            + boundary
            + b"\r\n"
        )
        closing.append(b"\r\n--" + boundary + b"--\r\n")
    innermost = b"Content-Type: text/plain\r\n\r\nAt the bottom of 100 levels.\r\n"
    return (
        _HEAD
        + b"Subject: 100 levels of MIME\r\n"
        + b"".join(opening)
        + innermost
        + b"".join(reversed(closing))
    )


def huge_subject(size: int = 1024 * 1024) -> bytes:
    """A 1 MB Subject, folded into 998-octet lines as RFC 5322 §2.1.1 at least allows."""
    words = b"\r\n ".join([b"x" * 900] * (size // 900))
    return _HEAD + b"Subject: " + words + b"\r\nContent-Type: text/plain\r\n\r\nbig subject\r\n"


def many_recipients(count: int = 5000) -> bytes:
    to = b",\r\n ".join(f"Person {n} <person{n}@example.org>".encode() for n in range(count))
    return (
        b"From: Sender <sender@example.org>\r\nTo: "
        + to
        + b"\r\nSubject: 5000 recipients\r\nDate: Tue, 03 Mar 2026 08:00:00 +0000\r\n"
        + b"Content-Type: text/plain\r\n\r\nhello all\r\n"
    )


def long_line(size: int = 1024 * 1024) -> bytes:
    return (
        _HEAD
        + b"Subject: One 1 MB line\r\nContent-Type: text/html\r\n\r\n<p>"
        + b"word " * (size // 5)
        + b"</p>\r\n"
    )


def with_attachment(payload: bytes, filename: str = "data.bin", kind: str = "application/pdf"):
    """A text part and payload as a base64 attachment (76-character lines)."""
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (
        _HEAD
        + b'Subject: Attachment\r\nContent-Type: multipart/mixed; boundary="att"\r\n\r\n'
        + b"--att\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        + f'--att\r\nContent-Type: {kind}; name="{filename}"\r\n'.encode()
        + b"Content-Transfer-Encoding: base64\r\n"
        + f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n'.encode()
        + encoded
        + b"--att--\r\n"
    )


GENERATED = {
    "generated_deep_nesting_100": deep_nesting,
    "generated_huge_subject_1mb": huge_subject,
    "generated_5000_recipients": many_recipients,
    "generated_one_line_1mb": long_line,
    "generated_3mb_attachment": lambda: with_attachment(bytes(range(256)) * (3 * 4096)),
}
