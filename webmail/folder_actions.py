"""Managing a mailbox's folders: create, rename, move, delete and (un)subscribe.

As with `webmail.actions`, the screen changes at once — a renamed folder shows its new name and
its subfolders follow, a deleted one disappears — and a PendingChange records the intent in the
same transaction; `webmail.sync.writeback` applies it after commit and, when the server refuses,
calls `revert()` so the folder gets its old name back or reappears (DESIGN §4).

Names on the wire are full server names in modified UTF-7 ("Caf&AOk-/Notes"); what a person
types is the name of one level, encoded here.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from webmail import live
from webmail.actions import ActionRefused, _new_top_level_name, create_folder_change, parent_row
from webmail.imap.folders import encode_name, is_within, parent_name, renamed, shown_name
from webmail.models import Folder, Mailbox, Message, PendingChange, Role, SpecialUse
from webmail.sync.messages import bury

Action = PendingChange.Action

# Renaming, moving and deleting change every member's folders, in every mail program.
MANAGING_ROLES = (Role.MANAGER,)
# Making a folder, or choosing what other mail programs list, is everyday work.
ORGANISING_ROLES = (Role.MANAGER, Role.AGENT)

FOLDER_ACTIONS = (
    Action.CREATE_FOLDER,
    Action.RENAME_FOLDER,
    Action.DELETE_FOLDER,
    Action.SUBSCRIBE,
    Action.UNSUBSCRIBE,
)

MAX_NAME_LENGTH = 200
MAX_FULL_NAME = Folder._meta.get_field("name").max_length
# Characters IMAP reserves as LIST wildcards (RFC 3501 §6.3.8); names with them list badly.
WILDCARDS = "*%"


class FolderRefused(ActionRefused):
    """A folder change that cannot be made; `field` names the form field it is about."""

    def __init__(self, message: str, field: str | None = "name"):
        super().__init__(message)
        self.field = field


@dataclass
class Deletion:
    """What deleting a folder takes with it, for the confirmation."""

    folder: Folder
    subfolders: int
    messages: int


def can_organise_folders(user, mailbox: Mailbox) -> bool:
    """Create folders and (un)subscribe them."""
    return mailbox.role_of(user) in ORGANISING_ROLES


def can_manage_folders(user, mailbox: Mailbox) -> bool:
    """Rename, move and delete folders."""
    return mailbox.role_of(user) in MANAGING_ROLES


def create(user, mailbox: Mailbox, parent: Folder | None, name: str) -> Folder:
    """A new folder (under parent, or at the top), shown at once, created on the server later."""
    if not can_organise_folders(user, mailbox):
        raise PermissionDenied("Viewers cannot create folders.")
    if parent is not None:
        if parent.mailbox_id != mailbox.pk:
            raise FolderRefused("Choose a folder of this mailbox.", "parent")
        _check_can_hold_subfolders(parent)
    delimiter = parent.delimiter if parent is not None else _delimiter(mailbox)
    leaf = encode_name(_clean_name(name, delimiter))
    if parent is not None:
        full_name = f"{parent.name}{delimiter}{leaf}"
    else:
        full_name, delimiter = _new_top_level_name(mailbox, leaf)
    _check_free(mailbox, [full_name])
    prefix = mailbox.folder_prefix or ""
    display_name, label = shown_name(full_name, delimiter, prefix)
    try:
        with transaction.atomic():
            folder = Folder.objects.create(
                mailbox=mailbox,
                name=full_name,
                display_name=display_name,
                label=label,
                delimiter=delimiter,
                parent=parent_row(mailbox.pk, full_name, delimiter, prefix),
                is_subscribed=True,  # the write-back subscribes it, as other clients do
            )
            change = create_folder_change(user, mailbox, full_name)
            change.folder = folder
            change.save(update_fields=["folder"])
    except IntegrityError:
        raise _someone_else() from None
    return folder


def rename(user, folder: Folder, name: str) -> str:
    """Give the folder a new name where it is; its subfolders follow."""
    _check_may_manage(user, folder, "renamed")
    leaf = encode_name(_clean_name(name, folder.delimiter))
    holder = parent_name(folder.name, folder.delimiter)
    new_name = f"{holder}{folder.delimiter}{leaf}" if holder else leaf
    if new_name == folder.name:
        raise FolderRefused(f"The folder is already called “{folder.label}”.")
    old_label = folder.label
    _rename(user, folder, new_name)
    return f"Renamed “{old_label}” to “{folder.label}”."


def move(user, folder: Folder, parent: Folder | None) -> str:
    """Put the folder (and its subfolders) under another parent, or at the top."""
    _check_may_manage(user, folder, "moved")
    delimiter = folder.delimiter
    leaf = folder.name.rsplit(delimiter, 1)[-1] if delimiter else folder.name
    if parent is None:
        new_name, _ = _new_top_level_name(folder.mailbox, leaf)
        where = "the top level"
    else:
        if parent.mailbox_id != folder.mailbox_id:
            raise FolderRefused("Choose a folder of this mailbox.", "parent")
        if is_within(parent.name, folder.name, delimiter):
            raise FolderRefused(
                "A folder cannot be moved into itself or one of its own subfolders.", "parent"
            )
        _check_can_hold_subfolders(parent)
        new_name = f"{parent.name}{parent.delimiter}{leaf}"
        where = f"“{parent.display_name}”"
    if new_name == folder.name:
        raise FolderRefused(f"“{folder.label}” is already there.", "parent")
    _rename(user, folder, new_name)
    return f"Moved “{folder.label}” to {where}."


def deletion(folder: Folder) -> Deletion:
    """How many subfolders and messages deleting the folder takes with it."""
    subtree = _subtree(folder)
    return Deletion(
        folder=folder,
        subfolders=len(subtree) - 1,
        messages=sum(f.total_count for f in subtree),
    )


def delete(user, folder: Folder) -> str:
    """Delete the folder with its subfolders and their messages, for everyone (the caller has
    asked for confirmation). The rows go now; the server follows after commit."""
    _check_may_manage(user, folder, "deleted")
    subtree = _subtree(folder)
    ids = [f.pk for f in subtree]
    if Message.objects.filter(folder_id__in=ids, pending_removal=True).exists():
        # Deleting now would take along messages the user is moving out to keep.
        raise FolderRefused(
            f"Messages are still on their way out of “{folder.label}”. Try again in a few seconds.",
            None,
        )
    summary = deletion(folder)
    snapshot = [
        {
            "name": f.name,
            "display_name": f.display_name,
            "label": f.label,
            "special_use": f.special_use,
            "attributes": f.attributes,
            "is_selectable": f.is_selectable,
            "is_subscribed": f.is_subscribed,
            "total_count": f.total_count,
            "unread_count": f.unread_count,
        }
        for f in subtree
    ]
    mailbox = folder.mailbox
    with transaction.atomic():
        messages = Message.objects.filter(folder_id__in=ids)
        # Their conversations survive if the same messages turn up again (a refusal, a copy).
        bury(messages)
        Folder.objects.filter(pk__in=ids).delete()
        PendingChange.objects.create(
            mailbox=mailbox,
            action=Action.DELETE_FOLDER,
            payload={"name": folder.name, "delimiter": folder.delimiter, "folders": snapshot},
            created_by=user,
        )
        live.record(mailbox.pk, "folders")
        _queue_writeback(mailbox.pk)
    words = f"Deleted “{folder.label}”"
    if summary.subfolders:
        words += f" and {_plural(summary.subfolders, 'subfolder')}"
    return f"{words}."


def subscribe(user, folder: Folder, subscribed: bool) -> str:
    """Whether other mail programs list the folder (IMAP subscriptions, RFC 3501 §6.3.6)."""
    if not can_organise_folders(user, folder.mailbox):
        raise PermissionDenied("Viewers cannot change subscriptions.")
    verb = "Subscribed to" if subscribed else "Unsubscribed from"
    if folder.is_subscribed == subscribed:
        return f"Already {verb.lower()} “{folder.label}”."
    if not subscribed and folder.special_use == SpecialUse.INBOX:
        raise FolderRefused("The inbox is always subscribed.", None)
    with transaction.atomic():
        Folder.objects.filter(pk=folder.pk).update(is_subscribed=subscribed)
        PendingChange.objects.create(
            mailbox=folder.mailbox,
            folder=folder,
            action=Action.SUBSCRIBE if subscribed else Action.UNSUBSCRIBE,
            payload={"name": folder.name},
            created_by=user,
        )
        live.record(folder.mailbox_id, "folders")
        _queue_writeback(folder.mailbox_id)
    folder.is_subscribed = subscribed
    return f"{verb} “{folder.label}”."


def revert(change: PendingChange) -> None:
    """Put back what users saw before a folder change the server refused (in the caller's
    transaction): the old name, the deleted folders, the subscription."""
    payload = change.payload
    mailbox_id = change.mailbox_id
    if change.action == Action.RENAME_FOLDER:
        try:
            with transaction.atomic():
                _rename_rows(mailbox_id, payload["new"], payload["old"], payload["delimiter"])
        except IntegrityError:
            pass  # the old name was taken again meanwhile: the sync that follows sorts it out
    elif change.action == Action.DELETE_FOLDER:
        _restore_rows(mailbox_id, payload)
    elif change.action in (Action.SUBSCRIBE, Action.UNSUBSCRIBE):
        Folder.objects.filter(pk=change.folder_id).update(
            is_subscribed=change.action == Action.UNSUBSCRIBE
        )
    live.record(mailbox_id, "folders")


def possible_parents(folder: Folder) -> list[Folder]:
    """Where the folder may be moved: not into itself, its subfolders, or a folder that
    cannot hold subfolders."""
    return [
        f
        for f in folder.mailbox.folders.all()
        if not is_within(f.name, folder.name, folder.delimiter) and can_hold_subfolders(f)
    ]


def can_hold_subfolders(folder: Folder) -> bool:
    """Not marked \\Noinferiors (RFC 3501 §7.2.2), and the server has a hierarchy at all."""
    attributes = {a.lower() for a in folder.attributes}
    return bool(folder.delimiter) and "\\noinferiors" not in attributes


def protection(folder: Folder, done: str = "changed") -> str:
    """Why the folder may not be renamed, moved or deleted ("" if it may)."""
    protected = next((f for f in _subtree(folder) if is_protected(f)), None)
    if protected is None:
        return ""
    what = protected.get_special_use_display() if protected.special_use else "Inbox"
    role = f"the {what.lower()} folder, which mail programs rely on"
    if protected.pk == folder.pk:
        return f"“{folder.label}” is {role}; it cannot be {done}."
    return f"“{folder.label}” holds “{protected.label}”, {role}; it cannot be {done}."


def is_protected(folder: Folder) -> bool:
    """INBOX and special-use folders (Sent, Drafts, Trash …): other programs rely on them."""
    return bool(folder.special_use) or folder.name.upper() == "INBOX"


# -- helpers ----------------------------------------------------------------------------------


def _check_may_manage(user, folder: Folder, done: str) -> None:
    if not can_manage_folders(user, folder.mailbox):
        raise PermissionDenied(f"Only managers may have folders {done}.")
    reason = protection(folder, done)
    if reason:
        raise FolderRefused(reason, None)


def _rename(user, folder: Folder, new_name: str) -> None:
    """Rename the folder's rows (subfolders too) and record the RENAME for the server."""
    mailbox_id = folder.mailbox_id
    delimiter = folder.delimiter
    old_name = folder.name
    new_names = [renamed(f.name, old_name, new_name, delimiter) for f in _subtree(folder)]
    _check_free(folder.mailbox, new_names)
    try:
        with transaction.atomic():
            _rename_rows(mailbox_id, old_name, new_name, delimiter)
            PendingChange.objects.create(
                mailbox_id=mailbox_id,
                folder=folder,
                action=Action.RENAME_FOLDER,
                payload={"old": old_name, "new": new_name, "delimiter": delimiter},
                created_by=user,
            )
            live.record(mailbox_id, "folders")
            _queue_writeback(mailbox_id)
    except IntegrityError:
        raise _someone_else() from None
    folder.refresh_from_db()


def _rename_rows(mailbox_id: int, old: str, new: str, delimiter: str) -> None:
    """The rows of old and its subfolders, under new (names, display names, parent)."""
    rows = [
        f
        for f in Folder.objects.filter(mailbox_id=mailbox_id, name__startswith=old)
        if is_within(f.name, old, delimiter)
    ]
    prefix = _prefix(mailbox_id)
    for folder in rows:
        folder.name = renamed(folder.name, old, new, delimiter)
        folder.display_name, folder.label = shown_name(folder.name, delimiter, prefix)
        if folder.name == new:
            folder.parent = parent_row(mailbox_id, new, delimiter, prefix)
        folder.save(update_fields=["name", "display_name", "label", "parent"])


def _restore_rows(mailbox_id: int, payload: dict) -> None:
    """Folders of a refused deletion, back as they were; their messages return with the sync."""
    delimiter = payload.get("delimiter", "")
    gone = set(payload.get("deleted", []))
    entries = sorted(
        (e for e in payload.get("folders", []) if e["name"] not in gone),
        key=lambda e: e["name"].count(delimiter) if delimiter else 0,
    )
    prefix = _prefix(mailbox_id)
    for entry in entries:  # parents first
        Folder.objects.get_or_create(
            mailbox_id=mailbox_id,
            name=entry["name"],
            defaults={
                **{k: v for k, v in entry.items() if k != "name"},
                "delimiter": delimiter,
                "parent": parent_row(mailbox_id, entry["name"], delimiter, prefix),
            },
        )


def _subtree(folder: Folder) -> list[Folder]:
    """The folder and its subfolders, parents before children."""
    rows = [
        f
        for f in Folder.objects.filter(mailbox_id=folder.mailbox_id, name__startswith=folder.name)
        if is_within(f.name, folder.name, folder.delimiter)
    ]
    return sorted(rows, key=lambda f: (f.name != folder.name, f.name))


def _clean_name(text: str, delimiter: str) -> str:
    """The name of one level as typed, or FolderRefused saying what is wrong with it."""
    name = unicodedata.normalize("NFC", text.strip())
    if not name:
        raise FolderRefused("Enter a name for the folder.")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        raise FolderRefused("Folder names cannot contain control characters or line breaks.")
    if delimiter and delimiter in name:
        raise FolderRefused(
            f"Folder names cannot contain “{delimiter}”: this server uses it to separate "
            "subfolders. To make a subfolder, choose its parent folder instead."
        )
    if any(ch in name for ch in WILDCARDS):
        raise FolderRefused("Folder names cannot contain “*” or “%”.")
    if len(name) > MAX_NAME_LENGTH:
        raise FolderRefused(f"Folder names can be at most {MAX_NAME_LENGTH} characters long.")
    return name


def _check_free(mailbox: Mailbox, names: list[str]) -> None:
    """No folder of these names yet, and the names fit (deep paths of long encoded names may
    not)."""
    if any(len(name) > MAX_FULL_NAME for name in names):
        raise FolderRefused("The folder’s full path would be too long; choose a shorter name.")
    taken = Folder.objects.filter(mailbox=mailbox, name__in=names).first()
    if taken is None and any(name.upper() == "INBOX" for name in names):
        taken = mailbox.folders.filter(special_use=SpecialUse.INBOX).first()
    if taken is not None:
        raise FolderRefused(f"There is already a folder called “{taken.display_name}”.")


def _check_can_hold_subfolders(parent: Folder) -> None:
    if not can_hold_subfolders(parent):
        raise FolderRefused(f"“{parent.display_name}” cannot hold subfolders.", "parent")


def _delimiter(mailbox: Mailbox) -> str:
    inbox = mailbox.folders.filter(special_use=SpecialUse.INBOX).first()
    return (inbox.delimiter if inbox else "") or "/"


def _prefix(mailbox_id: int) -> str:
    """The personal namespace's prefix the mailbox's folder names are shown without."""
    rows = Mailbox.objects.filter(pk=mailbox_id).values_list("folder_prefix", flat=True)
    return next(iter(rows), None) or ""


def _someone_else() -> FolderRefused:
    return FolderRefused("Someone else changed the folders just now; try again.", None)


def _queue_writeback(mailbox_id: int) -> None:
    def queue() -> None:
        from webmail.sync.tasks import enqueue_writeback

        enqueue_writeback(mailbox_id)

    transaction.on_commit(queue)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
