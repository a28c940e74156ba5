"""A worker SIGKILLed during a write-back, after the server carried out the command and before
the database recorded it: once its lease runs out another worker finishes the change, and the
server holds the intended result exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.faults.conftest import child_env
from tests.helpers import assert_mirrors_server, server_state
from tests.sync.test_writeback import make_due, synced_messages, uids_on_server
from webmail import actions
from webmail.models import Message, PendingChange
from webmail.sync.mailbox import sync_mailbox
from webmail.sync.writeback import apply_pending

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.imap]

# A worker process that applies the mailbox's due changes, but stops dead right after the IMAP
# command has been answered and before anything is written to the database: it says "sent" and
# waits to be killed. The pause is injected here, not in Kotak.
WORKER = """
import sys, time, django
django.setup()
from webmail.models import Mailbox
from webmail.sync import writeback

def stop_here(*args, **kwargs):
    print("sent", flush=True)
    time.sleep(600)

if sys.argv[2] == "move":
    writeback._Writer._settle_move = stop_here  # runs after UID MOVE, before the rows change
else:
    store = writeback.conditional_store

    def store_then_stop(*args, **kwargs):
        store(*args, **kwargs)
        stop_here()

    writeback.conditional_store = store_then_stop  # UID STORE sent; the change row remains
writeback.apply_pending(Mailbox.objects.get(pk=int(sys.argv[1])))
print("finished", flush=True)
"""


def run_until_sent(mailbox, kind: str, settings) -> subprocess.Popen:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(mailbox.pk), kind],
        env=child_env(settings, WATCHERS="0"),
        stdout=subprocess.PIPE,
        text=True,
    )
    line = worker.stdout.readline().strip()  # blocks until the command was answered
    assert line == "sent", f"the worker stopped before sending ({worker.wait(10)})"
    return worker


def kill(worker: subprocess.Popen) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL


def lease_runs_out(mailbox) -> None:
    PendingChange.objects.filter(mailbox=mailbox).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_a_move_is_not_repeated_nor_lost_when_the_worker_dies_after_sending_it(
    mailbox, bob, settings
):
    first, second, third = synced_messages(mailbox, "Move A", "Move B", "Stay C")
    actions.archive(bob, mailbox, [first, second])
    make_due(mailbox)

    worker = run_until_sent(mailbox, "move", settings)
    try:
        # The server moved them; the database still thinks they are in INBOX, claimed.
        assert sorted(uids_on_server(mailbox.account, "Archive").values()) == ["Move A", "Move B"]
        claims = set(PendingChange.objects.values_list("claimed_by", flat=True))
        assert len(claims) == 1 and "" not in claims
        assert set(Message.objects.filter(folder__name="INBOX").values_list("pk", flat=True)) == {
            first.pk,
            second.pk,
            third.pk,
        }
    finally:
        kill(worker)

    assert apply_pending(mailbox).applied == 0, "taken over before the lease ran out"
    lease_runs_out(mailbox)
    result = apply_pending(mailbox)

    assert result.applied == 2 and result.failed == 0
    assert not PendingChange.objects.exists()
    sync_mailbox(mailbox)
    assert sorted(uids_on_server(mailbox.account, "Archive").values()) == ["Move A", "Move B"]
    assert sorted(uids_on_server(mailbox.account, "INBOX").values()) == ["Stay C"]
    archived = Message.objects.filter(subject__in=["Move A", "Move B"])
    assert sorted(m.folder.name for m in archived) == ["Archive", "Archive"]
    # Same conversations: the moved messages were recognised, not taken for new mail.
    assert {m.conversation_id for m in archived} == {first.conversation_id, second.conversation_id}
    for folder in mailbox.folders.filter(name__in=["INBOX", "Archive"]):
        assert_mirrors_server(mailbox.account, folder)


def test_a_flag_stored_by_a_worker_that_died_is_not_undone_nor_fought_over(
    mailbox, bob, settings, monkeypatch
):
    (message,) = synced_messages(mailbox, "Flag me")
    # The click is only recorded: the worker below is the first to take it.
    monkeypatch.setattr("webmail.sync.tasks.enqueue_writeback", lambda *args, **kwargs: None)
    actions.set_flag(bob, [message], "\\Flagged", True)
    assert PendingChange.objects.count() == 1

    worker = run_until_sent(mailbox, "flag", settings)
    try:
        assert server_state(mailbox.account, "INBOX")[message.uid]["is_flagged"]
        assert PendingChange.objects.exclude(claimed_by="").count() == 1
    finally:
        kill(worker)

    sync_mailbox(mailbox)  # a sync meanwhile keeps the user's click, which is still pending
    assert Message.objects.get(pk=message.pk).is_flagged
    lease_runs_out(mailbox)
    assert apply_pending(mailbox).applied == 1
    assert not PendingChange.objects.exists()
    sync_mailbox(mailbox)
    assert server_state(mailbox.account, "INBOX")[message.uid]["is_flagged"]
    assert_mirrors_server(mailbox.account, mailbox.folders.get(name="INBOX"))
