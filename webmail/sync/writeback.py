"""Applying users' pending changes to the IMAP server (DESIGN §4).

A change is claimed (a lease, so a dead worker's claim runs out), applied, then deleted. Each
step is safe to repeat: flags are set with ±FLAGS, and a MOVE or EXPUNGE of a UID that is
already gone does nothing, so a worker killed between the command and the commit leaves a
change that the next attempt completes exactly once.

The server may refuse (a folder deleted by another client, a read-only mailbox, a full
quota): the local state is put back, the change is kept as failed with the server's words,
and the screen says so. A server that cannot be reached is retried with a growing delay.
"""

from __future__ import annotations

import imaplib
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import groupby

import imapclient
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webmail import folder_actions, keywords, live
from webmail.actions import FLAG_COLUMNS, refresh_counts
from webmail.imap.extensions import conditional_store, parse_copyuid
from webmail.imap.folders import is_within, renamed
from webmail.models import Folder, Mailbox, Message, PendingChange
from webmail.sync.connection import mailbox_connection
from webmail.sync.messages import bury

log = logging.getLogger(__name__)

Action = PendingChange.Action
LEASE = timedelta(minutes=2)
CLAIM_MAX = 2000
# Rounds of "someone changed it meanwhile: look again" before giving up on UNCHANGEDSINCE.
STORE_ROUNDS = 3


class Refused(Exception):
    """The server said no to this change; the text is for the user."""


class KeywordsRefused(Exception):
    """The server does not keep Kotak's keywords; the text says how it showed that."""


@dataclass
class WritebackResult:
    applied: int = 0
    failed: int = 0
    retrying: int = 0
    errors: list[str] = field(default_factory=list)


def apply_pending(mailbox: Mailbox) -> WritebackResult:
    """Apply every due change of the mailbox, oldest first."""
    result = WritebackResult()
    owner = uuid.uuid4().hex
    changes = _claim(mailbox, owner)
    if not changes:
        return result
    remaining = list(changes)
    try:
        with mailbox_connection(mailbox, purpose="write", wait=settings.IMAP_SLOT_WAIT) as client:
            writer = _Writer(client, mailbox, result)
            for _, group in groupby(changes, key=_group_key):
                group = list(group)
                writer.apply(group)
                done = {c.pk for c in group}
                remaining = [c for c in remaining if c.pk not in done]
    except Exception as exc:
        # Unreachable, dropped mid-way, wrong password, no free connection: nothing was refused,
        # so nothing is reverted. What is left is retried later, with a growing delay.
        _retry_later(remaining, exc, result)
        if not isinstance(exc, (OSError, imaplib.IMAP4.abort)) and not _is_connect_error(exc):
            raise
    return result


def _is_connect_error(exc: Exception) -> bool:
    from webmail.imap.client import ConnectError
    from webmail.sync.slots import NoFreeConnection

    return isinstance(exc, (ConnectError, NoFreeConnection))


def due_mailboxes() -> list[int]:
    """Mailboxes with a change to apply now (beat's sweeper; the broker may have lost one)."""
    return list(
        PendingChange.objects.filter(
            state=PendingChange.State.PENDING, next_attempt_at__lte=timezone.now()
        )
        .values_list("mailbox_id", flat=True)
        .distinct()
    )


# -- claiming ---------------------------------------------------------------------------------


def _claim(mailbox: Mailbox, owner: str) -> list[PendingChange]:
    now = timezone.now()
    due = PendingChange.objects.filter(
        mailbox=mailbox, state=PendingChange.State.PENDING, next_attempt_at__lte=now
    )
    ids = list(due.order_by("pk").values_list("pk", flat=True)[:CLAIM_MAX])
    if not ids:
        return []
    # A row another worker claimed in between no longer matches next_attempt_at <= now.
    due.filter(pk__in=ids).update(claimed_by=owner, next_attempt_at=now + LEASE)
    return list(
        PendingChange.objects.filter(pk__in=ids, claimed_by=owner)
        .select_related("message", "folder")
        .order_by("pk")
    )


def _retry_later(changes: list[PendingChange], exc: Exception, result: WritebackResult) -> None:
    now = timezone.now()
    for change in changes:
        change.attempts += 1
        delay = min(settings.WRITEBACK_RETRY_MAX, 5 * 2 ** min(change.attempts, 12))
        PendingChange.objects.filter(pk=change.pk, claimed_by=change.claimed_by).update(
            attempts=change.attempts,
            next_attempt_at=now + timedelta(seconds=delay),
            claimed_by="",
            last_error=str(exc)[:500] or type(exc).__name__,
        )
    result.retrying += len(changes)
    result.errors.append(str(exc))


def _group_key(change: PendingChange) -> tuple:
    """Changes applied by one command: same action, folder and arguments, in a row."""
    payload = {k: v for k, v in change.payload.items() if k != "modseq"}
    return (change.action, change.folder_id, repr(sorted(payload.items())))


# -- applying ---------------------------------------------------------------------------------


class _Writer:
    def __init__(self, client: imapclient.IMAPClient, mailbox: Mailbox, result: WritebackResult):
        self.client = client
        self.mailbox = mailbox
        self.result = result
        self.selected: str | None = None
        # PERMANENTFLAGS of the selected folder, from its SELECT response (None: not sent).
        self.permanent_flags: tuple | None = None
        caps = set(mailbox.capabilities)
        self.condstore = "CONDSTORE" in caps
        self.has_move = "MOVE" in caps
        self.uidplus = "UIDPLUS" in caps
        self.unselect = "UNSELECT" in caps

    def apply(self, group: list[PendingChange]) -> None:
        action = group[0].action
        if group[0].payload.get("keywords"):
            self._keywords(group)
            return
        try:
            if action in (Action.ADD_FLAGS, Action.REMOVE_FLAGS):
                self._flags(group)
            elif action == Action.MOVE:
                self._move(group)
            elif action == Action.EXPUNGE and group[0].payload.get("draft"):
                self._expunge_draft(group)
            elif action == Action.EXPUNGE:
                self._expunge(group)
            elif action == Action.APPEND:
                self._append(group)
            elif action == Action.CREATE_FOLDER:
                self._create_folder(group)
            elif action == Action.RENAME_FOLDER:
                self._rename_folder(group)
            elif action == Action.DELETE_FOLDER:
                self._delete_folder(group)
            elif action in (Action.SUBSCRIBE, Action.UNSUBSCRIBE):
                self._subscription(group)
            else:
                raise Refused(f"Kotak cannot apply “{action}” changes.")
        except imaplib.IMAP4.abort:
            raise  # the connection is gone: retry later, nothing was refused
        except (Refused, imaplib.IMAP4.error) as exc:
            self._refused(group, _server_words(exc))
            return
        self.result.applied += len(group)

    # -- the commands ---------------------------------------------------------------------

    def _live_messages(self, group: list[PendingChange]) -> dict[int, PendingChange]:
        """uid → change for messages still in their folder; the rest have nothing to do."""
        by_uid = {}
        gone = []
        for change in group:
            message = change.message
            if message is None or message.folder_id != change.folder_id or message.uid <= 0:
                # Removed by a sync meanwhile (moved or deleted elsewhere), or renumbered by a
                # UIDVALIDITY reset and not matched yet: nothing left to apply it to.
                gone.append(change.pk)
                continue
            by_uid[message.uid] = change
        if gone:
            PendingChange.objects.filter(pk__in=gone).delete()
        return by_uid

    def _select(self, folder: Folder) -> None:
        name = self._on_server(folder.name)
        if self.selected != name:
            response = self.client.select_folder(name)
            self.permanent_flags = response.get(b"PERMANENTFLAGS")
            self.selected = name
        # Our own session's expunge reports belong to the folder's sync, not here.
        self.client._imap.untagged_responses.pop("VANISHED", None)

    def _flags(self, group: list[PendingChange]) -> None:
        by_uid = self._live_messages(group)
        if by_uid:
            first = group[0]
            self._select(first.folder)
            flags = first.payload["flags"]
            adding = first.action == Action.ADD_FLAGS
            uids = sorted(by_uid)
            is_keywords = bool(first.payload.get("keywords"))
            if is_keywords and adding and not self._keeps(flags):
                # Such a server answers OK and drops them (Dovecot without the ACL "w" right).
                raise KeywordsRefused(
                    f"The server does not keep keywords in “{first.folder.name}”: its "
                    "PERMANENTFLAGS allow no new ones."
                )
            try:
                if self.condstore:
                    self._conditional_store(uids, flags, adding, group)
                elif adding:
                    self.client.add_flags(uids, flags, silent=True)
                else:
                    self.client.remove_flags(uids, flags, silent=True)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                if is_keywords:
                    raise KeywordsRefused(_server_words(exc)) from exc
                raise
        PendingChange.objects.filter(pk__in=[c.pk for c in group]).delete()

    def _keeps(self, flags: list[str]) -> bool:
        """Whether the selected folder stores these flags for good (RFC 3501 §7.1:
        PERMANENTFLAGS lists them, "\\*" allows new keywords; none sent means all do)."""
        if self.permanent_flags is None:
            return True
        kept = {flag.lower() for flag in self.permanent_flags}
        return b"\\*" in kept or all(flag.lower().encode() in kept for flag in flags)

    def _keywords(self, group: list[PendingChange]) -> None:
        """Kotak's keyword mirror (webmail.keywords). Not a user's action, so never a failed
        one: a server that will not keep keywords turns the mirror off, once, with the reason."""
        if not self.mailbox.mirror_keywords:
            keywords.drop_queued(self.mailbox, group)  # turned off since they were queued
            return
        try:
            self._flags(group)
        except imaplib.IMAP4.abort:
            raise  # the connection is gone: retry later
        except KeywordsRefused as exc:
            folder = group[0].folder.name if group[0].folder else ""
            keywords.turn_off(self.mailbox, str(exc), folder)
            return
        except imaplib.IMAP4.error as exc:
            # Not about keywords (the folder went away meanwhile, say): the folder's next sync
            # brings what the server has, and the next change to the conversation mirrors it.
            log.info("mailbox %s: keyword change dropped: %s", self.mailbox.pk, exc)
            keywords.drop_queued(self.mailbox, group)
            return
        self.result.applied += len(group)

    def _conditional_store(
        self, uids: list[int], flags: list[str], adding: bool, group: list[PendingChange]
    ) -> None:
        """±FLAGS with UNCHANGEDSINCE: a message another client changed since the user saw it
        is looked at again, and left alone if it already has what the user wanted."""
        modseqs = [c.payload.get("modseq") for c in group if c.payload.get("modseq")]
        since = min(modseqs) if modseqs else None
        for _ in range(STORE_ROUNDS):
            if since is None:
                break
            modified = conditional_store(self.client, uids, adding, flags, since)
            if not modified:
                return
            current = self.client.fetch(sorted(modified), ["FLAGS", "MODSEQ"])
            wanted = {flag.lower().encode() for flag in flags}
            uids = [
                uid
                for uid, data in current.items()
                if uid in modified
                and (wanted <= {f.lower() for f in data.get(b"FLAGS", ())}) != adding
            ]
            if not uids:
                return
            since = max(data[b"MODSEQ"][0] for uid, data in current.items() if uid in uids)
        if uids:
            store = self.client.add_flags if adding else self.client.remove_flags
            store(uids, flags, silent=True)

    def _move(self, group: list[PendingChange]) -> None:
        first = group[0]
        target_name = self._on_server(first.payload["target"], first)
        by_uid = self._live_messages(group)
        mapping: dict[int, int] = {}
        target_uidvalidity = None
        if by_uid:
            self._select(first.folder)
            uids = sorted(by_uid)
            self.client._imap.untagged_responses.pop("COPYUID", None)
            try:
                self._move_uids(uids, target_name)
            except imaplib.IMAP4.error as exc:
                if "TRYCREATE" not in str(exc) or not _special_target(first):
                    raise
                # The Archive/Trash/Junk folder went away: make it again, as other clients do.
                self.client.create_folder(target_name)
                self._move_uids(uids, target_name)
            for line in self.client._imap.untagged_responses.pop("COPYUID", []):
                uidvalidity, pairs = parse_copyuid(line)
                target_uidvalidity = uidvalidity
                mapping.update(pairs)
        self._settle_move(first, group, by_uid, mapping, target_uidvalidity)

    def _move_uids(self, uids: list[int], target: str) -> None:
        if self.has_move:
            self.client.move(uids, target)
            return
        self.client.copy(uids, target)
        self.client.delete_messages(uids, silent=True)
        if self.uidplus:
            self.client.uid_expunge(uids)
        else:
            self.client.expunge()  # RFC 3501 has no narrower way; other clients do the same

    def _settle_move(self, first, group, by_uid, mapping, target_uidvalidity) -> None:
        """Point the rows at their new home when COPYUID says where that is; otherwise let the
        target's sync bring them in (their conversation follows through the tombstone)."""
        # By id: the target may have been renamed since the click.
        target = (
            Folder.objects.filter(mailbox=self.mailbox, pk=first.payload.get("target_id")).first()
            or Folder.objects.filter(mailbox=self.mailbox, name=first.payload["target"]).first()
        )
        source = first.folder
        with transaction.atomic():
            repoint, bury_ids = [], []
            taken = set()
            if target is not None and mapping and target.uidvalidity == target_uidvalidity:
                taken = set(
                    target.messages.filter(uid__in=list(mapping.values())).values_list(
                        "uid", flat=True
                    )
                )
            for uid, change in by_uid.items():
                new_uid = mapping.get(uid)
                if (
                    target is not None
                    and new_uid is not None
                    and target.uidvalidity == target_uidvalidity
                    and new_uid not in taken
                ):
                    repoint.append((change.message_id, new_uid))
                else:
                    bury_ids.append(change.message_id)
            for message_id, new_uid in repoint:
                Message.objects.filter(pk=message_id).update(
                    folder=target, uid=new_uid, pending_removal=False
                )
            if bury_ids:
                doomed = Message.objects.filter(pk__in=bury_ids)
                bury(doomed)
                doomed.delete()
            PendingChange.objects.filter(pk__in=[c.pk for c in group]).delete()
            if source is not None:
                refresh_counts(source)
            if target is not None:
                refresh_counts(target)
                if repoint:
                    live.record(
                        self.mailbox.pk,
                        "messages_added",
                        folder_id=target.pk,
                        message_ids=[pk for pk, _ in repoint],
                    )
        if target is not None and (bury_ids or target.uidvalidity is None):
            _queue_sync(self.mailbox.pk, [target.name])

    def _expunge(self, group: list[PendingChange]) -> None:
        first = group[0]
        by_uid = self._live_messages(group)
        if by_uid:
            self._select(first.folder)
            uids = sorted(by_uid)
            self.client.delete_messages(uids, silent=True)
            if self.uidplus:
                self.client.uid_expunge(uids)
            else:
                self.client.expunge()
        with transaction.atomic():
            doomed = Message.objects.filter(pk__in=[c.message_id for c in by_uid.values()])
            doomed.delete()
            PendingChange.objects.filter(pk__in=[c.pk for c in group]).delete()
            if first.folder is not None:
                refresh_counts(first.folder)

    def _append(self, group: list[PendingChange]) -> None:
        """File a sent message in Sent, or a draft's latest version in Drafts (replacing the
        one before). Built again from the outbox row: same Message-ID, same Date."""
        from webmail.compose import build
        from webmail.models import OutgoingMessage
        from webmail.outbox import _part_reader

        folders = set()
        for change in group:
            outgoing = (
                OutgoingMessage.objects.select_related("mailbox", "source", "author")
                .filter(pk=change.payload.get("outgoing"))
                .first()
            )
            is_draft = bool(change.payload.get("draft"))
            if outgoing is None or (is_draft and outgoing.state != OutgoingMessage.State.DRAFT):
                change.delete()  # discarded, or sent meanwhile: nothing to file
                continue
            folder = change.folder
            if folder is None:
                change.delete()
                continue
            raw = build(outgoing, part_data=_part_reader(outgoing)).as_bytes()
            flags = change.payload.get("flags", [])
            when = outgoing.sent_at or outgoing.updated_at
            response = self.client.append(folder.name, raw, flags=flags, msg_time=when)
            if is_draft:
                new_uid = _appended_uid(response)
                old_uid, old_folder = outgoing.draft_uid, outgoing.draft_folder
                OutgoingMessage.objects.filter(pk=outgoing.pk).update(
                    draft_uid=new_uid, draft_folder=folder.name
                )
                if old_uid and old_folder:
                    self._expunge_uids(old_folder, [old_uid])
            change.delete()
            folders.add(folder.name)
        if folders:
            _queue_sync(self.mailbox.pk, sorted(folders))

    def _expunge_draft(self, group: list[PendingChange]) -> None:
        for change in group:
            self._expunge_uids(change.payload["folder_name"], [change.payload["uid"]])
            change.delete()

    def _expunge_uids(self, folder_name: str, uids: list[int]) -> None:
        """Remove messages Kotak itself filed (an older draft): UIDs known, no rows needed."""
        self.selected = None
        try:
            self.client.select_folder(folder_name)
        except imaplib.IMAP4.error:
            return  # the folder is gone, and the draft with it
        self.selected = folder_name
        self.client._imap.untagged_responses.pop("VANISHED", None)
        self.client.delete_messages(uids, silent=True)
        if self.uidplus:
            self.client.uid_expunge(uids)
        else:
            self.client.expunge()

    def _create_folder(self, group: list[PendingChange]) -> None:
        for change in group:
            name = self._on_server(change.payload["name"], change)
            role = change.payload.get("special_use", "")
            try:
                if role and "CREATE-SPECIAL-USE" in self.mailbox.capabilities:
                    typ, data = self.client._imap._simple_command(
                        "CREATE", self.client._normalise_folder(name), f"(USE (\\{role.title()}))"
                    )
                    if typ != "OK":
                        raise imaplib.IMAP4.error(_decode(data))
                else:
                    self.client.create_folder(name)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                if "ALREADYEXISTS" not in str(exc).upper():
                    raise
            with suppress(imaplib.IMAP4.error):  # a courtesy to other clients, not essential
                self.client.subscribe_folder(name)
            change.delete()
        _queue_sync(self.mailbox.pk, None)

    def _rename_folder(self, group: list[PendingChange]) -> None:
        for change in group:
            delimiter = change.payload.get("delimiter", "")
            old = self._on_server(change.payload["old"], change)
            new = self._on_server(change.payload["new"], change)
            self._leave(old, delimiter)
            try:
                self.client.rename_folder(old, new)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error:
                # A worker that died after its RENAME left this change behind: done already.
                if self.client.folder_exists(old) or not self.client.folder_exists(new):
                    raise
            self._carry_subscriptions(old, new, delimiter)
            change.delete()
        _queue_sync(self.mailbox.pk, None)

    def _carry_subscriptions(self, old: str, new: str, delimiter: str) -> None:
        """RENAME leaves subscriptions under the old names (Dovecot does; RFC 3501 §6.3.5 is
        silent): move them along, as other clients do. A courtesy, so errors pass."""
        with suppress(imaplib.IMAP4.error):
            listed = self.client.list_sub_folders("", old)
            if delimiter:
                listed += self.client.list_sub_folders("", f"{old}{delimiter}*")
            for _flags, _delimiter, raw in listed:
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                target = renamed(name, old, new, delimiter)
                if target is not None:
                    self.client.subscribe_folder(target)
                    self.client.unsubscribe_folder(name)

    def _delete_folder(self, group: list[PendingChange]) -> None:
        for change in group:
            delimiter = change.payload.get("delimiter", "")
            done = change.payload.setdefault("deleted", [])  # what a refusal must not put back
            # Deepest first: DELETE leaves subfolders in place (RFC 3501 §6.3.4), and Dovecot
            # then keeps the parent as well, empty.
            entries = sorted(
                change.payload["folders"],
                key=lambda e: -e["name"].count(delimiter) if delimiter else 0,
            )
            for entry in entries:
                if entry["name"] in done:
                    continue
                name = self._on_server(entry["name"], change)
                self._leave(name, delimiter)
                try:
                    self.client.delete_folder(name)
                except imaplib.IMAP4.abort:
                    raise
                except imaplib.IMAP4.error as exc:
                    # Gone already: deleted by another client, or by a worker that died after.
                    if "NONEXISTENT" not in str(exc).upper() and self.client.folder_exists(name):
                        raise
                done.append(entry["name"])
                with suppress(imaplib.IMAP4.error):  # other programs would list it otherwise
                    self.client.unsubscribe_folder(name)
            change.delete()

    def _subscription(self, group: list[PendingChange]) -> None:
        for change in group:
            name = self._on_server(change.payload["name"], change)
            if change.action == Action.SUBSCRIBE:
                self.client.subscribe_folder(name)
            else:
                self.client.unsubscribe_folder(name)
            change.delete()

    def _leave(self, name: str, delimiter: str) -> None:
        """Unselect a folder about to be renamed or deleted: Dovecot ends a session whose
        selected folder goes away under it."""
        if self.selected is None or not is_within(self.selected, name, delimiter):
            return
        if self.unselect:
            self.client.unselect_folder()
        else:
            self.client.select_folder("INBOX", readonly=True)  # EXAMINE: leaves, expunges nothing
        self.selected = None

    def _on_server(self, name: str, change: PendingChange | None = None) -> str:
        """What a local folder name is called on the server right now.

        Local names carry users' renames at once; the server gets them in click order. A name
        read from a Folder row carries every rename so far; a name in a change's payload those
        made before it. Undo the ones the server has not had yet, newest first.
        """
        renames = PendingChange.objects.filter(
            mailbox=self.mailbox, action=Action.RENAME_FOLDER, state=PendingChange.State.PENDING
        )
        if change is not None:
            renames = renames.filter(pk__lt=change.pk)
        for payload in renames.order_by("-pk").values_list("payload", flat=True):
            name = renamed(name, payload["new"], payload["old"], payload["delimiter"]) or name
        return name

    # -- refusals -------------------------------------------------------------------------

    def _refused(self, group: list[PendingChange], reason: str) -> None:
        """Put the user's view back as the server has it, and keep the change to say why."""
        first = group[0]
        with transaction.atomic():
            message_ids = [c.message_id for c in group if c.message_id]
            if first.action in (Action.MOVE, Action.EXPUNGE):
                Message.objects.filter(pk__in=message_ids).update(pending_removal=False)
            elif first.action in (Action.ADD_FLAGS, Action.REMOVE_FLAGS):
                for flag in first.payload.get("flags", []):
                    if flag in FLAG_COLUMNS:
                        Message.objects.filter(pk__in=message_ids).update(
                            **{FLAG_COLUMNS[flag]: first.action == Action.REMOVE_FLAGS}
                        )
            elif first.action == Action.CREATE_FOLDER:
                names = [c.payload.get("name") for c in group]
                Folder.objects.filter(
                    mailbox=self.mailbox, name__in=names, uidvalidity__isnull=True
                ).filter(messages__isnull=True).delete()
                live.record(self.mailbox.pk, "folders")
            elif first.action in folder_actions.FOLDER_ACTIONS:
                for change in group:
                    folder_actions.revert(change)
                if first.action in (Action.RENAME_FOLDER, Action.DELETE_FOLDER):
                    # Names put back, folders back without their messages: let LIST and
                    # the folders' sync confirm what is there.
                    _queue_sync(self.mailbox.pk, None)
            PendingChange.objects.filter(pk__in=[c.pk for c in group]).update(
                state=PendingChange.State.FAILED, last_error=reason[:500], claimed_by=""
            )
            if first.folder is not None:
                refresh_counts(first.folder)
            live.record(
                self.mailbox.pk,
                "action_failed",
                folder_id=first.folder_id,
                message_ids=message_ids,
                data={"action": first.action, "reason": reason[:300]},
            )
        log.info("mailbox %s refused %s: %s", self.mailbox.pk, first.action, reason)
        self.result.failed += len(group)


def _appended_uid(response) -> int | None:
    """The UID from APPENDUID (RFC 4315) in an APPEND's answer, if the server gave one."""
    text = response.decode("ascii", "replace") if isinstance(response, bytes) else str(response)
    match = re.search(r"\[APPENDUID \d+ (\d+)\]", text)
    return int(match.group(1)) if match else None


def _special_target(change: PendingChange) -> bool:
    target = Folder.objects.filter(pk=change.payload.get("target_id")).first()
    return target is not None and target.special_use in ("archive", "trash", "junk")


def _server_words(exc: Exception) -> str:
    """The server's own explanation, without imaplib's "xyz failed:" prefix."""
    text = str(exc)
    if " failed: " in text:
        text = text.split(" failed: ", 1)[1]
    return text.strip() or "The server refused the change."


def _decode(data) -> str:
    parts = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in data or []]
    return " ".join(parts)


def _queue_sync(mailbox_id: int, folders: list[str] | None) -> None:
    from webmail.sync.tasks import enqueue_sync

    transaction.on_commit(lambda: enqueue_sync(mailbox_id, folders))


def refused_changes(mailbox: Mailbox) -> Iterator[PendingChange]:
    """Changes the server has refused, newest first, for the mailbox's problem strip."""
    return mailbox.pending_changes.filter(state=PendingChange.State.FAILED).order_by("-pk")
