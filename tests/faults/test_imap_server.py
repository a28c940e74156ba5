"""The IMAP server goes away under Kotak: stopped mid initial sync, or the process serving the
watcher's IDLE connection killed or frozen. Nothing is lost or duplicated, and the watcher comes
back on its own."""

from __future__ import annotations

import imaplib
import os
import signal
import time

import pytest

from tests.conftest import connect_mailbox
from tests.faults.conftest import bulk_messages, wait_for
from tests.helpers import assert_mirrors_server
from webmail.imap.client import ConnectError
from webmail.models import Conversation, Mailbox
from webmail.sync.mailbox import sync_mailbox
from webmail.sync.watchers import WatcherPool

pytestmark = pytest.mark.imap


@pytest.mark.django_db
def test_a_server_stopped_mid_initial_sync_loses_and_duplicates_nothing(
    alice, own_account, settings
):
    stop_mid_initial_sync(alice, own_account, settings, window=500)


@pytest.mark.django_db(transaction=True)
def test_a_server_stopped_mid_pipelined_initial_sync_loses_and_duplicates_nothing(
    alice, own_account, settings
):
    """Outside a test transaction, on PostgreSQL, conversations are committed a window ahead
    of their rows on a second connection: the reader's failure reaches the writer through
    that thread, and the conversations made ahead are used by the next run."""
    # Small windows: the stages run several windows ahead of the writer, and the server must
    # stop while some are left to fetch.
    stop_mid_initial_sync(alice, own_account, settings, window=100)
    assert not Conversation.objects.filter(messages__isnull=True).exists()


def stop_mid_initial_sync(alice, own_account, settings, window: int) -> None:
    settings.SYNC_WINDOW = window
    server = own_account.server
    server.write_maildir(own_account.username, "INBOX", bulk_messages(3000))
    mailbox = connect_mailbox(own_account, manager=alice)
    # Outside a test transaction adding the mailbox has synced it already (its task runs on
    # commit, eagerly here): start again from a mailbox never synced.
    Conversation.objects.filter(mailbox=mailbox).delete()
    mailbox.folders.all().delete()
    Mailbox.objects.filter(pk=mailbox.pk).update(status=Mailbox.Status.NEW)
    windows = []

    def stop_after_first_window(folder):
        windows.append((folder.name, folder.sync_done))
        if len(windows) == 1:
            server.stop()

    with pytest.raises((imaplib.IMAP4.abort, OSError, ConnectError)):
        sync_mailbox(mailbox, progress=stop_after_first_window)

    # Windows the reader had fetched before the server went away are stored too (each with
    # its cursor); the sync stops at the first it could not fetch.
    assert windows[0] == ("INBOX", window)
    stored = windows[-1][1]
    assert [done for _, done in windows] == list(range(window, stored + 1, window))
    assert stored < 3000
    inbox = mailbox.folders.get(special_use="inbox")
    assert inbox.messages.count() == stored
    assert (inbox.lowest_synced_uid, inbox.uidnext) == (3001 - stored, 3001)
    assert Mailbox.objects.get(pk=mailbox.pk).status != Mailbox.Status.OK
    assert inbox.last_full_scan_at is None

    server.restart()
    result = sync_mailbox(mailbox)

    assert result.folders["INBOX"].added == 3000 - stored  # only what was missing
    assert_mirrors_server(own_account, inbox)
    subjects = list(inbox.messages.values_list("subject", flat=True))
    assert len(subjects) == len(set(subjects)) == 3000
    assert Mailbox.objects.get(pk=mailbox.pk).status == Mailbox.Status.OK


# -- the watcher's IDLE connection ------------------------------------------------------------


@pytest.fixture
def fast_watchers(settings):
    settings.WATCHER_LEASE_TTL = 3
    settings.WATCHER_BACKOFF_MAX = 1
    settings.WATCHER_IDLE_RENEW = 2  # DONE and IDLE again every 2 s…
    settings.IMAP_TIMEOUT = 2  # …and a server that does not answer DONE within 2 s is dead


@pytest.fixture
def pool():
    pools = []

    def start():
        pools.append(WatcherPool(owner="worker-faults"))
        pools[-1].start()
        return pools[-1]

    yield start
    for started in pools:
        started.stop()


def imap_processes(account) -> list[int]:
    """Pids of the Dovecot imap processes serving the account's sessions right now."""
    out = account.server.doveadm("who", "-1", account.username)
    pids = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[0] == account.username:
            pids.append(int(fields[2]))
    return pids


def watching(pool, mailbox) -> bool:
    watcher = pool.watchers.get(mailbox.pk)
    return watcher is not None and watcher.connected


def settled(pool, mailbox, account) -> int:
    """Wait until the watcher is connected and its catch-up sync has logged out: then the
    account's only session is the watcher's. Returns the pid of its imap process."""
    wait_for(lambda: watching(pool, mailbox), what="the watcher to connect")
    wait_for(lambda: mailbox.folders.filter(special_use="inbox").exists(), what="catch-up sync")
    pids: list[int] = []

    def alone() -> bool:
        pids[:] = imap_processes(account)  # one look: a session may start right after
        return len(pids) == 1

    wait_for(alone, what="only the IDLE session left")
    return pids[0]


@pytest.mark.django_db(transaction=True)
def test_the_imap_process_behind_idle_killed_the_watcher_reconnects(mailbox, pool, fast_watchers):
    account = mailbox.account
    watchers = pool()
    pid = settled(watchers, mailbox, account)
    first = watchers.watchers[mailbox.pk].client

    os.kill(pid, signal.SIGKILL)  # no BYE: the connection just ends
    account.deliver("Delivered while the watcher was down")

    wait_for(
        lambda: mailbox.messages.filter(subject="Delivered while the watcher was down").exists(),
        timeout=6,
        what="reconnect and catch-up sync",
    )
    assert watchers.watchers[mailbox.pk].client is not first
    # And the new connection does its job: mail after the reconnect arrives through IDLE.
    account.deliver("Delivered after the reconnect")
    wait_for(
        lambda: mailbox.messages.filter(subject="Delivered after the reconnect").exists(),
        timeout=4,
        what="IDLE on the new connection",
    )


@pytest.mark.django_db(transaction=True)
def test_a_frozen_server_is_given_up_at_the_next_reidle_and_replaced(mailbox, pool, fast_watchers):
    """SIGSTOP: the TCP connection stays open and silent, as behind a NAT that forgot it. Only
    the re-IDLE (DONE must be answered within IMAP_TIMEOUT) can tell."""
    account = mailbox.account
    watchers = pool()
    pid = settled(watchers, mailbox, account)
    first = watchers.watchers[mailbox.pk].client
    os.kill(pid, signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        account.deliver("Delivered to a frozen session")  # a new session, its own process
        # Re-IDLE within 2 s, DONE unanswered for 2 s, reconnect within 1 s, catch-up sync.
        wait_for(
            lambda: mailbox.messages.filter(subject="Delivered to a frozen session").exists(),
            timeout=10,
            what="the frozen connection to be replaced",
        )
        assert time.monotonic() - frozen_at < 8
        assert watchers.watchers[mailbox.pk].client is not first
    finally:
        os.kill(pid, signal.SIGKILL)
