"""Folder management written back to the real Dovecot: the screen changes at once, the server
follows, and each case is checked on the server (LIST, LSUB, the messages) afterwards."""

from __future__ import annotations

import imaplib
from datetime import timedelta

import imapclient
import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from tests.conftest import SERVER_KINDS, connect_mailbox, server_account
from tests.helpers import assert_mirrors_server
from webmail import actions, folder_actions
from webmail.folder_actions import FolderRefused
from webmail.models import Change, Folder, Membership, Message, PendingChange, Role
from webmail.sync.mailbox import sync_mailbox
from webmail.sync.writeback import apply_pending

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


@pytest.fixture(params=SERVER_KINDS)
def any_mailbox(request, db, alice, bob, vera):
    """On a Dovecot with CONDSTORE/QRESYNC, on one with CONDSTORE only, on one with neither."""
    account = server_account(request)
    box = connect_mailbox(account, manager=alice)
    Membership.objects.create(user=bob, mailbox=box, role=Role.AGENT)
    Membership.objects.create(user=vera, mailbox=box, role=Role.VIEWER)
    box.account = account
    return box


def apply_now(mailbox):
    PendingChange.objects.filter(mailbox=mailbox).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    return apply_pending(mailbox)


def on_server(account) -> dict[str, bool]:
    """Folder name (as the server spells it) → subscribed, as LIST and LSUB have them now."""
    client = account.client()
    client.folder_encode = False
    try:
        listed = [name.decode() for _, _, name in client.list_folders()]
        subscribed = {name.decode() for _, _, name in client.list_sub_folders()}
    finally:
        client.logout()
    return {name: name in subscribed for name in listed}


def subjects_on_server(account, folder_name: str) -> list[str]:
    client = account.client()
    try:
        client.select_folder(folder_name, readonly=True)
        data = client.fetch("1:*", ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    finally:
        client.logout()
    return sorted(
        v[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip() for v in data.values()
    )


def create_on_server(account, *names: str) -> None:
    client = account.client()
    client.folder_encode = False
    try:
        for name in names:
            client.create_folder(name)
            client.subscribe_folder(name)
    finally:
        client.logout()


def folder(mailbox, name: str) -> Folder:
    return mailbox.folders.get(name=name)


@pytest.fixture
def projects(any_mailbox):
    """Projects (two messages) with a subfolder Acme (one unread message), synced."""
    account = any_mailbox.account
    create_on_server(account, "Projects", "Projects/Acme")
    account.deliver("Kick-off", folder="Projects", flags=[r"\Seen"])
    account.deliver("Budget", folder="Projects", flags=[r"\Seen"])
    account.deliver("Acme contract", folder="Projects/Acme")
    sync_mailbox(any_mailbox)
    return any_mailbox


# -- create -----------------------------------------------------------------------------------


def test_a_new_folder_shows_at_once_and_is_made_and_subscribed_on_the_server(any_mailbox, bob):
    sync_mailbox(any_mailbox)

    top = folder_actions.create(bob, any_mailbox, None, "  Projects ")
    nested = folder_actions.create(bob, any_mailbox, top, "Acme")

    assert (top.name, top.label, top.parent_id) == ("Projects", "Projects", None)
    assert (nested.name, nested.display_name, nested.label) == (
        "Projects/Acme",
        "Projects/Acme",
        "Acme",
    )
    assert nested.parent_id == top.pk
    assert "Projects" not in on_server(any_mailbox.account)  # the screen did not wait

    result = apply_now(any_mailbox)

    assert result.applied == 2 and result.failed == 0
    server = on_server(any_mailbox.account)
    assert server["Projects"] is True and server["Projects/Acme"] is True
    sync_mailbox(any_mailbox)
    assert folder(any_mailbox, "Projects").pk == top.pk
    assert folder(any_mailbox, "Projects/Acme").parent_id == top.pk
    any_mailbox.account.deliver("First", folder="Projects/Acme")
    sync_mailbox(any_mailbox)
    assert_mirrors_server(any_mailbox.account, folder(any_mailbox, "Projects/Acme"))


def test_non_ascii_names_round_trip_through_modified_utf7(any_mailbox, bob):
    sync_mailbox(any_mailbox)
    cafe = folder_actions.create(bob, any_mailbox, None, "Café")
    transfer = folder_actions.create(bob, any_mailbox, cafe, "Überweisung & Co")

    assert transfer.display_name == "Café/Überweisung & Co"
    assert transfer.name == "Caf&AOk-/&ANw-berweisung &- Co"
    apply_now(any_mailbox)

    assert "Caf&AOk-/&ANw-berweisung &- Co" in on_server(any_mailbox.account)
    any_mailbox.account.deliver("Rechnung", folder="Café/Überweisung & Co")
    sync_mailbox(any_mailbox)
    transfer.refresh_from_db()
    assert (transfer.display_name, transfer.label) == ("Café/Überweisung & Co", "Überweisung & Co")
    assert [m.subject for m in transfer.messages.all()] == ["Rechnung"]
    assert Folder.objects.filter(mailbox=any_mailbox, label="Café").count() == 1


def test_names_that_cannot_work_are_refused_with_a_reason_before_anything_happens(mailbox, bob):
    sync_mailbox(mailbox)
    inbox = mailbox.folders.get(special_use="inbox")
    sent = mailbox.folders.get(special_use="sent")
    Folder.objects.filter(pk=sent.pk).update(attributes=["\\Noinferiors", "\\Sent"])
    sent.refresh_from_db()
    cases = {
        "": "Enter a name",
        "   ": "Enter a name",
        "Clients/Acme": "cannot contain “/”",
        "Tab\there": "control characters",
        "All*": "“*”",
        "Archive": "already a folder called “Archive”",
        "inbox": "already a folder called “Inbox”",
        "x" * 201: "at most 200 characters",
    }
    for name, words in cases.items():
        with pytest.raises(FolderRefused) as refused:
            folder_actions.create(bob, mailbox, None, name)
        assert words in str(refused.value), name
    with pytest.raises(FolderRefused, match="cannot hold subfolders") as refused:
        folder_actions.create(bob, mailbox, sent, "Old")
    assert refused.value.field == "parent"
    # A subfolder of INBOX is fine; only a name taken at the same level is not.
    folder_actions.create(bob, mailbox, inbox, "Archive")
    # 200 accented letters are ~540 characters in modified UTF-7: two levels do not fit.
    deep = folder_actions.create(bob, mailbox, None, "é" * 200)
    with pytest.raises(FolderRefused, match="too long"):
        folder_actions.create(bob, mailbox, deep, "é" * 200)
    assert PendingChange.objects.filter(mailbox=mailbox).count() == 2


def test_a_create_the_server_refuses_disappears_with_the_servers_reason(mailbox, bob):
    sync_mailbox(mailbox)
    # Dovecot's Maildir++ layout keeps "." for itself; Kotak cannot know that in advance.
    made = folder_actions.create(bob, mailbox, None, "v1.2")

    result = apply_now(mailbox)

    assert result.failed == 1
    assert not Folder.objects.filter(pk=made.pk).exists()
    failed = PendingChange.objects.get(mailbox=mailbox)
    assert failed.state == PendingChange.State.FAILED and "not allowed" in failed.last_error
    assert Change.objects.filter(kind="folders").exists()
    assert "v1.2" not in on_server(mailbox.account)


# -- rename and move --------------------------------------------------------------------------


def test_rename_shows_at_once_children_follow_and_messages_keep_their_rows(projects, alice):
    acme = folder(projects, "Projects/Acme")
    message_ids = set(Message.objects.filter(mailbox=projects).values_list("pk", flat=True))

    words = folder_actions.rename(alice, folder(projects, "Projects"), "Clients")

    assert words == "Renamed “Projects” to “Clients”."
    renamed = Folder.objects.get(pk=acme.parent_id)
    assert (renamed.name, renamed.label) == ("Clients", "Clients")
    acme.refresh_from_db()
    assert (acme.name, acme.display_name, acme.label) == ("Clients/Acme", "Clients/Acme", "Acme")
    assert "Projects" in on_server(projects.account)

    assert apply_now(projects).applied == 1

    server = on_server(projects.account)
    assert "Projects" not in server and "Projects/Acme" not in server
    # Subscriptions moved with the names, so other mail programs still list them.
    assert server["Clients"] is True and server["Clients/Acme"] is True
    assert subjects_on_server(projects.account, "Clients") == ["Budget", "Kick-off"]
    sync_mailbox(projects)
    assert Folder.objects.get(pk=renamed.pk).name == "Clients"
    assert Folder.objects.get(pk=acme.pk).name == "Clients/Acme"
    after = set(Message.objects.filter(mailbox=projects).values_list("pk", flat=True))
    assert after == message_ids, "messages were downloaded again instead of kept"
    for name in ("Clients", "Clients/Acme"):
        assert_mirrors_server(projects.account, folder(projects, name))


def test_move_under_another_parent_and_back_to_the_top(projects, alice):
    create_on_server(projects.account, "Clients")
    sync_mailbox(projects)
    acme = folder(projects, "Projects/Acme")
    clients = folder(projects, "Clients")

    assert folder_actions.move(alice, acme, clients) == "Moved “Acme” to “Clients”."
    acme.refresh_from_db()
    assert (acme.name, acme.parent_id) == ("Clients/Acme", clients.pk)
    apply_now(projects)
    assert "Clients/Acme" in on_server(projects.account)
    assert subjects_on_server(projects.account, "Clients/Acme") == ["Acme contract"]

    folder_actions.move(alice, acme, None)
    acme.refresh_from_db()
    assert (acme.name, acme.parent_id, acme.display_name) == ("Acme", None, "Acme")
    apply_now(projects)
    server = on_server(projects.account)
    assert "Acme" in server and "Clients/Acme" not in server
    sync_mailbox(projects)
    assert folder(projects, "Acme").pk == acme.pk
    assert_mirrors_server(projects.account, folder(projects, "Acme"))


def test_moving_into_itself_or_its_own_subfolder_or_onto_a_taken_name_is_refused(projects, alice):
    parent = folder(projects, "Projects")
    child = folder(projects, "Projects/Acme")
    with pytest.raises(FolderRefused, match="into itself or one of its own subfolders"):
        folder_actions.move(alice, parent, child)
    with pytest.raises(FolderRefused, match="into itself"):
        folder_actions.move(alice, parent, parent)
    with pytest.raises(FolderRefused, match="already there"):
        folder_actions.move(alice, child, parent)
    with pytest.raises(FolderRefused, match="already a folder called “Archive”"):
        folder_actions.rename(alice, parent, "Archive")
    assert not PendingChange.objects.filter(mailbox=projects).exists()
    assert folder(projects, "Projects/Acme").pk == child.pk


def test_special_folders_and_the_inbox_cannot_be_renamed_moved_or_deleted(projects, alice):
    parent = folder(projects, "Projects")
    for role in ("inbox", "sent", "drafts", "trash", "junk", "archive"):
        special = projects.folders.get(special_use=role)
        with pytest.raises(FolderRefused, match="cannot be deleted"):
            folder_actions.delete(alice, special)
        with pytest.raises(FolderRefused, match="cannot be renamed"):
            folder_actions.rename(alice, special, "Something else")
        with pytest.raises(FolderRefused, match="cannot be moved"):
            folder_actions.move(alice, special, parent)
        assert projects.folders.filter(pk=special.pk, name=special.name).exists()
    assert not PendingChange.objects.filter(mailbox=projects).exists()
    assert "Sent" in on_server(projects.account)


def test_a_rename_refused_by_the_server_puts_the_old_names_back_with_the_reason(projects, alice):
    parent = folder(projects, "Projects")
    folder_actions.rename(alice, parent, "Clients")
    # Another mail program takes the name before Kotak's RENAME reaches the server.
    create_on_server(projects.account, "Clients")
    sync_mailbox(projects)  # until the server says no, the user's folder keeps the name
    assert Folder.objects.get(pk=parent.pk).name == "Clients"
    assert Folder.objects.get(pk=parent.pk).messages.count() == 2

    result = apply_now(projects)

    assert result.failed == 1
    parent.refresh_from_db()
    assert (parent.name, parent.label) == ("Projects", "Projects")
    assert folder(projects, "Projects/Acme").parent_id == parent.pk
    failed = PendingChange.objects.get(mailbox=projects)
    assert failed.state == PendingChange.State.FAILED
    assert "exists" in failed.last_error
    change = Change.objects.filter(kind="action_failed").get()
    assert "exists" in change.data["reason"]
    server = on_server(projects.account)
    assert "Projects" in server and "Projects/Acme" in server
    assert subjects_on_server(projects.account, "Projects") == ["Budget", "Kick-off"]
    sync_mailbox(projects)
    assert folder(projects, "Projects").pk == parent.pk
    assert projects.folders.filter(name="Clients").exists()


# -- what happens between the click and the server -------------------------------------------


def test_a_sync_before_the_write_keeps_what_the_user_sees(projects, alice, bob):
    parent = folder(projects, "Projects")
    acme = folder(projects, "Projects/Acme")
    messages = set(Message.objects.filter(mailbox=projects).values_list("pk", flat=True))
    folder_actions.subscribe(bob, acme, False)
    folder_actions.rename(alice, parent, "Clients")
    folder_actions.create(bob, projects, None, "Leads")
    create_on_server(projects.account, "Old")
    sync_mailbox(projects)
    folder_actions.delete(alice, folder(projects, "Old"))

    sync_mailbox(projects)  # the server has none of these yet

    assert Folder.objects.get(pk=parent.pk).name == "Clients"
    assert Folder.objects.get(pk=acme.pk).name == "Clients/Acme"
    assert not projects.folders.filter(name__startswith="Projects").exists()
    assert projects.folders.filter(name="Leads").exists()
    assert not Folder.objects.get(pk=acme.pk).is_subscribed
    assert not projects.folders.filter(name="Old").exists()
    after = set(Message.objects.filter(mailbox=projects).values_list("pk", flat=True))
    assert after == messages
    assert not projects.folders.filter(sync_state=Folder.SyncState.ERROR).exists()

    result = apply_now(projects)

    assert result.failed == 0 and result.applied == 4
    server = on_server(projects.account)
    assert {"Clients", "Clients/Acme", "Leads"} <= set(server)
    assert "Old" not in server and "Projects" not in server
    assert server["Clients"] is True and server["Clients/Acme"] is False
    sync_mailbox(projects)
    assert Folder.objects.get(pk=acme.pk).name == "Clients/Acme"
    assert set(Message.objects.filter(mailbox=projects).values_list("pk", flat=True)) == messages


def test_changes_made_around_a_rename_reach_the_right_folder(projects, alice, bob):
    """A flag set before a rename and a folder made inside the renamed one after it are
    applied in click order, each under the name the server has at that moment."""
    message = folder(projects, "Projects/Acme").messages.get()
    actions.set_flag(bob, [message], "\\Flagged", True)
    folder_actions.rename(alice, folder(projects, "Projects"), "Clients")
    folder_actions.create(bob, projects, folder(projects, "Clients"), "Leads")
    folder_actions.subscribe(bob, folder(projects, "Clients/Acme"), False)

    result = apply_now(projects)

    assert result.failed == 0 and result.applied == 4
    server = on_server(projects.account)
    assert server["Clients/Leads"] is True and server["Clients/Acme"] is False
    sync_mailbox(projects)
    assert_mirrors_server(projects.account, folder(projects, "Clients/Acme"))
    assert Message.objects.get(pk=message.pk).is_flagged


# -- delete -----------------------------------------------------------------------------------


def test_delete_takes_the_subfolders_and_their_messages_off_the_server(projects, alice):
    parent = folder(projects, "Projects")
    summary = folder_actions.deletion(parent)
    assert (summary.subfolders, summary.messages) == (1, 3)

    words = folder_actions.delete(alice, parent)

    assert words == "Deleted “Projects” and 1 subfolder."
    assert not projects.folders.filter(name__startswith="Projects").exists()
    assert not Message.objects.filter(subject__in=["Budget", "Acme contract"]).exists()
    assert "Projects" in on_server(projects.account)

    assert apply_now(projects).applied == 1

    server = on_server(projects.account)
    assert "Projects" not in server and "Projects/Acme" not in server
    assert not [name for name in on_server(projects.account) if name.startswith("Projects")]
    sync_mailbox(projects)
    assert not projects.folders.filter(name__startswith="Projects").exists()


def test_a_refused_delete_brings_the_folders_back(projects, alice, monkeypatch):
    def refuse(self, name):
        raise imaplib.IMAP4.error("delete failed: [NOPERM] Permission denied")

    monkeypatch.setattr(imapclient.IMAPClient, "delete_folder", refuse)
    folder_actions.delete(alice, folder(projects, "Projects/Acme"))

    result = apply_now(projects)

    assert result.failed == 1
    back = folder(projects, "Projects/Acme")
    assert back.parent_id == folder(projects, "Projects").pk
    assert (back.label, back.total_count, back.unread_count) == ("Acme", 1, 1)
    failed = PendingChange.objects.get(mailbox=projects)
    assert failed.last_error == "[NOPERM] Permission denied"
    monkeypatch.undo()
    sync_mailbox(projects)  # the messages come back with the folder's sync
    assert [m.subject for m in folder(projects, "Projects/Acme").messages.all()] == [
        "Acme contract"
    ]


def test_a_folder_with_messages_on_their_way_out_waits(projects, alice, bob):
    parent = folder(projects, "Projects")
    kept = parent.messages.get(subject="Budget")
    actions.move(bob, [kept], projects.folders.get(special_use="inbox"))
    with pytest.raises(FolderRefused, match="on their way out"):
        folder_actions.delete(alice, parent)
    assert projects.folders.filter(pk=parent.pk).exists()


# -- subscriptions ----------------------------------------------------------------------------


def test_unsubscribe_and_subscribe_reach_lsub(projects, bob):
    acme = folder(projects, "Projects/Acme")

    assert folder_actions.subscribe(bob, acme, False) == "Unsubscribed from “Acme”."
    assert not Folder.objects.get(pk=acme.pk).is_subscribed
    apply_now(projects)
    assert on_server(projects.account)["Projects/Acme"] is False
    sync_mailbox(projects)
    assert not Folder.objects.get(pk=acme.pk).is_subscribed

    folder_actions.subscribe(bob, Folder.objects.get(pk=acme.pk), True)
    apply_now(projects)
    assert on_server(projects.account)["Projects/Acme"] is True
    with pytest.raises(FolderRefused, match="always subscribed"):
        folder_actions.subscribe(bob, projects.folders.get(special_use="inbox"), False)


# -- who may ----------------------------------------------------------------------------------


def test_managers_reorganise_agents_create_and_subscribe_viewers_nothing(projects, bob, vera):
    parent = folder(projects, "Projects")
    for attempt in (
        lambda: folder_actions.rename(bob, parent, "Mine"),
        lambda: folder_actions.move(bob, folder(projects, "Projects/Acme"), None),
        lambda: folder_actions.delete(bob, parent),
        lambda: folder_actions.create(vera, projects, None, "Mine"),
        lambda: folder_actions.subscribe(vera, parent, False),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    assert not PendingChange.objects.filter(mailbox=projects).exists()
    folder_actions.create(bob, projects, parent, "Bob's")
    folder_actions.subscribe(bob, parent, False)
    assert PendingChange.objects.filter(mailbox=projects).count() == 2
