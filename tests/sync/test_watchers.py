"""Watchers against the real Dovecot: IDLE notices, leases keep one watcher per mailbox."""

import contextlib
import re
import select
import socket
import threading
import time
from datetime import timedelta

import pytest

from webmail.models import Mailbox
from webmail.sync.mailbox import sync_mailbox
from webmail.sync.watchers import Watcher, WatcherPool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.imap]


def wait_for(condition, timeout: float = 8.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def fast_watchers(settings):
    settings.WATCHER_LEASE_TTL = 2
    settings.WATCHER_BACKOFF_MAX = 2


@pytest.fixture
def pools():
    started = []

    def start(owner):
        pool = WatcherPool(owner=owner)
        pool.start()
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.stop()


def connected(pool, mailbox) -> bool:
    watcher = pool.watchers.get(mailbox.pk)
    return watcher is not None and watcher.connected


def test_mail_appended_by_another_client_is_synced_within_seconds(mailbox, pools, fast_watchers):
    pool = pools("worker-a")
    wait_for(lambda: connected(pool, mailbox), what="the watcher to connect")
    wait_for(lambda: mailbox.folders.filter(special_use="inbox").exists(), what="catch-up sync")
    started = time.monotonic()
    mailbox.account.deliver("Hello from outside")
    wait_for(lambda: mailbox.messages.filter(subject="Hello from outside").exists(), what="sync")
    # Dovecot itself holds IDLE notifications ~0.5 s; the rest is ours (see make bench-live).
    assert time.monotonic() - started < 3


def test_one_watcher_per_mailbox_and_a_survivor_takes_over(mailbox, pools, fast_watchers):
    first = pools("worker-a")
    wait_for(lambda: connected(first, mailbox), what="the first watcher")
    second = pools("worker-b")
    time.sleep(1.5)  # several lease rounds of the second worker
    assert mailbox.pk not in second.watchers
    assert Mailbox.objects.get(pk=mailbox.pk).watcher_owner == "worker-a"

    first.stop(release_leases=False)  # killed: its lease is left to expire
    wait_for(lambda: connected(second, mailbox), timeout=6, what="the takeover")
    mailbox.account.deliver("After the takeover")
    wait_for(lambda: mailbox.messages.filter(subject="After the takeover").exists(), what="sync")


def test_a_connection_dropped_by_the_server_is_reestablished(mailbox, pools, fast_watchers):
    pool = pools("worker-a")
    wait_for(lambda: connected(pool, mailbox), what="the watcher to connect")
    account = mailbox.account
    account.server.doveadm("kick", account.username)
    account.deliver("Sent while the watcher was away")
    wait_for(
        lambda: mailbox.messages.filter(subject="Sent while the watcher was away").exists(),
        what="the catch-up sync after reconnecting",
    )
    assert connected(pool, mailbox)


def test_a_wrong_password_is_reported_and_not_retried(mailbox, pools, fast_watchers):
    mailbox.imap_password = "changed"
    mailbox.save()
    pool = pools("worker-a")
    wait_for(
        lambda: Mailbox.objects.get(pk=mailbox.pk).status == Mailbox.Status.NEEDS_ATTENTION,
        what="needs attention",
    )
    time.sleep(0.5)
    assert mailbox.pk not in pool.watchers
    assert Mailbox.objects.get(pk=mailbox.pk).watcher_owner == ""


def test_the_watcher_comes_back_after_the_server_restarts(
    db, alice, pools, fast_watchers, tmp_path
):
    """Its own Dovecot, so stopping it does not disturb other tests."""
    from tests.conftest import ImapAccount, connect_mailbox
    from tests.dovecot import Dovecot, dovecot_dir

    with dovecot_dir("restart") as path, Dovecot.start(path, users={"ops": "pw-ops"}) as server:
        account = ImapAccount(server, "ops", "pw-ops", "ops@example.com")
        mailbox = connect_mailbox(account, manager=alice)
        pool = pools("worker-a")
        wait_for(lambda: connected(pool, mailbox), what="the watcher to connect")
        server.stop()
        wait_for(lambda: not connected(pool, mailbox), what="the loss to be noticed")
        server.restart()
        account.deliver("Delivered while the watcher was away")
        wait_for(
            lambda: mailbox.messages.filter(
                subject="Delivered while the watcher was away"
            ).exists(),
            timeout=10,
            what="reconnect and catch-up sync",
        )


def test_with_notify_other_folders_are_watched_too(mailbox, pools, fast_watchers, settings):
    settings.WATCHER_STATUS_INTERVAL = 3600  # no STATUS polling: only NOTIFY can tell
    pool = pools("worker-a")
    wait_for(lambda: connected(pool, mailbox), what="the watcher to connect")
    assert pool.watchers[mailbox.pk].notify
    wait_for(lambda: mailbox.folders.filter(name="Archive").exists(), what="catch-up sync")
    mailbox.account.deliver("Filed straight away", folder="Archive")
    wait_for(
        lambda: mailbox.messages.filter(subject="Filed straight away").exists(),
        what="the Archive sync",
    )


def test_without_notify_other_folders_are_polled(
    db, alice, plain_imap_account, pools, fast_watchers, settings
):
    from tests.conftest import connect_mailbox

    settings.WATCHER_STATUS_INTERVAL = 1
    mailbox = connect_mailbox(plain_imap_account, manager=alice)
    pool = pools("worker-a")
    wait_for(lambda: connected(pool, mailbox), what="the watcher to connect")
    assert not pool.watchers[mailbox.pk].notify
    wait_for(lambda: mailbox.folders.filter(name="Archive").exists(), what="catch-up sync")
    plain_imap_account.deliver("Filed elsewhere", folder="Archive")
    wait_for(
        lambda: mailbox.messages.filter(subject="Filed elsewhere").exists(),
        what="the STATUS poll and sync",
    )


@pytest.mark.parametrize("ending", ["renewal", "status poll"])
def test_a_change_the_server_reports_only_as_idle_ends_starts_a_sync(
    db, alice, plain_imap_account, ending
):
    """Some servers (Cyrus without its idled, for one) report a change only in their answer to
    DONE. The watcher ends IDLE every few minutes, to renew it or to STATUS the other folders:
    what the server says then must start a sync as a notice during IDLE does."""
    from tests.conftest import connect_mailbox

    mailbox = connect_mailbox(plain_imap_account, manager=alice)
    sync_mailbox(mailbox)
    watcher = Watcher(mailbox.pk)
    watcher.open(timedelta(seconds=30))
    try:
        plain_imap_account.deliver("Reported late")
        # Dovecot sends its notice during IDLE; left unread until DONE, it arrives as such a
        # server's would.
        wait_for(lambda: select.select([watcher.sock], [], [], 0)[0], what="the server's notice")
        changed = watcher.refresh() if ending == "renewal" else watcher.changed_folders()
    finally:
        watcher.close()
    assert changed == ["INBOX"]


def test_the_watcher_counts_against_the_connection_cap(mailbox, pools, fast_watchers, settings):
    from webmail.models import ConnectionSlot

    settings.IMAP_MAX_CONNECTIONS = 1
    pool = pools("worker-a")
    wait_for(lambda: connected(pool, mailbox), what="the watcher to connect")
    held = ConnectionSlot.objects.filter(mailbox=mailbox).exclude(holder="")
    assert [slot.holder.split("@")[0] for slot in held] == ["watch"]
    pool.stop()
    assert not ConnectionSlot.objects.filter(mailbox=mailbox).exclude(holder="").exists()


WATCHER_PROCESS = """
import sys, time, django
django.setup()
from webmail.sync.watchers import WatcherPool
pool = WatcherPool(owner=sys.argv[1], enqueue=lambda *args: None)
pool.start()
time.sleep(120)
"""


def test_two_worker_processes_still_one_watcher_and_a_killed_one_is_replaced(
    mailbox, settings, tmp_path
):
    import os
    import signal
    import subprocess
    import sys

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = dict(
        os.environ,
        DATABASE_URL=url,
        KOTAK_ENCRYPTION_KEYS=",".join(settings.ENCRYPTION_KEYS),
        WATCHER_LEASE_TTL="2",
    )

    def owner():
        return Mailbox.objects.get(pk=mailbox.pk).watcher_owner

    def spawn(name):
        return subprocess.Popen([sys.executable, "-c", WATCHER_PROCESS, name], env=env)

    first = spawn("process-a")
    second = None
    try:
        wait_for(lambda: owner() == "process-a", timeout=15, what="the first process's lease")
        second = spawn("process-b")
        time.sleep(3)  # the second process is up and renewing nothing
        assert owner() == "process-a"
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: owner() == "process-b", timeout=10, what="the survivor to take over")
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
                process.wait()


class NoIdleRelay:
    """Plain IMAP in front of Dovecot, made a server without IDLE: "IDLE" leaves every
    CAPABILITY it sends, and an IDLE command is answered BAD, as such a server answers it."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refused = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._commands, args=(client, server), daemon=True).start()
            threading.Thread(target=self._answers, args=(server, client), daemon=True).start()

    @staticmethod
    def _lines(sock):
        held = b""
        while data := sock.recv(65536):
            held += data
            *lines, held = held.split(b"\r\n")
            yield from (line + b"\r\n" for line in lines)

    def _commands(self, client, server) -> None:
        with client, server:
            try:
                for line in self._lines(client):
                    idle = re.fullmatch(rb"(\S+) IDLE\r\n", line, re.IGNORECASE)
                    if idle:
                        self.refused += 1
                        client.sendall(idle.group(1) + b" BAD Unknown command IDLE\r\n")
                    else:
                        server.sendall(line)
            except OSError:
                pass

    def _answers(self, server, client) -> None:
        try:
            for line in self._lines(server):
                if b"CAPABILITY" in line:
                    line = line.replace(b" IDLE", b"")
                client.sendall(line)
        except OSError:
            pass
        with client, contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_a_server_without_idle_is_polled_not_sent_idle(
    db, alice, imap_account, pools, fast_watchers, settings
):
    from tests.conftest import connect_mailbox

    settings.WATCHER_POLL_INTERVAL = 1
    settings.WATCHER_STATUS_INTERVAL = 1
    relay = NoIdleRelay(imap_account.server.imap_port)
    try:
        mailbox = connect_mailbox(imap_account, manager=alice, security="plain")
        Mailbox.objects.filter(pk=mailbox.pk).update(imap_port=relay.port)
        pool = pools("worker-a")
        wait_for(lambda: connected(pool, mailbox), what="the watcher to connect")
        assert not pool.watchers[mailbox.pk].idling
        wait_for(lambda: mailbox.folders.filter(name="Archive").exists(), what="catch-up sync")

        imap_account.deliver("Arrived without IDLE")
        imap_account.deliver("Filed without IDLE", folder="Archive")
        wait_for(
            lambda: mailbox.messages.filter(subject__endswith="without IDLE").count() == 2,
            what="the NOOP and STATUS polls and the sync",
        )
        assert relay.refused == 0
        assert connected(pool, mailbox)
    finally:
        relay.close()
