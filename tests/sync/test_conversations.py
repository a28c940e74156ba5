"""Messages grouped into conversations by the sync, against the real Dovecot; team data
(assignment, status, notes) survives UIDVALIDITY resets and moves by other clients."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.dovecot import make_message
from webmail import team
from webmail.conversations import assign_conversations
from webmail.models import Activity, Conversation, Message
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


def deliver(mailbox, subject, folder="INBOX", *, when=None, **kwargs):
    raw = make_message(subject, **kwargs)
    return mailbox.account.append(raw, folder, internal_date=when)


def conversation_of(subject: str) -> Conversation:
    return Message.objects.get(subject=subject).conversation


def test_a_reply_joins_the_message_it_answers(mailbox):
    deliver(mailbox, "Order 77 broken", message_id="<q1@customer.example>")
    deliver(
        mailbox,
        "Re: Order 77 broken",
        message_id="<a1@support.example>",
        in_reply_to="<q1@customer.example>",
    )
    deliver(mailbox, "Unrelated", message_id="<u1@other.example>")
    sync_mailbox(mailbox)
    question = conversation_of("Order 77 broken")
    assert conversation_of("Re: Order 77 broken") == question
    assert conversation_of("Unrelated") != question
    assert question.subject == "Order 77 broken"
    assert Conversation.objects.count() == 2


def test_order_of_arrival_does_not_matter(mailbox):
    """The reply is synced first (its own sync), then the original arrives."""
    deliver(
        mailbox,
        "Re: Invoice",
        message_id="<r@x>",
        in_reply_to="<o@x>",
        extra_headers={"References": "<o@x>"},
    )
    sync_mailbox(mailbox)
    deliver(mailbox, "Invoice", message_id="<o@x>")
    sync_mailbox(mailbox)
    assert conversation_of("Invoice") == conversation_of("Re: Invoice")


def test_sibling_replies_to_a_missing_original_share_a_conversation(mailbox):
    for n in (1, 2):
        deliver(
            mailbox,
            f"Re: Outage (reply {n})",
            message_id=f"<s{n}@x>",
            in_reply_to="<root-never-seen@x>",
            extra_headers={"References": "<root-never-seen@x>"},
        )
        sync_mailbox(mailbox)
    assert conversation_of("Re: Outage (reply 1)") == conversation_of("Re: Outage (reply 2)")


def test_our_reply_in_sent_joins_across_folders(mailbox):
    deliver(mailbox, "Refund?", message_id="<c@customer>")
    deliver(
        mailbox,
        "Re: Refund?",
        folder="Sent",
        sender="Support <support@example.com>",
        message_id="<s@support>",
        in_reply_to="<c@customer>",
    )
    sync_mailbox(mailbox)
    conversation = conversation_of("Refund?")
    assert conversation_of("Re: Refund?") == conversation
    assert {m.folder.name for m in conversation.messages.all()} == {"INBOX", "Sent"}


def test_subject_is_only_a_last_resort_within_a_window(mailbox):
    now = timezone.now()
    deliver(mailbox, "Printer on fire", message_id="<p@x>", when=now - dt.timedelta(days=1))
    # A reply from a client that sets no In-Reply-To, recent: joins by subject.
    deliver(mailbox, "RE: Printer on fire", message_id="<p2@x>", when=now)
    # Same subject without a reply prefix: a new request, not a reply.
    deliver(mailbox, "Printer on fire", message_id="<p3@x>", when=now)
    sync_mailbox(mailbox)
    first = Message.objects.get(message_id="<p@x>").conversation
    assert Message.objects.get(message_id="<p2@x>").conversation == first
    assert Message.objects.get(message_id="<p3@x>").conversation != first


def test_new_mail_reopens_a_closed_conversation_but_our_own_reply_does_not(mailbox, alice):
    deliver(mailbox, "Help", message_id="<h1@c>")
    sync_mailbox(mailbox)
    conversation = conversation_of("Help")
    team.set_status(alice, [conversation], Conversation.Status.CLOSED)

    deliver(mailbox, "Re: Help", folder="Sent", message_id="<h2@s>", in_reply_to="<h1@c>")
    sync_mailbox(mailbox)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.CLOSED

    deliver(mailbox, "Re: Help", message_id="<h3@c>", in_reply_to="<h2@s>")
    sync_mailbox(mailbox)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN
    assert Activity.objects.filter(conversation=conversation, verb="reopened").exists()


def test_old_mail_synced_late_does_not_reopen(mailbox, alice):
    deliver(mailbox, "Archive me", message_id="<a1@c>")
    sync_mailbox(mailbox)
    conversation = conversation_of("Archive me")
    team.set_status(alice, [conversation], Conversation.Status.CLOSED)
    # A message from last year in another folder, first seen now.
    deliver(
        mailbox,
        "Re: Archive me",
        folder="Archive",
        message_id="<a0@c>",
        in_reply_to="<a1@c>",
        when=timezone.now() - dt.timedelta(days=365),
    )
    sync_mailbox(mailbox)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.CLOSED
    assert conversation_of("Re: Archive me") == conversation


def test_team_data_survives_a_uidvalidity_reset(mailbox, alice, bob):
    deliver(mailbox, "Contract", message_id="<k1@c>")
    deliver(mailbox, "Re: Contract", message_id="<k2@c>", in_reply_to="<k1@c>")
    sync_mailbox(mailbox)
    conversation = conversation_of("Contract")
    team.assign(alice, [conversation], bob)
    team.set_status(alice, [conversation], Conversation.Status.PENDING)
    note = team.add_note(alice, conversation, "Legal says wait for @bob")

    mailbox.account.server.reset_uidvalidity(mailbox.account.username, "INBOX")
    sync_mailbox(mailbox)

    for subject in ("Contract", "Re: Contract"):
        survivor = conversation_of(subject)
        assert survivor.pk == conversation.pk
    conversation.refresh_from_db()
    assert conversation.assignee == bob
    assert conversation.status == Conversation.Status.PENDING
    assert conversation.notes.get() == note


def test_team_data_follows_a_move_by_another_client(mailbox, alice, bob):
    uid = deliver(mailbox, "Quote request", message_id="<m1@c>")
    sync_mailbox(mailbox)
    conversation = conversation_of("Quote request")
    team.assign(alice, [conversation], bob)
    client = mailbox.account.client()
    client.select_folder("INBOX")
    client.move([uid], "Archive")
    client.logout()
    sync_mailbox(mailbox)
    moved = Message.objects.get(subject="Quote request")
    assert moved.folder.name == "Archive"
    assert moved.conversation_id == conversation.pk
    conversation.refresh_from_db()
    assert conversation.assignee == bob


def test_a_hostile_references_header_is_bounded(mailbox):
    refs = " ".join(f"<r{n}@spam>" for n in range(5000))
    deliver(mailbox, "Many refs", message_id="<many@x>", extra_headers={"References": refs})
    sync_mailbox(mailbox)
    conversation = conversation_of("Many refs")
    assert conversation.refs.count() <= 100


def test_team_operations_refuse_a_mix_of_mailboxes(mailbox, alice, imap_account, charlie):
    from tests.conftest import connect_mailbox

    deliver(mailbox, "Ours", message_id="<o@x>")
    sync_mailbox(mailbox)
    other = connect_mailbox(imap_account, manager=charlie, team_name="Other", name="Other")
    theirs = Conversation.objects.create(mailbox=other, subject="Theirs")
    ours = conversation_of("Ours")
    with pytest.raises(team.TeamError, match="one mailbox at a time"):
        team.set_status(alice, [ours, theirs], Conversation.Status.CLOSED)
    with pytest.raises(team.TeamError):
        team.assign(alice, [ours, theirs], None)
    theirs.refresh_from_db()
    assert theirs.status == Conversation.Status.OPEN


def new_rows(count: int, start, **fields):
    """Rows as the sync hands them over, one a minute from start; fields are formats of n."""
    formats = {"message_id": "<m{n}@x>", "subject": "Question {n}"} | fields
    return [
        {name: f.format(n=n) for name, f in formats.items()}
        | {"internal_date": start + dt.timedelta(minutes=n)}
        for n in range(count)
    ]


@contextmanager
def few_parameters_per_statement(limit: int = 50):
    """SQLite as built with a low SQLITE_MAX_VARIABLE_NUMBER (PostgreSQL has no such limit)."""
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    before = connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    try:
        yield
    finally:
        connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)


def test_a_window_of_new_conversations_gives_each_message_its_own(mailbox):
    start = timezone.now() - dt.timedelta(days=1)
    rows = new_rows(300, start)
    random.Random(7).shuffle(rows)  # a window is in UID order, not in age order
    assert assign_conversations(mailbox.pk, rows) == []

    conversations = Conversation.objects.in_bulk([row["conversation_id"] for row in rows])
    assert len(conversations) == 300
    for row in rows:
        conversation = conversations[row["conversation_id"]]
        assert conversation.subject == row["subject"]
        assert conversation.last_message_at == row["internal_date"]
        assert conversation.mailbox_id == mailbox.pk
        assert conversation.status == Conversation.Status.OPEN
        assert conversation.assignee is None and conversation.snoozed_until is None
        assert conversation.created_at > start
    # The older conversation has the smaller id (the oldest wins when a message names two).
    by_age = sorted(rows, key=lambda row: row["internal_date"])
    assert [row["conversation_id"] for row in by_age] == sorted(conversations)


def test_replies_to_hundreds_of_conversations_join_them_in_one_window(mailbox, alice):
    start = timezone.now() - dt.timedelta(days=1)
    originals = new_rows(300, start)
    assign_conversations(mailbox.pk, originals)
    closed = Conversation.objects.get(pk=originals[0]["conversation_id"])
    team.set_status(alice, [closed], Conversation.Status.CLOSED)

    replies = new_rows(
        300,
        timezone.now(),
        message_id="<r{n}@x>",
        in_reply_to="<m{n}@x>",
        references="<m{n}@x>",
        subject="Re: Question {n}",
    )
    with few_parameters_per_statement():
        joined = assign_conversations(mailbox.pk, replies)

    assert joined == sorted(row["conversation_id"] for row in originals)
    for original, reply in zip(originals, replies, strict=True):
        assert reply["conversation_id"] == original["conversation_id"]
    conversations = Conversation.objects.in_bulk(joined)
    for reply in replies:
        assert conversations[reply["conversation_id"]].last_message_at == reply["internal_date"]
    assert conversations[closed.pk].status == Conversation.Status.OPEN
    assert Conversation.objects.filter(mailbox=mailbox).count() == 300
    assert closed.refs.count() == 2


def test_a_window_repeating_known_ids_stores_each_once(mailbox):
    start = timezone.now() - dt.timedelta(days=1)
    first = new_rows(1, start)
    assign_conversations(mailbox.pk, first)
    # Three replies in one window, each naming the original and the one before.
    replies = new_rows(
        3, start + dt.timedelta(hours=1), message_id="<r{n}@x>", references="<m0@x> <r0@x>"
    )
    assign_conversations(mailbox.pk, replies)
    conversation = Conversation.objects.get()
    assert {row["conversation_id"] for row in replies} == {conversation.pk}
    assert conversation.refs.count() == 4  # m0, r0, r1, r2


def test_replies_without_references_in_one_window_find_their_conversations_by_subject(mailbox):
    start = timezone.now() - dt.timedelta(days=30)
    # Two conversations on "Question 1": one old, one recent; one on "Question 2", old.
    earlier = new_rows(3, start)
    for row, subject in zip(earlier, ["Question 1", "Question 2", "Question 1"], strict=True):
        row["subject"] = subject
    earlier[2]["internal_date"] = start + dt.timedelta(days=20)
    assign_conversations(mailbox.pk, earlier)
    old_one, old_two, recent_one = (row["conversation_id"] for row in earlier)

    replies = [
        {"message_id": f"<reply{n}@x>", "subject": subject, "internal_date": when}
        for n, (subject, when) in enumerate(
            [
                ("Re: Question 1", start + dt.timedelta(days=22)),  # both in reach: the latest
                ("RE: Question 1", start + dt.timedelta(days=5)),  # only the old one in reach
                ("Re: Question 2", start + dt.timedelta(days=3)),
                ("Re: Question 2", start + dt.timedelta(days=25)),  # too late: a new one
                ("Question 1", start + dt.timedelta(days=21)),  # not a reply: a new one
            ]
        )
    ] + [
        {"message_id": f"<other{n}@x>", "subject": f"Re: Other {n}", "internal_date": start}
        for n in range(20)
    ]
    with CaptureQueriesContext(connection) as queries:
        assign_conversations(mailbox.pk, replies)

    # One lookup by subject for the window, not one per reply.
    by_subject = [
        q for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and '"webmail_conversation"."subject" IN' in q["sql"]
    ]  # fmt: skip
    assert len(by_subject) == 1

    found = [row["conversation_id"] for row in replies]
    assert found[:3] == [recent_one, old_one, old_two]
    assert len({found[3], found[4], old_one, old_two, recent_one}) == 5
