"""A server whose folders live under "INBOX." with "." between levels and no SPECIAL-USE, as
Courier and Cyrus lay them out by default: the real Dovecot, configured so."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.conftest import IMAP_POOL, ImapAccount, connect_mailbox
from tests.dovecot import Dovecot, dovecot_dir
from tests.helpers import assert_mirrors_server
from tests.sync.test_folder_actions import apply_now, create_on_server, on_server
from webmail import actions, folder_actions
from webmail.models import Membership, Role
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

CAPABILITIES = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ MOVE UIDPLUS NAMESPACE"
USERS = IMAP_POOL[:40]


@pytest.fixture(scope="module", params=["NAMESPACE", "no NAMESPACE"])
def dotted_dovecot(request):
    """With NAMESPACE the server names its "INBOX." prefix; without it Kotak infers it."""
    users = {name: f"pw-{name}" for name in USERS}
    capabilities = (
        CAPABILITIES if request.param == "NAMESPACE" else CAPABILITIES.replace(" NAMESPACE", "")
    )
    with (
        dovecot_dir("dovecot-dotted") as path,
        Dovecot.start(
            path, users=users, capabilities=capabilities, special_folders=False, dotted=True
        ) as server,
    ):
        yield server


# A fresh account for each test: 40 is more than the tests of this module on one server.
_next = iter(USERS)


@pytest.fixture
def dotted(db, dotted_dovecot, alice, bob):
    name = next(_next)
    account = ImapAccount(dotted_dovecot, name, dotted_dovecot.users[name], f"{name}@example.com")
    create_on_server(account, "INBOX.Sent", "INBOX.Trash", "INBOX.Drafts", "INBOX.Projects",
                     "INBOX.Projects.Acme")  # fmt: skip
    box = connect_mailbox(account, manager=alice)
    Membership.objects.create(user=bob, mailbox=box, role=Role.AGENT)
    box.account = account
    return box


def tree(mailbox) -> dict[str, tuple]:
    return {
        f.name: (f.label, f.parent.name if f.parent else None, f.special_use, f.delimiter)
        for f in mailbox.folders.select_related("parent")
    }


def subjects(folder) -> list[str]:
    return sorted(folder.messages.values_list("subject", flat=True))


def test_folders_under_inbox_dot_form_a_tree_and_their_roles_are_known_by_name(dotted):
    dotted.account.deliver("Kick-off", folder="INBOX.Projects.Acme")
    dotted.account.deliver("Hello", flags=[r"\Seen"])
    dotted.account.deliver("Draft reply", folder="INBOX.Drafts", flags=[r"\Draft"])

    sync_mailbox(dotted)

    # Beside the Inbox, not inside it, as Roundcube and Thunderbird show them.
    assert tree(dotted) == {
        "INBOX": ("Inbox", None, "inbox", "."),
        "INBOX.Sent": ("Sent", None, "sent", "."),
        "INBOX.Trash": ("Trash", None, "trash", "."),
        "INBOX.Drafts": ("Drafts", None, "drafts", "."),
        "INBOX.Projects": ("Projects", None, "", "."),
        "INBOX.Projects.Acme": ("Acme", "INBOX.Projects", "", "."),
    }
    names = dict(dotted.folders.values_list("name", "display_name"))
    assert names["INBOX.Projects.Acme"] == "Projects.Acme"
    assert names["INBOX.Sent"] == "Sent"
    dotted.refresh_from_db()
    assert dotted.folder_prefix == "INBOX."
    for folder in dotted.folders.all():
        assert_mirrors_server(dotted.account, folder)
    assert subjects(dotted.folders.get(name="INBOX.Projects.Acme")) == ["Kick-off"]


def test_new_folders_go_inside_the_namespace_and_are_renamed_moved_and_deleted_there(dotted, alice):
    sync_mailbox(dotted)
    invoices = folder_actions.create(alice, dotted, None, "Invoices")
    year = folder_actions.create(alice, dotted, invoices, "2026")
    assert (invoices.name, year.name) == ("INBOX.Invoices", "INBOX.Invoices.2026")
    apply_now(dotted)
    assert {"INBOX.Invoices", "INBOX.Invoices.2026"} <= set(on_server(dotted.account))

    dotted.account.deliver("March invoice", folder="INBOX.Invoices.2026")
    sync_mailbox(dotted)
    folder_actions.rename(alice, dotted.folders.get(name="INBOX.Invoices"), "Billing")
    apply_now(dotted)
    sync_mailbox(dotted)
    names = set(on_server(dotted.account))
    assert {"INBOX.Billing", "INBOX.Billing.2026"} <= names
    assert not {"INBOX.Invoices", "INBOX.Invoices.2026"} & names
    moved = dotted.folders.get(name="INBOX.Billing.2026")
    assert subjects(moved) == ["March invoice"]
    assert_mirrors_server(dotted.account, moved)

    folder_actions.move(alice, moved, None)  # to the top level: still inside "INBOX."
    apply_now(dotted)
    sync_mailbox(dotted)
    assert "INBOX.2026" in on_server(dotted.account)
    assert subjects(dotted.folders.get(name="INBOX.2026")) == ["March invoice"]

    folder_actions.delete(alice, dotted.folders.get(name="INBOX.Projects"))
    apply_now(dotted)
    sync_mailbox(dotted)
    names = set(on_server(dotted.account))
    assert not {"INBOX.Projects", "INBOX.Projects.Acme"} & names
    assert not dotted.folders.filter(name__startswith="INBOX.Projects").exists()


def test_messages_deleted_archived_and_moved_land_in_the_right_folders(dotted, bob):
    for subject in ("Refund", "Invoice", "Spam offer"):
        dotted.account.deliver(subject)
    sync_mailbox(dotted)
    inbox = dotted.folders.get(name="INBOX")
    by_subject = {m.subject: m for m in inbox.messages.all()}

    actions.delete(bob, dotted, [by_subject["Spam offer"]])
    actions.archive(bob, dotted, [by_subject["Invoice"]])
    actions.move(bob, [by_subject["Refund"]], dotted.folders.get(name="INBOX.Projects.Acme"))
    apply_now(dotted)
    sync_mailbox(dotted)

    assert "INBOX.Archive" in on_server(dotted.account)
    expected = {
        "INBOX": [],
        "INBOX.Trash": ["Spam offer"],
        "INBOX.Archive": ["Invoice"],
        "INBOX.Projects.Acme": ["Refund"],
    }
    for name, wanted in expected.items():
        folder = dotted.folders.get(name=name)
        assert subjects(folder) == wanted, name
        assert_mirrors_server(dotted.account, folder)
    archive = dotted.folders.get(name="INBOX.Archive")
    assert (archive.parent, archive.display_name) == (None, "Archive")


def test_changes_by_another_client_show_up_and_a_move_keeps_the_conversation(dotted):
    dotted.account.deliver("Where is my parcel?")
    dotted.account.deliver("Thanks")
    sync_mailbox(dotted)
    parcel = dotted.messages.get(subject="Where is my parcel?")
    conversation = parcel.conversation_id

    client = dotted.account.client()
    try:
        client.select_folder("INBOX")
        client.add_flags([parcel.uid], [r"\Flagged"])
        client.move([parcel.uid], "INBOX.Projects.Acme")
        client.create_folder("INBOX.Projects.Beta")
    finally:
        client.logout()
    sync_mailbox(dotted)

    acme = dotted.folders.get(name="INBOX.Projects.Acme")
    moved = acme.messages.get()
    assert moved.conversation_id == conversation and moved.is_flagged
    assert tree(dotted)["INBOX.Projects.Beta"] == ("Beta", "INBOX.Projects", "", ".")
    for folder in (acme, dotted.folders.get(name="INBOX")):
        assert_mirrors_server(dotted.account, folder)


def test_the_folder_list_puts_the_roles_first_and_nests_only_real_subfolders(dotted, bob, client):
    sync_mailbox(dotted)
    client.force_login(bob)
    page = client.get(reverse("folder_tree", args=[dotted.pk])).content.decode()
    shown = re.findall(
        r'<li class="depth-(\d)[^"]*">\s*(?:<a[^>]*>\s*)?<span class="label[^"]*">([^<]*)<', page
    )
    assert [(int(depth), label) for depth, label in shown] == [
        (0, "Inbox"),
        (0, "Drafts"),
        (0, "Sent"),
        (0, "Trash"),
        (0, "Projects"),
        (1, "Acme"),
    ]
