"""`manage.py add_mailbox`, `sync` and `ensure_admin`, as an operator runs them."""

import io

import pytest
from django.core.management import CommandError, call_command

from tests.dovecot import make_message
from webmail.models import Mailbox, Membership

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


def add_args(account, ca_file, *extra):
    server = account.server
    return [
        "add_mailbox",
        "--email", account.address,
        "--imap-host", server.host,
        "--imap-port", str(server.imaps_port),
        "--username", account.username,
        "--ca-file", str(ca_file),
        *extra,
    ]  # fmt: skip


@pytest.fixture
def ca_file(tmp_path, dovecot):
    path = tmp_path / "ca.pem"
    path.write_text(dovecot.ca_cert_pem)
    return path


def test_add_mailbox_takes_the_password_from_the_environment(
    imap_account, ca_file, monkeypatch, alice
):
    monkeypatch.setenv("KOTAK_IMAP_PASSWORD", imap_account.password)
    out = io.StringIO()
    call_command(
        *add_args(imap_account, ca_file, "--manager", "alice", "--name", "Help"), stdout=out
    )
    mailbox = Mailbox.objects.get()
    assert mailbox.name == "Help" and mailbox.imap_password == imap_account.password
    assert Membership.objects.get(mailbox=mailbox).user == alice
    assert f"Added mailbox {mailbox.pk}" in out.getvalue()
    assert imap_account.password not in out.getvalue()


def test_add_mailbox_reads_the_password_from_stdin(imap_account, ca_file, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(imap_account.password + "\n"))
    call_command(*add_args(imap_account, ca_file, "--password-stdin"), stdout=io.StringIO())
    assert Mailbox.objects.get().imap_password == imap_account.password


def test_add_mailbox_refuses_wrong_settings_with_the_reason(imap_account, ca_file, monkeypatch):
    monkeypatch.setenv("KOTAK_IMAP_PASSWORD", "wrong")
    with pytest.raises(CommandError, match="rejected the username or password"):
        call_command(*add_args(imap_account, ca_file), stdout=io.StringIO())
    assert not Mailbox.objects.exists()


def test_add_mailbox_needs_a_password(imap_account, ca_file):
    with pytest.raises(CommandError, match="no password given on \\$KOTAK_IMAP_PASSWORD"):
        call_command(*add_args(imap_account, ca_file), stdout=io.StringIO())


def test_add_mailbox_has_no_password_argument():
    with pytest.raises(CommandError):
        call_command(
            "add_mailbox", "--email", "a@example.com", "--imap-host", "h", "--password", "x"
        )


def test_sync_prints_progress_and_a_summary(mailbox, settings):
    settings.SYNC_WINDOW = 10
    account = mailbox.account
    account.server.write_maildir(
        account.username, "INBOX", [make_message(f"n{n}") for n in range(25)]
    )
    out = io.StringIO()
    call_command("sync", str(mailbox.pk), stdout=out)
    text = out.getvalue()
    assert "Inbox: 10 / 25 messages" in text
    assert "Inbox: 25 / 25 messages" in text
    assert "INBOX: +25 new" in text
    assert "Done in" in text and "25 new messages" in text
    # By address, a second time: nothing new.
    out = io.StringIO()
    call_command("sync", mailbox.email, stdout=out)
    assert "0 new messages" in out.getvalue()


def test_sync_names_folders_as_people_read_them(mailbox):
    account = mailbox.account
    account.deliver("Rechnung", folder="Café/Überweisung & Co")
    account.deliver("Hello")
    out = io.StringIO()
    call_command("sync", str(mailbox.pk), "--folder", "Café/Überweisung & Co", stdout=out)
    text = out.getvalue()
    assert "Café/Überweisung & Co: +1 new" in text
    assert "&AOk-" not in text and "INBOX" not in text
    assert "1 new messages" in text


def test_sync_reports_a_wrong_password_and_marks_the_mailbox(mailbox):
    mailbox.imap_password = "changed-on-the-server"
    mailbox.save()
    with pytest.raises(CommandError, match="rejected"):
        call_command("sync", str(mailbox.pk), stdout=io.StringIO())
    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.NEEDS_ATTENTION
    assert "rejected" in mailbox.last_error


def test_sync_of_an_unknown_mailbox_fails_clearly():
    with pytest.raises(CommandError, match="no mailbox 'nobody@example.com'"):
        call_command("sync", "nobody@example.com")


def test_ensure_admin_creates_one_administrator_once(django_user_model):
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    assert "password:" in out.getvalue()
    admin = django_user_model.objects.get()
    assert admin.is_superuser
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    assert out.getvalue() == ""
    assert django_user_model.objects.count() == 1
