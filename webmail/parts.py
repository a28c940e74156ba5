"""Reading single parts of a message from its server on demand: attachments, inline images,
attached messages and the raw source.

Parts are read in pieces and handed on as they arrive, so a 40 MB attachment never sits in
memory; the IMAP connection (and its slot under the mailbox's cap) is held only while a
download runs and is released when it ends or the reader goes away.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack

from asgiref.sync import sync_to_async

from webmail.imap.bodystructure import Part
from webmail.imap.parts import fetch_partial
from webmail.mail.body import decode_transfer
from webmail.mail.transfer import TransferDecoder
from webmail.models import Message
from webmail.sync import slots
from webmail.sync.bodies import MessageGone, load_body
from webmail.sync.connection import connected

CHUNK = 512 * 1024
# How often a long download tells the other processes its connection slot is still in use.
RENEW_EVERY = 60.0


def message_parts(message: Message) -> list[Part]:
    """The message's parts as its BODYSTRUCTURE lists them (fetched on first use)."""
    if message.bodystructure is None:
        load_body(message)
        message.refresh_from_db(fields=["bodystructure"])
    return [Part(**fields) for fields in message.bodystructure or []]


def find_part(parts: list[Part], section: str) -> Part | None:
    """The leaf part at this section; never a multipart container."""
    for part in parts:
        if part.section == section and not part.type.startswith("multipart/"):
            return part
    return None


def find_by_content_id(parts: list[Part], content_id: str) -> Part | None:
    """The part a cid: URL points at (RFC 2392); exact match first, then ignoring case."""
    leaves = [part for part in parts if part.content_id and not part.type.startswith("multipart/")]
    for part in leaves:
        if part.content_id == content_id:
            return part
    folded = content_id.casefold()
    return next((part for part in leaves if part.content_id.casefold() == folded), None)


class PartStream:
    """The decoded content of one section, fetched CHUNK octets at a time while it is sent.

    open() connects and reads the first piece, so a vanished message or an unreachable server
    is known before any response header goes out. Iterate (WSGI) or use aiter() (ASGI), and
    always close(): StreamingHttpResponse does when the response ends or the client leaves.
    """

    def __init__(self, message: Message, section: str, encoding: str = "") -> None:
        self.message = message
        self.section = section
        self.decoder = TransferDecoder(encoding)
        self.stack = ExitStack()
        self.client = None
        self.holder = ""
        self.first: bytes | None = None
        self.started = False

    def open(self) -> PartStream:
        try:
            # The slot is taken and given back by hand, not by mailbox_connection's generator:
            # a stream dropped unread is finalized by the garbage collector at any moment, even
            # inside another query on this thread's database connection, and releasing the
            # slot there deadlocks that connection. Dropped unclosed, the slot simply expires.
            holder = slots.holder_name("download")
            slots.acquire(self.message.mailbox.pk, holder, wait=5)
            self.holder = holder
            self.client = self.stack.enter_context(connected(self.message.mailbox))
            self.client.kotak_slot = holder
            self.client.select_folder(self.message.folder.name, readonly=True)
            self.first = fetch_partial(self.client, self.message.uid, self.section, 0, CHUNK)
        except BaseException:
            self.close()
            raise
        if self.first is None:
            self.close()
            raise MessageGone(f"message UID {self.message.uid} is no longer on the server")
        return self

    def __iter__(self) -> Iterator[bytes]:
        if self.started:
            raise RuntimeError("a PartStream is read once")
        self.started = True
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        try:
            data, offset, renewed = self.first, 0, time.monotonic()
            self.first = None
            while data:
                offset += len(data)
                if decoded := self.decoder.feed(data):
                    yield decoded
                if len(data) < CHUNK:
                    break
                if time.monotonic() - renewed > RENEW_EVERY:
                    slots.renew(self.client.kotak_slot)
                    renewed = time.monotonic()
                data = fetch_partial(self.client, self.message.uid, self.section, offset, CHUNK)
            if rest := self.decoder.finish():
                yield rest
        finally:
            self.close()

    def aiter(self) -> _AsyncPartStream:
        """The same chunks for an ASGI server, each piece read in the request's own thread."""
        return _AsyncPartStream(self)

    def read(self, limit: int) -> tuple[bytes, bool]:
        """Up to limit encoded octets decoded at once (for small, size-capped parts), and
        whether the part was longer."""
        try:
            pieces = [self.first or b""]
            total = last = len(pieces[0])
            while last == CHUNK and total <= limit:
                more = fetch_partial(self.client, self.message.uid, self.section, total, CHUNK)
                if not more:
                    break
                pieces.append(more)
                total += len(more)
                last = len(more)
        finally:
            self.close()
        data = b"".join(pieces)
        return decode_transfer(data[:limit], self.decoder.encoding), total > limit

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            if self.holder:
                holder, self.holder = self.holder, None
                slots.release(holder)


class _AsyncPartStream:
    """Django consumes a synchronous iterator under ASGI by reading it all into a list first;
    this one hands over each piece as it is fetched instead."""

    def __init__(self, stream: PartStream) -> None:
        self.stream = stream
        self.chunks = iter(stream)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # thread_sensitive: every piece is fetched in the request's thread, so a close() after
        # a disconnect waits for a fetch still under way instead of racing it.
        step = sync_to_async(next, thread_sensitive=True)
        while True:
            chunk = await step(self.chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self.chunks.close()
        self.stream.close()


def fetch_section(message: Message, section: str, encoding: str, limit: int) -> tuple[bytes, bool]:
    """A whole section, decoded, read up to limit octets; and whether it was cut."""
    return PartStream(message, section, encoding).open().read(limit)
