"""Mirroring the server's folder list into Folder rows."""

from __future__ import annotations

from collections.abc import Iterable

import imapclient
from django.db import transaction

from webmail import live
from webmail.imap.folders import (
    FolderInfo,
    is_within,
    list_folders,
    renamed,
    shown_name,
)
from webmail.models import Folder, Mailbox, Message, PendingChange
from webmail.sync.messages import bury

# INBOX first, then the roles a person looks for, then the rest by name.
SYNC_ORDER = ["inbox", "sent", "drafts", "archive", "", "junk", "trash", "flagged", "all"]


def sync_folders(mailbox: Mailbox, client: imapclient.IMAPClient) -> list[Folder]:
    """Create, update and delete Folder rows to match LIST; return folders in sync order."""
    listed, prefix = list_folders(client)
    with transaction.atomic():
        if mailbox.folder_prefix != prefix:
            mailbox.folder_prefix = prefix
            Mailbox.objects.filter(pk=mailbox.pk).update(folder_prefix=prefix)
        infos, unconfirmed = _as_users_left_it(mailbox, listed, prefix)
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
        gone = [folder.pk for name, folder in existing.items() if name not in seen]
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
    # Folders whose name the server does not know yet are synced once it does.
    return in_sync_order(folder for name, folder in by_name.items() if name not in unconfirmed)


def in_sync_order(folders: Iterable[Folder]) -> list[Folder]:
    return sorted(folders, key=lambda f: (_order(f.special_use), f.display_name.lower()))


def _as_users_left_it(
    mailbox: Mailbox, infos: list[FolderInfo], prefix: str
) -> tuple[list[FolderInfo], set[str]]:
    """The server's folder list with the users' folder changes it has not had yet on top, in
    click order; and the names in it the server does not have yet.

    Without this, a sync between a click and its write-back would take a just-renamed folder's
    rows for gone (and download them again under the old name), bring back a deleted folder,
    drop a new one or undo a subscription.
    """
    Action = PendingChange.Action
    changes = mailbox.pending_changes.filter(
        state=PendingChange.State.PENDING,
        action__in=[
            Action.CREATE_FOLDER,
            Action.RENAME_FOLDER,
            Action.DELETE_FOLDER,
            Action.SUBSCRIBE,
            Action.UNSUBSCRIBE,
        ],
    ).order_by("pk")
    unconfirmed: set[str] = set()
    default_delimiter = next((info.delimiter for info in infos if info.delimiter), "")
    for change in changes:
        payload = change.payload
        if change.action == Action.CREATE_FOLDER:
            name = payload.get("name", "")
            if name and all(info.name != name for info in infos):
                infos.append(
                    _info(
                        name,
                        default_delimiter,
                        prefix,
                        special_use=payload.get("special_use", ""),
                    )
                )
                unconfirmed.add(name)
        elif change.action == Action.RENAME_FOLDER:
            delimiter = payload.get("delimiter", "")
            old, new = payload["old"], payload["new"]
            # Another client took the new name meanwhile: the RENAME will be refused and put
            # back; until then the user's folder keeps the name.
            infos = [
                info
                for info in infos
                if not is_within(info.name, new, delimiter) or is_within(info.name, old, delimiter)
            ]
            for index, info in enumerate(infos):
                name = renamed(info.name, old, new, delimiter)
                if name is not None:
                    unconfirmed.discard(info.name)
                    unconfirmed.add(name)
                    infos[index] = _info(
                        name,
                        info.delimiter,
                        prefix,
                        attributes=info.attributes,
                        special_use=info.special_use,
                        is_selectable=info.is_selectable,
                        is_subscribed=info.is_subscribed,
                    )
        elif change.action == Action.DELETE_FOLDER:
            delimiter = payload.get("delimiter", "")
            infos = [info for info in infos if not is_within(info.name, payload["name"], delimiter)]
        else:
            for info in infos:
                if info.name == payload.get("name"):
                    info.is_subscribed = change.action == Action.SUBSCRIBE
    return infos, unconfirmed


def _info(name: str, delimiter: str, prefix: str, **values) -> FolderInfo:
    display, label = shown_name(name, delimiter, prefix)
    return FolderInfo(
        name=name,
        display_name=display,
        label=label,
        delimiter=delimiter,
        prefix=prefix,
        attributes=values.get("attributes", []),
        special_use=values.get("special_use", ""),
        is_selectable=values.get("is_selectable", True),
        is_subscribed=values.get("is_subscribed", True),
    )


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
