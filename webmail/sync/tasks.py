"""Celery tasks: doors that look things up by id and call the sync functions."""

from __future__ import annotations

import logging
import random

from celery import shared_task
from kombu.exceptions import OperationalError

from webmail.imap.client import AuthenticationFailed, ConnectError
from webmail.models import Mailbox
from webmail.sync.mailbox import sync_mailbox as run_sync_mailbox
from webmail.sync.slots import NoFreeConnection

log = logging.getLogger(__name__)


def enqueue_sync(mailbox_id: int, folders: list[str] | None = None) -> None:
    """Queue a mailbox sync; with the broker down, beat's periodic sync catches up later."""
    try:
        sync_mailbox.delay(mailbox_id, folders)
    except OperationalError as exc:
        log.warning("could not queue sync of mailbox %s: %s", mailbox_id, exc)


@shared_task(
    bind=True,
    autoretry_for=(ConnectError,),
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=8,
)
def sync_mailbox(self, mailbox_id: int, folders: list[str] | None = None) -> None:
    mailbox = Mailbox.objects.filter(pk=mailbox_id).first()
    if mailbox is None:
        return
    try:
        run_sync_mailbox(mailbox, folder_names=folders)
    except NoFreeConnection as exc:
        # Other work holds every connection; it is short, so come back soon, not in minutes.
        raise self.retry(exc=exc, countdown=random.uniform(1, 5), max_retries=50) from exc
    except AuthenticationFailed:
        # Marked "needs attention" by the connection; retrying would only lock the account.
        return


@shared_task
def sync_all_mailboxes() -> None:
    """Beat's safety net: enqueue a sync of every mailbox that is not waiting for a person."""
    ids = Mailbox.objects.exclude(status=Mailbox.Status.NEEDS_ATTENTION).values_list(
        "pk", flat=True
    )
    for mailbox_id in ids:
        enqueue_sync(mailbox_id)
