"""Syncing a whole mailbox: every folder, INBOX first, and the folder list."""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.utils import timezone
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from webmail.imap.extensions import FolderStatus, folder_statuses
from webmail.models import Folder, Mailbox
from webmail.sync.connection import mailbox_connection, mark_healthy
from webmail.sync.folders import in_sync_order, sync_folders
from webmail.sync.messages import FolderParked, FolderSyncResult, Progress, sync_folder

log = logging.getLogger(__name__)


@dataclass
class MailboxSyncResult:
    folders: dict[str, FolderSyncResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def added(self) -> int:
        return sum(result.added for result in self.folders.values())


def sync_mailbox(
    mailbox: Mailbox,
    progress: Progress | None = None,
    folder_names: list[str] | None = None,
    owner: str | None = None,
) -> MailboxSyncResult:
    """Sync each selectable folder (or only those named) and the folder list: the folders
    already known first, then LIST, then those it brought (new, renamed, or refused before).

    `owner` names the folder locks; a caller that runs again after a crash (a task's retry)
    passes the same one to take over locks it could not release."""
    result = MailboxSyncResult()
    Mailbox.objects.filter(pk=mailbox.pk, status=Mailbox.Status.NEW).update(
        status=Mailbox.Status.SYNCING
    )
    with mailbox_connection(mailbox) as client:
        # The folders already known are synced before LIST, and the first of them (INBOX)
        # before the STATUS of the others. On Dovecot with a mailbox list index, a session that
        # has sent LIST, or touched another folder, waits in proportion to INBOX's size to open
        # it or ask its STATUS (~0.6 s for 100,000 messages, every time; bench-sync prints it
        # as "with LIST first"), where as the session's first folder both take ~1 ms. A folder
        # the server no longer has under that name answers STATUS with NO and waits for LIST
        # to tell what became of it.
        known = _wanted(in_sync_order(mailbox.folders.all()), folder_names)
        _sync_each(result, client, known[:1], progress, owner, answered_only=True)
        _sync_each(result, client, known[1:], progress, owner, answered_only=True)
        listed = _wanted(sync_folders(mailbox, client), folder_names)
        done = result.folders.keys() | result.errors.keys()
        rest = [folder for folder in listed if folder.name not in done]
        _sync_each(result, client, rest, progress, owner)
    mark_healthy(mailbox)
    return result


def _wanted(folders: Iterable[Folder], names: list[str] | None) -> list[Folder]:
    """The selectable folders, or those of them named (by IMAP or display name)."""
    return [
        folder
        for folder in folders
        if folder.is_selectable
        and (not names or folder.name in names or folder.display_name in names)
    ]


def _sync_each(
    result: MailboxSyncResult,
    client: IMAPClient,
    folders: list[Folder],
    progress: Progress | None,
    owner: str | None,
    answered_only: bool = False,
) -> None:
    """Sync the folders in turn, after one STATUS of them all (pipelined in one round trip),
    which tells which changed at all. With answered_only, those the server answered NO for
    are left alone."""
    if not folders:
        return
    statuses = folder_statuses(
        client, [f.name for f in folders], condstore=client.has_capability("CONDSTORE")
    )
    for folder in folders:
        status = statuses.get(folder.name)
        if status is not None or not answered_only:
            _sync_one(result, folder, client, progress, status, owner)


def _sync_one(
    result: MailboxSyncResult,
    folder: Folder,
    client: IMAPClient,
    progress: Progress | None,
    status: FolderStatus | None,
    owner: str | None,
) -> None:
    try:
        result.folders[folder.name] = sync_folder(folder, client, progress, status, owner=owner)
    except FolderParked as exc:
        result.errors[folder.name] = str(exc)
    except imaplib.IMAP4.abort:
        # The connection is gone (server stopped, BYE, reset), not this folder: every later
        # folder would fail the same way, and "synced" would be a lie. The task retries; the
        # windows already committed are kept.
        raise
    except IMAPClientError as exc:
        # One broken folder (deleted meanwhile, no permission) must not stop the rest.
        log.warning("mailbox %s folder %r: %s", folder.mailbox_id, folder.name, exc)
        result.errors[folder.name] = str(exc)
        Folder.objects.filter(pk=folder.pk).update(
            sync_state=Folder.SyncState.ERROR,
            sync_error=str(exc),
            last_synced_at=timezone.now(),
        )
