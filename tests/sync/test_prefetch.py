"""Bodies of new mail are fetched in the background, so opening a fresh message is instant."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.dovecot import make_message
from webmail.models import Message, MessageBody
from webmail.sync import tasks
from webmail.sync.bodies import prefetch_bodies
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


def test_new_mail_has_its_body_ready_after_the_sync_task(mailbox):
    mailbox.account.append(make_message("Fresh", body="Hello from today."))
    tasks.sync_mailbox.delay(mailbox.pk)  # eager in tests: the prefetch follows it
    message = Message.objects.get(subject="Fresh")
    assert MessageBody.objects.get(message=message).text.startswith("Hello from today.")


def test_only_the_newest_recent_unopened_messages_are_fetched(mailbox, settings):
    now = timezone.now()
    account = mailbox.account
    account.append(make_message("Ancient"), internal_date=now - dt.timedelta(days=90))
    for n in range(4):
        account.append(make_message(f"Recent {n}"), internal_date=now - dt.timedelta(hours=n))
    sync_mailbox(mailbox)

    assert prefetch_bodies(mailbox, limit=3) == 3

    fetched = set(MessageBody.objects.values_list("message__subject", flat=True))
    assert fetched == {"Recent 0", "Recent 1", "Recent 2"}
    assert prefetch_bodies(mailbox, limit=3) == 1  # the ones already fetched are skipped
    assert "Ancient" not in set(MessageBody.objects.values_list("message__subject", flat=True))
