"""A per-mailbox cap on open IMAP connections, shared by every worker and web process."""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from contextlib import suppress
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from webmail.imap.client import ConnectError
from webmail.models import ConnectionSlot

SLOT_TTL = timedelta(minutes=10)


class NoFreeConnection(ConnectError):
    code = "busy"


def holder_name(purpose: str) -> str:
    return f"{purpose}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _ensure_slots(mailbox_id: int) -> None:
    existing = set(
        ConnectionSlot.objects.filter(mailbox_id=mailbox_id).values_list("number", flat=True)
    )
    for number in range(settings.IMAP_MAX_CONNECTIONS):
        if number not in existing:
            # Another process may create it first; the savepoint keeps an outer transaction.
            with suppress(IntegrityError), transaction.atomic():
                ConnectionSlot.objects.create(mailbox_id=mailbox_id, number=number)


def try_acquire(mailbox_id: int, holder: str, ttl: timedelta = SLOT_TTL) -> bool:
    """Take a free (or abandoned) slot with a conditional UPDATE; False if all are held."""
    _ensure_slots(mailbox_id)
    now = timezone.now()
    free = Q(holder="") | Q(expires_at__lt=now)
    numbers = list(
        ConnectionSlot.objects.filter(
            free, mailbox_id=mailbox_id, number__lt=settings.IMAP_MAX_CONNECTIONS
        ).values_list("number", flat=True)
    )
    random.shuffle(numbers)  # fewer collisions between processes racing for the same slot
    for number in numbers:
        if ConnectionSlot.objects.filter(free, mailbox_id=mailbox_id, number=number).update(
            holder=holder, expires_at=now + ttl
        ):
            return True
    return False


def acquire(mailbox_id: int, holder: str, wait: float | None = None) -> None:
    """Take a slot, waiting up to `wait` seconds (IMAP_SLOT_WAIT) for one to free up."""
    deadline = time.monotonic() + (settings.IMAP_SLOT_WAIT if wait is None else wait)
    delay = 0.05
    while not try_acquire(mailbox_id, holder):
        if time.monotonic() >= deadline:
            raise NoFreeConnection(
                f"All {settings.IMAP_MAX_CONNECTIONS} connections to this mailbox's server "
                "are in use; trying again shortly."
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def renew(*holders: str, ttl: timedelta = SLOT_TTL) -> None:
    """Extend the slots of these holders (one UPDATE however many: a worker may watch 1,000)."""
    if holders:
        ConnectionSlot.objects.filter(holder__in=holders).update(expires_at=timezone.now() + ttl)


def release(holder: str) -> None:
    ConnectionSlot.objects.filter(holder=holder).update(holder="", expires_at=None)
