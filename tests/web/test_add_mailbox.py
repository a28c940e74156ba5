"""The add-mailbox form proves the settings by logging in, and says exactly what is wrong."""

import socket

import pytest
from django.urls import reverse

from webmail.models import Folder, Mailbox, Membership, Role

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


@pytest.fixture
def form_data(imap_account):
    server = imap_account.server
    return {
        "team": "Support",
        "name": "Support",
        "email": imap_account.address,
        "imap_host": server.host,
        "imap_security": "ssl",
        "imap_port": server.imaps_port,
        "imap_username": imap_account.username,
        "imap_password": imap_account.password,
        "ca_certificates": server.ca_cert_pem,
    }


def post(client, user, data):
    client.force_login(user)
    return client.post(reverse("add_mailbox"), data)


def field_error(response, field: str) -> str:
    return " ".join(response.context["form"].errors.get(field, []))


def test_a_working_mailbox_is_added_and_synced(
    client, admin_user, form_data, imap_account, django_capture_on_commit_callbacks
):
    imap_account.deliver("Welcome")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, admin_user, form_data)
    mailbox = Mailbox.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("mailbox", args=[mailbox.pk])
    assert mailbox.imap_password == imap_account.password
    assert imap_account.password not in mailbox.imap_password_encrypted
    assert "IDLE" in mailbox.capabilities
    assert Membership.objects.get(mailbox=mailbox).role == Role.MANAGER
    # The first sync ran after commit: the folder tree and the message are there.
    assert set(mailbox.folders.values_list("special_use", flat=True)) >= {
        "inbox",
        "sent",
        "drafts",
        "trash",
        "junk",
        "archive",
    }
    inbox = mailbox.folders.get(special_use="inbox")
    assert inbox.messages.get().subject == "Welcome"
    folder_page = client.get(response["Location"], follow=True)
    assert b"Welcome" in folder_page.content


def test_a_wrong_password_is_shown_on_the_password_field(client, admin_user, form_data):
    response = post(client, admin_user, form_data | {"imap_password": "nope"})
    assert response.status_code == 200
    assert "rejected the username or password" in field_error(response, "imap_password")
    assert not Mailbox.objects.exists()
    # The password is never sent back to the browser.
    assert b"nope" not in response.content


def test_an_unknown_host_is_shown_on_the_host_field(client, admin_user, form_data):
    response = post(client, admin_user, form_data | {"imap_host": "mail.nowhere.invalid"})
    assert "could not be found" in field_error(response, "imap_host")
    assert not Mailbox.objects.exists()


def test_a_refused_port_is_shown_on_the_port_field(client, admin_user, form_data):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    response = post(client, admin_user, form_data | {"imap_port": port})
    assert "refused the connection" in field_error(response, "imap_port")
    assert not Mailbox.objects.exists()


def test_a_certificate_problem_is_shown_on_the_certificate_field(client, admin_user, form_data):
    response = post(client, admin_user, form_data | {"ca_certificates": ""})
    error = field_error(response, "ca_certificates")
    assert "could not be verified" in error
    assert "private CA" in error
    assert not Mailbox.objects.exists()


def test_tls_on_a_plain_port_is_shown_on_the_security_field(
    client, admin_user, form_data, imap_account
):
    response = post(client, admin_user, form_data | {"imap_port": imap_account.server.imap_port})
    assert "right port" in field_error(response, "imap_security")


def test_missing_fields_are_reported_without_connecting(client, admin_user, form_data):
    response = post(client, admin_user, form_data | {"imap_host": "", "email": "not-an-address"})
    assert field_error(response, "imap_host")
    assert field_error(response, "email")
    assert not Folder.objects.exists()


def test_starttls_settings_work_too(
    client, admin_user, form_data, imap_account, django_capture_on_commit_callbacks
):
    data = form_data | {"imap_security": "starttls", "imap_port": imap_account.server.imap_port}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, admin_user, data)
    assert response.status_code == 302
    assert Mailbox.objects.get().imap_security == "starttls"
