"""The server-sent event stream: /events/?mailbox=N[&mailbox=M][&viewing=MESSAGE_ID]
[&activity=replying].

One hub per event loop reads new change-log rows once and fans them out to every open stream
of this process, woken by a Redis nudge (LIVE_BACKEND=redis) or by polling the log. A stream
first replays what its client missed (Last-Event-ID, or ?since= on the first connection) and
then relays what the hub delivers; ids only grow, so nothing is sent twice or skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from webmail import live
from webmail.models import Change, Mailbox, Message, Presence

log = logging.getLogger(__name__)

HEARTBEAT = 15.0  # seconds between comments that keep proxies and the browser's timer happy
MEMBERSHIP_RECHECK = 60.0  # a member removed from the mailbox loses the stream within this
PRESENCE_TTL = timedelta(seconds=45)
BATCH = 500


class Hub:
    """Fan-out of new Change rows to the streams of one event loop."""

    def __init__(self) -> None:
        # One thread, one long-lived connection, for all the streams of this process.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="kotak-hub")
        self.queues: dict[asyncio.Queue, frozenset[int]] = {}
        self.last_id = 0
        self.task: asyncio.Task | None = None
        self.wake = asyncio.Event()

    def subscribe(self, mailbox_ids: frozenset[int], last_id: int) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self.queues[queue] = mailbox_ids
        if self.task is None or self.task.done():
            self.last_id = last_id
            self.task = asyncio.create_task(self.run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.queues.pop(queue, None)

    async def run(self) -> None:
        listener = asyncio.create_task(self.listen()) if settings.LIVE_BACKEND == "redis" else None
        try:
            while self.queues:
                rows = await asyncio.get_running_loop().run_in_executor(
                    self.executor, _changes_after, self.last_id, None
                )
                for change in rows:
                    self.last_id = change.pk
                    for queue, mailbox_ids in list(self.queues.items()):
                        if change.mailbox_id in mailbox_ids:
                            queue.put_nowait(change)
                if len(rows) == BATCH:
                    continue
                self.wake.clear()
                # With Redis the nudge wakes us; the timeout is the fallback if Redis is down.
                timeout = settings.LIVE_POLL_INTERVAL if listener is None else 5.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
        finally:
            if listener is not None:
                listener.cancel()
            await asyncio.get_running_loop().run_in_executor(self.executor, connections.close_all)

    async def listen(self) -> None:
        """Redis pub/sub → wake the hub. Reconnects on its own if Redis goes away."""
        import redis.asyncio as aioredis

        while True:
            try:
                client = aioredis.Redis.from_url(settings.REDIS_URL)
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(live.CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — polling covers us meanwhile
                log.warning("live: Redis subscription lost: %s", exc)
                await asyncio.sleep(2)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]


def database(function):
    """Run ORM code from a stream in a pooled thread and give its connection back at once.

    A stream lives for hours: if it kept a connection (Django's default for the request's
    thread), 500 open pages would need 500 database connections.
    """

    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(run, thread_sensitive=False)


def _changes_after(last_id: int, mailbox_ids: frozenset[int] | None) -> list[Change]:
    rows = Change.objects.filter(pk__gt=last_id).order_by("pk")
    if mailbox_ids is not None:
        rows = rows.filter(mailbox_id__in=mailbox_ids)
    return list(rows[:BATCH])


_replay = database(_changes_after)


@database
def _latest_change_id() -> int:
    return Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@database
def _member_mailboxes(user, requested: set[int]) -> frozenset[int]:
    allowed = set(Mailbox.objects.for_user(user).values_list("pk", flat=True))
    if not requested <= allowed:
        raise Http404("not a member")
    return frozenset(requested)


@database
def _still_member(user, mailbox_ids: frozenset[int]) -> bool:
    return set(Mailbox.objects.for_user(user).values_list("pk", flat=True)) >= mailbox_ids


@database
def _set_presence(
    user,
    mailbox_ids,
    message_id: int | None,
    stream: str,
    present: bool,
    activity: str = Presence.Activity.VIEWING,
) -> None:
    if message_id is None:
        return
    if not present:
        deleted, _ = Presence.objects.filter(stream=stream).delete()
        if deleted:
            mailbox_id = Message.objects.filter(pk=message_id).values_list("mailbox_id", flat=True)
            if mailbox_id:
                live.record(mailbox_id[0], "presence", message_ids=[message_id])
        return
    message = Message.objects.filter(pk=message_id, mailbox_id__in=mailbox_ids).first()
    if message is None:
        return
    _, created = Presence.objects.update_or_create(
        stream=stream,
        defaults={
            "mailbox_id": message.mailbox_id,
            "user": user,
            "message_id": message.pk,
            "activity": activity,
            "expires_at": timezone.now() + PRESENCE_TTL,
        },
    )
    if created:
        live.record(message.mailbox_id, "presence", message_ids=[message.pk])


def _ids(values: list[str]) -> set[int]:
    return {int(value) for value in values if value.isdigit()}


async def events(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse("Log in to receive live updates.", status=403)
    requested = _ids(request.GET.getlist("mailbox"))
    if not requested:
        raise Http404("no mailbox named")
    mailbox_ids = await _member_mailboxes(user, requested)
    resume = request.headers.get("Last-Event-ID") or request.GET.get("since", "")
    last_id = int(resume) if resume.isdigit() else await _latest_change_id()
    # Give back the connection the session and user lookups took on the request's thread.
    await sync_to_async(connections.close_all)()
    viewing = request.GET.get("viewing", "")
    message_id = int(viewing) if viewing.isdigit() else None
    # The compose page says "replying" about the message it answers; every other page "viewing".
    activity = request.GET.get("activity", "")
    if activity not in Presence.Activity.values:
        activity = Presence.Activity.VIEWING
    response = StreamingHttpResponse(
        _stream(user, mailbox_ids, last_id, message_id, activity),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events through as they come
    return response


async def _stream(
    user,
    mailbox_ids: frozenset[int],
    last_id: int,
    message_id: int | None,
    activity: str = Presence.Activity.VIEWING,
):
    stream_id = secrets.token_hex(8)
    the_hub = hub()
    queue = the_hub.subscribe(mailbox_ids, await _latest_change_id())
    try:
        yield "retry: 2000\n\n"
        # Replay what the client missed; the hub's queue may overlap, ids sort that out.
        while True:
            missed = await _replay(last_id, mailbox_ids)
            for change in missed:
                last_id = change.pk
                yield live.format_events(change)
            if len(missed) < BATCH:
                break
        await _set_presence(user, mailbox_ids, message_id, stream_id, True, activity)
        last_beat = last_check = time.monotonic()
        while True:
            try:
                change = await asyncio.wait_for(queue.get(), HEARTBEAT / 3)
            except TimeoutError:
                change = None
            if change is not None and change.pk > last_id:
                last_id = change.pk
                yield live.format_events(change)
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT:
                last_beat = now
                await _set_presence(user, mailbox_ids, message_id, stream_id, True, activity)
                yield ": heartbeat\n\n"
            if now - last_check >= MEMBERSHIP_RECHECK:
                last_check = now
                if not await _still_member(user, mailbox_ids):
                    return
    finally:
        the_hub.unsubscribe(queue)
        # Runs when the client leaves (the generator is closed or cancelled).
        await asyncio.shield(_set_presence(user, mailbox_ids, message_id, stream_id, False))
