"""Checks of the private Dovecot test harness (tests/dovecot.py). No Django needed."""

from __future__ import annotations

import datetime as dt
import imaplib
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.dovecot import DEFAULT_USERS, Dovecot, dovecot_dir, make_message

pytestmark = pytest.mark.imap

REDUCED_CAPS = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ SPECIAL-USE MOVE UIDPLUS"


# Own instances rather than conftest's session `dovecot`: this module checks
# the harness itself and must not depend on Django.
@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    with dovecot_dir("harness") as path, Dovecot.start(path) as dv:
        yield dv


@pytest.fixture(scope="module")
def reduced(server: Dovecot) -> Iterator[Dovecot]:
    """A second instance, running next to `server`, hiding CONDSTORE & co."""
    with dovecot_dir("reduced") as path, Dovecot.start(path, capabilities=REDUCED_CAPS) as dv:
        yield dv


def test_starttls_verifies_against_instance_ca(server: Dovecot) -> None:
    ctx = ssl.create_default_context(cafile=str(server.ca_cert_path))
    assert ctx.check_hostname
    # "localhost" exercises the DNS SAN, 127.0.0.1 the IP SAN.
    for host in ("localhost", server.host):
        with IMAPClient(host, port=server.imap_port, ssl=False, timeout=10) as c:
            assert b"STARTTLS" in c.capabilities()
            c.starttls(ctx)
            c.login("alice", "secret-alice")
            assert c.folder_exists("INBOX")


def test_imaps_with_instance_ca(server: Dovecot) -> None:
    ctx = ssl.create_default_context(cadata=server.ca_cert_pem)
    with IMAPClient(
        "localhost", port=server.imaps_port, ssl=True, ssl_context=ctx, timeout=10
    ) as c:
        c.login("bob", "secret-bob")
        assert c.folder_exists("INBOX")


def test_imaps_fails_verification_with_system_cas(server: Dovecot) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(
            "localhost",
            port=server.imaps_port,
            ssl=True,
            ssl_context=ssl.create_default_context(),
            timeout=10,
        )


def test_wrong_password_is_rejected_without_penalising_next_login(server: Dovecot) -> None:
    with pytest.raises(LoginError):
        server.client("alice", "wrong")
    started = time.monotonic()
    server.client("alice").logout()
    assert time.monotonic() - started < 1  # anvil auth penalty is off


def test_add_user_while_running(server: Dovecot) -> None:
    server.add_user("dave", "secret-dave")
    assert server.users == {**DEFAULT_USERS, "dave": "secret-dave"}
    with server.client("dave") as c:
        assert c.folder_exists("Sent")
    server.add_user("dave", "other-dave")  # same length: mtime must still move
    with pytest.raises(LoginError):
        server.client("dave", "secret-dave")
    server.client("dave").logout()


def test_special_use_folders(server: Dovecot) -> None:
    with server.client("charlie") as c:
        folders = {name: flags for flags, delim, name in c.list_folders()}
        assert {d for _, d, _ in c.list_folders()} == {b"/"}
        subscribed = {name for _, _, name in c.list_sub_folders()}
    for name in ("Drafts", "Sent", "Trash", "Junk", "Archive"):
        assert f"\\{name}".encode() in folders[name]
        assert name in subscribed
    assert "INBOX" in folders


def test_capabilities(server: Dovecot) -> None:
    with server.client("alice") as c:
        caps = set(c.capabilities())
    assert {
        b"IDLE",
        b"CONDSTORE",
        b"QRESYNC",
        b"NOTIFY",
        b"QUOTA",
        b"LIST-STATUS",
        b"SPECIAL-USE",
        b"MOVE",
        b"UIDPLUS",
    } <= caps


def test_quota_root(server: Dovecot) -> None:
    with server.client("alice") as c:
        quota = c.get_quota("INBOX")
    assert quota and quota[0].limit == 1024 * 1024  # KiB


def test_append_returns_uids(server: Dovecot) -> None:
    date = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    first = server.append(
        "alice", "Projects/Kotak", make_message("one"), flags=[r"\Seen"], internal_date=date
    )
    second = server.append("alice", "Projects/Kotak", make_message("two"))
    assert second == first + 1
    with server.client("alice") as c:
        c.select_folder("Projects/Kotak", readonly=True)
        data = c.fetch([first], ["FLAGS", "INTERNALDATE", "ENVELOPE"])[first]
    assert b"\\Seen" in data[b"FLAGS"]
    assert data[b"INTERNALDATE"].astimezone(dt.UTC) == date
    assert data[b"ENVELOPE"].subject == b"one"


def test_write_maildir_bulk(server: Dovecot) -> None:
    template = make_message("Bulk NNNNN")
    msgs = [template.replace(b"NNNNN", b"%05d" % i) for i in range(2000)]
    started = time.monotonic()
    seeded = [(m, [r"\Seen"]) if i % 2 else m for i, m in enumerate(msgs)]
    assert server.write_maildir("bob", "Bulk", seeded) == 2000
    with server.client("bob") as c:
        assert c.select_folder("Bulk")[b"EXISTS"] == 2000
        elapsed = time.monotonic() - started
        assert len(c.search(["UNSEEN"])) == 1000
        # UIDs follow the order of the input.
        envelopes = c.fetch([1, 2000], ["ENVELOPE"])
        assert envelopes[1][b"ENVELOPE"].subject == b"Bulk 00000"
        assert envelopes[2000][b"ENVELOPE"].subject == b"Bulk 01999"
        assert tuple(n for _, _, n in c.list_sub_folders("", "Bulk")) == ("Bulk",)
    assert elapsed < 10


def test_write_maildir_inbox_new_and_dates(server: Dovecot) -> None:
    date = dt.datetime(2020, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    fresh = [make_message("fresh")]
    assert server.write_maildir("charlie", "INBOX", fresh, new=True, internal_date=date) == 1
    old = [(make_message("old"), (b"\\Answered",), date)]
    assert server.write_maildir("charlie", "INBOX", old) == 1
    with server.client("charlie") as c:
        status = c.select_folder("INBOX")
        data = c.fetch(c.search(), ["FLAGS", "INTERNALDATE", "ENVELOPE"])
    assert status[b"EXISTS"] == 2
    by_subject = {d[b"ENVELOPE"].subject: d for d in data.values()}
    assert by_subject[b"fresh"][b"INTERNALDATE"].astimezone(dt.UTC) == date
    assert b"\\Recent" in by_subject[b"fresh"][b"FLAGS"]
    assert b"\\Answered" in by_subject[b"old"][b"FLAGS"]
    with pytest.raises(ValueError):
        server.write_maildir("charlie", "INBOX", [(b"x", ["$Label1"])])


def test_write_maildir_nested_non_ascii_folder(server: Dovecot) -> None:
    assert server.write_maildir("charlie", "Kunden/Müller & Co", [make_message("hallo")]) == 1
    with server.client("charlie") as c:
        assert c.folder_status("Kunden/Müller & Co", [b"MESSAGES"])[b"MESSAGES"] == 1


def test_reset_uidvalidity(server: Dovecot) -> None:
    server.append("bob", "Reset", make_message("keep me"))
    with server.client("bob") as c:
        before = c.folder_status("Reset", [b"UIDVALIDITY", b"MESSAGES"])
    new = server.reset_uidvalidity("bob", "Reset")
    with server.client("bob") as c:
        after = c.folder_status("Reset", [b"UIDVALIDITY", b"MESSAGES"])
        assert c.select_folder("Reset")[b"UIDVALIDITY"] == new
    assert after[b"UIDVALIDITY"] == new != before[b"UIDVALIDITY"]
    assert after[b"MESSAGES"] == before[b"MESSAGES"] == 1


def test_idle_sees_append_from_other_client(server: Dovecot) -> None:
    with server.client("alice") as watcher:
        exists = watcher.select_folder("INBOX")[b"EXISTS"]
        watcher.idle()
        server.append("alice", "INBOX", make_message("ping"))
        started = time.monotonic()
        responses: list[tuple[int, bytes]] = []
        while time.monotonic() - started < 3 and (exists + 1, b"EXISTS") not in responses:
            responses += watcher.idle_check(timeout=0.5)
        watcher.idle_done()
    assert (exists + 1, b"EXISTS") in responses
    assert time.monotonic() - started < 2.5


def test_many_connections(server: Dovecot) -> None:
    with ThreadPoolExecutor(max_workers=40) as pool:
        clients = list(pool.map(lambda _: server.client("charlie"), range(40)))
    try:
        assert all(c.noop() for c in clients)
    finally:
        for c in clients:
            c.logout()


def test_reduced_capabilities(reduced: Dovecot) -> None:
    hidden = {b"CONDSTORE", b"QRESYNC", b"LIST-STATUS"}
    with IMAPClient(reduced.host, port=reduced.imap_port, ssl=False, timeout=10) as c:
        assert not hidden & set(c.capabilities())  # pre-login
        c.login("alice", "secret-alice")
        assert not hidden & set(c.capabilities())  # from the LOGIN response
    # An explicit CAPABILITY command after login (imapclient would use its cache).
    imap = imaplib.IMAP4(reduced.host, reduced.imap_port, timeout=10)
    try:
        imap.login("alice", "secret-alice")
        caps = set(imap.capability()[1][0].upper().split())
        assert not hidden & caps
        assert {b"IDLE", b"MOVE", b"UIDPLUS", b"SPECIAL-USE"} <= caps
        # Only the advertisement changes: Dovecot still honours ENABLE CONDSTORE.
        assert imap.enable("CONDSTORE")[0] == "OK"
    finally:
        imap.logout()


def test_instances_are_independent(server: Dovecot, reduced: Dovecot) -> None:
    assert server.running and reduced.running
    assert server.instance_name != reduced.instance_name
    assert len({server.imap_port, server.imaps_port, reduced.imap_port, reduced.imaps_port}) == 4
    uid = reduced.append("alice", "INBOX", make_message("only on reduced"))
    with reduced.client("alice") as c:
        c.select_folder("INBOX")
        assert c.search(["SUBJECT", "only on reduced"]) == [uid]
    with server.client("alice") as c:
        c.select_folder("INBOX")
        assert c.search(["SUBJECT", "only on reduced"]) == []


def test_stop_is_idempotent() -> None:
    with dovecot_dir("idempotent") as path:
        dv = Dovecot.start(path, users={"erin": "pw"})
        port = dv.imap_port
        dv.client("erin").logout()
        dv.stop()
        dv.stop()
    assert not dv.running
    with pytest.raises(OSError):
        IMAPClient(dv.host, port=port, ssl=False, timeout=2)


def test_make_message() -> None:
    raw = make_message(
        "Héllo", message_id="<a@b>", in_reply_to="<x@y>", extra_headers={"X-Kotak": "1"}
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert (
        b"Message-ID: <a@b>\r\n" in raw
        and b"In-Reply-To: <x@y>\r\n" in raw
        and b"X-Kotak: 1\r\n" in raw
    )
    assert b"Subject: =?utf-8?q?H=C3=A9llo?=" in raw
