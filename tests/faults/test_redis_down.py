"""Redis (broker and live nudges) stops while people work: pages still load, clicks are still
taken, the failures are logged, and once Redis is back the clicks reach the server and live
updates flow again. A private redis-server of the test's own; the machine's is never touched."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from django.urls import reverse
from kombu import Connection
from kombu.simple import SimpleQueue

from tests.dovecot import _free_ports
from tests.faults.conftest import wait_for
from tests.helpers import server_state
from tests.sync.test_writeback import synced_messages
from webmail import live
from webmail.celery import app as celery_app
from webmail.models import Change, PendingChange
from webmail.sync import tasks
from webmail.web.events import Hub, database

REDIS_SERVER = shutil.which("redis-server")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.imap,
    pytest.mark.skipif(REDIS_SERVER is None, reason="no redis-server binary on this machine"),
]

HTMX = {"HTTP_HX_REQUEST": "true"}


class RedisServer:
    """`redis-server` on a free loopback port, nothing saved; stop() and start() again keep
    the port, as a Redis restart does."""

    def __init__(self, directory) -> None:
        self.port = _free_ports(1)[0]
        self.directory = directory
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def answers() -> bool:
            try:
                return client.ping()
            except redis.RedisError:
                return False

        wait_for(answers, timeout=10, what="redis-server to answer")
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # as a crash would: clients see a reset, not a goodbye
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@contextmanager
def broker(url: str) -> Iterator[None]:
    """Tasks go to this broker for real (not run eagerly), as in production with REDIS_URL."""
    conf = celery_app.conf
    before = conf.broker_url, conf.broker_transport, conf.task_always_eager

    def forget_connections() -> None:
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    # No transport override: the embedded broker's (webmail.broker) would win over the URL.
    conf.broker_url, conf.broker_transport, conf.task_always_eager = url, None, False
    forget_connections()
    try:
        yield
    finally:
        conf.broker_url, conf.broker_transport, conf.task_always_eager = before
        forget_connections()


@pytest.fixture
def live_on_redis(settings, redis_server) -> Iterator[RedisServer]:
    settings.REDIS_URL = redis_server.url
    settings.LIVE_BACKEND = "redis"
    live._redis.cache_clear()
    with broker(redis_server.url):
        yield redis_server
    live._redis.cache_clear()


def run_queued_tasks(url: str) -> list[str]:
    """What a worker does: take each task message off the broker and run it, until none is
    left (tasks may queue more). Returns the task names run."""
    ran = []
    with Connection(url) as connection:
        queue = SimpleQueue(connection, "celery")
        try:
            while True:
                try:
                    message = queue.get(timeout=0.5)
                except SimpleQueue.Empty:
                    return ran
                args, kwargs, _ = message.decode()
                name = message.headers["task"]
                message.ack()
                celery_app.tasks[name].apply(args, kwargs)
                ran.append(name.rsplit(".", 1)[-1])
        finally:
            queue.close()


def test_pages_and_clicks_survive_redis_going_away_and_catch_up_when_it_returns(
    client, mailbox, bob, live_on_redis, caplog
):
    redis_server = live_on_redis
    one, two = synced_messages(mailbox, "First", "Second")
    inbox = mailbox.folders.get(special_use="inbox")
    client.force_login(bob)
    act_url = reverse("act", args=[mailbox.pk])

    # With Redis up, a click is queued on it and a worker applies it.
    assert client.post(act_url, {"action": "flag", "message": [one.pk]}, **HTMX).status_code == 204
    assert run_queued_tasks(redis_server.url) == ["apply_changes"]
    assert server_state(mailbox.account, "INBOX")[one.uid]["is_flagged"]

    redis_server.stop()
    caplog.set_level(logging.WARNING)
    timings = {}
    for label, request in {
        "folder": lambda: client.get(inbox.get_absolute_url()),
        "message": lambda: client.get(two.get_absolute_url()),  # opening marks it read
        "flag": lambda: client.post(act_url, {"action": "flag", "message": [two.pk]}, **HTMX),
        "status": lambda: client.get(reverse("mailbox_status", args=[mailbox.pk])),
    }.items():
        started = time.monotonic()
        response = request()
        timings[label] = time.monotonic() - started
        assert response.status_code in (200, 204), f"{label}: {response.status_code}"
    assert max(timings.values()) < 3, timings  # no request waits long on the dead Redis
    assert PendingChange.objects.filter(message=two).count() == 2  # read and flagged: kept
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "live nudge failed" in logged
    assert "could not queue changes" in logged

    redis_server.start()
    tasks.apply_due_changes()  # beat's sweeper: the clicks the broker never got
    assert "apply_changes" in run_queued_tasks(redis_server.url)
    assert not PendingChange.objects.exists()
    on_server = server_state(mailbox.account, "INBOX")[two.uid]
    assert on_server["is_seen"] and on_server["is_flagged"]


def test_turning_the_keyword_mirror_on_with_the_broker_down_still_queues_the_keywords(
    mailbox, alice, bob, live_on_redis, django_capture_on_commit_callbacks
):
    from webmail import members, team

    one, _ = synced_messages(mailbox, "Assigned while off", "Left alone")
    members.set_mirror_keywords(alice, mailbox, False)
    team.assign(alice, [one.conversation], bob)
    assert not PendingChange.objects.exists()

    live_on_redis.stop()
    with django_capture_on_commit_callbacks(execute=True):
        members.set_mirror_keywords(alice, mailbox, True)
    # The task could not be queued: its work was done in place, durably queued for the server.
    queued = PendingChange.objects.filter(message=one, payload__keywords=True)
    assert sorted(f for change in queued for f in change.payload["flags"]) == [
        "$KotakAssigned_bob",
        "$KotakOpen",
    ]


def test_live_updates_fall_back_to_polling_and_resume_on_the_nudge(mailbox, live_on_redis):
    """One web process's hub: woken by the Redis nudge within a moment; with Redis gone the
    change still arrives by polling the log, and the nudge works again once Redis is back."""
    redis_server = live_on_redis
    # In pooled threads that give their database connection back, as the event stream does.
    record = database(live.record)

    async def delivered_in(queue) -> float:
        started = time.monotonic()
        change = await record(mailbox.pk, "folder_counts")
        while (await asyncio.wait_for(queue.get(), 10)).pk != change.pk:
            pass
        return time.monotonic() - started

    def subscribed() -> bool:
        import redis

        with redis.Redis.from_url(redis_server.url) as client:
            return client.pubsub_numsub(live.CHANNEL)[0][1] > 0

    async def scenario() -> dict[str, float]:
        hub = Hub()
        latest = await database(
            lambda: Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        )()
        queue = hub.subscribe(frozenset({mailbox.pk}), latest)
        await asyncio.to_thread(wait_for, subscribed, what="the hub to subscribe")
        seen = {"up": await delivered_in(queue)}
        await asyncio.to_thread(redis_server.stop)
        seen["down"] = await delivered_in(queue)
        await asyncio.to_thread(redis_server.start)
        # The hub subscribes again on its own (it retries every 2 s).
        await asyncio.to_thread(wait_for, subscribed, 5, "the hub to subscribe again")
        seen["back"] = await delivered_in(queue)
        hub.unsubscribe(queue)
        hub.task.cancel()
        # Let its last step give the hub thread's database connection back.
        with contextlib.suppress(asyncio.CancelledError):
            await hub.task
        hub.executor.shutdown()
        return seen

    # On a loop of its own, in a thread of its own: a browser test's Playwright may already be
    # running a loop in this worker's main thread.
    with ThreadPoolExecutor(1) as executor:
        seen = executor.submit(asyncio.run, scenario()).result()
    assert seen["up"] < 0.5, seen
    assert seen["down"] < 7, seen  # the log is polled every 5 s while Redis is away
    assert seen["back"] < 0.5, seen


def test_people_can_still_log_in_while_redis_is_down(client, bob, settings, redis_server):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
        }
    }
    redis_server.stop()
    response = client.post(reverse("login"), {"username": "bob", "password": "bob-pass-1"})
    assert response.status_code == 302
