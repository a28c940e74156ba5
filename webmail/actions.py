"""What a user does to mail: the new local state and a durable pending change, in one transaction.

The screen shows the new state at once; `webmail.sync.writeback` applies the pending changes to
the IMAP server after commit (DESIGN §4). Nothing here talks to the server, so a click never
waits for it and never depends on the broker being up: beat's sweeper finds what was not queued.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webmail import live
from webmail.imap.folders import parent_name, shown_name
from webmail.models import Activity, Folder, Mailbox, Message, PendingChange, Role, SpecialUse

log = logging.getLogger(__name__)

Action = PendingChange.Action

# The flags a user sets from Kotak, and the column that mirrors each.
FLAG_COLUMNS = {"\\Seen": "is_seen", "\\Flagged": "is_flagged", "\\Answered": "is_answered"}

# Where archive, delete and spam put mail when the server has no such folder yet.
DEFAULT_FOLDER_NAMES = {
    SpecialUse.ARCHIVE: "Archive",
    SpecialUse.TRASH: "Trash",
    SpecialUse.JUNK: "Junk",
}

# Roles that may change mail; viewers read only.
ACTING_ROLES = (Role.MANAGER, Role.AGENT)


class ActionRefused(Exception):
    """The action makes no sense here (a folder that is not selectable, say); says why."""


@dataclass
class Outcome:
    """What a click did, for the toast that confirms it."""

    description: str
    count: int
    batch: str = ""
    undo_until: datetime | None = None


def can_act(user, mailbox: Mailbox) -> bool:
    return mailbox.role_of(user) in ACTING_ROLES


def set_flag(user, messages: Iterable[Message], flag: str, value: bool) -> Outcome:
    """Mark read/unread, flag/unflag (answered, too): one STORE per folder, later."""
    column = FLAG_COLUMNS[flag]
    messages = [m for m in messages if getattr(m, column) != value]
    if not messages:
        return Outcome(_flag_words(flag, value, 0), 0)
    batch = uuid.uuid4().hex
    with transaction.atomic():
        pks = [m.pk for m in messages]
        Message.objects.filter(pk__in=pks).update(**{column: value})
        PendingChange.objects.bulk_create(
            PendingChange(
                mailbox_id=m.mailbox_id,
                folder_id=m.folder_id,
                message=m,
                action=Action.ADD_FLAGS if value else Action.REMOVE_FLAGS,
                payload={
                    "flags": [flag],
                    # What the user saw: a change made since then by another client is
                    # detected with UNCHANGEDSINCE (RFC 7162 §3.1.3).
                    "modseq": m.modseq or m.folder.highestmodseq,
                },
                batch=batch,
                created_by=user,
            )
            for m in messages
        )
        for folder_id, ids in _by_folder(messages).items():
            if column == "is_seen":
                refresh_counts(Folder.objects.get(pk=folder_id))
            live.record(
                messages[0].mailbox_id, "flags_changed", folder_id=folder_id, message_ids=ids
            )
        _queue_on_commit(messages[0].mailbox_id)
    for m in messages:
        setattr(m, column, value)
    return Outcome(_flag_words(flag, value, len(messages)), len(messages), batch)


def move(user, messages: Iterable[Message], target: Folder, verb: str = "Moved") -> Outcome:
    """Move to another folder of the same mailbox; undoable for a few seconds."""
    messages = [m for m in messages if m.folder_id != target.pk]
    if not target.is_selectable:
        raise ActionRefused(f"“{target.label}” cannot hold messages.")
    if not messages:
        return Outcome(f"Nothing to move: already in {target.label}.", 0)
    if any(m.mailbox_id != target.mailbox_id for m in messages):
        raise ActionRefused("Messages can only be moved within their mailbox.")
    return _remove(
        user,
        messages,
        Action.MOVE,
        {"target": target.name, "target_id": target.pk},
        f"{verb} {_count(len(messages))} to {target.label}",
    )


def archive(user, mailbox: Mailbox, messages: Iterable[Message]) -> Outcome:
    return move(user, messages, special_folder(user, mailbox, SpecialUse.ARCHIVE), "Archived")


def mark_spam(user, mailbox: Mailbox, messages: Iterable[Message]) -> Outcome:
    return move(user, messages, special_folder(user, mailbox, SpecialUse.JUNK), "Marked as spam:")


def mark_not_spam(user, mailbox: Mailbox, messages: Iterable[Message]) -> Outcome:
    inbox = mailbox.folders.filter(special_use=SpecialUse.INBOX).first()
    if inbox is None:
        raise ActionRefused("This mailbox has no inbox to put the messages back in.")
    return move(user, messages, inbox, "Not spam:")


def delete(user, mailbox: Mailbox, messages: Iterable[Message]) -> Outcome:
    """Into Trash; from Trash (or where there can be no Trash), for good."""
    messages = list(messages)
    trash = special_folder(user, mailbox, SpecialUse.TRASH)
    in_trash = [m for m in messages if m.folder_id == trash.pk]
    elsewhere = [m for m in messages if m.folder_id != trash.pk]
    if in_trash and elsewhere:
        raise ActionRefused("Delete the messages in Trash separately: that deletion is final.")
    if in_trash:
        return expunge(user, in_trash)
    return move(user, elsewhere, trash, "Deleted")


def expunge(user, messages: Iterable[Message]) -> Outcome:
    """Delete for good (the caller has asked for confirmation); still undoable until applied."""
    messages = list(messages)
    if not messages:
        return Outcome("Nothing to delete.", 0)
    return _remove(
        user, messages, Action.EXPUNGE, {}, f"Deleted {_count(len(messages))} permanently"
    )


def undo(user, mailbox: Mailbox, batch: str) -> int:
    """Take back a click whose changes no worker has started on; returns how many were."""
    with transaction.atomic():
        changes = list(
            PendingChange.objects.select_for_update()
            .filter(mailbox=mailbox, batch=batch, state=PendingChange.State.PENDING)
            .filter(claimed_by="", attempts=0)
        )
        if not changes:
            return 0
        message_ids = [c.message_id for c in changes if c.message_id]
        messages = list(Message.objects.filter(pk__in=message_ids))
        for change in changes:
            if change.action in (Action.MOVE, Action.EXPUNGE):
                Message.objects.filter(pk=change.message_id).update(pending_removal=False)
            elif change.action in (Action.ADD_FLAGS, Action.REMOVE_FLAGS):
                column = FLAG_COLUMNS[change.payload["flags"][0]]
                Message.objects.filter(pk=change.message_id).update(
                    **{column: change.action == Action.REMOVE_FLAGS}
                )
        PendingChange.objects.filter(pk__in=[c.pk for c in changes]).delete()
        for folder_id, ids in _by_folder(messages).items():
            refresh_counts(Folder.objects.get(pk=folder_id))
            live.record(mailbox.pk, "messages_restored", folder_id=folder_id, message_ids=ids)
    return len(changes)


def special_folder(user, mailbox: Mailbox, role: str) -> Folder:
    """The mailbox's folder for a special use, created (here, then on the server) if missing."""
    folder = mailbox.folders.filter(special_use=role, is_selectable=True).first()
    if folder is not None:
        return folder
    base = DEFAULT_FOLDER_NAMES[role]
    name, delimiter = _new_top_level_name(mailbox, base)
    existing = mailbox.folders.filter(name=name).first()
    if existing is not None:
        # A folder of that name without the special-use attribute: use it, as other clients do.
        return existing
    prefix = mailbox.folder_prefix or ""
    display_name, label = shown_name(name, delimiter, prefix)
    with transaction.atomic():
        folder = Folder.objects.create(
            mailbox=mailbox,
            name=name,
            display_name=display_name,
            label=label,
            delimiter=delimiter,
            special_use=role,
            parent=parent_row(mailbox.pk, name, delimiter, prefix),
        )
        create_folder_change(user, mailbox, name, role)
    return folder


def parent_row(mailbox_id: int, name: str, delimiter: str, prefix: str) -> Folder | None:
    """The row of the folder that holds `name`, if it has one (see imap.folders.parent_name)."""
    parent = parent_name(name, delimiter, prefix)
    if parent is None:
        return None
    return Folder.objects.filter(mailbox_id=mailbox_id, name=parent).first()


def create_folder_change(user, mailbox: Mailbox, name: str, role: str = "") -> PendingChange:
    change = PendingChange.objects.create(
        mailbox=mailbox,
        action=Action.CREATE_FOLDER,
        payload={"name": name, "special_use": role},
        created_by=user,
    )
    live.record(mailbox.pk, "folders")
    _queue_on_commit(mailbox.pk)
    return change


def refresh_counts(folder: Folder) -> None:
    """The folder's displayed counts: what it holds that is not on its way out."""
    visible = folder.messages.filter(pending_removal=False)
    total, unread = visible.count(), visible.filter(is_seen=False).count()
    if (folder.total_count, folder.unread_count) != (total, unread):
        Folder.objects.filter(pk=folder.pk).update(total_count=total, unread_count=unread)
        folder.total_count, folder.unread_count = total, unread
        live.record(folder.mailbox_id, "folder_counts", folder_id=folder.pk)


def pending_flag_values(message_ids: Iterable[int]) -> dict[int, dict[str, bool]]:
    """Flag columns a user changed that the server has not confirmed yet, per message.

    The sync leaves these alone: the server's value is older than the user's click.
    """
    pending: dict[int, dict[str, bool]] = {}
    changes = PendingChange.objects.filter(
        message_id__in=list(message_ids),
        action__in=(Action.ADD_FLAGS, Action.REMOVE_FLAGS),
        state=PendingChange.State.PENDING,
    ).order_by("pk")
    for message_id, action, payload in changes.values_list("message_id", "action", "payload"):
        for flag in payload.get("flags", []):
            if flag in FLAG_COLUMNS:
                pending.setdefault(message_id, {})[FLAG_COLUMNS[flag]] = action == Action.ADD_FLAGS
    return pending


def pending_keywords(message_ids: Iterable[int]) -> dict[int, tuple[set[str], set[str]]]:
    """Keywords queued to be added and to be removed that the server has not confirmed yet,
    per message (the sibling of pending_flag_values for the keyword list)."""
    pending: dict[int, tuple[set[str], set[str]]] = {}
    changes = PendingChange.objects.filter(
        message_id__in=list(message_ids),
        action__in=(Action.ADD_FLAGS, Action.REMOVE_FLAGS),
        state=PendingChange.State.PENDING,
    ).order_by("pk")
    for message_id, action, payload in changes.values_list("message_id", "action", "payload"):
        for flag in payload.get("flags", []):
            if flag in FLAG_COLUMNS:
                continue
            add, remove = pending.setdefault(message_id, (set(), set()))
            # Later changes win: "add, then remove" leaves it removed.
            (add if action == Action.ADD_FLAGS else remove).add(flag)
            (remove if action == Action.ADD_FLAGS else add).discard(flag)
    return pending


# -- helpers ----------------------------------------------------------------------------------


def _remove(user, messages: list[Message], action: str, payload: dict, words: str) -> Outcome:
    """Hide messages at once and queue their move or deletion after the undo window."""
    batch = uuid.uuid4().hex
    delay = settings.UNDO_SECONDS
    due = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(pending_removal=True)
        PendingChange.objects.bulk_create(
            PendingChange(
                mailbox_id=m.mailbox_id,
                folder_id=m.folder_id,
                message=m,
                action=action,
                payload=payload,
                batch=batch,
                next_attempt_at=due,
                created_by=user,
            )
            for m in messages
        )
        for folder_id, ids in _by_folder(messages).items():
            refresh_counts(Folder.objects.get(pk=folder_id))
            live.record(
                messages[0].mailbox_id, "messages_removed", folder_id=folder_id, message_ids=ids
            )
        _audit(user, messages, action, payload)
        _queue_on_commit(messages[0].mailbox_id, countdown=delay + 0.5)
    return Outcome(words, len(messages), batch, due)


def _audit(user, messages: list[Message], action: str, payload: dict) -> None:
    """A line in each conversation's history: who moved or deleted which of its messages."""
    by_conversation: dict[int, list[Message]] = {}
    for m in messages:
        if m.conversation_id:
            by_conversation.setdefault(m.conversation_id, []).append(m)
    target = Folder.objects.filter(pk=payload.get("target_id")).first()
    verb = {
        SpecialUse.ARCHIVE: "archived",
        SpecialUse.TRASH: "deleted",
        SpecialUse.JUNK: "marked_spam",
    }.get(target.special_use if target else "", "moved")
    if action == Action.EXPUNGE:
        verb = "deleted_forever"
    Activity.objects.bulk_create(
        Activity(
            mailbox_id=group[0].mailbox_id,
            conversation_id=conversation_id,
            actor=user,
            verb=verb,
            data={
                "count": len(group),
                "subject": group[0].subject[:200],
                "from": group[0].folder.label,
                "to": target.label if target else "",
                "role": target.special_use if target else "",
            },
        )
        for conversation_id, group in by_conversation.items()
    )


def _queue_on_commit(mailbox_id: int, countdown: float = 0) -> None:
    def queue() -> None:
        from webmail.sync.tasks import enqueue_writeback

        enqueue_writeback(mailbox_id, countdown)

    transaction.on_commit(queue)


def _by_folder(messages: Iterable[Message]) -> dict[int, list[int]]:
    folders: dict[int, list[int]] = {}
    for m in messages:
        folders.setdefault(m.folder_id, []).append(m.pk)
    return folders


def _new_top_level_name(mailbox: Mailbox, base: str) -> tuple[str, str]:
    """Where a new top-level folder goes: beside the others, under "INBOX." on servers whose
    personal namespace lives there (Courier, Cyrus' default)."""
    inbox = mailbox.folders.filter(special_use=SpecialUse.INBOX).first()
    delimiter = (inbox.delimiter if inbox else "") or "/"
    if mailbox.folder_prefix is not None:  # as the last sync found it
        return f"{mailbox.folder_prefix}{base}", delimiter
    # Not synced since Kotak learnt namespaces: judge by the folders.
    others = list(
        mailbox.folders.exclude(special_use=SpecialUse.INBOX)
        .filter(parent__isnull=True)
        .values_list("name", flat=True)
    )
    children = mailbox.folders.filter(Q(name__startswith=f"INBOX{delimiter}"))
    if not others and children.exists():
        return f"INBOX{delimiter}{base}", delimiter
    return base, delimiter


def _count(n: int) -> str:
    return f"{n} message{'s' if n != 1 else ''}"


def _flag_words(flag: str, value: bool, n: int) -> str:
    words = {
        ("\\Seen", True): "Marked {} as read",
        ("\\Seen", False): "Marked {} as unread",
        ("\\Flagged", True): "Flagged {}",
        ("\\Flagged", False): "Unflagged {}",
        ("\\Answered", True): "Marked {} as answered",
        ("\\Answered", False): "Marked {} as not answered",
    }[(flag, value)]
    return words.format(_count(n))
