"""Mirroring one folder's messages and flags into Message rows, driven by the folder's cursor.

Invariant: every message the server has with lowest_synced_uid <= UID < uidnext is stored.
Each window of work commits its rows and the cursor move together, so a crash at any point
repeats work on the next run but never loses or duplicates a message. A window's conversations
may commit just before its rows (on a second connection, see _store_windows): a message
refetched after a crash finds the conversation made for it by its ids, as a reply would.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import imapclient
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from webmail import db, live
from webmail import keywords as keyword_mirror
from webmail.actions import pending_flag_values, pending_keywords
from webmail.conversations import assign_conversations
from webmail.imap.extensions import FolderStatus, pop_vanished
from webmail.imap.fetch import fetch_headers
from webmail.mail.headers import FETCHED_FIELDS, Headers, parse_headers
from webmail.models import Folder, Message, MessageTombstone
from webmail.sync import slots
from webmail.sync.store import upsert_messages

log = logging.getLogger(__name__)

FULL_HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS ({})]".format(" ".join(FETCHED_FIELDS))
# A window fetches each header block up to this many bytes; the few longer ones (a To of
# thousands, a hostile 1 MB Subject) are fetched again whole, one at a time, so a window of
# them never holds gigabytes at once.
HEADER_LIMIT = 64 * 1024
HEADER_ITEM = f"{FULL_HEADER_ITEM}<0.{HEADER_LIMIT}>"
# What a row keeps of a Subject, and of the ids in References and In-Reply-To (the first and
# the latest, as RFC 5322 §3.6.4 suggests trimming them).
SUBJECT_LIMIT = 16 * 1024
REFERENCES_KEPT = 100
# Python collects its oldest generation (every object of the process: 45-55 ms in a sync
# worker) after `threshold2` collections of the middle one, if the objects that reached it since
# then make up a quarter of it. Each window passing through the pipeline below moves its rows'
# and FETCH data's objects there, so with Python's default (10) a 100k initial sync ran a full
# collection every seven windows: 0.6-0.8 s of its ~6 s of CPU, holding the GIL the other
# stages wait for (`BENCH_GC=python make bench-sync` prints them, `make bench-sync` the rest).
# Cycles are still collected, by the younger generations or after 1,000 of their collections
# instead of 10.
FULL_COLLECTION_THRESHOLD = 1000
NEW_MESSAGE_ITEMS = ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", HEADER_ITEM]
FLAG_CHUNK = 5000
SYSTEM_FLAGS = {
    b"\\seen": "is_seen",
    b"\\flagged": "is_flagged",
    b"\\answered": "is_answered",
    b"\\draft": "is_draft",
    b"\\deleted": "is_deleted",
}
UPSERT_FIELDS = [
    "mailbox",
    "stable_id",
    "modseq",
    "message_id",
    "in_reply_to",
    "references",
    "subject",
    "from_name",
    "from_address",
    "to",
    "cc",
    "reply_to",
    "date",
    "internal_date",
    "size",
    "is_seen",
    "is_flagged",
    "is_answered",
    "is_draft",
    "is_deleted",
    "keywords",
    "has_attachments",
    "parse_error",
    "raw_headers",
]
FLAG_FIELDS = ["is_seen", "is_flagged", "is_answered", "is_draft", "is_deleted", "keywords"]

Progress = Callable[[Folder], None]
LOCK_TTL = timedelta(minutes=5)
# A folder renumbered this many times within PARK_WINDOW is parked for PARK_FOR.
PARK_AFTER_RESETS = 3
PARK_WINDOW = timedelta(days=1)
PARK_FOR = timedelta(hours=6)


@dataclass
class FolderSyncResult:
    added: int = 0
    flag_changes: int = 0
    removed: int = 0
    remapped: int = 0
    uidvalidity_reset: bool = False
    skipped: str = ""  # why nothing was done: "unchanged", "busy", "parked"


@dataclass
class Window:
    """A run of UIDs to fetch and store in one transaction, and where the cursor goes after."""

    uids: list[int]
    uidnext: int | None = None  # the folder's UIDNEXT once this window is stored
    lowest: int | None = None  # the lowest UID known stored once this window is stored


@dataclass
class Fetched:
    window: Window
    rows: list[dict]
    vanished: set[int]  # UIDs the server reported expunged while answering (QRESYNC)
    # Set once the rows have their conversations (FolderSync._assign):
    assigned: bool = False
    remapped: list[Message] = field(default_factory=list)  # rows from before a UIDVALIDITY reset
    # Conversations that existed before this window: the ones moves and copies point at,
    # those new mail joined. Only those can be worked (keyword mirroring).
    existing: set[int] = field(default_factory=set)


class FolderParked(Exception):
    """The folder's UIDVALIDITY keeps changing: stop resyncing it and tell a person."""


def flag_values(flags: Iterable[bytes | str]) -> dict:
    """FLAGS as the boolean columns plus a sorted keyword list (a list of its own)."""
    values = _flag_values(tuple(flags))
    return {**values, "keywords": list(values["keywords"])}


@lru_cache(maxsize=256)  # a folder's messages share a handful of flag sets: decode each once
def _flag_values(flags: tuple[bytes | str, ...]) -> dict:
    values = dict.fromkeys(SYSTEM_FLAGS.values(), False)
    keywords = []
    for flag in flags:
        raw = flag if isinstance(flag, bytes) else str(flag).encode()
        column = SYSTEM_FLAGS.get(raw.lower())
        if column:
            values[column] = True
        elif raw.lower() != b"\\recent":
            keywords.append(raw.decode("utf-8", "replace"))
    values["keywords"] = sorted(keywords)
    return values


def _is_header(key) -> bool:
    """Whether a FETCH item is the header block ("BODY[HEADER.FIELDS (…)]", "…<0>" if cut)."""
    return isinstance(key, bytes) and key.startswith(b"BODY[HEADER")


def _header_bytes(data: dict) -> bytes:
    # Looked for from the end: the header block is the last item a FETCH response is read
    # into (webmail.imap.fetch), so the first key tried is nearly always it.
    for key in reversed(data):
        if _is_header(key):
            return data[key] or b""
    return b""


def _kept_ids(ids: str) -> str:
    """A space-separated list of message ids, the first and the latest REFERENCES_KEPT."""
    if ids.count(" ") < REFERENCES_KEPT:
        return ids
    kept = ids.split()
    return " ".join(kept[:1] + kept[-(REFERENCES_KEPT - 1) :])


def _internal_date(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return timezone.now()


def _stable_id(data: dict, headers: Headers) -> str:
    """The server's own message identity where it has one (RFC 8474 EMAILID, Gmail's
    X-GM-MSGID), else a hash of headers that survive a renumbering."""
    email_id = data.get(b"EMAILID")
    if isinstance(email_id, (tuple, list)) and email_id:
        email_id = email_id[0]
    if email_id:
        value = email_id.decode() if isinstance(email_id, bytes) else str(email_id)
        return f"e:{value}"[:64]
    if data.get(b"X-GM-MSGID"):
        return f"g:{data[b'X-GM-MSGID']}"
    return headers.stable_id()


def build_message(folder: Folder, uid: int, data: dict, raw: bytes | None = None) -> dict:
    """A Message row (field values by attname) from one FETCH response (raw: its header
    block, if already picked out); unparseable headers are kept raw and marked."""
    if raw is None:
        raw = _header_bytes(data)
    parse_error = ""
    try:
        headers = parse_headers(raw)
    except Exception as exc:  # noqa: BLE001 — one bad message must never block its folder
        log.warning("folder %s uid %s: unparseable headers: %s", folder.pk, uid, exc)
        headers = Headers(subject="(unreadable message)")
        parse_error = f"{type(exc).__name__}: {exc}"
    internal_date = _internal_date(data.get(b"INTERNALDATE"))
    modseq = data.get(b"MODSEQ")
    return dict(
        mailbox_id=folder.mailbox_id,
        folder_id=folder.pk,
        uid=uid,
        stable_id=_stable_id(data, headers),
        modseq=modseq[0] if isinstance(modseq, tuple) and modseq else None,
        message_id=headers.message_id,
        in_reply_to=_kept_ids(headers.in_reply_to),
        references=_kept_ids(headers.references),
        subject=headers.subject[:SUBJECT_LIMIT],
        from_name=headers.from_name,
        from_address=headers.from_address,
        to=headers.to,
        cc=headers.cc,
        reply_to=headers.reply_to,
        date=headers.date,
        internal_date=internal_date,
        size=data.get(b"RFC822.SIZE") or 0,
        has_attachments=headers.is_multipart_mixed,
        parse_error=parse_error,
        raw_headers=raw if parse_error else None,
        conversation_id=None,
        **flag_values(data.get(b"FLAGS", ())),
    )


class _Stage:
    """One thread of FolderSync._store_windows's pipeline: hands work(item) for each of
    `items` on to `out`, in order. An exception is handed on in place of the item, for the
    writing thread to raise; an exception handed over by the stage before goes on as it is."""

    def __init__(
        self, name: str, items: Iterable, work: Callable, out: queue.Queue, stop, database=False
    ):
        self.items, self.work, self.out, self.stop = items, work, out, stop
        self.database = database
        self.thread = threading.Thread(target=self._run, name=name)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.items:
                if not isinstance(item, BaseException):
                    item = self.work(item)
                if not _hand_over(self.out, item, self.stop) or isinstance(item, BaseException):
                    return
        except BaseException as exc:  # noqa: BLE001 — handed to the writer, which raises it
            _hand_over(self.out, exc, self.stop)
        finally:
            if self.database:
                connection.close()  # this thread's own connection

    def finish(self) -> None:
        """Wait for the thread once `stop` is set, unblocking it if it waits to hand over."""
        while self.thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self.out.get(timeout=0.1)
        self.thread.join()


def _hand_over(out: queue.Queue, item, stop: threading.Event) -> bool:
    """Put item on out unless the pipeline stops first; whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


def _take(source: queue.Queue, stop: threading.Event):
    """The next item of source, or None once the pipeline stops."""
    while not stop.is_set():
        with contextlib.suppress(queue.Empty):
            return source.get(timeout=0.5)
    return None


def _taken(source: queue.Queue, stop: threading.Event) -> Iterable:
    """The items of source as they come, until the pipeline stops."""
    while (item := _take(source, stop)) is not None:
        yield item


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _uid_set(uids: list[int]) -> str:
    """A compact UID set ("1:5,9,12:14") for a sorted list."""
    ranges = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid != prev + 1:
            ranges.append(f"{start}:{prev}" if start != prev else str(start))
            start = uid
        prev = uid
    ranges.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(ranges)


def _relaxed_commit() -> None:
    """Let PostgreSQL answer this transaction's COMMIT before its WAL reaches the disk.

    Safe for a sync window because its rows and the cursor commit together: a database
    crash in the next fraction of a second forgets both, and the next run fetches the
    window again. (Never for user actions, whose loss nobody would notice.)
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def bury(messages) -> None:
    """Leave a tombstone for each message in a conversation that is about to be deleted, so
    the same message turning up in another folder keeps its conversation (a move)."""
    MessageTombstone.objects.bulk_create(
        MessageTombstone(mailbox_id=mailbox_id, stable_id=stable_id, conversation_id=conversation)
        for mailbox_id, stable_id, conversation in messages.filter(
            conversation__isnull=False
        ).values_list("mailbox_id", "stable_id", "conversation_id")
    )


class FolderSync:
    """One sync pass over one folder, holding the folder's lock."""

    def __init__(
        self,
        folder: Folder,
        client: imapclient.IMAPClient,
        progress: Progress | None = None,
        status: FolderStatus | None = None,
        owner: str | None = None,
    ):
        self.folder = folder
        self.client = client
        self.progress = progress or (lambda folder: None)
        self.status = status
        self.result = FolderSyncResult()
        self.condstore = client.has_capability("CONDSTORE")
        self.qresync = client.has_capability("QRESYNC") and client.has_capability("ENABLE")
        self.window = settings.SYNC_WINDOW
        self.fetch_items = list(NEW_MESSAGE_ITEMS)
        if client.has_capability("OBJECTID"):
            self.fetch_items.append("EMAILID")
        if client.has_capability("X-GM-EXT-1"):
            self.fetch_items.append("X-GM-MSGID")
        self.owner = owner or uuid.uuid4().hex
        self.orphans: dict[str, list[int]] | None = None
        self.known_uidnext: int | None = None  # the folder's UIDNEXT before this pass
        self.initial = False
        # Whether this pass added, removed or (un)read anything: the folder's counts moved.
        self.counts_moved = False
        last_scan = folder.last_full_scan_at
        self.full_scan = last_scan is None or last_scan < timezone.now() - timedelta(
            seconds=settings.SYNC_FULL_SCAN_INTERVAL
        )

    def run(self) -> FolderSyncResult:
        folder = self.folder
        if folder.parked_until and folder.parked_until > timezone.now():
            self.result.skipped = "parked"
            return self.result
        if self._unchanged():
            self.result.skipped = "unchanged"
            return self.result
        if not self._lock():
            # Another worker is on this folder right now; its pass covers our reason to run.
            self.result.skipped = "busy"
            return self.result
        try:
            self._sync()
        finally:
            self._unlock()
        return self.result

    def _sync(self) -> None:
        folder = self.folder
        status = self.client.select_folder(folder.name, readonly=True)
        uidvalidity = status[b"UIDVALIDITY"]
        exists = status.get(b"EXISTS", 0)
        server_uidnext = status.get(b"UIDNEXT") or self._status_uidnext()
        modseq = status.get(b"HIGHESTMODSEQ") if self.condstore else None
        self._apply_vanished()

        if folder.uidvalidity is not None and folder.uidvalidity != uidvalidity:
            self._reset(uidvalidity)
        if folder.uidvalidity is None:
            self._start(uidvalidity, server_uidnext, exists, modseq)
            # Fetching every message is itself the full scan; it is recorded when complete.
            self.initial = True

        self.known_uidnext = folder.uidnext
        self._fetch_new()
        self._backfill()
        if self.condstore and modseq is not None:
            self._changed_flags(modseq)
        if (self.full_scan and not self.initial) or not (self.condstore and modseq is not None):
            self._diff_flags()
        self._finish(self._expunged(exists))

    # -- lock and shortcuts -----------------------------------------------------------------

    def _lock(self) -> bool:
        now = timezone.now()
        taken = (
            Folder.objects.filter(pk=self.folder.pk)
            .filter(
                Q(sync_lock_until__isnull=True)
                | Q(sync_lock_until__lt=now)
                | Q(sync_lock_owner=self.owner)
            )
            .update(sync_lock_owner=self.owner, sync_lock_until=now + LOCK_TTL)
        )
        if taken:
            self.folder.refresh_from_db()
        return bool(taken)

    def _unlock(self) -> None:
        Folder.objects.filter(pk=self.folder.pk, sync_lock_owner=self.owner).update(
            sync_lock_owner="", sync_lock_until=None
        )

    def _unchanged(self) -> bool:
        """Whether STATUS proves there is nothing to do, so the folder need not be selected.

        Needs CONDSTORE: without HIGHESTMODSEQ a flag change is invisible to STATUS.
        Same UIDNEXT and same count means nothing was added or expunged either.
        """
        folder, status = self.folder, self.status
        return bool(
            status is not None
            and status.highestmodseq is not None
            and folder.highestmodseq == status.highestmodseq
            and folder.uidvalidity == status.uidvalidity
            and folder.uidnext == status.uidnext
            and folder.lowest_synced_uid == 1
            and folder.total_count == status.messages
            and folder.sync_state == Folder.SyncState.IDLE
            and not self.full_scan
        )

    # -- cursor ---------------------------------------------------------------------------

    def _status_uidnext(self) -> int:
        status = self.client.folder_status(self.folder.name, [b"UIDNEXT"])
        return status[b"UIDNEXT"]

    def _start(self, uidvalidity: int, uidnext: int, exists: int, modseq: int | None) -> None:
        folder = self.folder
        folder.uidvalidity = uidvalidity
        folder.uidnext = uidnext
        folder.lowest_synced_uid = uidnext  # nothing stored yet: the range is empty
        folder.highestmodseq = modseq
        folder.sync_total = exists
        folder.sync_done = 0
        folder.sync_state = Folder.SyncState.SYNCING
        folder.save()

    def _reset(self, uidvalidity: int) -> None:
        """The server renumbered the folder (RFC 3501 §2.3.1.1): its UIDs mean nothing now.

        The rows are kept with their UID negated and matched to the new UIDs by stable
        identity as the folder is fetched again, so message ids, bodies and conversations
        survive. Whatever is left unmatched once the whole folder is fetched is removed.
        """
        folder = self.folder
        now = timezone.now()
        log.warning(
            "folder %s: UIDVALIDITY changed %s -> %s", folder.pk, folder.uidvalidity, uidvalidity
        )
        recent = [
            stamp
            for stamp in folder.uidvalidity_resets
            if datetime.fromisoformat(stamp) > now - PARK_WINDOW
        ] + [now.isoformat()]
        with transaction.atomic():
            folder.uidvalidity_resets = recent
            if len(recent) >= PARK_AFTER_RESETS:
                folder.parked_until = now + PARK_FOR
                folder.sync_state = Folder.SyncState.PARKED
                folder.sync_error = (
                    f"The server renumbered this folder {len(recent)} times in a day "
                    "(UIDVALIDITY changed); sync is paused until "
                    f"{folder.parked_until:%Y-%m-%d %H:%M} UTC. Check the server."
                )
                folder.save(
                    update_fields=["uidvalidity_resets", "parked_until", "sync_state", "sync_error"]
                )
                live.record(folder.mailbox_id, "folder", folder_id=folder.pk)
            else:
                folder.messages.filter(uid__gt=0).update(uid=-F("id"))
                folder.uidvalidity = None
                folder.save(update_fields=["uidvalidity", "uidvalidity_resets"])
        if folder.parked_until:
            raise FolderParked(folder.sync_error)
        self.result.uidvalidity_reset = True

    # -- new mail ---------------------------------------------------------------------------

    def _fetch_new(self) -> None:
        """Messages that arrived since the last run: UID SEARCH uidnext:*, then FETCH."""
        folder = self.folder
        found = self.client.search(["UID", f"{folder.uidnext}:*"])
        # "N:*" always matches the highest UID even when it is below N: filter.
        uids = sorted(uid for uid in found if uid >= folder.uidnext)
        self._store_windows(
            Window(window, uidnext=window[-1] + 1) for window in _chunks(uids, self.window)
        )

    def _backfill(self) -> None:
        """Initial sync, newest to oldest, one committed window at a time."""
        folder = self.folder
        if not folder.lowest_synced_uid or folder.lowest_synced_uid <= 1:
            return
        below = folder.lowest_synced_uid
        uids = sorted(
            (uid for uid in self.client.search(["UID", f"1:{below - 1}"]) if uid < below),
            reverse=True,
        )
        folder.sync_total = folder.sync_done + len(uids)
        if not uids:
            self._store_windows([Window([], lowest=1)])
            return
        windows = list(_chunks(uids, self.window))
        self._store_windows(
            Window(sorted(window), lowest=1 if index == len(windows) - 1 else min(window))
            for index, window in enumerate(windows)
        )

    def _store_windows(self, windows: Iterable[Window]) -> None:
        """Fetch and store windows in order, as a pipeline of up to three threads, each a
        window ahead of the next: the reader fetches and parses (IMAP, never the database);
        on PostgreSQL a second thread, on a connection of its own, gives the rows their
        conversations and commits them; this thread writes the rows and moves the cursor.
        The IMAP server, this process and two database backends work at the same time.

        The cursor still moves one committed window at a time, in order, so a crash anywhere
        loses nothing: windows fetched ahead are fetched again, and their messages find the
        conversations committed ahead of them through their ids (ThreadRef) instead of
        making new ones.
        """
        windows = list(windows)
        if not windows:
            return
        if len(windows) == 1:
            self._write_window(self._fetch_window(windows[0]))
            return
        young, middle, oldest = gc.get_threshold()
        if oldest < FULL_COLLECTION_THRESHOLD:  # for the process: its syncs are its work
            gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)
        stop = threading.Event()
        fetched: queue.Queue = queue.Queue(maxsize=2)
        name = self.folder.pk
        stages = [_Stage(f"kotak-fetch-{name}", windows, self._fetch_window, fetched, stop)]
        try:
            if self._can_assign_ahead():
                assigned: queue.Queue = queue.Queue(maxsize=1)
                stages.append(
                    _Stage(
                        f"kotak-threads-{name}", _taken(fetched, stop), self._assign_ahead,
                        assigned, stop, database=True,
                    )
                )  # fmt: skip
                fetched = assigned
            for _ in windows:
                item = _take(fetched, stop)
                if isinstance(item, BaseException):
                    raise item
                self._write_window(item)
        finally:
            stop.set()
            for stage in stages:
                stage.finish()

    def _can_assign_ahead(self) -> bool:
        """Whether conversations may be committed on a second connection ahead of their rows:
        on PostgreSQL (SQLite has one writer at a time), outside a caller's transaction (the
        other connection would not see its rows), and with no rows from before a UIDVALIDITY
        reset waiting for their new UIDs (matching them is kept on one thread)."""
        return (
            connection.vendor == "postgresql"
            and not connection.in_atomic_block
            and not self._orphans()
        )

    def _assign_ahead(self, fetched: Fetched) -> Fetched:
        """The conversations stage: rows get their conversations, committed on this thread's
        own connection before the rows themselves are written."""
        db.refresh_statistics(Message, self.folder.sync_done)
        with transaction.atomic():
            _relaxed_commit()
            self._assign(fetched)
        return fetched

    def _fetch_window(self, window: Window) -> Fetched:
        """FETCH one window and build its rows. Touches the IMAP connection, never the
        database: it may run on the reader thread."""
        folder = self.folder
        rows = []
        if window.uids:
            wanted = set(window.uids)
            response = fetch_headers(self.client, _uid_set(window.uids), self.fetch_items)
            for uid, data in response.items():
                if uid in wanted:
                    raw = _header_bytes(data)
                    if len(raw) >= HEADER_LIMIT:
                        data = self._whole_header(uid, data)
                        raw = _header_bytes(data)
                    rows.append(build_message(folder, uid, data, raw))
        vanished = pop_vanished(self.client) if self.qresync else set()
        return Fetched(window, rows, vanished)

    def _whole_header(self, uid: int, data: dict) -> dict:
        """The message's FETCH data with the header block the window cut at HEADER_LIMIT
        fetched again whole; as it was if the message has gone meanwhile."""
        whole = fetch_headers(self.client, str(uid), ["UID", FULL_HEADER_ITEM]).get(uid)
        if whole is None:
            return data
        return {
            **{key: value for key, value in data.items() if not _is_header(key)},
            **{key: value for key, value in whole.items() if _is_header(key)},
        }

    def _assign(self, fetched: Fetched) -> None:
        """Give the window's rows their conversations (moves and copies followed, renumbered
        rows matched), creating conversations as needed."""
        rows = fetched.rows
        fetched.remapped = self._match_orphans(rows)
        new_rows = [row for row in rows if "id" not in row]
        self._follow_moves(new_rows)
        fetched.existing = {row["conversation_id"] for row in new_rows if row["conversation_id"]}
        fetched.existing.update(
            assign_conversations(self.folder.mailbox_id, new_rows, self.folder.special_use)
        )
        fetched.assigned = True

    def _write_window(self, fetched: Fetched) -> None:
        folder = self.folder
        rows, uidnext, lowest = fetched.rows, fetched.window.uidnext, fetched.window.lowest
        if not fetched.assigned:
            db.refresh_statistics(Message, folder.sync_done)
        with transaction.atomic():
            _relaxed_commit()
            if not fetched.assigned:
                self._assign(fetched)
            remapped, existing = fetched.remapped, fetched.existing
            new_rows = [row for row in rows if "id" not in row]
            if remapped:
                Message.objects.bulk_update(remapped, ["uid", *UPSERT_FIELDS], batch_size=500)
                existing.update(
                    Message.objects.filter(
                        pk__in=[m.pk for m in remapped], conversation__isnull=False
                    ).values_list("conversation_id", flat=True)
                )
            ids = upsert_messages(new_rows)
            # Keywords new rows bring are read back; worked conversations' go onto new rows.
            keyword_mirror.arrived(
                folder.mailbox, new_rows, ids + [m.pk for m in remapped], existing
            )
            if uidnext is not None:
                folder.uidnext = max(folder.uidnext or 0, uidnext)
            if lowest is not None:
                folder.lowest_synced_uid = lowest
                if lowest == 1:
                    self._drop_unmatched_orphans()
            folder.sync_done += len(rows)
            folder.sync_total = max(folder.sync_total, folder.sync_done)
            folder.sync_lock_until = timezone.now() + LOCK_TTL
            if slot := getattr(self.client, "kotak_slot", None):
                slots.renew(slot)
            folder.save(
                update_fields=[
                    "uidnext",
                    "lowest_synced_uid",
                    "sync_done",
                    "sync_total",
                    "sync_lock_until",
                ]
            )
            if ids:
                self.counts_moved = True
                self.result.added += len(ids)
                live.record(
                    folder.mailbox_id,
                    "messages_added",
                    folder_id=folder.pk,
                    message_ids=ids[:500],
                )
        self._remove_vanished(fetched.vanished)
        self.progress(folder)

    def _orphans(self) -> dict[str, list[int]]:
        """Rows left from before a UIDVALIDITY reset, by stable identity."""
        if self.orphans is None:
            self.orphans = defaultdict(list)
            rows = self.folder.messages.filter(uid__lt=0).values_list("stable_id", "pk")
            for stable_id, pk in rows.order_by("-uid"):
                self.orphans[stable_id].append(pk)
        return self.orphans

    def _match_orphans(self, rows: list[dict]) -> list[Message]:
        """Give rows from before a UIDVALIDITY reset their new UID (same pk, same team data)."""
        orphans = self._orphans()
        matched = []
        for row in rows:
            candidates = orphans.get(row["stable_id"])
            if candidates:
                row["id"] = candidates.pop()
                matched.append(Message(**{k: v for k, v in row.items() if k != "conversation_id"}))
        self.result.remapped += len(matched)
        return matched

    def _drop_unmatched_orphans(self) -> None:
        gone = list(self.folder.messages.filter(uid__lt=0).values_list("pk", flat=True))
        if gone:
            self._remove(gone)
        self.orphans = {}

    def _follow_moves(self, rows: list[dict]) -> None:
        """A message that left another folder moments ago and arrives here keeps its
        conversation: that was a move by another client, not a delete and a new mail."""
        fresh = {row["stable_id"]: row for row in rows}
        if not fresh:
            return
        mailbox_id = self.folder.mailbox_id
        used = []
        stones = db.select_in(
            MessageTombstone,
            ["id", "stable_id", "conversation_id"],
            {"mailbox_id": mailbox_id},
            "stable_id",
            fresh,
        )
        for pk, stable_id, conversation_id in stones:
            row = fresh[stable_id]
            if row["conversation_id"] is None:
                row["conversation_id"] = conversation_id
                used.append(pk)
        if used:
            MessageTombstone.objects.filter(pk__in=used).delete()
        # The destination may be synced before the source: the copy still in the old folder
        # (or a true copy, which belongs to the same conversation anyway) tells too.
        waiting = [key for key, row in fresh.items() if row["conversation_id"] is None]
        twins = db.select_in(
            Message,
            ["stable_id", "conversation_id"],
            {"mailbox_id": mailbox_id},
            "stable_id",
            waiting,
        )
        for stable_id, conversation_id in twins:
            if conversation_id is not None:
                fresh[stable_id]["conversation_id"] = conversation_id

    # -- flags ------------------------------------------------------------------------------

    def _stored_range(self, below: int | None = None) -> str | None:
        folder = self.folder
        if folder.lowest_synced_uid is None or folder.uidnext is None:
            return None
        end = min(folder.uidnext, below or folder.uidnext)
        if folder.lowest_synced_uid >= end:
            return None
        return f"{folder.lowest_synced_uid}:{end - 1}"

    def _changed_flags(self, modseq: int) -> None:
        """CONDSTORE (RFC 7162 §3.1.4): only what changed since the stored HIGHESTMODSEQ.

        Under QRESYNC the same FETCH also reports expunged UIDs (VANISHED, §3.2.6), which are
        applied before the new HIGHESTMODSEQ is stored, or they would be missed for good.
        """
        folder = self.folder
        if folder.highestmodseq is not None and modseq <= folder.highestmodseq:
            return
        # Messages fetched by this pass came with their current flags: only those stored
        # before it can have changes to fetch.
        uid_range = self._stored_range(below=self.known_uidnext)
        if uid_range and folder.highestmodseq is not None:
            modifiers = [f"CHANGEDSINCE {folder.highestmodseq}"]
            if self.qresync:
                modifiers.append("VANISHED")
            response = self.client.fetch(uid_range, ["UID", "FLAGS"], modifiers=modifiers)
            self._apply_vanished()
            self._apply_flags(response)
        with transaction.atomic():
            folder.highestmodseq = modseq
            folder.save(update_fields=["highestmodseq"])

    def _diff_flags(self) -> None:
        """Without CONDSTORE: fetch every stored message's flags in chunks and compare."""
        stored = list(
            self.folder.messages.filter(uid__gt=0).order_by("uid").values_list("uid", flat=True)
        )
        for chunk in _chunks(stored, FLAG_CHUNK):
            response = self.client.fetch(f"{chunk[0]}:{chunk[-1]}", ["UID", "FLAGS"])
            self._apply_vanished()
            self._apply_flags(response)

    def _apply_flags(self, response: dict) -> None:
        if not response:
            return
        folder = self.folder
        names = ["pk", "uid", "conversation_id", *FLAG_FIELDS]
        stored = db.select_in(
            Message, ["id", *names[1:]], {"folder_id": folder.pk}, "uid", response
        )
        current = {values[1]: dict(zip(names, values, strict=True)) for values in stored}
        current_by_pk = {row["pk"]: row for row in current.values()}
        updates = []
        for uid, data in response.items():
            row = current.get(uid)
            if row is None or b"FLAGS" not in data:
                continue
            values = flag_values(data[b"FLAGS"])
            if any(row[key] != value for key, value in values.items()):
                updates.append(Message(pk=row["pk"], **values))
        signals = []
        if updates:
            # A user's click the server has not heard of yet is newer than what it says.
            pending = pending_flag_values(m.pk for m in updates)
            # Keywords too: queued adds stay, queued removes stay removed.
            queued = pending_keywords(m.pk for m in updates)
            for message in updates:
                for column, value in pending.get(message.pk, {}).items():
                    setattr(message, column, value)
                if message.pk in queued:
                    add, remove = queued[message.pk]
                    message.keywords = sorted((set(message.keywords) - remove) | add)
            updates = [
                m
                for m in updates
                if any(getattr(m, key) != current_by_pk[m.pk][key] for key in FLAG_FIELDS)
            ]
            # Kotak keywords another client changed, on messages Kotak has no keyword change
            # queued for (webmail.keywords reads them back into the conversation).
            modseqs = {uid: data.get(b"MODSEQ", (None,))[0] for uid, data in response.items()}
            for m in updates:
                if m.pk in queued:
                    continue
                row = current_by_pk[m.pk]
                modseq = modseqs.get(row["uid"])
                found = keyword_mirror.signal(
                    row["conversation_id"], row["uid"], modseq, row["keywords"], m.keywords
                )
                if found:
                    signals.append(found)
        if not updates:
            return
        if any(m.is_seen != current_by_pk[m.pk]["is_seen"] for m in updates):
            self.counts_moved = True
        with transaction.atomic():
            db.update_rows(
                Message,
                FLAG_FIELDS,
                {m.pk: tuple(getattr(m, name) for name in FLAG_FIELDS) for m in updates},
            )
            live.record(
                folder.mailbox_id,
                "flags_changed",
                folder_id=folder.pk,
                message_ids=[m.pk for m in updates[:500]],
            )
            keyword_mirror.read_back(folder.mailbox, signals, notify=True)
        self.result.flag_changes += len(updates)

    # -- expunges ---------------------------------------------------------------------------

    def _apply_vanished(self) -> None:
        """Remove the UIDs the server reported as VANISHED in answer to the last command."""
        if not self.qresync:
            return
        if self.folder.uidnext is None:
            pop_vanished(self.client, 1, 0)  # nothing stored yet: just discard
            return
        self._remove_vanished(pop_vanished(self.client))

    def _remove_vanished(self, uids: set[int]) -> None:
        folder = self.folder
        if folder.uidnext is not None:
            uids = {uid for uid in uids if uid < folder.uidnext}
        if not uids:
            return
        gone = [
            pk for (pk,) in db.select_in(Message, ["id"], {"folder_id": folder.pk}, "uid", uids)
        ]
        if gone:
            self._remove(gone)

    def _expunged(self, exists: int) -> tuple[int, int] | None:
        """Remove what the server expunged. When the counts prove there was nothing, returns
        them (shown, unread) for _finish; else None, and _finish counts afresh."""
        folder = self.folder
        if (
            self.qresync
            and not self.counts_moved
            and not (self.full_scan or self.initial)
            and folder.lowest_synced_uid == 1
            and exists == folder.total_count
        ):
            # Under QRESYNC the server reported every expunge since the last pass (VANISHED,
            # applied as it came), it counts as many messages as are shown, and this pass
            # added, removed and (un)read nothing: the counts stand, with no count of the
            # folder's rows (~25 ms at 100,000).
            return folder.total_count, folder.unread_count
        # One pass over the folder's rows for all three counts: at 100,000 messages each
        # separate count is a scan of its own.
        counts = folder.messages.aggregate(
            stored=Count("pk", filter=Q(uid__gt=0)),
            shown=Count("pk", filter=Q(pending_removal=False)),
            unread=Count("pk", filter=Q(pending_removal=False, is_seen=False)),
        )
        if folder.lowest_synced_uid == 1 and counts["stored"] == exists and not self.full_scan:
            # Every server UID is stored (the invariant); equal counts mean equal sets.
            return counts["shown"], counts["unread"]
        uid_range = self._stored_range()
        if uid_range is None:
            return None
        on_server = set(self.client.search(["UID", uid_range]))
        self._apply_vanished()
        stored_rows = folder.messages.filter(uid__gte=folder.lowest_synced_uid).values_list(
            "pk", "uid"
        )
        stored_uids: set[int] = set()
        gone = []
        for pk, uid in stored_rows.iterator(chunk_size=5000):
            stored_uids.add(uid)
            if uid not in on_server:
                gone.append(pk)
        if gone:
            self._remove(gone)
        if self.full_scan:
            # The invariant says none can be missing; the audit checks rather than trusts it.
            missing = sorted(on_server - stored_uids)
            self._store_windows(Window(window) for window in _chunks(missing, self.window))
        return None

    def _remove(self, pks: list[int]) -> None:
        """Delete rows, leaving a tombstone for those in a conversation (see _follow_moves)."""
        folder = self.folder
        with transaction.atomic():
            for chunk in _chunks(pks, 5000):
                bury(Message.objects.filter(pk__in=chunk))
                Message.objects.filter(pk__in=chunk).delete()
            live.record(
                folder.mailbox_id,
                "messages_removed",
                folder_id=folder.pk,
                message_ids=pks[:500],
            )
        self.counts_moved = True
        self.result.removed += len(pks)

    def _finish(self, counts: tuple[int, int] | None) -> None:
        folder = self.folder
        before = (folder.total_count, folder.unread_count)
        if counts is None:
            visible = folder.messages.filter(pending_removal=False)
            counts = visible.count(), visible.unread().count()
        folder.total_count, folder.unread_count = counts
        if (folder.total_count, folder.unread_count) != before:
            live.record(folder.mailbox_id, "folder_counts", folder_id=folder.pk)
        folder.sync_state = Folder.SyncState.IDLE
        folder.sync_error = ""
        folder.last_synced_at = timezone.now()
        if folder.lowest_synced_uid == 1:
            folder.sync_done = folder.sync_total = folder.total_count
            if self.full_scan or self.initial:
                folder.last_full_scan_at = folder.last_synced_at
        folder.save(
            update_fields=[
                "total_count",
                "unread_count",
                "sync_state",
                "sync_error",
                "last_synced_at",
                "sync_done",
                "sync_total",
                "last_full_scan_at",
            ]
        )


def sync_folder(
    folder: Folder,
    client: imapclient.IMAPClient,
    progress: Progress | None = None,
    status: FolderStatus | None = None,
    owner: str | None = None,
) -> FolderSyncResult:
    return FolderSync(folder, client, progress, status, owner).run()
