"""Assignment and status as IMAP keywords on the real Dovecot: what Kotak writes is what a plain
IMAP client sees, and what such a client (a teammate in Thunderbird) changes comes back."""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import IMAP_POOL, SERVER_KINDS, ImapAccount, connect_mailbox, server_account
from tests.dovecot import Dovecot, dovecot_dir, make_message
from tests.helpers import server_state
from webmail import team
from webmail.keywords import implied_state
from webmail.models import (
    Activity,
    Change,
    Conversation,
    Mailbox,
    Membership,
    Message,
    Notification,
    PendingChange,
    Role,
)
from webmail.sync.mailbox import sync_mailbox
from webmail.sync.writeback import apply_pending

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

Status = Conversation.Status
OPEN, PENDING, CLOSED = "$KotakOpen", "$KotakPending", "$KotakClosed"
BOB = "$KotakAssigned_bob"


@pytest.fixture(params=SERVER_KINDS)
def any_mailbox(request, db, alice, bob):
    """On a Dovecot with CONDSTORE/QRESYNC, on one with CONDSTORE only, on one with neither."""
    account = server_account(request)
    box = connect_mailbox(account, manager=alice)
    Membership.objects.create(user=bob, mailbox=box, role=Role.AGENT)
    box.account = account
    box.kind = request.param
    return box


def thread(mailbox, subject: str, replies: int = 1, flags=()) -> Conversation:
    """A customer's message and replies to it, synced: one conversation."""
    root = f"<{subject.replace(' ', '-')}@customer.example>"
    mailbox.account.append(make_message(subject, message_id=root), flags=flags)
    for n in range(replies):
        raw = make_message(f"Re: {subject}", message_id=f"<r{n}-{root[1:]}", in_reply_to=root)
        mailbox.account.append(raw, flags=flags)
    sync_mailbox(mailbox)
    conversation = Message.objects.get(subject=subject).conversation
    assert conversation.messages.count() == replies + 1
    return conversation


def apply_now(mailbox):
    PendingChange.objects.filter(mailbox=mailbox).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    return apply_pending(mailbox)


def keywords_on_server(mailbox, conversation: Conversation, folder: str = "INBOX") -> list:
    """The Kotak keywords a plain IMAP client sees on each message of the conversation in the
    folder, by UID."""
    state = server_state(mailbox.account, folder)
    uids = conversation.messages.filter(folder__name=folder).values_list("uid", flat=True)
    return [{k for k in state[uid]["keywords"] if k.startswith("$Kotak")} for uid in sorted(uids)]


def other_client(mailbox, uid: int, add=(), remove=(), folder: str = "INBOX") -> None:
    """A teammate's mail program (Thunderbird) changing keywords on one message."""
    client = mailbox.account.client()
    try:
        client.select_folder(folder)
        if add:
            client.add_flags([uid], list(add))
        if remove:
            client.remove_flags([uid], list(remove))
    finally:
        client.logout()


def imap_activity(conversation: Conversation):
    return Activity.objects.filter(conversation=conversation, data__source="imap")


# -- writing ----------------------------------------------------------------------------------


def test_assignment_and_status_show_on_every_message_for_a_plain_imap_client(
    any_mailbox, alice, bob
):
    conversation = thread(any_mailbox, "Broken order", replies=2)
    untouched = thread(any_mailbox, "Just a question")
    team.assign(alice, [conversation], bob)
    team.set_status(bob, [conversation], Status.PENDING)

    assert apply_now(any_mailbox).failed == 0
    assert keywords_on_server(any_mailbox, conversation) == [{PENDING, BOB}] * 3
    # Nobody has worked the other one: it carries nothing.
    assert keywords_on_server(any_mailbox, untouched) == [set()] * 2
    assert not PendingChange.objects.exists()

    sync_mailbox(any_mailbox)
    assert not imap_activity(conversation).exists(), "Kotak's own keywords were read back"
    assert not PendingChange.objects.exists()


def test_unassigning_and_reopening_take_the_keywords_off(any_mailbox, alice, bob):
    conversation = thread(any_mailbox, "Refund")
    team.assign(alice, [conversation], bob)
    team.set_status(bob, [conversation], Status.CLOSED)
    apply_now(any_mailbox)
    assert keywords_on_server(any_mailbox, conversation) == [{CLOSED, BOB}] * 2

    team.assign(alice, [conversation], None)
    apply_now(any_mailbox)
    assert keywords_on_server(any_mailbox, conversation) == [{CLOSED}] * 2

    team.set_status(bob, [conversation], Status.OPEN)
    apply_now(any_mailbox)
    assert keywords_on_server(any_mailbox, conversation) == [set()] * 2
    assert all(m.keywords == [] for m in conversation.messages.all())


def test_with_the_mirror_off_nothing_is_written_or_read(any_mailbox, alice, bob):
    Mailbox.objects.filter(pk=any_mailbox.pk).update(mirror_keywords=False)
    conversation = thread(any_mailbox, "Private matters")
    team.assign(alice, [conversation], bob)
    team.set_status(bob, [conversation], Status.CLOSED)
    assert not PendingChange.objects.exists()
    assert keywords_on_server(any_mailbox, conversation) == [set()] * 2

    uid = conversation.messages.order_by("uid").first().uid
    other_client(any_mailbox, uid, add=[OPEN])
    sync_mailbox(any_mailbox)
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    assert not imap_activity(conversation).exists()


def test_assigning_several_conversations_at_once_marks_every_message_of_each(
    any_mailbox, alice, bob
):
    conversations = [thread(any_mailbox, f"Bulk {n}") for n in range(3)]
    team.assign(alice, conversations, bob)
    team.set_status(bob, conversations[:2], Status.CLOSED)
    apply_now(any_mailbox)
    assert [keywords_on_server(any_mailbox, c) for c in conversations] == [
        [{CLOSED, BOB}] * 2,
        [{CLOSED, BOB}] * 2,
        [{OPEN, BOB}] * 2,
    ]


def test_turning_the_mirror_on_writes_what_was_worked_while_it_was_off(
    any_mailbox, alice, bob, django_capture_on_commit_callbacks
):
    from webmail import members

    earlier = thread(any_mailbox, "Worked before")
    team.assign(alice, [earlier], bob)
    apply_now(any_mailbox)
    members.set_mirror_keywords(alice, any_mailbox, False)
    # While off: one conversation worked, the earlier one given back and reopened.
    later = thread(any_mailbox, "Worked while off")
    team.assign(alice, [later], bob)
    team.set_status(bob, [later], Status.CLOSED)
    team.assign(alice, [earlier], None)
    apply_now(any_mailbox)
    assert keywords_on_server(any_mailbox, later) == [set()] * 2
    assert keywords_on_server(any_mailbox, earlier) == [{OPEN, BOB}] * 2

    with django_capture_on_commit_callbacks(execute=True):
        members.set_mirror_keywords(alice, any_mailbox, True)
    apply_now(any_mailbox)

    assert keywords_on_server(any_mailbox, later) == [{CLOSED, BOB}] * 2
    assert keywords_on_server(any_mailbox, earlier) == [set()] * 2
    sync_mailbox(any_mailbox)  # and nothing is read back as another client's change
    later.refresh_from_db()
    earlier.refresh_from_db()
    assert (later.status, later.assignee) == (Status.CLOSED, bob)
    assert (earlier.status, earlier.assignee) == (Status.OPEN, None)
    assert not imap_activity(later).exists() and not imap_activity(earlier).exists()


def test_a_reply_joining_an_assigned_conversation_gets_its_keywords(any_mailbox, alice, bob):
    conversation = thread(any_mailbox, "Delivery late")
    team.assign(alice, [conversation], bob)
    apply_now(any_mailbox)

    root = conversation.messages.order_by("uid").first().message_id
    any_mailbox.account.append(
        make_message("Re: Delivery late (again)", message_id="<again@c>", in_reply_to=root)
    )
    any_mailbox.account.append(
        make_message("Re: Delivery late (ours)", message_id="<ours@s>", in_reply_to=root),
        "Sent",
    )
    sync_mailbox(any_mailbox)
    assert conversation.messages.count() == 4
    apply_now(any_mailbox)

    assert keywords_on_server(any_mailbox, conversation) == [{OPEN, BOB}] * 3
    assert keywords_on_server(any_mailbox, conversation, "Sent") == [{OPEN, BOB}]
    sync_mailbox(any_mailbox)
    assert not PendingChange.objects.exists()
    assert not imap_activity(conversation).exists()


def test_a_pending_keyword_change_survives_a_sync_that_runs_before_it_is_applied(
    any_mailbox, alice, bob
):
    conversation = thread(any_mailbox, "Invoice copy")
    team.assign(alice, [conversation], bob)
    apply_now(any_mailbox)
    team.set_status(bob, [conversation], Status.CLOSED)  # queued: +Closed, -Open
    first = conversation.messages.order_by("uid").first()
    # Someone reads the message elsewhere, so the sync has something to look at.
    other_client(any_mailbox, first.uid, add=[r"\Seen"])

    sync_mailbox(any_mailbox)

    first.refresh_from_db()
    assert first.is_seen, "the other client's change was not picked up"
    assert set(first.keywords) == {CLOSED, BOB}, "the sync undid the queued keywords"
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    assert not imap_activity(conversation).exists(), "the server's older keywords were read back"
    apply_now(any_mailbox)
    assert keywords_on_server(any_mailbox, conversation) == [{CLOSED, BOB}] * 2


# -- reading back -----------------------------------------------------------------------------


def test_a_client_closing_the_conversation_closes_it_in_kotak_without_bouncing(
    any_mailbox, alice, bob
):
    conversation = thread(any_mailbox, "Password reset", replies=2)
    team.assign(alice, [conversation], bob)
    apply_now(any_mailbox)
    first = conversation.messages.order_by("uid").first()

    other_client(any_mailbox, first.uid, add=[CLOSED], remove=[OPEN])
    sync_mailbox(any_mailbox)

    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    assert conversation.assignee == bob
    (line,) = imap_activity(conversation)
    assert (line.actor, line.verb) == (None, "status")
    assert line.data == {"from": "open", "to": "closed", "source": "imap"}
    assert Change.objects.filter(kind="conversation", conversation_id=conversation.pk).exists()
    # The other messages follow; the one the client changed is left as it is.
    assert {c.message_id for c in PendingChange.objects.all()} == set(
        conversation.messages.exclude(pk=first.pk).values_list("pk", flat=True)
    )
    apply_now(any_mailbox)
    assert keywords_on_server(any_mailbox, conversation) == [{CLOSED, BOB}] * 3

    sync_mailbox(any_mailbox)
    sync_mailbox(any_mailbox)
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    assert imap_activity(conversation).count() == 1
    assert not PendingChange.objects.exists()


def test_a_client_adding_an_assignee_keyword_assigns_the_conversation(any_mailbox, bob):
    conversation = thread(any_mailbox, "Wrong size")
    last = conversation.messages.order_by("uid").last()

    other_client(any_mailbox, last.uid, add=[BOB])
    sync_mailbox(any_mailbox)

    conversation.refresh_from_db()
    assert conversation.assignee == bob
    (line,) = imap_activity(conversation)
    assert (line.actor, line.verb, line.data["to"]) == (None, "assigned", bob.pk)
    assert Notification.objects.get(user=bob).kind == "assigned"
    apply_now(any_mailbox)
    assert keywords_on_server(any_mailbox, conversation) == [{OPEN, BOB}] * 2

    # Taking it off again in the other client unassigns it: back to no keywords at all.
    other_client(any_mailbox, last.uid, remove=[BOB])
    sync_mailbox(any_mailbox)
    conversation.refresh_from_db()
    assert conversation.assignee is None
    assert imap_activity(conversation).latest("pk").verb == "unassigned"
    apply_now(any_mailbox)
    assert keywords_on_server(any_mailbox, conversation) == [set()] * 2


def test_an_assignee_keyword_naming_nobody_here_is_ignored(any_mailbox, caplog):
    conversation = thread(any_mailbox, "Who?")
    first = conversation.messages.order_by("uid").first()
    other_client(any_mailbox, first.uid, add=["$KotakAssigned_zed", CLOSED])

    with caplog.at_level(logging.INFO, logger="webmail.keywords"):
        sync_mailbox(any_mailbox)

    conversation.refresh_from_db()
    assert conversation.assignee is None
    assert conversation.status == Status.CLOSED  # the rest of what it said still counts
    assert "$kotakassigned_zed" in caplog.text
    assert [a.verb for a in imap_activity(conversation)] == ["status"]


def test_when_messages_disagree_the_latest_change_wins(any_mailbox):
    conversation = thread(any_mailbox, "Two minds")
    first, second = conversation.messages.order_by("uid")
    other_client(any_mailbox, second.uid, add=[PENDING])
    other_client(any_mailbox, first.uid, add=[CLOSED])  # changed last, but the lower UID

    sync_mailbox(any_mailbox)

    conversation.refresh_from_db()
    # With CONDSTORE the highest MODSEQ tells which came last; without it, the highest UID.
    condstore = any_mailbox.kind in ("full", "condstore")
    assert conversation.status == (Status.CLOSED if condstore else Status.PENDING)
    apply_now(any_mailbox)
    wanted = {CLOSED} if condstore else {PENDING}
    assert keywords_on_server(any_mailbox, conversation) == [wanted] * 2


def test_the_first_sync_restores_what_an_earlier_install_left_on_the_server(any_mailbox, bob):
    conversation = thread(any_mailbox, "Old case", replies=2, flags=[CLOSED, BOB])
    waiting = thread(any_mailbox, "Waiting case", flags=[PENDING])

    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.CLOSED, bob)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.assignee) == (Status.PENDING, None)
    assert {a.verb for a in imap_activity(conversation)} == {"status", "assigned"}
    assert not Notification.objects.exists(), "restoring is not news to anyone"
    assert not PendingChange.objects.exists(), "the keywords were right already"


def test_state_and_keywords_survive_a_uidvalidity_reset(any_mailbox, alice, bob):
    conversation = thread(any_mailbox, "Contract")
    team.assign(alice, [conversation], bob)
    team.set_status(alice, [conversation], Status.PENDING)
    apply_now(any_mailbox)
    team.set_status(alice, [conversation], Status.CLOSED)  # queued when the reset comes

    account = any_mailbox.account
    account.server.reset_uidvalidity(account.username, "INBOX")
    sync_mailbox(any_mailbox)
    # The renumbered rows took the server's keywords; the queued change is still what counts.
    assert all(set(m.keywords) == {CLOSED, BOB} for m in conversation.messages.all())
    apply_now(any_mailbox)

    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.CLOSED, bob)
    assert conversation.messages.count() == 2
    assert keywords_on_server(any_mailbox, conversation) == [{CLOSED, BOB}] * 2
    assert not imap_activity(conversation).exists()
    sync_mailbox(any_mailbox)
    assert not PendingChange.objects.exists()
    assert not imap_activity(conversation).exists()


# -- servers that do not keep keywords --------------------------------------------------------


class NoKeywordsDovecot(Dovecot):
    """Dovecot whose ACL withholds the "w" right (RFC 4314: flags other than \\Seen and
    \\Deleted): SELECT answers PERMANENTFLAGS (\\Deleted \\Seen) and STORE +FLAGS answers OK
    but drops the keywords — the silent kind of refusal, for real."""

    def _write_config(self) -> None:
        super()._write_config()
        acl = self.base_dir / "global-acl"
        acl.write_text("* owner lrstipekxa\n")
        config = self.config_path.read_text().replace(
            "mail_plugins = $mail_plugins quota\n", "mail_plugins = $mail_plugins quota acl\n"
        )
        self.config_path.write_text(config + f"plugin {{\n  acl = vfile:{acl}\n}}\n")


@pytest.fixture(scope="module")
def no_keywords_dovecot() -> Iterator[Dovecot]:
    users = {name: f"pw-{name}" for name in IMAP_POOL[:20]}
    with (
        dovecot_dir("dovecot-nokw") as path,
        NoKeywordsDovecot.start(path, users=users) as server,
    ):
        yield server


def test_a_server_that_drops_keywords_turns_the_mirror_off_once(no_keywords_dovecot, alice, bob):
    account = ImapAccount(
        no_keywords_dovecot, IMAP_POOL[0], f"pw-{IMAP_POOL[0]}", f"{IMAP_POOL[0]}@example.com"
    )
    mailbox = connect_mailbox(account, manager=alice)
    Membership.objects.create(user=bob, mailbox=mailbox, role=Role.AGENT)
    mailbox.account = account
    conversation = thread(mailbox, "Nowhere to put it")
    other = thread(mailbox, "Another one")
    team.assign(alice, [conversation, other], bob)
    assert PendingChange.objects.count() == 4

    result = apply_now(mailbox)

    assert result.failed == 0
    mailbox.refresh_from_db()
    assert not mailbox.mirror_keywords
    (line,) = Activity.objects.filter(mailbox=mailbox, verb="keywords_off")
    assert line.actor is None and "PERMANENTFLAGS" in line.data["reason"]
    assert not PendingChange.objects.exists()
    assert not Change.objects.filter(kind="action_failed").exists()
    assert all(m.keywords == [] for m in Message.objects.all()), "rows must say what the server has"
    # From now on nothing is queued, and nothing fails.
    team.set_status(bob, [conversation], Status.CLOSED)
    assert not PendingChange.objects.exists()
    sync_mailbox(mailbox)
    assert Activity.objects.filter(verb="keywords_off").count() == 1


def test_a_server_that_refuses_the_store_turns_the_mirror_off(mailbox, alice, bob, monkeypatch):
    """A STORE answered NO. Dovecot cannot be made to say that for keywords alone, so the
    command is replaced by one that fails the way such a server's does."""

    def refuse(*args, **kwargs):
        raise imaplib.IMAP4.error("STORE command error: NO [CANNOT] Keywords are not allowed")

    monkeypatch.setattr("webmail.sync.writeback.conditional_store", refuse)
    monkeypatch.setattr("imapclient.IMAPClient.add_flags", refuse)
    conversation = thread(mailbox, "Refused")
    team.assign(alice, [conversation], bob)

    result = apply_now(mailbox)

    assert result.failed == 0
    mailbox.refresh_from_db()
    assert not mailbox.mirror_keywords
    (line,) = Activity.objects.filter(verb="keywords_off")
    assert "Keywords are not allowed" in line.data["reason"]
    assert not PendingChange.objects.exists()
    assert not Change.objects.filter(kind="action_failed").exists()


# -- what a change of keywords says -----------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        ({OPEN}, {CLOSED}, (Status.CLOSED, None)),
        ({OPEN}, {OPEN, CLOSED}, (Status.CLOSED, None)),  # added Closed, left Open
        ({CLOSED}, set(), (Status.OPEN, None)),  # all removed: the default
        (set(), {"$kotakpending"}, (Status.PENDING, None)),  # Thunderbird lower-cases
        (set(), {OPEN, CLOSED}, (None, None)),  # ambiguous: says nothing
        ({OPEN, BOB}, {OPEN}, (Status.OPEN, "")),
        ({OPEN}, {OPEN, BOB}, (Status.OPEN, BOB.lower())),
        (set(), {"$Important"}, (None, None)),
    ],
)
def test_what_a_change_of_keywords_says(before, after, said):
    assert implied_state(before, after) == said


def test_turning_the_mirror_on_takes_the_same_queries_for_3_or_60_conversations(bare_folder, bob):
    """One query for the conversations' messages and one write, not a round per conversation
    (a mailbox with thousands worked while the mirror was off)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.helpers import message_row
    from webmail.keywords import mirror_mailbox
    from webmail.sync.store import upsert_messages

    def queries_for(count: int, first_uid: int) -> int:
        uids = range(first_uid, first_uid + count)
        for pk in upsert_messages([message_row(bare_folder, uid, f"M{uid}") for uid in uids]):
            worked = Conversation.objects.create(mailbox=bare_folder.mailbox, assignee=bob)
            Message.objects.filter(pk=pk).update(conversation=worked)
        PendingChange.objects.all().delete()
        with CaptureQueriesContext(connection) as captured:
            assert mirror_mailbox(bare_folder.mailbox) == count
        return len(captured.captured_queries)

    assert queries_for(3, 1) == queries_for(60, 100)


def test_a_bulk_change_queues_keywords_in_the_same_queries_for_3_or_30_conversations(
    bare_folder, bob
):
    """Conversations as a view loads them, without their assignees: still no query each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.helpers import message_row
    from webmail.keywords import mirror_conversations
    from webmail.sync.store import upsert_messages

    def queries_for(count: int, first_uid: int) -> int:
        uids = range(first_uid, first_uid + count)
        ids = []
        for pk in upsert_messages([message_row(bare_folder, uid, f"M{uid}") for uid in uids]):
            worked = Conversation.objects.create(mailbox=bare_folder.mailbox, assignee=bob)
            Message.objects.filter(pk=pk).update(conversation=worked)
            ids.append(worked.pk)
        conversations = list(Conversation.objects.filter(pk__in=ids))
        with CaptureQueriesContext(connection) as captured:
            assert mirror_conversations(conversations) == count
        return len(captured.captured_queries)

    assert queries_for(3, 1) == queries_for(30, 100)
