"""Mirroring the server's folder list into Folder rows."""

from __future__ import annotations

import imapclient
from django.db import transaction

from webmail.imap.folders import list_folders
from webmail.models import Change, Folder, Mailbox

# INBOX first, then the roles a person looks for, then the rest by name.
SYNC_ORDER = ["inbox", "sent", "drafts", "archive", "", "junk", "trash", "flagged", "all"]


def sync_folders(mailbox: Mailbox, client: imapclient.IMAPClient) -> list[Folder]:
    """Create, update and delete Folder rows to match LIST; return folders in sync order."""
    infos = list_folders(client)
    with transaction.atomic():
        existing = {folder.name: folder for folder in mailbox.folders.all()}
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
        gone = [folder.pk for name, folder in existing.items() if name not in seen]
        if gone:
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
            Change.objects.create(mailbox=mailbox, kind="folders")
    folders = list(by_name.values())
    folders.sort(key=lambda f: (_order(f.special_use), f.display_name.lower()))
    return folders


def _order(role: str) -> int:
    return SYNC_ORDER.index(role) if role in SYNC_ORDER else len(SYNC_ORDER)
