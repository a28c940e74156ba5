"""Messages grouped into conversations by the sync, against the real Dovecot; team data
(assignment, status, notes) survives UIDVALIDITY resets and moves by other clients."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.dovecot import make_message
from webmail import team
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
