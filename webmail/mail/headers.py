"""Parsing the header block fetched during sync into the fields a message list needs."""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.quoprimime import header_decode
from email.utils import getaddresses, parsedate_to_datetime, unquote
from functools import lru_cache

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

# An RFC 2047 encoded word, as leniently as email.header matches it: senders put spaces and '?'
# in the encoded text, which the RFC forbids.
_ENCODED_WORD = re.compile(r"=\?(?P<charset>[^?]*?)\?(?P<encoding>[qQbB])\?(?P<text>.*?)\?=")
# A message id in angle brackets (RFC 5322 §3.6.4); whitespace or a C1 control inside is junk.
_MSGID = re.compile(r"<[^<>\s\x80-\x9f]+>")
# The same without brackets, as some old mailers and scripts write it.
_BARE_MSGID = re.compile(r"[^<>()\",;\s\x80-\x9f]+@[^<>()\",;\s\x80-\x9f]+")
# The range of dates kept, in UTC as the database stores them. The latest leaves a day of margin
# so that showing a date in any time zone cannot overflow datetime either.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC) - timedelta(days=1)
# One mailbox, no comments, no commas, no quotes inside the name: the shape of most headers.
_SIMPLE_ADDRESS = re.compile(
    r'\s*(?:(?:"(?P<quoted>[^"\\]*)"|(?P<name>[^"<>,;:()\\@]*?))\s*<(?P<angle>[^<>@\s",;:()\\]+@[^<>@\s",;:()\\]+)>'
    r'|(?P<bare>[^<>@\s",;:()\\]+@[^<>@\s",;:()\\]+))\s*$'
)
_FOLDED = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")
_LINE_END = re.compile(r"\r\n|\r|\n")
_SPACE = re.compile(r"\s")


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


_FOLD = re.compile(r"\r?\n[ \t]*")


def _unfold(value: str) -> str:
    if "\n" not in value:  # split_header_block has unfolded what it returns already
        return value.strip()
    return _FOLD.sub(" ", value).strip()


def _raw_to_text(value: str) -> str:
    """compat32 keeps 8-bit header bytes as surrogates; they are almost always raw UTF-8.

    RFC 6532 allows UTF-8 in headers; anything else 8-bit is legacy, read as Windows-1252.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return decode_bytes(value.encode("utf-8", "surrogateescape"))
    return value


def _encoded_word_bytes(word: re.Match[str]) -> bytes | None:
    """The bytes an encoded word stands for, or None if it cannot be decoded."""
    text = word["text"]
    if not text.isascii():  # RFC 2047 §5: encoded text is ASCII; this is no encoded word
        return None
    if word["encoding"] in "qQ":
        # RFC 2047 §4.2: "_" is a space, "=XX" a byte; the result is one char per byte.
        return header_decode(text).encode("latin-1")
    text += "==="[: -len(text) % 4]  # senders drop the padding; a2b_base64 needs it
    try:
        return binascii.a2b_base64(text)
    except binascii.Error:
        return None


def _decode_encoded_words(value: str) -> str:
    """Replace the RFC 2047 encoded words in value by their text; keep all other text as is.

    Unlike email.header.decode_header, which turns the text around encoded words into bytes
    with raw-unicode-escape (so 8-bit text next to an encoded word came back as "\\u65e5"),
    this works on str throughout. As decode_header does, it drops the whitespace between two
    encoded words (RFC 2047 §6.2) and decodes adjacent words in the same charset together:
    senders split multi-byte characters across words although §5 forbids it.
    """
    pieces: list[str] = []
    pending = b""  # the bytes of adjacent encoded words in pending_charset, not yet decoded
    pending_charset: str | None = None
    end = 0  # where the text not yet copied to pieces starts
    for word in _ENCODED_WORD.finditer(value):
        data = _encoded_word_bytes(word)
        if data is None:
            continue  # stays in the text between words, shown as written
        charset = word["charset"].lower()
        between = value[end : word.start()]
        if pending_charset is not None and (not between or between.isspace()):
            if charset == pending_charset:
                pending += data
                end = word.end()
                continue
            pieces.append(decode_bytes(pending, pending_charset))
        else:
            if pending_charset is not None:
                pieces.append(decode_bytes(pending, pending_charset))
            pieces.append(between)
        pending, pending_charset = data, charset
        end = word.end()
    if pending_charset is not None:
        pieces.append(decode_bytes(pending, pending_charset))
    pieces.append(value[end:])
    return "".join(pieces)


def decode_header_value(value: str | None) -> str:
    """Decode RFC 2047 encoded words, with charset fallbacks; never raises."""
    if not value:
        return ""
    text = _raw_to_text(_unfold(value))
    if "=?" in text:
        text = _decode_encoded_words(text)
    # split() also drops leading and trailing whitespace.
    return clean(" ".join(text.split()))


def parse_addresses(value: str | None) -> list[list[str]]:
    if not value:
        return []
    text = _raw_to_text(_unfold(value))
    simple = _SIMPLE_ADDRESS.match(text)
    if simple:
        # The common single "Name <a@b>" or bare "a@b": getaddresses costs ~30 µs each.
        return [_simple_pair(simple)]
    if "," in text and '"' not in text and "(" not in text:
        # A list of such addresses, as mailers write them (5,000 cost getaddresses 0.1 s):
        # without quotes or comments a comma only separates. Any other piece (a group, a
        # route) sends the whole list the slow way.
        matches = [_SIMPLE_ADDRESS.match(part) for part in text.split(",") if part.strip()]
        if matches and all(matches):
            return [_simple_pair(match) for match in matches]
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


def _simple_pair(match: re.Match) -> list[str]:
    name = match["name"] or match["quoted"] or ""
    address = match["angle"] or match["bare"]
    return [decode_header_value(name)[:998], clean(address)[:320]]


# The canonical RFC 5322 §3.3 form, which nearly every mailer writes: "Mon, 2 Mar 2026 12:00:00
# +0100". Anything else goes through email.utils, which knows the obsolete forms.
_CANONICAL_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d\d):(\d\d)(?::(\d\d))? "
    r"([+-])(\d\d)(\d\d)\s*(?:\([^()]*\))?\s*$"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


@lru_cache(maxsize=128)
def _zone(sign: str, hours: int, minutes: int) -> timezone:
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if sign == "-" else offset)


def _fast_date(value: str) -> datetime | None:
    match = _CANONICAL_DATE.match(value)
    if not match:
        return None
    day, month, year, hour, minute, second, sign, zh, zm = match.groups()
    month_number = _MONTHS.get(month.lower())
    if month_number is None:
        return None
    try:
        # RFC 5322 §3.3: -0000 means the sender's zone is unknown; the time is UTC.
        unknown = sign == "-" and zh == "00" and zm == "00"
        zone = UTC if unknown else _zone(sign, int(zh), int(zm))
        return datetime(
            int(year), month_number, int(day), int(hour), int(minute), int(second or 0),
            tzinfo=zone,
        )  # fmt: skip
    except ValueError:
        return None  # 31 Feb, 25:00, +9999 …: let email.utils have its say


def parse_date(value: str | None) -> datetime | None:
    """An aware datetime in the sender's zone, or None unless it is a plausible date.

    Plausible means it can be stored: Django converts to UTC, and "31 Dec 9999 23:59:59 -1200"
    is in year 10000 there, so the range is checked on the UTC time.
    """
    if not value:
        return None
    parsed = _fast_date(value)
    if parsed is not None:
        try:
            in_utc = parsed.astimezone(UTC)
        except OverflowError:
            return None
        return parsed if _EARLIEST <= in_utc <= _LATEST else None
    try:
        parsed = parsedate_to_datetime(_unfold(value))
        if parsed.tzinfo is None:
            # RFC 5322 §3.3: "-0000" means the sender's zone is unknown; the time is UTC.
            parsed = parsed.replace(tzinfo=UTC)
        in_utc = parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not _EARLIEST <= in_utc <= _LATEST:
        return None
    return parsed


def _sender(value: str | None) -> tuple[str, str]:
    """(name, address) of the From header; only the first mailbox if there are several."""
    pairs = parse_addresses(value)
    for name, address in pairs:
        if "@" in address:
            return name, address
    if not value or not pairs:
        return "", ""
    # No address at all ("From: Support Team", "From: MAILER-DAEMON"): getaddresses reads the
    # words of an unquoted display name as addresses and keeps only some of them, so show what
    # the sender wrote, as a name.
    return unquote(decode_header_value(value))[:998], ""


def _message_ids(value: str | None, *, single: bool = False) -> list[str]:
    """The <ids> in a Message-ID (single=True), In-Reply-To or References header, in order."""
    if not value:
        return []
    # clean() first: PostgreSQL refuses NUL in text, and a control character is never meant.
    text = clean(_raw_to_text(value))
    ids = _MSGID.findall(text)
    if ids:
        return ids
    # RFC 5322 §3.6.4 wants the angle brackets but some mailers leave them out: bracket the
    # bare id so that it matches the bracketed form that replies to the message quote.
    bare = _BARE_MSGID.findall(text)
    if single and len(bare) != 1:
        return []
    return [f"<{token}>" for token in bare]


def split_header_block(raw: bytes) -> dict[str, str]:
    """Header fields by lower-case name (the first of each wins), values unfolded later.

    8-bit bytes stay as surrogate escapes, which _raw_to_text decodes (mostly raw UTF-8).
    Like the email package, a line that is neither a field nor a continuation ends the block.
    It does only this, so it is several times faster than email.parser on the sync path.
    """
    text = _FOLDED.sub(" ", raw.decode("ascii", "surrogateescape"))
    # Not splitlines(): it also breaks at form feeds and other controls that appear in values.
    crlf = text.count("\r\n")
    if text.count("\r") == crlf == text.count("\n"):
        lines = text.split("\r\n")  # every line ends in CRLF, as on the wire: the fast way
    else:
        lines = _LINE_END.split(text)
    fields: dict[str, str] = {}
    for line in lines:
        # A blank line ends the block, and so does a line that is not a field.
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or " " in name:
            break
        fields.setdefault(name.lower(), value.strip(" \t"))
    return fields


def _content_type(value: str | None) -> str:
    """RFC 2045 §5.2: a missing or syntactically invalid type means text/plain."""
    if not value:
        return "text/plain"
    kind = value.split(";", 1)[0].strip().lower()
    main, slash, sub = kind.partition("/")
    if not slash or not main or not sub or _SPACE.search(kind):
        return "text/plain"
    return kind


def parse_headers(raw: bytes) -> Headers:
    """Parse a header block. Malformed input gives partial results rather than an exception."""
    get = split_header_block(raw).get
    from_name, from_address = _sender(get("from"))
    message_ids = _message_ids(get("message-id"), single=True)
    in_reply_to = _message_ids(get("in-reply-to"))
    references = _message_ids(get("references"))
    content_type = _content_type(get("content-type"))
    return Headers(
        subject=decode_header_value(get("subject")),
        from_name=from_name,
        from_address=from_address,
        to=parse_addresses(get("to")),
        cc=parse_addresses(get("cc")),
        reply_to=parse_addresses(get("reply-to")),
        date=parse_date(get("date")),
        message_id=message_ids[0][:998] if message_ids else "",
        in_reply_to=" ".join(in_reply_to),
        references=" ".join(references),
        content_type=content_type,
    )
