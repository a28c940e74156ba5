"""Users' actions written back to the real Dovecot: local state at once, the server after, and
each case checked on the server and against the database afterwards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import SERVER_KINDS, ImapAccount, connect_mailbox, server_account
from tests.dovecot import Dovecot, dovecot_dir
from tests.helpers import assert_mirrors_server, server_state
from webmail import actions
from webmail.models import Change, Folder, Message, PendingChange
from webmail.sync.mailbox import sync_mailbox
from webmail.sync.writeback import apply_pending

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


def folder(mailbox, role: str = "inbox", name: str | None = None) -> Folder:
    if name:
        return mailbox.folders.get(name=name)
    return mailbox.folders.get(special_use=role)


def make_due(mailbox) -> None:
    """As if the undo window had passed."""
    PendingChange.objects.filter(mailbox=mailbox).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def apply_now(mailbox):
    make_due(mailbox)
    return apply_pending(mailbox)


def synced_messages(mailbox, *subjects: str, folder_name: str = "INBOX", **kwargs) -> list:
    for subject in subjects:
        mailbox.account.deliver(subject, folder=folder_name, **kwargs)
    sync_mailbox(mailbox)
    return list(folder(mailbox, name=folder_name).messages.order_by("uid"))


def uids_on_server(account: ImapAccount, folder_name: str) -> dict[int, str]:
    client = account.client()
    try:
        client.select_folder(folder_name, readonly=True)
        data = client.fetch("1:*", ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    finally:
        client.logout()
    return {
        uid: v[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
        for uid, v in data.items()
    }


@pytest.fixture(params=SERVER_KINDS)
def any_mailbox(request, db, alice, bob):
    """On a Dovecot with CONDSTORE/QRESYNC, on one with CONDSTORE only, on one with neither."""
    from webmail.models import Membership, Role

    account = server_account(request)
    box = connect_mailbox(account, manager=alice)
    Membership.objects.create(user=bob, mailbox=box, role=Role.AGENT)
    box.account = account
    return box


def test_marking_read_shows_at_once_and_reaches_the_server(any_mailbox, bob):
    first, second = synced_messages(any_mailbox, "Question", "Another")
    inbox = folder(any_mailbox)
    assert inbox.unread_count == 2

    outcome = actions.set_flag(bob, [first], "\\Seen", True)

    first.refresh_from_db()
    inbox.refresh_from_db()
    assert first.is_seen and inbox.unread_count == 1  # before the server heard anything
    assert outcome.description == "Marked 1 message as read"
    assert not server_state(any_mailbox.account, "INBOX")[first.uid]["is_seen"]
    result = apply_pending(any_mailbox)
    assert result.applied == 1
    assert server_state(any_mailbox.account, "INBOX")[first.uid]["is_seen"]
    assert not PendingChange.objects.exists()
    sync_mailbox(any_mailbox)
    assert_mirrors_server(any_mailbox.account, inbox)


def test_flag_unflag_and_mark_unread_in_bulk(any_mailbox, bob):
    messages = synced_messages(any_mailbox, "One", "Two", "Three", flags=[r"\Seen"])
    actions.set_flag(bob, messages, "\\Flagged", True)
    actions.set_flag(bob, messages[:2], "\\Seen", False)
    actions.set_flag(bob, messages[:1], "\\Flagged", False)
    apply_pending(any_mailbox)
    state = server_state(any_mailbox.account, "INBOX")
    one, two, three = (state[m.uid] for m in messages)
    assert (one["is_flagged"], one["is_seen"]) == (False, False)
    assert (two["is_flagged"], two["is_seen"]) == (True, False)
    assert (three["is_flagged"], three["is_seen"]) == (True, True)
    sync_mailbox(any_mailbox)
    assert_mirrors_server(any_mailbox.account, folder(any_mailbox))


def test_a_sync_before_the_write_does_not_undo_the_users_click(any_mailbox, bob):
    (message,) = synced_messages(any_mailbox, "Question")
    actions.set_flag(bob, [message], "\\Flagged", True)
    # Another client changes a different flag; the sync sees the server without our flag yet.
    client = any_mailbox.account.client()
    client.select_folder("INBOX")
    client.add_flags([message.uid], [r"\Seen"])
    client.logout()
    sync_mailbox(any_mailbox)
    message.refresh_from_db()
    assert message.is_flagged, "the pending click was overwritten by older server state"
    assert message.is_seen, "the other client's change was not picked up"
    apply_pending(any_mailbox)
    state = server_state(any_mailbox.account, "INBOX")[message.uid]
    assert state["is_flagged"] and state["is_seen"]


def test_a_change_made_elsewhere_since_the_user_looked_is_kept(mailbox, bob):
    """UNCHANGEDSINCE: the server reports the conflict; both changes end up on the server."""
    (message,) = synced_messages(mailbox, "Question")
    actions.set_flag(bob, [message], "\\Seen", True)
    client = mailbox.account.client()
    client.select_folder("INBOX")
    client.add_flags([message.uid], [r"\Flagged", "$Important"])
    client.logout()
    apply_pending(mailbox)
    state = server_state(mailbox.account, "INBOX")[message.uid]
    assert state["is_seen"] and state["is_flagged"] and state["keywords"] == ["$Important"]


def test_move_keeps_the_message_row_and_its_conversation(any_mailbox, bob):
    first, second = synced_messages(any_mailbox, "Order 1", "Order 2")
    target = folder(any_mailbox, name="Archive")
    conversation = first.conversation_id

    outcome = actions.move(bob, [first], target)

    assert outcome.undo_until is not None
    inbox = folder(any_mailbox)
    assert list(inbox.messages.filter(pending_removal=False)) == [second]
    assert inbox.total_count == 1
    assert apply_pending(any_mailbox).applied == 0, "applied inside the undo window"
    apply_now(any_mailbox)

    moved = Message.objects.get(pk=first.pk)  # same row, so its body and team data stay
    assert moved.folder_id == target.pk and not moved.pending_removal
    assert moved.conversation_id == conversation
    assert set(uids_on_server(any_mailbox.account, "Archive").values()) == {"Order 1"}
    assert set(uids_on_server(any_mailbox.account, "INBOX").values()) == {"Order 2"}
    sync_mailbox(any_mailbox)
    assert Message.objects.filter(subject="Order 1").count() == 1
    assert Message.objects.get(subject="Order 1").pk == first.pk
    assert_mirrors_server(any_mailbox.account, inbox)
    assert_mirrors_server(any_mailbox.account, folder(any_mailbox, name="Archive"))


def test_undo_within_the_window_leaves_the_server_untouched(mailbox, bob):
    (message,) = synced_messages(mailbox, "Keep me")
    outcome = actions.delete(bob, mailbox, [message])
    assert Message.objects.get(pk=message.pk).pending_removal

    assert actions.undo(bob, mailbox, outcome.batch) == 1

    message.refresh_from_db()
    assert not message.pending_removal
    assert folder(mailbox).total_count == 1
    apply_now(mailbox)
    assert set(uids_on_server(mailbox.account, "INBOX").values()) == {"Keep me"}
    assert uids_on_server(mailbox.account, "Trash") == {}
    assert Change.objects.filter(kind="messages_restored").exists()


def test_undo_is_refused_once_a_worker_has_the_change(mailbox, bob):
    (message,) = synced_messages(mailbox, "Going")
    outcome = actions.archive(bob, mailbox, [message])
    apply_now(mailbox)
    assert actions.undo(bob, mailbox, outcome.batch) == 0
    assert set(uids_on_server(mailbox.account, "Archive").values()) == {"Going"}


def test_delete_moves_to_trash_and_delete_in_trash_is_final(any_mailbox, bob):
    (message,) = synced_messages(any_mailbox, "Spam-ish")
    actions.delete(bob, any_mailbox, [message])
    apply_now(any_mailbox)
    assert set(uids_on_server(any_mailbox.account, "Trash").values()) == {"Spam-ish"}
    sync_mailbox(any_mailbox)
    (in_trash,) = folder(any_mailbox, "trash").messages.all()

    outcome = actions.delete(bob, any_mailbox, [in_trash])
    assert "permanently" in outcome.description
    apply_now(any_mailbox)
    assert uids_on_server(any_mailbox.account, "Trash") == {}
    assert not Message.objects.filter(subject="Spam-ish").exists()
    sync_mailbox(any_mailbox)
    assert_mirrors_server(any_mailbox.account, folder(any_mailbox, "trash"))


def test_spam_and_not_spam(mailbox, bob):
    (message,) = synced_messages(mailbox, "Cheap pills")
    actions.mark_spam(bob, mailbox, [message])
    apply_now(mailbox)
    assert set(uids_on_server(mailbox.account, "Junk").values()) == {"Cheap pills"}
    message = Message.objects.get(pk=message.pk)
    actions.mark_not_spam(bob, mailbox, [message])
    apply_now(mailbox)
    assert set(uids_on_server(mailbox.account, "INBOX").values()) == {"Cheap pills"}
    assert Message.objects.get(pk=message.pk).folder.special_use == "inbox"


def test_a_refused_move_is_put_back_with_the_servers_reason(mailbox, bob):
    synced_messages(mailbox, "Hello", folder_name="Projects")
    (message,) = synced_messages(mailbox, "Move me")
    projects = folder(mailbox, name="Projects")
    actions.move(bob, [message], projects)
    # Another client deletes the target folder before the move reaches the server.
    client = mailbox.account.client()
    client.delete_folder("Projects")
    client.logout()

    result = apply_now(mailbox)

    assert result.failed == 1
    message.refresh_from_db()
    assert not message.pending_removal and message.folder.special_use == "inbox"
    failed = PendingChange.objects.get()
    assert failed.state == PendingChange.State.FAILED
    assert "exist" in failed.last_error
    change = Change.objects.filter(kind="action_failed").get()
    assert change.message_ids == [message.pk] and "exist" in change.data["reason"]
    assert set(uids_on_server(mailbox.account, "INBOX").values()) == {"Move me"}


def test_an_unreachable_server_keeps_the_change_and_retries_later(mailbox, bob):
    (message,) = synced_messages(mailbox, "Later")
    actions.set_flag(bob, [message], "\\Flagged", True)
    mailbox.imap_port = 1  # nothing listens there
    mailbox.save(update_fields=["imap_port"])

    result = apply_pending(mailbox)

    assert result.retrying == 1 and result.applied == 0
    change = PendingChange.objects.get()
    assert change.state == PendingChange.State.PENDING and change.attempts == 1
    assert change.next_attempt_at > timezone.now() and change.last_error
    message.refresh_from_db()
    assert message.is_flagged  # the user's view stays as they left it
    mailbox.imap_port = mailbox.account.server.imaps_port
    mailbox.save(update_fields=["imap_port"])
    apply_now(mailbox)
    assert server_state(mailbox.account, "INBOX")[message.uid]["is_flagged"]
    assert not PendingChange.objects.exists()


def test_a_move_is_applied_once_when_a_worker_died_after_sending_it(mailbox, bob):
    """The worker sent MOVE and was killed before it could record that: the retry must not
    move anything twice nor lose the message."""
    messages = synced_messages(mailbox, "A", "B", "C")
    actions.archive(bob, mailbox, messages[:2])
    make_due(mailbox)
    # What the dead worker did: claimed the rows, moved on the server, committed nothing.
    PendingChange.objects.update(claimed_by="dead-worker", next_attempt_at=timezone.now())
    client = mailbox.account.client()
    client.select_folder("INBOX")
    client.move([messages[0].uid, messages[1].uid], "Archive")
    client.logout()

    apply_now(mailbox)  # the lease ran out: another worker takes over

    assert not PendingChange.objects.exists()
    sync_mailbox(mailbox)
    assert sorted(uids_on_server(mailbox.account, "Archive").values()) == ["A", "B"]
    assert sorted(uids_on_server(mailbox.account, "INBOX").values()) == ["C"]
    assert Message.objects.filter(subject__in=["A", "B"]).count() == 2
    for name in ("INBOX", "Archive"):
        assert_mirrors_server(mailbox.account, folder(mailbox, name=name))


@pytest.fixture(scope="module")
def bare_dovecot():
    """A server with no Archive, Trash or Junk, advertising neither MOVE nor CONDSTORE."""
    users = {f"bare{n}": f"pw-bare{n}" for n in range(10)}
    with (
        dovecot_dir("dovecot-bare") as path,
        Dovecot.start(
            path,
            users=users,
            special_folders=False,
            capabilities="IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS",
        ) as server,
    ):
        yield server


_bare_users = iter(range(10))


@pytest.fixture
def bare_mailbox(db, bare_dovecot, alice):
    name = f"bare{next(_bare_users)}"
    account = ImapAccount(bare_dovecot, name, bare_dovecot.users[name], f"{name}@example.com")
    box = connect_mailbox(account, manager=alice)
    box.account = account
    return box


def test_archive_creates_the_folder_and_moves_with_copy_where_there_is_no_move(bare_mailbox, alice):
    first, second = synced_messages(bare_mailbox, "Old case", "Open case")
    assert not bare_mailbox.folders.filter(special_use="archive").exists()

    actions.archive(alice, bare_mailbox, [first])
    assert bare_mailbox.folders.filter(name="Archive").exists()  # shown at once
    apply_now(bare_mailbox)

    client = bare_mailbox.account.client()
    assert "Archive" in [name for _, _, name in client.list_folders()]
    client.logout()
    assert set(uids_on_server(bare_mailbox.account, "Archive").values()) == {"Old case"}
    assert set(uids_on_server(bare_mailbox.account, "INBOX").values()) == {"Open case"}
    sync_mailbox(bare_mailbox)
    # A folder never synced gives no UID to point the row at: the sync brings the message in.
    assert Message.objects.get(subject="Old case").folder.name == "Archive"
    for name in ("INBOX", "Archive"):
        assert_mirrors_server(bare_mailbox.account, folder(bare_mailbox, name=name))

    # The next archive goes to the same folder, not a second one.
    actions.archive(alice, bare_mailbox, [Message.objects.get(subject="Open case")])
    apply_now(bare_mailbox)
    assert sorted(uids_on_server(bare_mailbox.account, "Archive").values()) == [
        "Old case",
        "Open case",
    ]


def test_viewers_may_not_act(mailbox, vera, bob):
    assert not actions.can_act(vera, mailbox)
    assert actions.can_act(bob, mailbox)


def test_a_message_that_vanished_meanwhile_is_simply_dropped(mailbox, bob):
    (message,) = synced_messages(mailbox, "Gone soon")
    actions.set_flag(bob, [message], "\\Flagged", True)
    client = mailbox.account.client()
    client.select_folder("INBOX")
    client.delete_messages([message.uid])
    client.expunge()
    client.logout()
    sync_mailbox(mailbox)
    result = apply_pending(mailbox)
    assert result.failed == 0
    assert not PendingChange.objects.exists()


def test_a_click_while_the_broker_is_down_is_applied_by_the_sweeper(mailbox, bob, monkeypatch):
    from kombu.exceptions import OperationalError

    from webmail.sync import tasks

    (message,) = synced_messages(mailbox, "Broker down")

    def broker_down(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(tasks.apply_changes, "apply_async", broker_down)
        actions.set_flag(bob, [message], "\\Flagged", True)  # the click itself succeeds

    assert PendingChange.objects.filter(message=message).exists()
    assert not server_state(mailbox.account, "INBOX")[message.uid]["is_flagged"]
    tasks.apply_due_changes()  # beat's sweeper, once the broker is back
    assert server_state(mailbox.account, "INBOX")[message.uid]["is_flagged"]
    assert not PendingChange.objects.exists()


def test_moves_and_deletes_are_in_the_conversations_history(mailbox, bob):
    from webmail.models import Activity

    first, second = synced_messages(mailbox, "Keep history", "Delete history")
    actions.archive(bob, mailbox, [first])
    actions.delete(bob, mailbox, [second])
    archived = Activity.objects.get(conversation_id=first.conversation_id)
    assert archived.actor == bob and archived.verb == "archived"
    assert archived.data["to"] == "Archive" and archived.data["subject"] == "Keep history"
    deleted = Activity.objects.get(conversation_id=second.conversation_id)
    assert deleted.verb == "deleted" and deleted.data["from"] == "Inbox"
