"""The search index follows what the sync writes: new messages inserted in a batch by the
upsert, and messages the upsert finds again with changed headers."""

from __future__ import annotations

import pytest

from tests.helpers import message_row
from webmail.models import MessageBody
from webmail.search import messages as local
from webmail.search.query import parse
from webmail.sync.store import upsert_messages

pytestmark = pytest.mark.django_db


def found(user, q: str) -> set[str]:
    return set(local.matching(user, parse(q)).values_list("subject", flat=True))


def test_every_message_of_an_upserted_batch_is_found(bare_folder, bob):
    upsert_messages(
        [message_row(bare_folder, uid, f"Invoice {uid} overdue") for uid in range(1, 41)]
    )
    assert len(found(bob, "invoice")) == 40
    assert found(bob, "subject:17") == {"Invoice 17 overdue"}
    assert len(found(bob, "from:schmidt")) == 40
    assert len(found(bob, "to:billing")) == 40
    assert len(found(bob, "from:corp.exam")) == 40


def test_a_message_upserted_again_is_found_by_its_new_subject_only(bare_folder, bob):
    upsert_messages(
        [
            message_row(bare_folder, 1, "Where is my parcel?"),
            message_row(bare_folder, 2, "Signed contract"),
        ]
    )
    assert found(bob, "parcel") == {"Where is my parcel?"}
    # The same batch updates one message and inserts another.
    ids = upsert_messages(
        [
            message_row(bare_folder, 1, "Parcel found, thanks"),
            message_row(bare_folder, 3, "Quarterly report"),
        ]
    )
    assert len(ids) == 2
    assert found(bob, "where") == set()
    assert found(bob, "found") == {"Parcel found, thanks"}
    assert found(bob, "quarterly") == {"Quarterly report"}
    assert found(bob, "contract") == {"Signed contract"}


def test_a_changed_sender_of_a_fetched_message_keeps_its_body_findable(bare_folder, bob):
    [message_id] = upsert_messages([message_row(bare_folder, 1, "Order")])
    MessageBody.objects.create(message_id=message_id, text="The xylophone arrived broken.")
    upsert_messages(
        [message_row(bare_folder, 1, "Order", from_name="Ben", from_address="ben@shop.example")]
    )
    assert found(bob, "xylophone") == {"Order"}
    assert found(bob, "from:ben") == {"Order"}
    assert found(bob, "from:anna") == set()


def test_an_unchanged_message_upserted_again_is_still_found(bare_folder, bob):
    upsert_messages([message_row(bare_folder, 1, "Renewal notice")])
    upsert_messages([message_row(bare_folder, 1, "Renewal notice", is_seen=True)])
    assert found(bob, "renewal") == {"Renewal notice"}
