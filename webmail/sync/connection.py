"""Opening a mailbox's IMAP connection and turning failures into a visible mailbox status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import imapclient
from django.conf import settings
from django.utils import timezone

from webmail.imap.client import AuthenticationFailed, ConnectError, capability_names, connect
from webmail.models import Mailbox
from webmail.sync import slots


@contextmanager
def mailbox_connection(
    mailbox: Mailbox, purpose: str = "sync", wait: float | None = None
) -> Iterator[imapclient.IMAPClient]:
    """A logged-in connection within the mailbox's connection cap; records capabilities, and
    errors as the mailbox status."""
    holder = slots.holder_name(purpose)
    slots.acquire(mailbox.pk, holder, wait)
    try:
        with _connected(mailbox) as client:
            client.kotak_slot = holder  # long work renews it (see FolderSync)
            yield client
    finally:
        slots.release(holder)


def connected(mailbox: Mailbox):
    """A logged-in connection without a slot: for callers that hold their slot themselves."""
    return _connected(mailbox)


def open_client(mailbox: Mailbox) -> imapclient.IMAPClient:
    """Connect and log in, recording a failure as the mailbox's status."""
    try:
        return connect(mailbox.imap_settings(), timeout=settings.IMAP_TIMEOUT)
    except AuthenticationFailed as exc:
        # Retrying a wrong password only gets the account locked: stop until someone fixes it.
        mailbox.record_error(Mailbox.Status.NEEDS_ATTENTION, str(exc))
        raise
    except ConnectError as exc:
        mailbox.record_error(Mailbox.Status.UNREACHABLE, str(exc))
        raise


@contextmanager
def _connected(mailbox: Mailbox) -> Iterator[imapclient.IMAPClient]:
    client = open_client(mailbox)
    client.normalise_times = False  # keep INTERNALDATE's time zone
    try:
        capabilities = capability_names(client)
        if capabilities != mailbox.capabilities:
            mailbox.capabilities = capabilities
            mailbox.save(update_fields=["capabilities"])
        if "ENABLE" in capabilities:
            # RFC 7162 §3.1.8/§3.2.3: enabling makes SELECT report HIGHESTMODSEQ, and under
            # QRESYNC expunges arrive as VANISHED (UIDs) instead of EXPUNGE (sequence numbers).
            wanted = [cap for cap in ("QRESYNC", "CONDSTORE") if cap in capabilities]
            if wanted:
                client.enable(*wanted)
        yield client
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 — the connection may already be gone
            with suppress(Exception):
                client.shutdown()


def mark_healthy(mailbox: Mailbox) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        status=Mailbox.Status.OK, last_error="", last_sync_at=timezone.now()
    )
