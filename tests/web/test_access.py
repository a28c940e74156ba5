"""Who may see what: members see their mailboxes, everyone else gets 404 or the login page."""

import pytest
from django.urls import reverse

from webmail.models import Mailbox
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


@pytest.fixture
def synced(mailbox):
    mailbox.account.deliver("Private customer data")
    sync_mailbox(mailbox)
    return mailbox


def mailbox_urls(box: Mailbox) -> list[str]:
    folder = box.folders.get(special_use="inbox")
    message = folder.messages.get()
    return [
        reverse("mailbox", args=[box.pk]),
        reverse("mailbox_status", args=[box.pk]),
        reverse("folder", args=[box.pk, folder.pk]),
        reverse("message", args=[box.pk, message.pk]),
        reverse("folder_tree", args=[box.pk]),
        reverse("message_presence", args=[box.pk, message.pk]),
    ]


def test_an_outsider_gets_404_on_every_mailbox_folder_and_message_url(client, synced, charlie):
    client.force_login(charlie)
    for url in mailbox_urls(synced):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"Private customer data" not in response.content


def test_an_outsider_does_not_see_the_mailbox_on_the_home_page(client, synced, charlie):
    client.force_login(charlie)
    response = client.get(reverse("home"))
    assert synced.email not in response.content.decode()
    assert "No mailbox shared with you yet" in response.content.decode()


def test_ids_from_another_mailbox_are_not_accepted(client, synced, charlie, dovecot, db):
    """A member of mailbox B cannot read mailbox A's folder by putting B's id in the URL."""
    from tests.conftest import _account, connect_mailbox

    other = connect_mailbox(_account(dovecot), manager=charlie, name="Billing")
    sync_mailbox(other)
    folder = synced.folders.get(special_use="inbox")
    message = folder.messages.get()
    client.force_login(charlie)
    assert client.get(reverse("folder", args=[other.pk, folder.pk])).status_code == 404
    assert client.get(reverse("message", args=[other.pk, message.pk])).status_code == 404


@pytest.mark.parametrize("persona", ["alice", "bob", "vera"])
def test_every_member_can_read(client, synced, persona, request):
    client.force_login(request.getfixturevalue(persona))
    for url in mailbox_urls(synced):
        assert client.get(url, follow=True).status_code == 200, url


def test_anonymous_users_are_sent_to_login(client, synced):
    for url in [reverse("home"), reverse("add_mailbox"), *mailbox_urls(synced)]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next=")


def test_only_administrators_and_managers_may_add_mailboxes(client, synced, bob, charlie, alice):
    client.force_login(charlie)
    assert client.get(reverse("add_mailbox")).status_code == 404
    client.force_login(bob)
    assert client.get(reverse("add_mailbox")).status_code == 404
    client.force_login(alice)
    assert client.get(reverse("add_mailbox")).status_code == 200


def test_logging_out_needs_a_post(client, alice):
    client.force_login(alice)
    assert client.get(reverse("logout")).status_code == 405
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302
