"""Decoding fetched body parts (transfer encoding, charset) and a plain-text view of HTML."""

from __future__ import annotations

import binascii
import quopri
import re
from html import unescape
from html.parser import HTMLParser

from webmail.mail.text import clean, decode_bytes


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo Content-Transfer-Encoding; damaged base64 yields what can be read."""
    encoding = (encoding or "").lower()
    if encoding == "base64":
        compact = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        compact = compact[: len(compact) - len(compact) % 4]
        try:
            return binascii.a2b_base64(compact)
        except binascii.Error:
            return data
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


def decode_part(data: bytes, encoding: str, charset: str) -> str:
    return clean(decode_bytes(decode_transfer(data, encoding), charset))


class _TextExtractor(HTMLParser):
    BLOCKS = {
        "p",
        "div",
        "br",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "blockquote",
        "pre",
        "hr",
    }
    SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of an HTML body (for snippets, search and fallbacks)."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # noqa: BLE001 — HTMLParser is lenient, but never let a body break a page
        return clean(unescape(re.sub(r"<[^>]*>", " ", html)))
    text = "".join(extractor.parts)
    text = re.sub(r"[ \t\xa0]+", " ", text)
    text = re.sub(r" *\n[ \n]*\n", "\n\n", text)
    return clean(text.strip())


def make_snippet(text: str, length: int = 200) -> str:
    """The first words of a body, skipping quoted lines, on one line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    return re.sub(r"\s+", " ", " ".join(lines)).strip()[:length]
