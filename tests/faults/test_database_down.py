"""PostgreSQL goes away for a few seconds in the middle of a sync run by a real Celery worker:
its connection is cut and new ones are refused. The task comes back by itself, the folder's
cursor never moves backwards, and the folder ends up equal to the server."""

from __future__ import annotations

import subprocess
import sys
import threading
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection, connections

from tests.conftest import connect_mailbox
from tests.faults.conftest import bulk_messages, child_env, database_url, wait_for
from tests.helpers import assert_mirrors_server
from webmail.models import Folder
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.imap]

OUTAGE_SECONDS = 2.0

# A Celery worker (solo pool, filesystem broker of its own) that queues one sync of the
# mailbox and runs it. After the first window of INBOX is committed, the database goes away:
# this worker's connection is terminated and the database refuses connections for a while.
# The outage is injected here, not in Kotak.
WORKER = """
import sys, threading, django
django.setup()
import psycopg
from django.db import connection
from webmail.celery import app
from webmail.sync import mailbox as mailbox_sync, tasks

mailbox_id, seconds, url = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
original = mailbox_sync.sync_folder
done = []

def database_goes_away():
    name = connection.settings_dict["NAME"]
    admin = psycopg.connect(url, autocommit=True)
    admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    print("database gone", flush=True)

    def back():
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        admin.close()
        print("database back", flush=True)

    threading.Timer(seconds, back).start()

def sync_folder(folder, client, progress=None, status=None, **kwargs):
    def after_window(f):
        if progress:
            progress(f)
        if f.name == "INBOX" and not done:
            done.append(True)
            database_goes_away()
    return original(folder, client, after_window, status, **kwargs)

mailbox_sync.sync_folder = sync_folder
tasks.sync_mailbox.delay(mailbox_id)
app.Worker(
    pool="solo", concurrency=1, loglevel="INFO", hostname="faults@%h",
    without_mingle=True, without_gossip=True, without_heartbeat=True,
).start()
"""


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite is a file, it does not go away")


class CursorWatch(threading.Thread):
    """Reads the folder's cursor every 50 ms from a connection of its own."""

    def __init__(self, mailbox_id: int):
        super().__init__(daemon=True)
        self.mailbox_id = mailbox_id
        self.seen: list[tuple] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.wait(0.05):
                row = (
                    Folder.objects.filter(mailbox_id=self.mailbox_id, name="INBOX")
                    .values_list("uidvalidity", "uidnext", "lowest_synced_uid", "highestmodseq")
                    .first()
                )
                if row and (not self.seen or self.seen[-1] != row):
                    self.seen.append(row)
        finally:
            connections.close_all()


def never_backwards(seen: list[tuple]) -> None:
    started = [row for row in seen if row[0] is not None]
    assert started, "the cursor was never seen"
    assert len({row[0] for row in started}) == 1, f"UIDVALIDITY changed: {started}"
    for before, after in zip(started, started[1:], strict=False):
        assert after[1] >= before[1], f"uidnext went back: {before} -> {after}"
        assert after[2] <= before[2], f"lowest stored UID went up: {before} -> {after}"
        assert (after[3] or 0) >= (before[3] or 0), f"modseq went back: {before} -> {after}"


def test_a_sync_cut_off_from_the_database_retries_and_keeps_its_cursor(
    imap_account, alice, settings, tmp_path, monkeypatch
):
    account = imap_account
    account.server.write_maildir(account.username, "INBOX", bulk_messages(2000))
    with monkeypatch.context() as patch:  # its first sync is the worker's, not an eager one
        patch.setattr("webmail.sync.tasks.enqueue_sync", lambda *args, **kwargs: None)
        mailbox = connect_mailbox(account, manager=alice)
    # ALTER DATABASE … ALLOW_CONNECTIONS is refused from inside that database.
    admin_url = urlunsplit(urlsplit(database_url())._replace(path="/postgres"))
    log_path = tmp_path / "worker.log"
    watch = CursorWatch(mailbox.pk)
    watch.start()
    env = child_env(
        settings,
        KOTAK_DATA_DIR=str(tmp_path),  # the worker's own broker folder
        WATCHERS="0",
        SYNC_WINDOW="500",
        PREFETCH_BODIES="0",
    )
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(mailbox.pk), str(OUTAGE_SECONDS), admin_url],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: (
                Folder.objects.filter(
                    mailbox=mailbox, name="INBOX", lowest_synced_uid=1, sync_state="idle"
                ).exists()
                and worker.poll() is None
            ),
            timeout=40,
            what="the sync to finish after the outage",
            step=0.2,
        )
    finally:
        worker.kill()
        worker.wait(10)
        watch.stopping.set()
        watch.join(5)
        name = connection.settings_dict["NAME"]
        # Whatever happened to the worker, the database takes connections again.
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    output = log_path.read_text()
    assert "database gone" in output and "database back" in output, output[-3000:]
    assert "Retry in" in output, output[-3000:]  # the task itself came back, not a new one

    never_backwards(watch.seen)
    inbox = mailbox.folders.get(name="INBOX")
    assert inbox.messages.count() == 2000
    assert_mirrors_server(account, inbox)
    account.deliver("After the outage")
    sync_mailbox(mailbox)  # and later syncs go on from there
    assert_mirrors_server(account, inbox)
    assert inbox.messages.count() == 2001
