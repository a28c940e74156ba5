"""Answering settings, per persona: the mailbox's SMTP server (checked against the suite's real
aiosmtpd before it is saved, each failure on the field to fix), how answers sign, each member's
own signature, and the saved replies managers keep."""

from __future__ import annotations

import re
import socket

import pytest
from django.test import Client
from django.urls import reverse

from webmail import compose
from webmail.models import Mailbox, Membership, OutgoingMessage, SavedReply

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


def settings_url(mailbox) -> str:
    return reverse("answering_settings", args=[mailbox.pk])


def form(mailbox, **changes) -> dict:
    smtp = mailbox.smtp
    values = {
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_security": "starttls",
        "smtp_username": smtp.username,
        "smtp_password": smtp.password,
        "from_name": "Acme Support",
        "from_agent_name": "on",
        "signature": "Acme · acme.example",
        "server_saves_sent": "",
        "status_after_reply": "closed",
    }
    return values | changes


def field_error(html: str, name: str) -> str:
    """The error shown inside a field's own block."""
    match = re.search(rf'id="field-{name}".*?<p class="error"[^>]*>(.*?)</p>', html, re.S)
    return match[1] if match else ""


def stored(mailbox) -> tuple:
    box = Mailbox.objects.get(pk=mailbox.pk)
    return (
        box.smtp_host,
        box.smtp_port,
        box.smtp_security,
        box.smtp_username,
        box.smtp_password,
        box.from_name,
        box.from_agent_name,
        box.signature,
        box.server_saves_sent,
        box.status_after_reply,
    )


@pytest.fixture
def unconfigured(sending_mailbox):
    """The mailbox with its SMTP server known to the test but not yet saved."""
    Mailbox.objects.filter(pk=sending_mailbox.pk).update(
        smtp_host="", smtp_port=None, smtp_username="", smtp_password_encrypted=""
    )
    sending_mailbox.refresh_from_db()
    return sending_mailbox


def test_a_manager_saves_smtp_settings_after_kotak_logged_in(client, unconfigured, alice):
    mailbox = unconfigured
    client.force_login(alice)
    page = client.get(settings_url(mailbox)).content.decode()
    assert "SMTP server" in page and 'name="smtp_password"' in page

    response = client.post(settings_url(mailbox), form(mailbox))

    assert response.status_code == 302
    assert stored(mailbox) == (
        mailbox.smtp.host,
        mailbox.smtp.port,
        "starttls",
        "kotak",
        "smtp-secret",
        "Acme Support",
        True,
        "Acme · acme.example",
        False,
        "closed",
    )
    assert Mailbox.objects.get(pk=mailbox.pk).smtp_password_encrypted != "smtp-secret"
    assert "Answering settings saved." in client.get(response.url).content.decode()
    # The page never shows the password back.
    assert "smtp-secret" not in client.get(settings_url(mailbox)).content.decode()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"smtp_password": "wrong"}, "smtp_password", "rejected the username or password"),
        ({"smtp_host": "no-such-host.invalid"}, "smtp_host", "could not be found"),
        ({"smtp_security": "ssl"}, "smtp_security", "TLS connection"),
    ],
)
def test_each_failure_is_shown_on_the_field_to_fix_and_nothing_is_saved(
    client, unconfigured, alice, changes, field, message
):
    client.force_login(alice)
    before = stored(unconfigured)
    response = client.post(settings_url(unconfigured), form(unconfigured, **changes))
    assert response.status_code == 200
    assert message in field_error(response.content.decode(), field)
    assert stored(unconfigured) == before


def test_an_unreachable_server_is_shown_on_the_port(client, unconfigured, alice):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nothing listens once the socket is closed
    client.force_login(alice)
    response = client.post(settings_url(unconfigured), form(unconfigured, smtp_port=closed_port))
    assert "refused the connection" in field_error(response.content.decode(), "smtp_port")
    assert Mailbox.objects.get(pk=unconfigured.pk).smtp_host == ""


def test_a_server_without_starttls_is_refused_on_the_security_field(
    client, unconfigured, alice, dovecot
):
    from tests.smtp_server import SmtpServer

    plain = SmtpServer(dovecot.ca_cert_path, dovecot.key_path, mode="plain").start()
    try:
        client.force_login(alice)
        response = client.post(
            settings_url(unconfigured),
            form(unconfigured, smtp_host=plain.host, smtp_port=plain.port),
        )
    finally:
        plain.stop()
    error = field_error(response.content.decode(), "smtp_security")
    assert "does not offer STARTTLS" in error
    assert Mailbox.objects.get(pk=unconfigured.pk).smtp_host == ""


def test_a_blank_password_keeps_the_stored_one(client, sending_mailbox, alice):
    client.force_login(alice)
    # Only the signature changes: no need to reach the server, and the password stays.
    response = client.post(
        settings_url(sending_mailbox), form(sending_mailbox, smtp_password="", signature="New")
    )
    assert response.status_code == 302
    box = Mailbox.objects.get(pk=sending_mailbox.pk)
    assert box.smtp_password == "smtp-secret" and box.signature == "New"
    # A changed username is checked with the stored password (and refused here).
    response = client.post(
        settings_url(sending_mailbox), form(sending_mailbox, smtp_password="", smtp_username="x")
    )
    assert "rejected the username or password" in field_error(
        response.content.decode(), "smtp_password"
    )


def test_a_sender_name_with_a_line_break_is_refused(client, sending_mailbox, alice):
    client.force_login(alice)
    response = client.post(
        settings_url(sending_mailbox), form(sending_mailbox, from_name="Acme\r\nBcc: x@y.z")
    )
    assert "cannot contain line breaks" in field_error(response.content.decode(), "from_name")


def test_agent_via_support_and_signatures_go_into_answers(client, sending_mailbox, alice, bob):
    client.force_login(alice)
    client.post(settings_url(sending_mailbox), form(sending_mailbox, smtp_password=""))
    client.force_login(bob)
    my = reverse("my_settings", args=[sending_mailbox.pk])
    assert client.post(my, {"signature": "Bob, second line support"}).status_code == 302
    assert Membership.objects.get(user=bob, mailbox=sending_mailbox).signature == (
        "Bob, second line support"
    )
    client.post(reverse("new_message", args=[sending_mailbox.pk]))
    draft = OutgoingMessage.objects.get(author=bob)
    assert draft.text.endswith("-- \nBob, second line support\nAcme · acme.example")
    draft.mailbox.refresh_from_db()
    assert compose.sender_display(draft) == "bob via Acme Support"


def test_saved_replies_are_kept_by_managers(client, sending_mailbox, alice):
    client.force_login(alice)
    index = reverse("saved_replies", args=[sending_mailbox.pk])
    response = client.post(index, {"name": "Refund", "body": "Hi {customer_name}, refunded."})
    assert response.status_code == 302
    reply = SavedReply.objects.get()
    assert (reply.name, reply.body, reply.created_by) == (
        "Refund",
        "Hi {customer_name}, refunded.",
        alice,
    )
    duplicate = client.post(index, {"name": "refund", "body": "again"})
    assert "already a saved reply with this name" in duplicate.content.decode()

    edit = reverse("edit_saved_reply", args=[sending_mailbox.pk, reply.pk])
    assert "Hi {customer_name}, refunded." in client.get(edit).content.decode()
    client.post(edit, {"name": "Refund done", "body": "Refunded, {customer_name}."})
    reply.refresh_from_db()
    assert (reply.name, reply.body) == ("Refund done", "Refunded, {customer_name}.")

    client.post(reverse("delete_saved_reply", args=[sending_mailbox.pk, reply.pk]))
    assert not SavedReply.objects.exists()


# -- who may do what ---------------------------------------------------------------------------


def manager_pages(mailbox, reply) -> list[tuple[str, dict]]:
    return [
        (settings_url(mailbox), form(mailbox)),
        (reverse("saved_replies", args=[mailbox.pk]), {"name": "New", "body": "x"}),
        (reverse("edit_saved_reply", args=[mailbox.pk, reply.pk]), {"name": "Y", "body": "y"}),
        (reverse("delete_saved_reply", args=[mailbox.pk, reply.pk]), {}),
    ]


@pytest.fixture
def reply(sending_mailbox) -> SavedReply:
    return SavedReply.objects.create(mailbox=sending_mailbox, name="Thanks", body="Thank you!")


def snapshot(mailbox) -> tuple:
    return (
        stored(mailbox),
        list(SavedReply.objects.values_list("name", "body")),
        list(Membership.objects.order_by("pk").values_list("signature", flat=True)),
    )


def test_agents_use_saved_replies_but_do_not_change_settings(client, sending_mailbox, reply, bob):
    client.force_login(bob)
    before = snapshot(sending_mailbox)
    for path, data in manager_pages(sending_mailbox, reply):
        if "delete" not in path:
            assert client.get(path).status_code == 403, path
        assert client.post(path, data).status_code == 403, path
    assert snapshot(sending_mailbox) == before
    assert client.get(reverse("my_settings", args=[sending_mailbox.pk])).status_code == 200


def test_viewers_get_403_and_outsiders_404(client, sending_mailbox, reply, vera, charlie):
    before = snapshot(sending_mailbox)
    my = reverse("my_settings", args=[sending_mailbox.pk])
    for user, status in ((vera, 403), (charlie, 404)):
        client.force_login(user)
        for path, data in [*manager_pages(sending_mailbox, reply), (my, {"signature": "x"})]:
            assert client.post(path, data).status_code == status, (user, path)
        assert client.get(my).status_code == status
    assert snapshot(sending_mailbox) == before


def test_csrf_is_enforced(sending_mailbox, reply, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    before = snapshot(sending_mailbox)
    my = reverse("my_settings", args=[sending_mailbox.pk])
    for path, data in [*manager_pages(sending_mailbox, reply), (my, {"signature": "x"})]:
        assert client.post(path, data).status_code == 403, path
    assert snapshot(sending_mailbox) == before


def test_get_changes_nothing(client, sending_mailbox, reply, alice):
    client.force_login(alice)
    before = snapshot(sending_mailbox)
    delete = reverse("delete_saved_reply", args=[sending_mailbox.pk, reply.pk])
    assert client.get(delete).status_code == 405
    for path, _ in manager_pages(sending_mailbox, reply)[:3]:
        assert client.get(path).status_code == 200
    assert snapshot(sending_mailbox) == before


def test_the_team_menu_links_to_answering(client, sending_mailbox, alice, bob):
    client.force_login(alice)
    nav = client.get(reverse("team_nav", args=[sending_mailbox.pk])).content.decode()
    assert f'href="{settings_url(sending_mailbox)}"' in nav
    assert f'href="{reverse("drafts", args=[sending_mailbox.pk])}"' in nav
    client.force_login(bob)
    nav = client.get(reverse("team_nav", args=[sending_mailbox.pk])).content.decode()
    assert settings_url(sending_mailbox) not in nav
    assert f'href="{reverse("my_settings", args=[sending_mailbox.pk])}"' in nav
