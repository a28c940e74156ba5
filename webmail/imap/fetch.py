"""A fast path for the sync's bulk UID FETCH of flags, dates, sizes and header fields.

imapclient's general response parser tokenises every byte and costs more than everything
else in an initial sync. The responses asked for here have a fixed, simple shape
(RFC 3501 §7.4.2), so they are read with a few regular expressions; any response that does
not fit that shape sends the whole batch through imapclient's parser instead, so the result
is always the same as imapclient.IMAPClient.fetch() would give.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import imapclient
from imapclient.exceptions import IMAPClientError
from imapclient.response_parser import parse_fetch_response

_SEQ = re.compile(rb"^\s*(\d+) \(")
_UID = re.compile(rb"[( ]UID (\d+)")
_FLAGS = re.compile(rb"[( ]FLAGS \(([^)]*)\)")
_INTERNALDATE = re.compile(rb'[( ]INTERNALDATE "([^"]+)"')
_SIZE = re.compile(rb"[( ]RFC822\.SIZE (\d+)")
_MODSEQ = re.compile(rb"[( ]MODSEQ \((\d+)\)")
_EMAILID = re.compile(rb"[( ]EMAILID \(([^()\s]+)\)")
_GM_MSGID = re.compile(rb"[( ]X-GM-MSGID (\d+)")
_HEADER_KEY = re.compile(rb"(BODY\[HEADER\.FIELDS \([^)]*\)\]) \{\d+\}$")
_DATE = re.compile(rb"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")
_MONTHS = {
    m: n
    for n, m in enumerate(
        (b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct",
         b"nov", b"dec"), start=1,
    )
}  # fmt: skip


class _Unusual(Exception):
    """A response outside the simple shape: let imapclient parse the batch."""


@lru_cache(maxsize=64)
def _zone(sign: bytes, hours: int, minutes: int) -> timezone:
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if sign == b"-" else offset)


def _internal_date(value: bytes) -> datetime:
    match = _DATE.match(value)
    if not match:
        raise _Unusual
    day, month, year, hour, minute, second, sign, zh, zm = match.groups()
    return datetime(
        int(year), _MONTHS[month.lower()], int(day), int(hour), int(minute), int(second),
        tzinfo=_zone(sign, int(zh), int(zm)),
    )  # fmt: skip


def _group(data: list) -> list[tuple[list[bytes], list[bytes]]]:
    """imaplib's untagged FETCH data as (text pieces, literals) per response."""
    responses = []
    current: tuple[list[bytes], list[bytes]] | None = None
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
        responses.append(current)
    return responses


def _parse(pieces: list[bytes], literals: list[bytes]) -> tuple[int, dict]:
    text = b" ".join(pieces)
    uid = _UID.search(text)
    if not _SEQ.match(text) or not uid:
        raise _Unusual
    found: dict = {b"SEQ": int(_SEQ.match(text)[1])}
    if match := _FLAGS.search(text):
        found[b"FLAGS"] = tuple(match[1].split())
    if match := _INTERNALDATE.search(text):
        found[b"INTERNALDATE"] = _internal_date(match[1])
    if match := _SIZE.search(text):
        found[b"RFC822.SIZE"] = int(match[1])
    if match := _MODSEQ.search(text):
        found[b"MODSEQ"] = (int(match[1]),)
    if match := _EMAILID.search(text):
        found[b"EMAILID"] = (match[1],)
    if match := _GM_MSGID.search(text):
        found[b"X-GM-MSGID"] = int(match[1])
    if b"BODY[" in text:
        # Exactly one literal, announced at the end of the first piece: the header block.
        header_key = _HEADER_KEY.search(pieces[0])
        if len(literals) != 1 or not header_key:
            raise _Unusual
        found[header_key[1]] = literals[0]
    elif literals:
        raise _Unusual
    return int(uid[1]), found


def fetch_headers(
    client: imapclient.IMAPClient, uid_set: str, items: list[str], modifiers: str = ""
) -> dict[int, dict]:
    """UID FETCH uid_set (items): {uid: {b"FLAGS": …, b"INTERNALDATE": aware datetime, …}}."""
    imap = client._imap
    args = ["FETCH", uid_set, "({})".format(" ".join(items))]
    if modifiers:
        args.append(f"({modifiers})")
    tag = imap._command("UID", *args)
    typ, data = imap._command_complete("FETCH", tag)
    if typ != "OK":
        raise IMAPClientError(f"FETCH failed: {data!r}")
    typ, data = imap._untagged_response(typ, data, "FETCH")
    data = [item for item in data if item is not None]
    try:
        result: dict[int, dict] = {}
        for pieces, literals in _group(data):
            uid, found = _parse(pieces, literals)
            result.setdefault(uid, {}).update(found)
        return result
    except _Unusual:
        return parse_fetch_response(data, normalise_times=False, uid_is_key=True)
