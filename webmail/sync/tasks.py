"""Celery tasks: doors that look things up by id and call the sync functions."""

from __future__ import annotations

import imaplib
import logging
import random
from datetime import timedelta

from celery import shared_task
from django import db
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from webmail.imap.client import AuthenticationFailed, ConnectError
from webmail.models import Change, Mailbox, MessageTombstone, Presence
from webmail.sync import bodies, writeback
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
    # Unreachable, refusing for now, or gone mid-sync (BYE, reset, timeout): all pass.
    autoretry_for=(ConnectError, imaplib.IMAP4.abort, OSError),
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=8,
)
def sync_mailbox(self, mailbox_id: int, folders: list[str] | None = None) -> None:
    try:
        mailbox = Mailbox.objects.filter(pk=mailbox_id).first()
        if mailbox is None:
            return
        # The folder locks carry the task's id, which its retries keep: a retry after a crash
        # that left a lock behind (the database went away before it could be released) takes
        # it over instead of skipping the folder until the lock expires.
        owner = f"task:{self.request.id}" if self.request.id else None
        result = run_sync_mailbox(mailbox, folder_names=folders, owner=owner)
    except NoFreeConnection as exc:
        # Other work holds every connection; it is short, so come back soon, not in minutes.
        raise self.retry(exc=exc, countdown=random.uniform(1, 5), max_retries=50) from exc
    except AuthenticationFailed:
        # Marked "needs attention" by the connection; retrying would only lock the account.
        return
    except (db.OperationalError, db.InterfaceError) as exc:
        # The database went away (restart, failover, a cut connection). Every committed window
        # is kept with its cursor, so the retry resumes there; drop the dead connection first.
        db.close_old_connections()
        countdown = min(60, 2**self.request.retries) * random.uniform(0.5, 1)
        raise self.retry(exc=exc, countdown=countdown, max_retries=12) from exc
    if result.added and settings.PREFETCH_BODIES:
        try:
            prefetch_bodies.delay(mailbox_id)
        except OperationalError as exc:
            log.warning("could not queue prefetch for mailbox %s: %s", mailbox_id, exc)


@shared_task(ignore_result=True)
def prefetch_bodies(mailbox_id: int) -> int:
    """Fetch the newest unopened bodies so that opening them needs no round trip."""
    mailbox = Mailbox.objects.filter(pk=mailbox_id).first()
    if mailbox is None:
        return 0
    try:
        return bodies.prefetch_bodies(mailbox)
    except (NoFreeConnection, ConnectError, imaplib.IMAP4.error, OSError) as exc:
        # A convenience: the next new mail tries again, and opening fetches on demand.
        log.info("prefetch for mailbox %s skipped: %s", mailbox_id, exc)
        return 0


def enqueue_writeback(mailbox_id: int, countdown: float = 0) -> None:
    """Queue the mailbox's pending changes; with the broker down, beat's sweeper finds them."""
    try:
        apply_changes.apply_async((mailbox_id,), countdown=countdown)
    except OperationalError as exc:
        log.warning("could not queue changes of mailbox %s: %s", mailbox_id, exc)


@shared_task
def apply_changes(mailbox_id: int) -> dict[str, int]:
    """Write the mailbox's due changes to its server (each change retries on its own clock)."""
    mailbox = Mailbox.objects.filter(pk=mailbox_id).first()
    if mailbox is None:
        return {}
    result = writeback.apply_pending(mailbox)
    return {"applied": result.applied, "failed": result.failed, "retrying": result.retrying}


def enqueue_mirror_keywords(mailbox_id: int) -> None:
    """Queue mirror_keywords; with the broker down, do it here, since nothing else would."""
    try:
        mirror_keywords.delay(mailbox_id)
    except OperationalError as exc:
        log.warning("could not queue mirroring of mailbox %s (%s): doing it now", mailbox_id, exc)
        mirror_keywords(mailbox_id)


@shared_task(ignore_result=True)
def mirror_keywords(mailbox_id: int) -> int:
    """The mirror was turned on: queue the keywords of everything worked while it was off."""
    from webmail.keywords import mirror_mailbox

    mailbox = Mailbox.objects.filter(pk=mailbox_id).first()
    return mirror_mailbox(mailbox) if mailbox is not None else 0


@shared_task
def apply_due_changes() -> None:
    """Beat's sweeper: changes whose queue message was lost, or whose retry time has come."""
    for mailbox_id in writeback.due_mailboxes():
        enqueue_writeback(mailbox_id)


@shared_task
def send_outgoing(mailbox_id: int) -> int:
    """Send the mailbox's queued messages whose undo window is over."""
    from webmail.outbox import send_due

    return send_due(mailbox_id)


@shared_task
def send_all_outgoing() -> int:
    """Beat's sweeper for the outbox: lost queue messages, retries, and dead workers' rows."""
    from webmail.outbox import send_due

    return send_due()


@shared_task
def wake_snoozed() -> int:
    """Reopen the conversations whose snooze is over."""
    from webmail.team import wake_snoozed as wake

    return wake()


@shared_task
def sync_all_mailboxes() -> None:
    """Beat's safety net: enqueue a sync of every mailbox that is not waiting for a person."""
    ids = Mailbox.objects.exclude(status=Mailbox.Status.NEEDS_ATTENTION).values_list(
        "pk", flat=True
    )
    for mailbox_id in ids:
        enqueue_sync(mailbox_id)


@shared_task
def trim_logs() -> dict[str, int]:
    """Delete change-log rows past CHANGE_LOG_HOURS, expired presence and old tombstones."""
    now = timezone.now()
    return {
        "changes": _delete_in_batches(
            Change.objects.filter(created_at__lt=now - timedelta(hours=settings.CHANGE_LOG_HOURS))
        ),
        "presence": Presence.objects.filter(expires_at__lt=now).delete()[0],
        "tombstones": _delete_in_batches(
            MessageTombstone.objects.filter(removed_at__lt=now - TOMBSTONE_KEEP)
        ),
    }


# A move by another client shows up at the next sync of both folders: a day is plenty.
TOMBSTONE_KEEP = timedelta(days=1)


def _delete_in_batches(queryset, batch: int = 5000) -> int:
    """Delete without one huge transaction holding locks on a busy table."""
    deleted = 0
    while ids := list(queryset.values_list("pk", flat=True)[:batch]):
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return deleted
