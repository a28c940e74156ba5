"""The cap on IMAP connections per mailbox, shared by every process."""

from datetime import timedelta

import pytest

from webmail.models import ConnectionSlot
from webmail.sync import slots
from webmail.sync.mailbox import sync_mailbox

pytestmark = pytest.mark.django_db


def test_no_more_than_the_cap_and_a_dead_holders_slot_comes_back(mailbox, settings):
    settings.IMAP_MAX_CONNECTIONS = 2
    assert slots.try_acquire(mailbox.pk, "a")
    assert slots.try_acquire(mailbox.pk, "b")
    assert not slots.try_acquire(mailbox.pk, "c")
    with pytest.raises(slots.NoFreeConnection, match="All 2 connections"):
        slots.acquire(mailbox.pk, "c", wait=0.2)
    slots.release("a")
    assert slots.try_acquire(mailbox.pk, "c")
    # "b" died without releasing: once its time is up the slot is free again.
    ConnectionSlot.objects.filter(holder="b").update(expires_at=ConnectionSlot.objects.get(
        holder="b").expires_at - timedelta(hours=1))  # fmt: skip
    assert slots.try_acquire(mailbox.pk, "d")


@pytest.mark.imap
def test_a_sync_waits_for_a_free_connection_and_says_so(mailbox, settings):
    settings.IMAP_MAX_CONNECTIONS = 1
    settings.IMAP_SLOT_WAIT = 0
    assert slots.try_acquire(mailbox.pk, "someone-else")
    with pytest.raises(slots.NoFreeConnection):
        sync_mailbox(mailbox)
    slots.release("someone-else")
    mailbox.account.deliver("now there is room")
    sync_mailbox(mailbox)
    assert mailbox.messages.filter(subject="now there is room").exists()
    assert not ConnectionSlot.objects.exclude(holder="").exists()  # given back afterwards
