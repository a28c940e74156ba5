"""Syncing a whole mailbox: the folder list, then every folder, INBOX first."""

from __future__ import annotations

import imaplib
import logging
from dataclasses import dataclass, field

from django.utils import timezone
from imapclient.exceptions import IMAPClientError

from webmail.imap.extensions import folder_statuses
from webmail.models import Folder, Mailbox
from webmail.sync.connection import mailbox_connection, mark_healthy
from webmail.sync.folders import sync_folders
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
    """Sync the folder list and then each selectable folder (or only those named).

    `owner` names the folder locks; a caller that runs again after a crash (a task's retry)
    passes the same one to take over locks it could not release."""
    result = MailboxSyncResult()
    Mailbox.objects.filter(pk=mailbox.pk, status=Mailbox.Status.NEW).update(
        status=Mailbox.Status.SYNCING
    )
    with mailbox_connection(mailbox) as client:
        folders = [
            folder
            for folder in sync_folders(mailbox, client)
            if folder.is_selectable
            and (
                not folder_names
                or folder.name in folder_names
                or folder.display_name in folder_names
            )
        ]
        # STATUS of every folder, pipelined in one round trip, tells which changed at all.
        statuses = folder_statuses(
            client, [f.name for f in folders], condstore=client.has_capability("CONDSTORE")
        )
        for folder in folders:
            try:
                result.folders[folder.name] = sync_folder(
                    folder, client, progress, statuses.get(folder.name), owner=owner
                )
            except FolderParked as exc:
                result.errors[folder.name] = str(exc)
            except imaplib.IMAP4.abort:
                # The connection is gone (server stopped, BYE, reset), not this folder: every
                # later folder would fail the same way, and "synced" would be a lie. The task
                # retries; the windows already committed are kept.
                raise
            except IMAPClientError as exc:
                # One broken folder (deleted meanwhile, no permission) must not stop the rest.
                log.warning("mailbox %s folder %r: %s", mailbox.pk, folder.name, exc)
                result.errors[folder.name] = str(exc)
                Folder.objects.filter(pk=folder.pk).update(
                    sync_state=Folder.SyncState.ERROR,
                    sync_error=str(exc),
                    last_synced_at=timezone.now(),
                )
    mark_healthy(mailbox)
    return result
