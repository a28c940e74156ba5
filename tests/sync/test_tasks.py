"""The Celery tasks around sync (run in-process here)."""

import pytest

from webmail.models import Mailbox
from webmail.sync import tasks

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


def test_a_wrong_password_stops_retries_and_asks_for_attention(mailbox):
    mailbox.imap_password = "changed-by-someone"
    mailbox.save()
    tasks.sync_mailbox.delay(mailbox.pk)  # no exception: no retry loop
    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.NEEDS_ATTENTION
    assert "rejected the username or password" in mailbox.last_error


def test_the_periodic_sync_leaves_mailboxes_that_need_a_person_alone(mailbox, monkeypatch):
    queued = []
    monkeypatch.setattr(tasks, "enqueue_sync", queued.append)
    tasks.sync_all_mailboxes()
    assert queued == [mailbox.pk]
    Mailbox.objects.filter(pk=mailbox.pk).update(status=Mailbox.Status.NEEDS_ATTENTION)
    queued.clear()
    tasks.sync_all_mailboxes()
    assert queued == []


def test_a_sync_task_brings_mail_in(mailbox):
    mailbox.account.deliver("via the worker")
    tasks.sync_mailbox.delay(mailbox.pk)
    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.OK
    assert mailbox.messages.get().subject == "via the worker"
