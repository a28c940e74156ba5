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


def test_the_periodic_sync_leaves_mailboxes_that_need_a_person_alone(mailbox):
    mailbox.account.deliver("waiting")
    Mailbox.objects.filter(pk=mailbox.pk).update(status=Mailbox.Status.NEEDS_ATTENTION)
    tasks.sync_all_mailboxes()  # tasks run in-process: a sync would have happened by now
    assert not mailbox.messages.exists()
    Mailbox.objects.filter(pk=mailbox.pk).update(status=Mailbox.Status.OK)
    tasks.sync_all_mailboxes()
    assert mailbox.messages.get().subject == "waiting"


def test_a_sync_task_brings_mail_in(mailbox):
    mailbox.account.deliver("via the worker")
    tasks.sync_mailbox.delay(mailbox.pk)
    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.OK
    assert mailbox.messages.get().subject == "via the worker"


def test_old_log_rows_expired_presence_and_old_tombstones_are_trimmed(mailbox, alice, settings):
    from datetime import timedelta

    from django.utils import timezone

    from webmail.models import Change, Conversation, MessageTombstone, Presence

    now = timezone.now()
    settings.CHANGE_LOG_HOURS = 48
    old = Change.objects.create(
        mailbox=mailbox, kind="folders", created_at=now - timedelta(hours=49)
    )
    recent = Change.objects.create(mailbox=mailbox, kind="folders")
    Presence.objects.create(
        mailbox=mailbox,
        user=alice,
        message_id=1,
        stream="gone",
        expires_at=now - timedelta(minutes=1),
    )
    Presence.objects.create(
        mailbox=mailbox,
        user=alice,
        message_id=1,
        stream="here",
        expires_at=now + timedelta(minutes=1),
    )
    conversation = Conversation.objects.create(mailbox=mailbox)
    MessageTombstone.objects.create(
        mailbox=mailbox,
        stable_id="a",
        conversation=conversation,
        removed_at=now - timedelta(days=2),
    )
    MessageTombstone.objects.create(mailbox=mailbox, stable_id="b", conversation=conversation)

    assert tasks.trim_logs() == {"changes": 1, "presence": 1, "tombstones": 1}
    assert list(Change.objects.filter(pk__in=[old.pk, recent.pk])) == [recent]
    assert list(Presence.objects.values_list("stream", flat=True)) == ["here"]
    assert list(MessageTombstone.objects.values_list("stable_id", flat=True)) == ["b"]
