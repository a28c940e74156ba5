"""The event stream: who may listen, what a reconnecting client receives, and how fast."""

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient
from django.urls import reverse

from webmail import live
from webmail.models import Presence
from webmail.web import events as events_module

pytestmark = pytest.mark.django_db(transaction=True)


def redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


def run(test):
    """Run an async test body on an event loop of its own, in a thread of its own: the browser
    tests' Playwright keeps a loop running in the main thread of the same worker."""

    def main():
        async def body():
            try:
                await test()
            finally:
                # The streams' database work runs in asgiref's shared thread: close its
                # connection so the test database can be dropped (PostgreSQL refuses).
                await sync_to_async(connections.close_all)()

        asyncio.run(body())

    with ThreadPoolExecutor(1) as executor:
        executor.submit(main).result()


@pytest.fixture
def box(db, alice, bob, charlie):
    from webmail.models import Mailbox, Membership, Role, Team

    mailbox = Mailbox.objects.create(
        team=Team.objects.create(name="Support"), name="Support", email="s@example.com",
        imap_host="127.0.0.1", imap_username="s",
    )  # fmt: skip
    Membership.objects.create(user=alice, mailbox=mailbox, role=Role.MANAGER)
    Membership.objects.create(user=bob, mailbox=mailbox, role=Role.AGENT)
    return mailbox


async def read_until(stream, needle: str, timeout: float = 3.0) -> str:
    """Collect the stream's text until it contains needle (or fail after timeout)."""
    seen = ""

    async def collect():
        nonlocal seen
        async for chunk in stream:
            seen += chunk.decode() if isinstance(chunk, bytes) else chunk
            if needle in seen:
                return

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        pytest.fail(f"{needle!r} not received within {timeout}s; got {seen!r}")
    return seen


async def open_stream(user, mailbox, **params):
    client = AsyncClient()
    await client.aforce_login(user)
    headers = params.pop("headers", {})
    query = {"mailbox": mailbox.pk, **params}
    response = await client.get(reverse("events"), query, headers=headers)
    return response


def test_anonymous_and_outsiders_get_no_stream(box, charlie):
    async def test():
        anonymous = await AsyncClient().get(reverse("events"), {"mailbox": box.pk})
        assert anonymous.status_code == 403
        outsider = await open_stream(charlie, box)
        assert outsider.status_code == 404

    run(test)


def test_a_change_reaches_a_member_within_a_second(box, bob):
    async def test():
        response = await open_stream(bob, box)
        assert response["Content-Type"] == "text/event-stream"
        stream = aiter(response.streaming_content)
        await read_until(stream, "retry:")
        change = await sync_to_async(live.record)(
            box.pk, "messages_added", folder_id=7, message_ids=[41, 42]
        )
        text = await read_until(stream, "event: folder-7", timeout=1.5)
        assert f"id: {change.pk}" in text
        assert '"messages": [41, 42]' in text
        await response.streaming_content.aclose()

    run(test)


def test_a_reconnecting_client_gets_what_it_missed(box, bob):
    async def test():
        record = sync_to_async(live.record)
        first = await record(box.pk, "flags_changed", folder_id=3, message_ids=[9])
        second = await record(box.pk, "messages_removed", folder_id=3, message_ids=[10])
        third = await record(box.pk, "folders")
        response = await open_stream(bob, box, headers={"Last-Event-ID": str(first.pk)})
        stream = aiter(response.streaming_content)
        text = await read_until(stream, "event: folders")
        assert f"id: {first.pk}\n" not in text
        assert f"id: {second.pk}\nevent: folder-3" in text
        assert "event: message-10" in text
        assert f"id: {third.pk}\nevent: folders" in text
        await response.streaming_content.aclose()

    run(test)


def test_changes_of_other_mailboxes_are_not_sent(box, bob, charlie):
    async def test():
        from webmail.models import Mailbox, Membership, Role

        other = await Mailbox.objects.acreate(
            team_id=box.team_id,
            name="Billing",
            email="b@example.com",
            imap_host="h",
            imap_username="b",
        )
        await Membership.objects.acreate(user=charlie, mailbox=other, role=Role.AGENT)
        response = await open_stream(bob, box)
        stream = aiter(response.streaming_content)
        await read_until(stream, "retry:")
        await sync_to_async(live.record)(other.pk, "folders", data={"secret": "billing"})
        mine = await sync_to_async(live.record)(box.pk, "folder_counts", folder_id=1)
        text = await read_until(stream, f"id: {mine.pk}")
        assert "billing" not in text and text.count("id: ") == 1
        await response.streaming_content.aclose()

    run(test)


def test_heartbeats_keep_the_stream_alive(box, bob, monkeypatch):
    async def test():
        monkeypatch.setattr(events_module, "HEARTBEAT", 0.3)
        response = await open_stream(bob, box)
        stream = aiter(response.streaming_content)
        await read_until(stream, ": heartbeat", timeout=2)
        await response.streaming_content.aclose()

    run(test)


def test_presence_lasts_as_long_as_the_stream(box, bob, alice):
    async def test():
        from webmail.models import Folder, Message

        folder = await Folder.objects.acreate(
            mailbox=box, name="INBOX", display_name="Inbox", label="Inbox"
        )
        message = await Message.objects.acreate(
            mailbox=box, folder=folder, uid=1, stable_id="x", internal_date="2026-01-01T00:00:00Z"
        )
        watcher = await open_stream(alice, box)
        watch = aiter(watcher.streaming_content)
        await read_until(watch, "retry:")
        response = await open_stream(bob, box, viewing=str(message.pk))
        # As a server would, keep reading bob's stream until he leaves.
        reading = asyncio.create_task(read_until(aiter(response.streaming_content), "never", 30))
        await read_until(watch, f"event: presence-message-{message.pk}")
        assert await Presence.objects.filter(message_id=message.pk, user=bob).aexists()
        reading.cancel()  # bob closes the tab: the server cancels the stream
        await read_until(watch, f"event: presence-message-{message.pk}")
        assert not await Presence.objects.filter(message_id=message.pk).aexists()
        await watcher.streaming_content.aclose()

    run(test)


@pytest.mark.skipif(not redis_reachable(), reason="no Redis on 127.0.0.1:6379")
def test_with_redis_a_nudge_wakes_the_stream_at_once(box, bob, settings):
    async def test():
        settings.LIVE_BACKEND = "redis"
        settings.REDIS_URL = "redis://127.0.0.1:6379/0"
        settings.LIVE_POLL_INTERVAL = 30  # would be far too slow without the nudge
        response = await open_stream(bob, box)
        stream = aiter(response.streaming_content)
        await read_until(stream, "retry:")
        await asyncio.sleep(0.3)  # let the hub subscribe
        loop = asyncio.get_running_loop()
        started = loop.time()
        await sync_to_async(live.record)(box.pk, "folders")
        await read_until(stream, "event: folders", timeout=2)
        assert loop.time() - started < 1.0
        await response.streaming_content.aclose()

    run(test)
