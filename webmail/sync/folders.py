"""Mirroring the server's folder list into Folder rows."""

from __future__ import annotations

import imapclient
from django.db import transaction

from webmail import live
from webmail.imap.folders import FolderInfo, list_folders
from webmail.models import Folder, Mailbox, Message, PendingChange
from webmail.sync.messages import bury

# INBOX first, then the roles a person looks for, then the rest by name.
SYNC_ORDER = ["inbox", "sent", "drafts", "archive", "", "junk", "trash", "flagged", "all"]


def sync_folders(mailbox: Mailbox, client: imapclient.IMAPClient) -> list[Folder]:
    """Create, update and delete Folder rows to match LIST; return folders in sync order."""
    infos = list_folders(client)
    with transaction.atomic():
        existing = {folder.name: folder for folder in mailbox.folders.all()}
        _follow_renames(client, infos, existing)
        seen = set()
        changed = False
        for info in infos:
            seen.add(info.name)
            folder = existing.get(info.name) or Folder(mailbox=mailbox, name=info.name)
            values = {
                "display_name": info.display_name,
                "label": info.label,
                "delimiter": info.delimiter,
                "attributes": info.attributes,
                "special_use": info.special_use,
                "is_selectable": info.is_selectable,
                "is_subscribed": info.is_subscribed,
            }
            if folder.pk is None or any(getattr(folder, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(folder, key, value)
                folder.save()
                existing[info.name] = folder
                changed = True
        # A folder a user just made is not on the server until its change is applied.
        creating = {
            change.payload.get("name")
            for change in mailbox.pending_changes.filter(
                action=PendingChange.Action.CREATE_FOLDER, state=PendingChange.State.PENDING
            )
        }
        gone = [
            folder.pk
            for name, folder in existing.items()
            if name not in seen and name not in creating
        ]
        if gone:
            bury(Message.objects.filter(folder__in=gone))
            Folder.objects.filter(pk__in=gone).delete()
            changed = True
        by_name = {name: folder for name, folder in existing.items() if name in seen}
        for info in infos:
            folder = by_name[info.name]
            parent = by_name.get(info.parent_name) if info.parent_name else None
            if folder.parent_id != (parent.pk if parent else None):
                folder.parent = parent
                folder.save(update_fields=["parent"])
                changed = True
        if changed:
            live.record(mailbox.pk, "folders")
    folders = list(by_name.values())
    folders.sort(key=lambda f: (_order(f.special_use), f.display_name.lower()))
    return folders


def _follow_renames(
    client: imapclient.IMAPClient, infos: list[FolderInfo], existing: dict[str, Folder]
) -> None:
    """A folder that vanished while one with the same UIDVALIDITY, UIDNEXT and message count
    appeared was renamed or moved (re-parented) by another client: keep its rows and cursor
    under the new name instead of deleting and downloading it all again."""
    names = {info.name for info in infos}
    gone = {
        (folder.uidvalidity, folder.uidnext, folder.total_count): folder
        for name, folder in existing.items()
        if name not in names and folder.uidvalidity
    }
    if not gone:
        return
    for info in infos:
        if info.name in existing or not info.is_selectable:
            continue
        try:
            status = client.folder_status(info.name, [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"])
        except imapclient.exceptions.IMAPClientError:
            continue
        key = (status.get(b"UIDVALIDITY"), status.get(b"UIDNEXT"), status.get(b"MESSAGES"))
        folder = gone.pop(key, None)
        if folder is not None:
            del existing[folder.name]
            folder.name = info.name
            existing[info.name] = folder


def _order(role: str) -> int:
    return SYNC_ORDER.index(role) if role in SYNC_ORDER else len(SYNC_ORDER)
