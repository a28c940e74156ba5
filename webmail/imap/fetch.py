"""A fast path for the sync's bulk UID FETCH of flags, dates, sizes and header fields.

Two costs dominate an initial sync when imaplib and imapclient do this work: imaplib's
per-line machinery (a few regular expressions, the untagged-response dictionary and a log
call per line) and imapclient's parser, which tokenises every byte. Here the response is read
straight from the connection's buffered reader, and each FETCH response of the simple shape
asked for (RFC 3501 §7.4.2) is read with one regular expression. Whatever is not FETCH data
(EXISTS, EXPUNGE, VANISHED, response codes, BYE …) is recorded in
`imap.untagged_responses` exactly as imaplib would record it, so callers harvest it as before.
Any FETCH response outside the simple shape sends the whole batch through imapclient's parser,
so the result is what imapclient.IMAPClient.fetch() gives — except that FETCH responses
without a UID are left out (see `fetch_headers`).
"""

from __future__ import annotations

import imaplib
import re
from datetime import datetime, timedelta, timezone

import imapclient
from imapclient.exceptions import IMAPClientError
from imapclient.response_parser import parse_fetch_response

# imaplib refuses lines longer than this (its defence against a server sending without end).
_MAXLINE = imaplib._MAXLINE

# "* 12 FETCH " at the start of an untagged FETCH response.
_FETCH_START = re.compile(rb"\* ([0-9]+) FETCH ")

# One keyword or system flag that imapclient's parser would return unchanged as bytes: none of
# its specials or brackets, and not an atom it converts (NIL → None, digits → int).
_FLAG = rb'(?!NIL[ )])[0-9]*[^\x00-\x20\x7f()%"\[\]{}0-9][^\x00-\x20\x7f()%"\[\]{}]*'

# The data items a FETCH response of the simple shape may hold, in any order. Each value is
# restricted to what imapclient would return the same way, so anything else fails to match.
# The section name must be upper case: imapclient upper-cases the key it returns.
_ITEM = (
    rb"UID (?P<uid>[0-9]+)"
    rb"|FLAGS \((?P<flags>(?:" + _FLAG + rb"(?: " + _FLAG + rb")*)?)\)"
    rb'|INTERNALDATE "(?P<day> ?[0-9]{1,2})-(?P<month>[A-Za-z]{3})-(?P<year>[0-9]{4})'
    rb" (?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    rb' (?P<zone>[+-][0-9]{4})"'
    rb"|RFC822\.SIZE (?P<size>0|[1-9][0-9]*)"
    rb"|MODSEQ \((?P<modseq>0|[1-9][0-9]*)\)"
    rb"|EMAILID \((?P<emailid>(?!NIL\))[0-9]*[A-Za-z_-][A-Za-z0-9_-]*)\)"
    rb"|X-GM-MSGID (?P<gm_msgid>0|[1-9][0-9]*)"
    rb"|(?P<section>BODY\[[^\]a-z]*\](?:<[0-9]+>)?)"
    rb' (?:\{(?P<literal>[0-9]+)\}|(?P<nil>NIL)|"(?P<quoted>[^"\\]*)")'
)
# A whole response as imaplib hands it over ("12 (UID 7 … {345})", the literal cut out after
# its {345}). Items are separated by one space; a group inside the repetition keeps the value
# of the item's last occurrence, as imapclient's dict does.
_RESPONSE = re.compile(rb"(?P<seq>[0-9]+) \((?:(?:(?<=\()| )(?:" + _ITEM + rb"))*\)")
_GROUPS = (
    "seq", "uid", "flags", "day", "month", "year", "hour", "minute", "second", "zone", "size",
    "modseq", "emailid", "gm_msgid", "section", "literal", "nil", "quoted",
)  # fmt: skip
assert tuple(_RESPONSE.groupindex) == _GROUPS, "_parse unpacks the groups in this order"

_MONTHS = {
    m: n
    for n, m in enumerate(
        (b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct",
         b"nov", b"dec"), start=1,
    )
}  # fmt: skip
_ZONES: dict[bytes, timezone] = {}


class _Unusual(Exception):
    """A response outside the simple shape: let imapclient parse the batch."""


# One FETCH response as imaplib's untagged data holds it: the text pieces between which the
# literals were cut out ("12 (… {345}", ")"), and those literals; len(pieces) == len(literals)+1.
type _Response = tuple[list[bytes], list[bytes]]


def _zone(text: bytes) -> timezone:
    zone = _ZONES.get(text)
    if zone is None:
        offset = timedelta(hours=int(text[1:3]), minutes=int(text[3:5]))
        zone = _ZONES[text] = timezone(-offset if text[:1] == b"-" else offset)
    return zone


def _parse(pieces: list[bytes], literals: list[bytes]) -> tuple[int | None, dict]:
    """(UID or None, {item: value}) of one response, valued as imapclient values them."""
    text = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    match = _RESPONSE.fullmatch(text)
    if match is None:
        raise _Unusual
    (
        seq, uid, flags, day, month, year, hour, minute, second, zone, size,
        modseq, emailid, gm_msgid, section, literal, nil, quoted,
    ) = match.groups()  # fmt: skip
    found: dict = {b"SEQ": int(seq)}
    if flags is not None:
        found[b"FLAGS"] = tuple(flags.split())
    if day is not None:
        month_number = _MONTHS.get(month.lower())
        if month_number is None:
            raise _Unusual
        try:
            found[b"INTERNALDATE"] = datetime(
                int(year), month_number, int(day), int(hour), int(minute), int(second),
                tzinfo=_zone(zone),
            )  # fmt: skip
        except ValueError:  # no such day or time: imapclient's error, not ours
            raise _Unusual from None
    if size is not None:
        found[b"RFC822.SIZE"] = int(size)
    if modseq is not None:
        found[b"MODSEQ"] = (int(modseq),)
    if emailid is not None:
        found[b"EMAILID"] = (emailid,)
    if gm_msgid is not None:
        found[b"X-GM-MSGID"] = int(gm_msgid)
    if section is not None:
        # One section, and its value is the one literal the response carried (or, without a
        # literal, NIL or a quoted string). A repeated section would leave groups of both.
        if text.count(b"BODY[") != 1:
            raise _Unusual
        if literal is not None:
            if len(literals) != 1 or len(literals[0]) != int(literal):
                raise _Unusual
            found[section] = literals[0]
        elif literals:
            raise _Unusual
        else:
            found[section] = None if nil is not None else quoted
    elif literals:
        raise _Unusual
    return (int(uid) if uid is not None else None), found


def _group(data: list) -> list[_Response]:
    """imaplib's untagged FETCH data (items bytes, or (text, literal)) as responses."""
    responses = []
    current: _Response | None = None
    for item in data:
        if isinstance(item, tuple):
            head, literal = item
            if current is None:
                current = ([], [])
            current[0].append(head)
            current[1].append(literal)
        elif current is not None:
            current[0].append(item)  # the rest of the line after the literal(s)
            responses.append(current)
            current = None
        elif item is not None:
            responses.append(([item], []))
    if current is not None:
        current[0].append(b"")  # cut short; imapclient's parser reports it
        responses.append(current)
    return responses


def _parse_with_imapclient(responses: list[_Response]) -> dict[int, dict]:
    """The general parser, one response at a time so one without a UID can be left out."""
    result: dict[int, dict] = {}
    for pieces, literals in responses:
        data = [*zip(pieces, literals, strict=False), pieces[-1]] if literals else pieces
        for found in parse_fetch_response(data, normalise_times=False, uid_is_key=False).values():
            uid = found.pop(b"UID", None)
            if uid is not None:
                result.setdefault(uid, {}).update(found)
    return result


# -- reading the response -------------------------------------------------------------------


def _abort(imap: imaplib.IMAP4, reason: str) -> imaplib.IMAP4.abort:
    """The error imaplib raises when the connection is unusable, worded as its FETCH would."""
    return imap.abort(f"command: FETCH => {reason}")


def _broken_line(imap: imaplib.IMAP4, line: bytes) -> imaplib.IMAP4.abort:
    if not line:
        return _abort(imap, "socket error: EOF")
    if len(line) > _MAXLINE:
        # imaplib raises its plain error here; abort, as the rest of the stream is unreadable.
        return _abort(imap, f"got more than {_MAXLINE} bytes")
    return _abort(imap, f"socket error: unterminated line: {line!r}")


def _literal_size(text: bytes) -> int | None:
    """N if text ends with a literal's announcement "{N}" (imaplib's `Literal` pattern)."""
    if text[-1:] != b"}":
        return None
    start = text.rfind(b"{")
    digits = text[start + 1 : -1]
    return int(digits) if start >= 0 and digits.isdigit() else None


class _Reader:
    """Lines and literals from the connection's buffered reader, checked as imaplib checks."""

    def __init__(self, imap: imaplib.IMAP4):
        self.imap = imap
        self.readline = imap.file.readline
        self.read = imap.file.read

    def line(self) -> bytes:
        """The next line without its CRLF."""
        line = self.readline(_MAXLINE + 1)
        if line[-2:] != b"\r\n":
            raise _broken_line(self.imap, line)
        return line[:-2]

    def literal(self, size: int) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise _abort(self.imap, "socket error: EOF")
        return data

    def rest(self, text: bytes, pieces: list[bytes], literals: list[bytes]) -> None:
        """Read the literals `text` (a response's first line) announces, and the lines after
        them, into pieces and literals."""
        while (size := _literal_size(text)) is not None:
            pieces.append(text)
            literals.append(self.literal(size))
            text = self.line()
        pieces.append(text)


def _record_untagged(imap: imaplib.IMAP4, line: bytes, reader: _Reader) -> None:
    """Store an untagged response as imaplib's `_get_response` does (type and data split the
    same way, literals as (text, literal), response codes also under their own name)."""
    match = imaplib.Untagged_response.match(line)
    extra = None
    if match is None:
        match = imap.Untagged_status.match(line)  # "* 5 EXISTS": data "5"
        if match is not None:
            extra = match["data2"]
    if match is None:
        raise _abort(imap, f"unexpected response: {line!r}")
    typ = str(match["type"], imap._encoding)
    data = match["data"]
    if data is None:
        data = b""
    if extra:
        data = data + b" " + extra
    while (literal := imap.Literal.match(data)) is not None:
        imap._append_untagged(typ, (data, reader.literal(int(literal["size"]))))
        data = reader.line()
    imap._append_untagged(typ, data)
    _record_code(imap, typ, data)
    if typ == "BYE":
        # imaplib raises as soon as it has read a BYE; the server closes the connection.
        raise _abort(imap, data.decode(imap._encoding, "replace"))


def _record_code(imap: imaplib.IMAP4, typ: str, data: bytes) -> None:
    # "OK [HIGHESTMODSEQ 7] …" is also stored as HIGHESTMODSEQ: b"7".
    if typ in ("OK", "NO", "BAD") and (code := imaplib.Response_code.match(data)):
        imap._append_untagged(str(code["type"], imap._encoding), code["data"])


def _read_until_tagged(imap: imaplib.IMAP4, tag: bytes) -> tuple[str, bytes, list[_Response]]:
    """Read the command's responses up to its tagged completion: (type, text, FETCH data)."""
    reader = _Reader(imap)
    readline = reader.readline
    responses: list[_Response] = []
    while True:
        line = readline(_MAXLINE + 1)
        if line[-2:] != b"\r\n":
            raise _broken_line(imap, line)
        if line[:2] == b"* ":
            start = _FETCH_START.match(line)
            if start is None:
                _record_untagged(imap, line[:-2], reader)
                continue
            # The text imaplib keeps for "* 12 FETCH (…": "12 (…".
            text = start[1] + b" " + line[start.end() : -2]
            if text[-1:] == b"}":  # literals follow (nearly always one: the header block)
                pieces: list[bytes] = []
                literals: list[bytes] = []
                reader.rest(text, pieces, literals)
                responses.append((pieces, literals))
            else:
                responses.append(([text], []))
            continue
        tagged = imap.tagre.match(line[:-2])
        if tagged is None:  # a continuation request ("+ …") or garbage: not for a FETCH
            raise _abort(imap, f"unexpected response: {line[:-2]!r}")
        typ = str(tagged["type"], imap._encoding)
        data = tagged["data"]
        _record_code(imap, typ, data)
        if tagged["tag"] == tag:
            return typ, data, responses
        if imap.tagged_commands.get(tagged["tag"], False) is not None:
            raise _abort(imap, f"unexpected tagged response: {line[:-2]!r}")
        # The completion of another command still in flight, kept as imaplib keeps it.
        imap.tagged_commands[tagged["tag"]] = (typ, [data])


def fetch_headers(
    client: imapclient.IMAPClient, uid_set: str, items: list[str], modifiers: str = ""
) -> dict[int, dict]:
    """UID FETCH uid_set (items): {uid: {b"FLAGS": …, b"INTERNALDATE": aware datetime, …}}.

    FETCH responses without a UID are left out: the server sends those unasked, for changes
    to other messages, and their sequence number (which imapclient would use as the key) can
    equal one of the UIDs asked for. Unasked responses that do carry a UID are included, as
    imapclient includes them. Errors are imaplib's: `imap.abort` when the connection broke
    (EOF, timeout, BYE, a protocol violation), IMAPClientError for a NO or BAD.
    """
    imap = client._imap
    args = ["FETCH", uid_set, "({})".format(" ".join(items))]
    if modifiers:
        args.append(f"({modifiers})")
    imap._check_bye()
    tag = imap._command("UID", *args)
    try:
        typ, text, responses = _read_until_tagged(imap, tag)
    except OSError as exc:  # timeout, reset, TLS failure: the stream is no longer in step
        raise _abort(imap, f"socket error: {exc}") from exc
    finally:
        imap.tagged_commands.pop(tag, None)
    if typ == "BAD":
        raise imap.error(f"FETCH command error: BAD {[text]}")
    if typ != "OK":
        raise IMAPClientError(f"FETCH failed: {[text]!r}")
    # FETCH data imaplib stored during earlier commands (imapclient's noop() leaves what it is
    # told there), which imaplib hands over with this command's. It goes first, so that this
    # answer's data wins where both speak of the same message.
    if earlier := imap.untagged_responses.pop("FETCH", None):
        responses = _group(earlier) + responses
    return _parse_all(responses)


def parse_fetch_data(data: list) -> dict[int, dict]:
    """Untagged FETCH data as imaplib stores it (bytes, or (text, literal) tuples followed by
    the rest of the line), read the way fetch_headers reads the responses it receives."""
    return _parse_all(_group(data))


def _parse_all(responses: list[_Response]) -> dict[int, dict]:
    try:
        result: dict[int, dict] = {}
        for pieces, literals in responses:
            uid, found = _parse(pieces, literals)
            if uid is None:
                continue
            known = result.get(uid)
            if known is None:
                result[uid] = found
            else:
                known.update(found)
        return result
    except _Unusual:
        return _parse_with_imapclient(responses)
