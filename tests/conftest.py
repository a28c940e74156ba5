"""Shared fixtures: personas, the suite's own Dovecot, mailboxes connected to it.

Personas (as everywhere in Kotak's tests): alice manages the mailbox, bob is an agent on it,
vera only views it, charlie is an outsider who must get 404 everywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.dovecot import DEFAULT_USERS, Dovecot, dovecot_dir, make_message
from webmail.celery import app as celery_app

# Tasks run in-process in tests; a test that needs a real worker starts one itself.
celery_app.conf.task_always_eager = True
celery_app.conf.task_eager_propagates = True

# One fresh account per IMAP test (a reused one would hold an earlier test's mail): more than
# any xdist worker runs, even on one worker.
IMAP_POOL = [f"box{n:04d}" for n in range(3000)]
_pool = itertools.count()


@dataclass
class ImapAccount:
    """A Dovecot user of its own per test, so tests never see each other's mail."""

    server: Dovecot
    username: str
    password: str
    address: str

    def client(self):
        return self.server.client(self.username)

    def append(self, raw: bytes, folder: str = "INBOX", **kwargs) -> int:
        return self.server.append(self.username, folder, raw, **kwargs)

    def deliver(self, subject: str, folder: str = "INBOX", **kwargs) -> int:
        flags = kwargs.pop("flags", ())
        return self.append(make_message(subject, **kwargs), folder, flags=flags)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    users = dict(DEFAULT_USERS) | {name: f"pw-{name}" for name in IMAP_POOL}
    with dovecot_dir("dovecot") as path, Dovecot.start(path, users=users) as server:
        yield server


@pytest.fixture(scope="session")
def plain_dovecot() -> Iterator[Dovecot]:
    """A Dovecot that advertises no CONDSTORE, QRESYNC or LIST-STATUS: plain IMAP4rev1."""
    users = {name: f"pw-{name}" for name in IMAP_POOL}
    capabilities = (
        "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ SPECIAL-USE MOVE UIDPLUS"
    )
    with (
        dovecot_dir("dovecot-plain") as path,
        Dovecot.start(path, users=users, capabilities=capabilities) as server,
    ):
        yield server


@pytest.fixture(scope="session")
def condstore_dovecot() -> Iterator[Dovecot]:
    """A Dovecot that advertises CONDSTORE but neither QRESYNC nor LIST-STATUS, as Gmail does:
    flag changes come by MODSEQ, expunges only from comparing UIDs."""
    users = {name: f"pw-{name}" for name in IMAP_POOL}
    capabilities = (
        "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ SPECIAL-USE MOVE UIDPLUS "
        "CONDSTORE"
    )
    with (
        dovecot_dir("dovecot-condstore") as path,
        Dovecot.start(path, users=users, capabilities=capabilities) as server,
    ):
        yield server


def _account(server: Dovecot) -> ImapAccount:
    name = IMAP_POOL[next(_pool) % len(IMAP_POOL)]
    return ImapAccount(server, name, server.users[name], f"{name}@example.com")


@pytest.fixture
def imap_account(dovecot) -> ImapAccount:
    return _account(dovecot)


@pytest.fixture
def plain_imap_account(plain_dovecot) -> ImapAccount:
    return _account(plain_dovecot)


@pytest.fixture
def condstore_imap_account(condstore_dovecot) -> ImapAccount:
    return _account(condstore_dovecot)


# The servers the sync and write-back are tested against, as `params` of a fixture that calls
# server_account: Dovecot with all its extensions, with CONDSTORE only, with none of them.
SERVER_KINDS = {
    "full": "imap_account",
    "condstore": "condstore_imap_account",
    "plain": "plain_imap_account",
}


def server_account(request) -> ImapAccount:
    """An account on the kind of server the fixture's param names (see SERVER_KINDS)."""
    return request.getfixturevalue(SERVER_KINDS[request.param])


# --- personas ---------------------------------------------------------------------------------


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-pass-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-pass-1")


@pytest.fixture
def vera(django_user_model):
    return django_user_model.objects.create_user("vera", "vera@example.com", "vera-pass-1")


@pytest.fixture
def charlie(django_user_model):
    return django_user_model.objects.create_user("charlie", "charlie@example.com", "charlie-pass-1")


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-pass-1")


def connect_mailbox(account: ImapAccount, *, manager=None, security: str = "ssl", **extra):
    """A Mailbox row for account, over real TLS trusting only the test server's certificate."""
    from webmail.imap.client import Security, ServerSettings
    from webmail.mailboxes import add_mailbox

    port = account.server.imaps_port if security == "ssl" else account.server.imap_port
    server = ServerSettings(
        host=account.server.host,
        port=port,
        security=Security(security),
        username=account.username,
        password=account.password,
        ca_certificates=account.server.ca_cert_pem,
    )
    return add_mailbox(
        team_name=extra.pop("team_name", "Support"),
        name=extra.pop("name", "Support"),
        email=account.address,
        server=server,
        capabilities=[],
        manager=manager,
    )


@pytest.fixture
def mailbox(db, imap_account, alice, bob, vera):
    """The shared mailbox: alice manages it, bob is an agent, vera a viewer. Not synced yet."""
    from webmail.models import Membership, Role

    box = connect_mailbox(imap_account, manager=alice)
    Membership.objects.create(user=bob, mailbox=box, role=Role.AGENT)
    Membership.objects.create(user=vera, mailbox=box, role=Role.VIEWER)
    box.account = imap_account
    return box


@pytest.fixture
def bare_folder(db, bob):
    """An INBOX of a mailbox bob is an agent of, with no server behind it: for what the sync
    writes, without syncing."""
    from webmail.models import Folder, Mailbox, Role, Team

    box = Mailbox.objects.create(
        team=Team.objects.create(name="Support"),
        name="Support",
        email="support@example.com",
        imap_host="imap.example.com",
    )
    box.memberships.create(user=bob, role=Role.AGENT)
    return Folder.objects.create(mailbox=box, name="INBOX", display_name="INBOX", label="Inbox")


@pytest.fixture(autouse=True)
def _test_settings(monkeypatch, settings):
    monkeypatch.delenv("KOTAK_IMAP_PASSWORD", raising=False)
    # Django's default hasher is slow on purpose; personas are created in almost every test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The suite's own Dovecot and SMTP servers listen on loopback, on free ports.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.OUTBOUND_ALLOWED_PORTS = ["*"]


@pytest.fixture(scope="session")
def smtp_server(dovecot):
    """A real SMTP server (aiosmtpd) with STARTTLS required and AUTH, on a free port."""
    from tests.smtp_server import SmtpServer

    server = SmtpServer(dovecot.ca_cert_path, dovecot.key_path, mode="starttls").start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.reset()
    yield smtp_server
    smtp_server.reset()


@pytest.fixture
def sending_mailbox(mailbox, smtp):
    """The shared mailbox with its SMTP server configured (STARTTLS, the test CA)."""
    mailbox.smtp_host = smtp.host
    mailbox.smtp_port = smtp.port
    mailbox.smtp_security = "starttls"
    mailbox.smtp_username = smtp.username
    mailbox.smtp_password = smtp.password
    mailbox.save()
    mailbox.smtp = smtp
    return mailbox
