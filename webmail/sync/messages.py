"""Mirroring one folder's messages and flags into Message rows, driven by the folder's cursor.

Invariant: every message the server has with lowest_synced_uid <= UID < uidnext is stored.
Each window of work commits its rows and the cursor move together, so a crash at any point
repeats work on the next run but never loses or duplicates a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import imapclient
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webmail.mail.headers import FETCHED_FIELDS, Headers, parse_headers
from webmail.models import Change, Folder, Message

log = logging.getLogger(__name__)

HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS ({})]".format(" ".join(FETCHED_FIELDS))
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


@dataclass
class FolderSyncResult:
    added: int = 0
    flag_changes: int = 0
    removed: int = 0
    uidvalidity_reset: bool = False
    added_ids: list[int] = field(default_factory=list)


def flag_values(flags: Iterable[bytes | str]) -> dict:
    """FLAGS as the boolean columns plus a sorted keyword list."""
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


def _header_bytes(data: dict) -> bytes:
    for key, value in data.items():
        if isinstance(key, bytes) and key.startswith(b"BODY[HEADER"):
            return value or b""
    return b""


def _internal_date(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return timezone.now()


def build_message(folder: Folder, uid: int, data: dict) -> Message:
    """A Message row from one FETCH response; unparseable headers are kept raw and marked."""
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
    return Message(
        mailbox_id=folder.mailbox_id,
        folder=folder,
        uid=uid,
        stable_id=headers.stable_id(),
        modseq=modseq[0] if isinstance(modseq, tuple) and modseq else None,
        message_id=headers.message_id,
        in_reply_to=headers.in_reply_to,
        references=headers.references,
        subject=headers.subject,
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
        **flag_values(data.get(b"FLAGS", ())),
    )


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


class FolderSync:
    """One sync pass over one selected folder."""

    def __init__(
        self, folder: Folder, client: imapclient.IMAPClient, progress: Progress | None = None
    ):
        self.folder = folder
        self.client = client
        self.progress = progress or (lambda folder: None)
        self.result = FolderSyncResult()
        self.condstore = client.has_capability("CONDSTORE")
        self.window = settings.SYNC_WINDOW

    def run(self) -> FolderSyncResult:
        folder = self.folder
        status = self.client.select_folder(folder.name, readonly=True)
        uidvalidity = status[b"UIDVALIDITY"]
        exists = status.get(b"EXISTS", 0)
        server_uidnext = status.get(b"UIDNEXT") or self._status_uidnext()
        modseq = status.get(b"HIGHESTMODSEQ") if self.condstore else None

        if folder.uidvalidity is not None and folder.uidvalidity != uidvalidity:
            self._reset(uidvalidity)
        if folder.uidvalidity is None:
            self._start(uidvalidity, server_uidnext, exists, modseq)

        self._fetch_new()
        self._backfill()
        if self.condstore and modseq is not None:
            self._changed_flags(modseq)
        else:
            self._diff_flags()
        self._expunged(exists)
        self._finish()
        return self.result

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
        """The server renumbered the folder (RFC 3501 §2.3.1.1): its UIDs mean nothing now."""
        log.warning(
            "folder %s: UIDVALIDITY changed %s -> %s",
            self.folder.pk,
            self.folder.uidvalidity,
            uidvalidity,
        )
        with transaction.atomic():
            self.folder.messages.all().delete()
            self.folder.uidvalidity = None
            self.folder.save(update_fields=["uidvalidity"])
            Change.objects.create(
                mailbox_id=self.folder.mailbox_id, kind="folder_reset", folder_id=self.folder.pk
            )
        self.result.uidvalidity_reset = True

    # -- new mail ---------------------------------------------------------------------------

    def _fetch_new(self) -> None:
        """Messages that arrived since the last run: UID SEARCH uidnext:*, then FETCH."""
        folder = self.folder
        # "N:*" always matches the highest UID even when it is below N: filter.
        uids = sorted(
            u for u in self.client.search(["UID", f"{folder.uidnext}:*"]) if u >= folder.uidnext
        )
        for window in _chunks(uids, self.window):
            self._store_window(window, uidnext=window[-1] + 1)

    def _backfill(self) -> None:
        """Initial sync, newest to oldest, one committed window at a time."""
        folder = self.folder
        if not folder.lowest_synced_uid or folder.lowest_synced_uid <= 1:
            return
        uids = sorted(
            (
                u
                for u in self.client.search(["UID", f"1:{folder.lowest_synced_uid - 1}"])
                if u < folder.lowest_synced_uid
            ),
            reverse=True,
        )
        folder.sync_total = folder.sync_done + len(uids)
        if not uids:
            self._store_window([], lowest=1)
        for index, window in enumerate(_chunks(uids, self.window)):
            is_last = (index + 1) * self.window >= len(uids)
            self._store_window(sorted(window), lowest=1 if is_last else min(window))

    def _store_window(
        self, uids: list[int], *, uidnext: int | None = None, lowest: int | None = None
    ) -> None:
        folder = self.folder
        rows = []
        if uids:
            response = self.client.fetch(_uid_set(uids), NEW_MESSAGE_ITEMS)
            rows = [
                build_message(folder, uid, data)
                for uid, data in response.items()
                if uid in set(uids)
            ]
        with transaction.atomic():
            if rows:
                Message.objects.bulk_create(
                    rows,
                    update_conflicts=True,
                    unique_fields=["folder", "uid"],
                    update_fields=UPSERT_FIELDS,
                )
            if uidnext is not None:
                folder.uidnext = max(folder.uidnext or 0, uidnext)
            if lowest is not None:
                folder.lowest_synced_uid = lowest
            folder.sync_done += len(rows)
            folder.sync_total = max(folder.sync_total, folder.sync_done)
            folder.save(update_fields=["uidnext", "lowest_synced_uid", "sync_done", "sync_total"])
            if rows:
                ids = list(
                    Message.objects.filter(
                        folder=folder, uid__in=[r.uid for r in rows]
                    ).values_list("pk", flat=True)
                )
                self.result.added += len(rows)
                self.result.added_ids.extend(ids)
                Change.objects.create(
                    mailbox_id=folder.mailbox_id,
                    kind="messages_added",
                    folder_id=folder.pk,
                    message_ids=ids[:500],
                )
        self.progress(folder)

    # -- flags ------------------------------------------------------------------------------

    def _stored_range(self) -> str | None:
        folder = self.folder
        if folder.lowest_synced_uid is None or folder.uidnext is None:
            return None
        if folder.lowest_synced_uid >= folder.uidnext:
            return None
        return f"{folder.lowest_synced_uid}:{folder.uidnext - 1}"

    def _changed_flags(self, modseq: int) -> None:
        """CONDSTORE (RFC 7162 §3.1.4): only what changed since the stored HIGHESTMODSEQ."""
        folder = self.folder
        if folder.highestmodseq is not None and modseq <= folder.highestmodseq:
            return
        uid_range = self._stored_range()
        if uid_range and folder.highestmodseq is not None:
            response = self.client.fetch(
                uid_range, ["UID", "FLAGS"], modifiers=[f"CHANGEDSINCE {folder.highestmodseq}"]
            )
            self._apply_flags(response)
        with transaction.atomic():
            folder.highestmodseq = modseq
            folder.save(update_fields=["highestmodseq"])

    def _diff_flags(self) -> None:
        """Without CONDSTORE: fetch every stored message's flags in chunks and compare."""
        stored = list(self.folder.messages.order_by("uid").values_list("uid", flat=True))
        for chunk in _chunks(stored, FLAG_CHUNK):
            response = self.client.fetch(f"{chunk[0]}:{chunk[-1]}", ["UID", "FLAGS"])
            self._apply_flags(response)

    def _apply_flags(self, response: dict) -> None:
        if not response:
            return
        folder = self.folder
        current = {
            row["uid"]: row
            for row in folder.messages.filter(uid__in=list(response)).values(
                "pk", "uid", *FLAG_FIELDS
            )
        }
        updates = []
        for uid, data in response.items():
            row = current.get(uid)
            if row is None or b"FLAGS" not in data:
                continue
            values = flag_values(data[b"FLAGS"])
            if any(row[key] != value for key, value in values.items()):
                updates.append(Message(pk=row["pk"], **values))
        if not updates:
            return
        with transaction.atomic():
            Message.objects.bulk_update(updates, FLAG_FIELDS, batch_size=500)
            Change.objects.create(
                mailbox_id=folder.mailbox_id,
                kind="flags_changed",
                folder_id=folder.pk,
                message_ids=[m.pk for m in updates[:500]],
            )
        self.result.flag_changes += len(updates)

    # -- expunges ---------------------------------------------------------------------------

    def _expunged(self, exists: int) -> None:
        folder = self.folder
        stored = folder.messages.count()
        if folder.lowest_synced_uid == 1 and stored == exists:
            # Every server UID is stored (the invariant); equal counts mean equal sets.
            return
        uid_range = self._stored_range()
        if uid_range is None:
            return
        on_server = set(self.client.search(["UID", uid_range]))
        stored_rows = folder.messages.filter(uid__gte=folder.lowest_synced_uid).values_list(
            "pk", "uid"
        )
        gone = [pk for pk, uid in stored_rows.iterator(chunk_size=5000) if uid not in on_server]
        if not gone:
            return
        with transaction.atomic():
            Message.objects.filter(pk__in=gone).delete()
            Change.objects.create(
                mailbox_id=folder.mailbox_id,
                kind="messages_removed",
                folder_id=folder.pk,
                message_ids=gone[:500],
            )
        self.result.removed += len(gone)

    def _finish(self) -> None:
        folder = self.folder
        folder.total_count = folder.messages.count()
        folder.unread_count = folder.messages.unread().count()
        folder.sync_state = Folder.SyncState.IDLE
        folder.sync_error = ""
        folder.last_synced_at = timezone.now()
        if folder.lowest_synced_uid == 1:
            folder.sync_done = folder.sync_total = folder.total_count
        folder.save(
            update_fields=[
                "total_count",
                "unread_count",
                "sync_state",
                "sync_error",
                "last_synced_at",
                "sync_done",
                "sync_total",
            ]
        )


def sync_folder(
    folder: Folder, client: imapclient.IMAPClient, progress: Progress | None = None
) -> FolderSyncResult:
    return FolderSync(folder, client, progress).run()
