"""Watchers: one long-lived IDLE connection per mailbox, held inside the Celery workers.

A watcher only notices change and enqueues sync tasks; the tasks do the work. Exactly one
watcher per mailbox runs across every worker process and host: a lease row (Mailbox.
watcher_owner / watcher_expires_at), taken and renewed with conditional UPDATEs, decides who —
not the broker, which may redeliver. All the watchers of a process share one thread that
waits on their sockets with a selector, so a worker can hold many mailboxes cheaply.

Per mailbox: IDLE on INBOX (RFC 2177), DONE and re-IDLE every IDLE_RENEW seconds (NATs drop
silent flows after a few minutes), STATUS of the other folders every STATUS_INTERVAL seconds;
on a server without IDLE, NOOP on INBOX every POLL_INTERVAL seconds instead;
TCP keepalive, reconnect with jittered exponential backoff, and a catch-up sync after every
(re)connect, since whatever happened while disconnected was not notified.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import selectors
import socket
import threading
import time
import uuid
from datetime import timedelta

import imapclient
from django.conf import settings
from django.db import close_old_connections, connections
from django.db.models import Q
from django.utils import timezone
from imapclient.exceptions import IMAPClientError

from webmail.imap.client import AuthenticationFailed, ConnectError, connect
from webmail.imap.extensions import folder_statuses, notify_set
from webmail.models import Folder, Mailbox
from webmail.sync import slots

log = logging.getLogger(__name__)

# Responses to IDLE that mean the folder changed (RFC 3501 §7.3-7.4, RFC 7162 §3.2.10).
CHANGES = {b"EXISTS", b"EXPUNGE", b"FETCH", b"VANISHED", b"RECENT"}


def claim(owner: str, ttl: timedelta, limit: int) -> list[int]:
    """Take the leases of up to `limit` mailboxes nobody watches (or whose watcher died)."""
    now = timezone.now()
    free = Q(watcher_expires_at__isnull=True) | Q(watcher_expires_at__lt=now)
    candidates = (
        Mailbox.objects.exclude(status=Mailbox.Status.NEEDS_ATTENTION)
        .filter(free)
        .values_list("pk", flat=True)[:limit]
    )
    claimed = []
    for pk in candidates:
        # Conditional: another process may have claimed it since we read.
        if Mailbox.objects.filter(free, pk=pk).update(
            watcher_owner=owner, watcher_expires_at=now + ttl
        ):
            claimed.append(pk)
    return claimed


def renew(owner: str, ids: set[int], ttl: timedelta) -> set[int]:
    """Extend our leases; return the ids we still hold."""
    if not ids:
        return set()
    Mailbox.objects.filter(pk__in=ids, watcher_owner=owner).update(
        watcher_expires_at=timezone.now() + ttl
    )
    return set(
        Mailbox.objects.filter(pk__in=ids, watcher_owner=owner)
        .exclude(status=Mailbox.Status.NEEDS_ATTENTION)
        .values_list("pk", flat=True)
    )


def release(owner: str, ids: set[int]) -> None:
    Mailbox.objects.filter(pk__in=ids, watcher_owner=owner).update(
        watcher_owner="", watcher_expires_at=None
    )


class Watcher:
    """The IDLE connection of one mailbox and its timers."""

    def __init__(self, mailbox_id: int):
        self.mailbox_id = mailbox_id
        self.client: imapclient.IMAPClient | None = None
        self.sock: socket.socket | None = None
        self.idle_since = 0.0
        self.status_at = 0.0
        self.polled_at = 0.0
        self.idling = False  # False: the server has no IDLE, so the watcher polls
        self.next_attempt = 0.0
        self.failures = 0
        self.notify = False  # RFC 5465: the server tells about every folder on this connection
        self.slot = slots.holder_name("watch")

    @property
    def connected(self) -> bool:
        return self.client is not None

    def open(self, slot_ttl: timedelta) -> None:
        mailbox = Mailbox.objects.get(pk=self.mailbox_id)
        # The watcher's connection counts against the mailbox's cap like any other.
        if not slots.try_acquire(self.mailbox_id, self.slot, slot_ttl):
            raise slots.NoFreeConnection("no free connection slot for the watcher")
        try:
            client = connect(mailbox.imap_settings(), timeout=settings.IMAP_TIMEOUT)
        except BaseException:
            slots.release(self.slot)
            raise
        try:
            client.select_folder("INBOX", readonly=True)
            self.idling = client.has_capability("IDLE")
            self.notify = self.idling and client.has_capability("NOTIFY") and notify_set(client)
            if self.idling:
                client.idle()
        except BaseException:
            client.shutdown()
            slots.release(self.slot)
            raise
        self.client = client
        self.sock = client.socket()
        self.idle_since = self.status_at = self.polled_at = time.monotonic()
        self.failures = 0

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # closing a connection that may be dead
                self.client.shutdown()
            slots.release(self.slot)
        self.client = self.sock = None

    def schedule_retry(self) -> None:
        self.failures += 1
        delay = min(settings.WATCHER_BACKOFF_MAX, 2 ** min(self.failures, 10))
        self.next_attempt = time.monotonic() + random.uniform(delay / 2, delay)

    def read(self) -> list[str] | None:
        """Read what the server sent. Returns the folders to sync: [] when nothing changed,
        None when the folder list itself changed (sync everything).

        A socket that polls readable but yields nothing was closed by the server (imapclient's
        idle_check swallows the EOF), so that raises ConnectionError.
        """
        responses = self.client.idle_check(timeout=0)
        if not responses:
            raise ConnectionError("IDLE connection closed by the server")
        return _changed_folders(responses)

    def refresh(self) -> list[str] | None:
        """DONE, then IDLE again: proves the connection alive and outlives NAT timeouts.
        Returns what the server reported meanwhile, as read() does."""
        try:
            return self._done()
        finally:
            self.client.idle()
            self.idle_since = time.monotonic()

    def changed_folders(self) -> list[str] | None:
        """Leave IDLE, STATUS the other folders, compare with the stored cursors, IDLE again.
        Returns the folders that changed, INBOX among them if the server reported it
        meanwhile; None if the folder list itself changed."""
        try:
            changed = self._done()
            if changed is not None:
                changed += self._status_changes()
        finally:
            self.client.idle()
            self.idle_since = self.status_at = time.monotonic()
        return changed

    def _done(self) -> list[str] | None:
        """End IDLE, keeping what the server sent with its answer. Some servers (Cyrus without
        its idled, for one) report a change only then, not while IDLE lasts."""
        _text, responses = self.client.idle_done()
        return _changed_folders(responses)

    def poll(self, statuses: bool) -> list[str] | None:
        """Without IDLE: NOOP, whose answer carries what changed in INBOX (RFC 3501 §6.1.2),
        and with `statuses` a STATUS of the other folders too. Returns as read() does."""
        _text, responses = self.client.noop()
        self.polled_at = time.monotonic()
        changed = _changed_folders(responses)
        if statuses and changed is not None:
            changed += self._status_changes()
            self.status_at = self.polled_at
        return changed

    def _status_changes(self) -> list[str]:
        """The folders other than INBOX whose STATUS differs from their stored cursor."""
        folders = list(
            Folder.objects.filter(mailbox_id=self.mailbox_id, is_selectable=True).exclude(
                special_use="inbox"
            )
        )
        statuses = folder_statuses(
            self.client, [f.name for f in folders], self.client.has_capability("CONDSTORE")
        )
        changed = []
        for folder in folders:
            status = statuses.get(folder.name)
            if status is None:
                continue
            if (
                status.uidvalidity != folder.uidvalidity
                or status.uidnext != folder.uidnext
                or status.messages != folder.total_count
                or (
                    status.highestmodseq is not None
                    and status.highestmodseq != folder.highestmodseq
                )
            ):
                changed.append(folder.name)
        return changed


def _changed_folders(responses: list) -> list[str] | None:
    """What a server's untagged responses say changed: the folders to sync ([] for none), or
    None when the folder list itself changed (sync everything)."""
    folders: list[str] = []
    for response in responses:
        if not isinstance(response, tuple) or not response:
            continue
        if response[0] == b"BYE":
            raise ConnectionError("server said BYE")
        if response[0] == b"STATUS" and len(response) > 1:
            # NOTIFY: another folder changed (RFC 5465 §5.2).
            name = response[1]
            folders.append(
                name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            )
        elif response[0] == b"LIST":
            return None  # a folder was created, renamed or deleted (MailboxName event)
        elif len(response) > 1 and (response[1] in CHANGES or response[0] in CHANGES):
            folders.append("INBOX")
    return sorted(set(folders))


class WatcherPool:
    """Every watcher of this process, served by one thread."""

    def __init__(self, owner: str | None = None, enqueue=None):
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.enqueue = enqueue or _enqueue_sync
        self.watchers: dict[int, Watcher] = {}
        self.selector = selectors.DefaultSelector()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.ttl = timedelta(seconds=settings.WATCHER_LEASE_TTL)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="kotak-watchers", daemon=True)
        self.thread.start()

    def stop(self, *, release_leases: bool = True) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        for watcher in self.watchers.values():
            watcher.close()
        if release_leases:
            release(self.owner, set(self.watchers))
        close_old_connections()

    def run(self) -> None:
        next_lease = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            try:
                if now >= next_lease:
                    self._leases()
                    next_lease = now + settings.WATCHER_LEASE_TTL / 3
                self._connect_due()
                self._wait(0.5)
                self._timers()
            except Exception:  # noqa: BLE001 — the loop must outlive any one failure
                log.exception("watcher loop")
                close_old_connections()
                self.stopping.wait(1)
        for watcher in self.watchers.values():
            watcher.close()
        connections.close_all()  # this thread's own database connection

    # -- leases ---------------------------------------------------------------------------

    def _leases(self) -> None:
        held = renew(self.owner, set(self.watchers), self.ttl)
        slots.renew(*(w.slot for w in self.watchers.values() if w.connected), ttl=self.ttl)
        for mailbox_id in set(self.watchers) - held:
            state = (
                Mailbox.objects.filter(pk=mailbox_id)
                .values("watcher_owner", "status", "last_error")
                .first()
            )
            log.info("watcher: mailbox %s is no longer ours (%s)", mailbox_id, state)
            self._drop(mailbox_id)
        room = settings.WATCHER_MAX_MAILBOXES - len(self.watchers)
        if room > 0:
            for mailbox_id in claim(self.owner, self.ttl, room):
                self.watchers[mailbox_id] = Watcher(mailbox_id)

    def _drop(self, mailbox_id: int) -> None:
        watcher = self.watchers.pop(mailbox_id)
        self._unregister(watcher)
        watcher.close()

    # -- connections ----------------------------------------------------------------------

    def _connect_due(self) -> None:
        now = time.monotonic()
        for watcher in list(self.watchers.values()):
            if watcher.connected or watcher.next_attempt > now or self.stopping.is_set():
                continue
            try:
                watcher.open(self.ttl)
            except AuthenticationFailed as exc:
                # Marked "needs attention" for a person; retrying would lock the account.
                Mailbox.objects.get(pk=watcher.mailbox_id).record_error(
                    Mailbox.Status.NEEDS_ATTENTION, str(exc)
                )
                release(self.owner, {watcher.mailbox_id})
                self._drop(watcher.mailbox_id)
                continue
            except (ConnectError, IMAPClientError, OSError, Mailbox.DoesNotExist) as exc:
                log.info("watcher %s: cannot connect: %s", watcher.mailbox_id, exc)
                watcher.schedule_retry()
                continue
            if watcher.idling:
                self.selector.register(watcher.sock, selectors.EVENT_READ, watcher)
            # Whatever happened while we were not listening was not notified: catch up.
            self.enqueue(watcher.mailbox_id, None)

    def _unregister(self, watcher: Watcher) -> None:
        if watcher.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(watcher.sock)

    def _lost(self, watcher: Watcher, reason: object) -> None:
        log.info("watcher %s: connection lost: %s", watcher.mailbox_id, reason)
        self._unregister(watcher)
        watcher.close()
        watcher.schedule_retry()

    def _wait(self, timeout: float) -> None:
        if not self.selector.get_map():
            self.stopping.wait(timeout)
            return
        for key, _ in self.selector.select(timeout):
            watcher: Watcher = key.data
            try:
                folders = watcher.read()
                if folders != []:
                    self.enqueue(watcher.mailbox_id, folders)
            except (ConnectionError, IMAPClientError, OSError) as exc:
                self._lost(watcher, exc)

    def _timers(self) -> None:
        now = time.monotonic()
        for watcher in list(self.watchers.values()):
            if not watcher.connected:
                continue
            try:
                if not watcher.idling:
                    if now - watcher.polled_at >= settings.WATCHER_POLL_INTERVAL:
                        statuses = now - watcher.status_at >= settings.WATCHER_STATUS_INTERVAL
                        changed = watcher.poll(statuses)
                        if changed != []:
                            self.enqueue(watcher.mailbox_id, changed)
                elif (
                    not watcher.notify
                    and now - watcher.status_at >= settings.WATCHER_STATUS_INTERVAL
                ):
                    changed = watcher.changed_folders()
                    if changed != []:
                        self.enqueue(watcher.mailbox_id, changed)
                elif now - watcher.idle_since >= settings.WATCHER_IDLE_RENEW:
                    changed = watcher.refresh()
                    if changed != []:
                        self.enqueue(watcher.mailbox_id, changed)
            except (ConnectionError, IMAPClientError, OSError) as exc:
                self._lost(watcher, exc)


def _enqueue_sync(mailbox_id: int, folders: list[str] | None) -> None:
    from webmail.sync.tasks import enqueue_sync

    enqueue_sync(mailbox_id, folders)
