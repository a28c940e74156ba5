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


def test_deleting_a_mailbox_deletes_its_messages_and_thread_references(bare_folder):
    from webmail.conversations import assign_conversations
    from webmail.models import ThreadRef

    rows = [message_row(bare_folder, uid, f"Message {uid}") for uid in (1, 2)]
    assign_conversations(bare_folder.mailbox_id, rows)
    upsert_messages(rows)
    assert ThreadRef.objects.filter(mailbox=bare_folder.mailbox).exists()

    bare_folder.mailbox.delete()

    # Neither table has a database key to the mailbox any more (0008): the ORM deletes them.
    assert not Message.objects.exists()
    assert not ThreadRef.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_first_window_into_an_empty_table_gives_the_planner_statistics(bare_folder):
    """On statistics of an empty table PostgreSQL looked stable ids up through another index
    that starts with mailbox, reading every row of the mailbox for each value."""
    from django.db import connection

    from webmail import db

    if connection.vendor != "postgresql":
        pytest.skip("statistics and plans are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE webmail_message")  # as a new database's table: analyzed empty
    upsert_messages([message_row(bare_folder, uid, f"Message {uid}") for uid in range(1, 1001)])

    db.refresh_statistics(Message, 1000)

    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN SELECT found.* FROM unnest(%s::varchar[]) AS given (value) CROSS JOIN "
            "LATERAL (SELECT id FROM webmail_message WHERE mailbox_id = %s "
            "AND stable_id = given.value OFFSET 0) found",
            [["stable-5", "stable-9"], bare_folder.mailbox_id],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_stable_id" in plan
