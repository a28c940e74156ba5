"""The bulk writer the sync stores windows with: ids in the order of the rows given, and a
window that meets a message already stored updates it instead of failing or duplicating it."""

from __future__ import annotations

import pytest

from tests.helpers import message_row
from webmail.models import Message
from webmail.sync.store import upsert_messages

pytestmark = pytest.mark.django_db


def test_ids_come_back_in_the_order_of_the_rows(bare_folder):
    uids = [7, 3, 9, 1, 5]
    ids = upsert_messages([message_row(bare_folder, uid, f"Message {uid}") for uid in uids])

    stored = dict(Message.objects.filter(folder=bare_folder).values_list("pk", "uid"))
    assert [stored[pk] for pk in ids] == uids


def test_a_window_meeting_a_stored_message_updates_it_and_inserts_the_rest(bare_folder):
    first = upsert_messages([message_row(bare_folder, 1, "Old subject", is_seen=False)])

    ids = upsert_messages(
        [
            message_row(bare_folder, 1, "New subject", is_seen=True),
            message_row(bare_folder, 2, "Another one"),
        ]
    )

    assert ids[0] == first[0]  # the same row: its id, conversation and notes stay
    assert Message.objects.filter(folder=bare_folder).count() == 2
    updated = Message.objects.get(pk=first[0])
    assert (updated.subject, updated.is_seen) == ("New subject", True)
    assert Message.objects.get(pk=ids[1]).subject == "Another one"
