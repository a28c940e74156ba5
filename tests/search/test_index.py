"""The search index follows what the sync writes: new messages inserted in a batch by the
upsert, and messages the upsert finds again with changed headers."""

from __future__ import annotations

import datetime as dt

import pytest

from webmail.models import Folder, Mailbox, MessageBody, Role, Team
from webmail.search import messages as local
from webmail.search.query import parse
from webmail.sync.store import upsert_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def folder(bob):
    team = Team.objects.create(name="Support")
    box = Mailbox.objects.create(
        team=team, name="Support", email="support@example.com", imap_host="imap.example.com"
    )
    box.memberships.create(user=bob, role=Role.AGENT)
    return Folder.objects.create(mailbox=box, name="INBOX", display_name="INBOX", label="Inbox")


def row(folder: Folder, uid: int, subject: str, **fields) -> dict:
    """A message as the sync hands it to the upsert."""
    return {
        "mailbox_id": folder.mailbox_id,
        "folder_id": folder.pk,
        "uid": uid,
        "stable_id": f"stable-{uid}",
        "message_id": f"<{uid}@example.com>",
        "subject": subject,
        "from_name": "Anna Schmidt",
        "from_address": "anna@acme-corp.example",
        "to": [["Support", "support@example.com"]],
        "cc": [["Billing Team", "billing@example.com"]],
        "internal_date": dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC) + dt.timedelta(minutes=uid),
        **fields,
    }


def found(user, q: str) -> set[str]:
    return set(local.matching(user, parse(q)).values_list("subject", flat=True))


def test_every_message_of_an_upserted_batch_is_found(folder, bob):
    upsert_messages([row(folder, uid, f"Invoice {uid} overdue") for uid in range(1, 41)])
    assert len(found(bob, "invoice")) == 40
    assert found(bob, "subject:17") == {"Invoice 17 overdue"}
    assert len(found(bob, "from:schmidt")) == 40
    assert len(found(bob, "to:billing")) == 40
    assert len(found(bob, "from:corp.exam")) == 40


def test_a_message_upserted_again_is_found_by_its_new_subject_only(folder, bob):
    upsert_messages([row(folder, 1, "Where is my parcel?"), row(folder, 2, "Signed contract")])
    assert found(bob, "parcel") == {"Where is my parcel?"}
    # The same batch updates one message and inserts another.
    ids = upsert_messages(
        [row(folder, 1, "Parcel found, thanks"), row(folder, 3, "Quarterly report")]
    )
    assert len(ids) == 2
    assert found(bob, "where") == set()
    assert found(bob, "found") == {"Parcel found, thanks"}
    assert found(bob, "quarterly") == {"Quarterly report"}
    assert found(bob, "contract") == {"Signed contract"}


def test_a_changed_sender_of_a_fetched_message_keeps_its_body_findable(folder, bob):
    [message_id] = upsert_messages([row(folder, 1, "Order")])
    MessageBody.objects.create(message_id=message_id, text="The xylophone arrived broken.")
    upsert_messages([row(folder, 1, "Order", from_name="Ben", from_address="ben@shop.example")])
    assert found(bob, "xylophone") == {"Order"}
    assert found(bob, "from:ben") == {"Order"}
    assert found(bob, "from:anna") == set()


def test_an_unchanged_message_upserted_again_is_still_found(folder, bob):
    upsert_messages([row(folder, 1, "Renewal notice")])
    upsert_messages([row(folder, 1, "Renewal notice", is_seen=True)])
    assert found(bob, "renewal") == {"Renewal notice"}
