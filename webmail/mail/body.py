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
        # RFC 2045 §6.8: characters outside the alphabet (line breaks, junk) are ignored. The
        # padding goes with them and is put back below, which also pads a body cut short.
        compact = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        if len(compact) % 4 == 1:
            compact = compact[:-1]  # 6 bits, less than a byte: the rest of that quantum is lost
        compact += b"=" * (-len(compact) % 4)
        try:
            return binascii.a2b_base64(compact)
        except binascii.Error:
            return data
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


def decode_part(data: bytes, encoding: str, charset: str) -> str:
    return clean(decode_bytes(decode_transfer(data, encoding), charset))


# Whitespace as HTML defines it (not \xa0, which is &nbsp;).
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML document, with line breaks where a browser would break."""

    BLOCKS = {
        "p",
        "div",
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
    CELLS = {"td", "th"}
    SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.preformatted = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            # HTML lets the </head> (and </title>) end tags be left out: the body starts here.
            self.skipping = 0
        if tag in self.SKIP:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in self.CELLS:
            self.parts.append(" ")
        elif tag in self.BLOCKS:
            self.parts.append("\n")
            if tag == "pre":
                self.preformatted += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # "<br/>": the default calls handle_endtag too, which gave a second line break.
        self.handle_starttag(tag, attrs)
        if tag in self.SKIP:
            self.handle_endtag(tag)  # "<script/>" has no content to hide

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            if self.skipping:
                self.skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
            if tag == "pre" and self.preformatted:
                self.preformatted -= 1

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if not self.preformatted:
            # As in a browser, a line break in the source is a space; only tags break lines
            # (otherwise "line<br>\r\n" in the source would give a blank line).
            data = _HTML_SPACE.sub(" ", data)
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of an HTML body (for snippets, search and fallbacks)."""
    # Bodies fetched over IMAP have CRLF line ends; a "\r" would survive inside <pre>.
    html = html.replace("\r\n", "\n").replace("\r", "\n")
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # noqa: BLE001 — HTMLParser is lenient, but never let a body break a page
        return clean(unescape(re.sub(r"<[^>]*>", " ", html)))
    text = "".join(extractor.parts)
    text = re.sub(r"[ \t\xa0]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)  # no space at the start or end of a line
    text = re.sub(r"\n{3,}", "\n\n", text)  # at most one blank line between blocks
    return clean(text.strip())


def make_snippet(text: str, length: int = 200) -> str:
    """The first words of a body, skipping quoted lines, on one line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    return re.sub(r"\s+", " ", " ".join(lines)).strip()[:length]
