"""Acting on messages through the web: permissions, CSRF, answers for htmx and plain forms."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from tests.sync.test_writeback import apply_now, synced_messages
from webmail.models import Membership, Message, PendingChange

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

HTMX = {"HTTP_HX_REQUEST": "true"}


def act(client, mailbox, action: str, *messages, **extra):
    data = {"action": action, "message": [m.pk for m in messages], **extra}
    return client.post(reverse("act", args=[mailbox.pk]), data, **HTMX)


def toast(response) -> dict:
    return json.loads(response["HX-Trigger"])["kotak:toast"]


def test_archive_from_the_list_hides_the_row_and_offers_undo(client, mailbox, bob, settings):
    first, second = synced_messages(mailbox, "Done with", "Still open")
    client.force_login(bob)

    response = act(client, mailbox, "archive", first)

    assert response.status_code == 204
    note = toast(response)
    assert note["text"] == "Archived 1 message to Archive"
    assert note["undo"].startswith(f"/mailboxes/{mailbox.pk}/undo/")
    # Offered as long as the archive waits to be applied, no longer (the toast may stay).
    assert settings.UNDO_SECONDS - 2 < note["seconds"] <= settings.UNDO_SECONDS
    inbox = mailbox.folders.get(special_use="inbox")
    page = client.get(inbox.get_absolute_url()).content.decode()
    assert "Still open" in page and "Done with" not in page

    undone = client.post(note["undo"], **HTMX)
    assert toast(undone)["text"] == "Undone."
    assert "Done with" in client.get(inbox.get_absolute_url()).content.decode()
    assert not PendingChange.objects.exists()


def test_flags_from_the_reader_show_in_the_state_strip(client, mailbox, bob):
    (message,) = synced_messages(mailbox, "Urgent")
    client.force_login(bob)
    response = act(client, mailbox, "flag", message, **{"from": "reader"})
    assert toast(response)["text"] == "Flagged 1 message"
    strip = client.get(
        message.get_absolute_url(), HTTP_HX_TARGET=f"message-state-{message.pk}", **HTMX
    ).content.decode()
    assert "★ Flagged" in strip and "Unflag" in strip


def test_removing_the_open_message_goes_on_to_the_next_one(client, mailbox, bob):
    older, middle, newer = synced_messages(mailbox, "Older", "Middle", "Newer")
    Message.objects.filter(pk=older.pk).update(internal_date="2026-01-01T00:00Z")
    Message.objects.filter(pk=middle.pk).update(internal_date="2026-01-02T00:00Z")
    Message.objects.filter(pk=newer.pk).update(internal_date="2026-01-03T00:00Z")
    client.force_login(bob)
    response = act(client, mailbox, "delete", middle, **{"from": "reader"})
    assert response["HX-Redirect"] == older.get_absolute_url()


def test_removing_the_open_message_with_a_plain_form_also_goes_on_to_the_next_one(
    client, mailbox, bob
):
    """No script, or a reader form swapped in a moment before htmx took it over: the post is
    plain, and the reader still moves on rather than back to the folder."""
    older, newer = synced_messages(mailbox, "Older", "Newer")
    Message.objects.filter(pk=older.pk).update(internal_date="2026-01-01T00:00Z")
    Message.objects.filter(pk=newer.pk).update(internal_date="2026-01-02T00:00Z")
    client.force_login(bob)
    inbox = mailbox.folders.get(special_use="inbox")
    response = client.post(
        reverse("act", args=[mailbox.pk]),
        {"action": "delete", "message": [newer.pk], "from": "reader",
         "next": inbox.get_absolute_url()},
        follow=True,
    )  # fmt: skip
    assert response.redirect_chain[-1][0] == older.get_absolute_url()
    assert "Deleted 1 message" in response.content.decode()


def test_a_plain_form_post_redirects_back_with_a_flash_message(client, mailbox, bob):
    (message,) = synced_messages(mailbox, "No JS here")
    client.force_login(bob)
    inbox = mailbox.folders.get(special_use="inbox")
    response = client.post(
        reverse("act", args=[mailbox.pk]),
        {"action": "read", "message": [message.pk], "next": inbox.get_absolute_url()},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == inbox.get_absolute_url()
    assert "Marked 1 message as read" in response.content.decode()


def test_next_never_leaves_the_site(client, mailbox, bob):
    (message,) = synced_messages(mailbox, "Phish")
    client.force_login(bob)
    response = client.post(
        reverse("act", args=[mailbox.pk]),
        {"action": "read", "message": [message.pk], "next": "https://evil.example/"},
    )
    assert response["Location"] == mailbox.get_absolute_url()


def test_deleting_from_trash_needs_confirmation(client, mailbox, bob):
    (message,) = synced_messages(mailbox, "Trash me", folder_name="Trash")
    client.force_login(bob)
    response = act(client, mailbox, "delete", message)
    assert toast(response)["level"] == "error"
    assert "final" in toast(response)["text"]
    assert not PendingChange.objects.exists()
    response = act(client, mailbox, "delete", message, confirm="1")
    assert "permanently" in toast(response)["text"]
    apply_now(mailbox)
    assert not Message.objects.filter(pk=message.pk).exists()


def test_move_to_a_folder_of_another_mailbox_is_refused(client, mailbox, bob, imap_account):
    from tests.conftest import connect_mailbox

    (message,) = synced_messages(mailbox, "Stay")
    other = connect_mailbox(imap_account, manager=bob, team_name="Other", name="Other")
    foreign_folder = other.folders.create(name="X", display_name="X", label="X")
    client.force_login(bob)
    response = act(client, mailbox, "move", message, target=foreign_folder.pk)
    assert response.status_code == 404
    assert not PendingChange.objects.exists()


def test_messages_of_other_mailboxes_are_ignored(client, mailbox, bob, charlie, imap_account):
    from tests.conftest import connect_mailbox

    other = connect_mailbox(imap_account, manager=charlie, team_name="Theirs", name="Theirs")
    imap_account.deliver("Not yours")
    from webmail.sync.mailbox import sync_mailbox

    sync_mailbox(other)
    theirs = other.messages.get()
    client.force_login(bob)
    response = act(client, mailbox, "archive", theirs)
    assert toast(response)["text"] == "Select one or more messages first."
    assert not Message.objects.get(pk=theirs.pk).pending_removal


def test_viewers_outsiders_anonymous_and_get_are_turned_away(client, mailbox, vera, charlie):
    (message,) = synced_messages(mailbox, "Read only")
    url = reverse("act", args=[mailbox.pk])
    data = {"action": "archive", "message": [message.pk]}
    assert client.post(url, data).status_code == 302  # to the login page
    client.force_login(vera)
    assert client.post(url, data).status_code == 403
    client.force_login(charlie)
    assert client.post(url, data).status_code == 404
    assert client.get(url).status_code == 405
    assert not PendingChange.objects.exists()


def test_a_post_without_the_csrf_token_is_refused(mailbox, bob):
    (message,) = synced_messages(mailbox, "Forged")
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = client.post(
        reverse("act", args=[mailbox.pk]), {"action": "archive", "message": [message.pk]}
    )
    assert response.status_code == 403
    assert not PendingChange.objects.exists()


def test_opening_marks_read_for_agents_but_not_for_viewers_or_when_turned_off(
    client, mailbox, bob, vera
):
    first, second, third = synced_messages(mailbox, "One", "Two", "Three")
    client.force_login(vera)
    client.get(first.get_absolute_url())
    assert not Message.objects.get(pk=first.pk).is_seen

    client.force_login(bob)
    client.get(first.get_absolute_url())
    assert Message.objects.get(pk=first.pk).is_seen
    apply_now(mailbox)
    from tests.helpers import server_state

    assert server_state(mailbox.account, "INBOX")[first.uid]["is_seen"]

    Membership.objects.filter(user=bob, mailbox=mailbox).update(mark_read_on_open=False)
    client.get(second.get_absolute_url())
    assert not Message.objects.get(pk=second.pk).is_seen


def test_a_refused_change_is_listed_until_dismissed(client, mailbox, bob):
    synced_messages(mailbox, "x", folder_name="Projects")
    (message,) = synced_messages(mailbox, "Refuse me")
    projects = mailbox.folders.get(name="Projects")
    client.force_login(bob)
    act(client, mailbox, "move", message, target=projects.pk)
    other = mailbox.account.client()
    other.delete_folder("Projects")
    other.logout()
    apply_now(mailbox)

    status = client.get(reverse("mailbox_status", args=[mailbox.pk])).content.decode()
    assert "The server refused 1 change" in status and "Refuse me" in status
    client.post(reverse("dismiss_failures", args=[mailbox.pk]), **HTMX)
    status = client.get(reverse("mailbox_status", args=[mailbox.pk])).content.decode()
    assert "refused" not in status


def test_a_member_turns_mark_read_on_open_off_from_the_home_page(client, mailbox, bob):
    client.force_login(bob)
    home = client.get(reverse("home")).content.decode()
    assert "Opening a message marks it read" in home and "checked" in home
    response = client.post(reverse("mailbox_preferences", args=[mailbox.pk]), {}, follow=True)
    assert "leaves it unread" in response.content.decode()
    assert not Membership.objects.get(user=bob, mailbox=mailbox).mark_read_on_open
    client.post(reverse("mailbox_preferences", args=[mailbox.pk]), {"mark_read_on_open": "on"})
    assert Membership.objects.get(user=bob, mailbox=mailbox).mark_read_on_open


def test_preferences_are_only_for_members(client, mailbox, charlie):
    client.force_login(charlie)
    response = client.post(reverse("mailbox_preferences", args=[mailbox.pk]), {})
    assert response.status_code == 404
