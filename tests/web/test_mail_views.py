"""The folder list and the message view, as a member sees them."""

import datetime as dt

import pytest
from django.urls import reverse

from tests.dovecot import make_message
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


def at(day: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, 9, 30, tzinfo=dt.UTC)


def test_the_list_shows_sender_subject_date_and_unread_state_newest_first(client, mailbox, bob):
    account = mailbox.account
    account.append(
        make_message("Old question", sender="Ana <ana@example.org>"),
        internal_date=at(1),
        flags=[r"\Seen"],
    )
    account.append(
        make_message("Newer question", sender="Ben <ben@example.org>"), internal_date=at(5)
    )
    sync_mailbox(mailbox)
    inbox = mailbox.folders.get(special_use="inbox")
    client.force_login(bob)
    response = client.get(reverse("folder", args=[mailbox.pk, inbox.pk]))
    html = response.content.decode()
    assert html.index("Newer question") < html.index("Old question")
    newer, older = inbox.messages.order_by("-internal_date")
    assert f'id="message-row-{newer.pk}" class="message-row unread"' in html
    assert f'id="message-row-{older.pk}" class="message-row"' in html
    assert "Ben" in html and "Ana" in html
    assert ">5 Mar<" in html and "5 March 2026, 09:30" in html
    assert "1 unread" in html


def test_the_list_is_paginated_with_an_older_link(client, mailbox, bob, settings):
    settings.MESSAGES_PER_PAGE = 3
    account = mailbox.account
    account.server.write_maildir(
        account.username,
        "INBOX",
        [(make_message(f"Message {n:02d}"), (), at(n + 1)) for n in range(8)],
    )
    sync_mailbox(mailbox)
    inbox = mailbox.folders.get(special_use="inbox")
    client.force_login(bob)
    url = reverse("folder", args=[mailbox.pk, inbox.pk])
    seen = []
    while url:
        response = client.get(url)
        rows = response.context["rows"]
        seen.extend(m.subject for m in rows)
        url = (
            f"{reverse('folder', args=[mailbox.pk, inbox.pk])}?before={rows[-1].pk}"
            if response.context["has_older"]
            else None
        )
    assert seen == [f"Message {n:02d}" for n in range(7, -1, -1)]


def test_an_htmx_page_request_gets_only_the_list_fragment(client, mailbox, bob):
    mailbox.account.deliver("Fragment me")
    sync_mailbox(mailbox)
    inbox = mailbox.folders.get(special_use="inbox")
    client.force_login(bob)
    response = client.get(
        reverse("folder", args=[mailbox.pk, inbox.pk]),
        headers={"HX-Request": "true", "HX-Target": "message-list"},
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="message-list"')
    assert "Fragment me" in html
    assert "<html" not in html


def test_the_folder_tree_lists_every_folder_with_unread_counts(client, mailbox, bob):
    mailbox.account.deliver("in a subfolder", folder="Customers/ACME")
    sync_mailbox(mailbox)
    inbox = mailbox.folders.get(special_use="inbox")
    client.force_login(bob)
    html = client.get(reverse("folder", args=[mailbox.pk, inbox.pk])).content.decode()
    for label in ["Inbox", "Drafts", "Sent", "Archive", "Junk", "Trash", "Customers", "ACME"]:
        assert f'<span class="label">{label}</span>' in html or f">{label}<" in html
    assert html.index(">Inbox<") < html.index(">Drafts<") < html.index(">Customers<")
    assert 'class="depth-1"' in html


def test_a_message_shows_its_headers_and_text_body(client, mailbox, bob):
    account = mailbox.account
    account.append(
        make_message(
            "Refund for order #1234",
            sender="Ana Lima <ana@example.org>",
            body="Hello,\n\nI would like a refund. <script>alert(1)</script>\nhttps://example.org/order/1234\n",
            extra_headers={"Cc": "billing@example.com", "Reply-To": "ana.private@example.org"},
        )
    )
    sync_mailbox(mailbox)
    message = mailbox.messages.get()
    client.force_login(bob)
    html = client.get(reverse("message", args=[mailbox.pk, message.pk])).content.decode()
    assert "Refund for order #1234" in html
    assert "Ana Lima &lt;ana@example.org&gt;" in html
    assert "billing@example.com" in html and "ana.private@example.org" in html
    assert "I would like a refund." in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="https://example.org/order/1234"' in html
    # Opening fetched only the text part once; the body is cached.
    assert message.body.text.startswith("Hello,")


def test_a_message_deleted_on_the_server_says_so(client, mailbox, bob):
    account = mailbox.account
    uid = account.deliver("Soon gone")
    sync_mailbox(mailbox)
    other = account.client()
    other.select_folder("INBOX")
    other.delete_messages([uid])
    other.expunge()
    other.logout()
    message = mailbox.messages.get()
    client.force_login(bob)
    response = client.get(reverse("message", args=[mailbox.pk, message.pk]))
    assert response.status_code == 200
    assert "no longer on the server" in response.content.decode()


def test_the_home_page_tells_a_new_administrator_what_to_do(client, admin_user):
    client.force_login(admin_user)
    html = client.get(reverse("home")).content.decode()
    assert "connect your first mailbox" in html
    assert reverse("add_mailbox") in html


def test_a_mailbox_without_folders_yet_shows_a_waiting_page_that_polls(client, mailbox, alice):
    client.force_login(alice)
    response = client.get(reverse("mailbox", args=[mailbox.pk]))
    html = response.content.decode()
    assert "reading the folder list" in html
    assert 'hx-trigger="every 2s,' in html
    sync_mailbox(mailbox)
    poll = client.get(
        reverse("mailbox_status", args=[mailbox.pk]) + "?waiting=1", headers={"HX-Request": "true"}
    )
    assert poll["HX-Redirect"] == reverse("mailbox", args=[mailbox.pk])
