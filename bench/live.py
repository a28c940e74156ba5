"""`make bench-live`: how fast a change reaches a browser, and what watching and streaming cost.

  (a) 50 samples of "APPEND on the server → the row is in a real browser's DOM", through the
      whole chain: Dovecot IDLE → watcher → Celery task → sync → change log → Redis nudge →
      event stream → htmx re-fetch; and in the same run, on the same APPENDs,
  (b) the baseline "APPEND → EXISTS on a bare imapclient IDLE connection"; p50/p95 of both and
      of the per-sample difference (Kotak's own latency; Dovecot delays IDLE by ~0.5 s).
  (c) One worker process watching N mailboxes (BENCH_WATCHED, default 1000): memory per watched
      mailbox and idle CPU.
  (d) One web process holding M event streams (BENCH_STREAMS, default 500): memory, and the
      time for one change to reach all of them.

Needs Redis on 127.0.0.1:6379 (broker and nudges) and uses the local PostgreSQL
(BENCH_DATABASE_URL), like production. Figures only; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sync import bench_mailbox  # noqa: E402
from tests.dovecot import Dovecot, dovecot_dir, make_message  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "50"))
WATCHED = int(os.environ.get("BENCH_WATCHED", "1000"))
STREAMS = int(os.environ.get("BENCH_STREAMS", "500"))
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kotak_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
PASSWORD = "bench-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:6.0f} ms   p95 {p95 * 1000:6.0f} ms"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare_database(env: dict) -> None:
    import psycopg

    base, _, name = env["DATABASE_URL"].rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)


def make_mailbox(server: Dovecot, user: str, team):
    from webmail.models import Mailbox

    return bench_mailbox(server, user, PASSWORD, team, status=Mailbox.Status.OK)


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_http(url: str, timeout: float = 20) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:  # noqa: BLE001 — not up yet
            time.sleep(0.1)
    sys.exit(f"{url} did not come up")


def latency(server: Dovecot, mailbox, env: dict, data_dir: Path) -> None:
    """(a) and (b)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from webmail.models import Membership, Role
    from webmail.sync.mailbox import sync_mailbox

    sync_mailbox(mailbox)
    user = get_user_model().objects.create_user("agent", password="agent-password")
    Membership.objects.create(user=user, mailbox=mailbox, role=Role.AGENT)
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value

    port = free_port()
    web = start(
        [sys.executable, "-m", "uvicorn", "webmail.asgi:application", "--port", str(port),
         "--lifespan", "off", "--log-level", "warning"],
        env, data_dir / "web.log",
    )  # fmt: skip
    worker = start(
        [sys.executable, "-m", "celery", "-A", "webmail", "worker", "--pool", "threads",
         "--concurrency", "4", "--loglevel", "WARNING"],
        env, data_dir / "worker.log",
    )  # fmt: skip
    try:
        _measure(server, mailbox, session, f"http://127.0.0.1:{port}")
    finally:
        for process in (web, worker):
            process.terminate()
            process.wait(timeout=20)


def _measure(server: Dovecot, mailbox, session: str, base: str) -> None:
    from playwright.sync_api import sync_playwright

    wait_http(base + "/accounts/login/")

    # (b): a bare IDLE connection on the same folder, timing EXISTS for the same APPENDs.
    bare_times: dict[int, float] = {}
    stop = threading.Event()

    def bare_idle():
        bare = server.client(mailbox.imap_username, PASSWORD)
        bare.select_folder("INBOX", readonly=True)
        bare.idle()
        while not stop.is_set():
            for response in bare.idle_check(timeout=0.2):
                if isinstance(response, tuple) and response[1:2] == (b"EXISTS",):
                    bare_times[response[0]] = time.perf_counter()
        bare.idle_done()
        bare.logout()

    idler = threading.Thread(target=bare_idle, daemon=True)
    idler.start()

    from webmail.models import Change

    inbox = mailbox.folders.get(special_use="inbox")
    kotak, bare, diff, logged, delivered = [], [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
        # When each event the page listens for arrives: kotak.js registers its listeners on
        # the EventSource itself (data-live), where htmx's own sseMessage event does not fire.
        context.add_init_script(
            """window.kotakEvents = [];
            const add = EventSource.prototype.addEventListener;
            const timed = new WeakMap();
            EventSource.prototype.addEventListener = function (type, ...rest) {
              const types = timed.get(this) || new Set();
              timed.set(this, types);
              if (!types.has(type)) {
                types.add(type);
                add.call(this, type, () => window.kotakEvents.push([type, Date.now()]));
              }
              return add.call(this, type, ...rest);
            };"""
        )
        page = context.new_page()
        page.goto(base + inbox.get_absolute_url())
        page.wait_for_selector("#message-list")
        page.evaluate(
            """() => {
            // When each row enters the DOM, by the page's own clock: Playwright's waiting polls
            // and would add ~100-150 ms of its own to every sample.
            window.kotakRows = {};
            new MutationObserver(() => {
              for (const el of document.querySelectorAll(".message-row .subject")) {
                const text = el.textContent.trim();
                if (!(text in window.kotakRows)) window.kotakRows[text] = Date.now();
              }
            }).observe(document.body, {childList: true, subtree: true}); }"""
        )
        # Let the watcher connect and its catch-up sync settle.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            mailbox.refresh_from_db()
            if mailbox.watcher_owner:
                break
            time.sleep(0.1)
        time.sleep(2)
        for n in range(SAMPLES):
            subject = f"Latency sample {n}"
            started, wall = time.perf_counter(), time.time()
            server.append(mailbox.imap_username, "INBOX", make_message(subject))
            # The row's own subject, not text= (a substring of the whole row's text: "Latency
            # sample 1" followed by its time "09:30" reads as "Latency sample 10").
            page.wait_for_function("(s) => window.kotakRows[s]", arg=subject, timeout=15000)
            # Same clock as `wall`: the browser runs on this machine.
            seen = started + page.evaluate("(s) => window.kotakRows[s]", subject) / 1000 - wall
            count = n + 1
            exists = bare_times.get(count)
            kotak.append(seen - started)
            change = Change.objects.filter(kind="messages_added").order_by("-pk").first()
            logged.append(change.created_at.timestamp() - wall)
            arrivals = page.evaluate("window.kotakEvents.splice(0)")
            folder_event = [t for kind, t in arrivals if kind.startswith("folder-")]
            if folder_event:
                delivered.append(folder_event[0] / 1000 - wall)
            if exists:
                bare.append(exists - started)
                diff.append(seen - exists)
            time.sleep(0.7)  # Dovecot batches notifications that follow within 500 ms
        browser.close()
    stop.set()
    idler.join(timeout=5)
    print(f"(a) APPEND → row in the browser's DOM : {percentiles(kotak)}  ({len(kotak)} samples)")
    print(f"(b) APPEND → EXISTS on bare IDLE     : {percentiles(bare)}")
    print(f"    Kotak's own latency (a) − (b)     : {percentiles(diff)}")
    print(f"    of which APPEND → change logged   : {percentiles(logged)}")
    print(f"    and APPEND → event in the browser : {percentiles(delivered)}")


def watching(server: Dovecot, users: list[str], team, env: dict, data_dir: Path) -> None:
    """(c): one process, WATCHED mailboxes."""
    for user in users:
        make_mailbox(server, user, team)
    child = subprocess.Popen(
        [sys.executable, "-c", WATCH_CHILD, str(len(users))],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = iter(child.stdout)
    before = float(next(lines))
    connected_at = next(lines).strip()
    after = rss_mb(child.pid)
    cpu_start = cpu_seconds(child.pid)
    time.sleep(10)
    cpu_idle = (cpu_seconds(child.pid) - cpu_start) / 10
    child.terminate()
    child.wait(timeout=30)
    per = (after - before) * 1024 / len(users)
    print(
        f"(c) {len(users)} watched mailboxes, one process: connected in {connected_at} s, "
        f"{per:.0f} KB each (RSS {before:.0f} → {after:.0f} MB), idle CPU {cpu_idle * 100:.1f}%"
    )


WATCH_CHILD = """
import os, sys, time, django
django.setup()
from webmail.sync.watchers import WatcherPool
def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
from webmail.imap.client import ssl_context  # warm what every watcher shares
print(rss(), flush=True)
started = time.monotonic()
pool = WatcherPool(owner="bench", enqueue=lambda *args: None)
pool.start()
want = int(sys.argv[1])
while sum(w.connected for w in list(pool.watchers.values())) < want:
    if time.monotonic() - started > 300:
        break
    time.sleep(0.2)
print(f"{time.monotonic() - started:.1f}", flush=True)
time.sleep(3600)
"""


async def streams(mailbox, env: dict, data_dir: Path) -> None:
    """(d): STREAMS event streams on one web process, then one change."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model
    from django.test import Client

    from webmail import live
    from webmail.models import Membership, Role

    @sync_to_async
    def session_cookie() -> str:
        user = get_user_model().objects.create_user("watcher", password="x-password-1")
        Membership.objects.create(user=user, mailbox=mailbox, role=Role.VIEWER)
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    session = await session_cookie()
    port = free_port()
    web = start(
        [sys.executable, "-m", "uvicorn", "webmail.asgi:application", "--port", str(port),
         "--lifespan", "off", "--log-level", "warning", "--limit-concurrency", "2000"],
        env, data_dir / "web-streams.log",
    )  # fmt: skip
    await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/accounts/login/")
    before = rss_mb(web.pid)
    request = (
        f"GET /events/?mailbox={mailbox.pk} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: sessionid={session}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()

    async def open_one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        buffer = b""
        while b"retry:" not in buffer:
            buffer += await reader.read(4096)
        return reader, writer

    clients = []
    for chunk in range(0, STREAMS, 50):
        clients += await asyncio.gather(*(open_one() for _ in range(min(50, STREAMS - chunk))))
    await asyncio.sleep(2)
    after = rss_mb(web.pid)

    async def wait_event(reader) -> float:
        buffer = b""
        while b"event: folders" not in buffer:
            buffer += await reader.read(4096)
        return time.perf_counter()

    waits = [asyncio.create_task(wait_event(reader)) for reader, _ in clients]
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    await sync_to_async(live.record)(mailbox.pk, "folders")
    arrivals = await asyncio.wait_for(asyncio.gather(*waits), 30)
    delays = [arrival - started for arrival in arrivals]
    for _, writer in clients:
        writer.close()
    web.terminate()
    await asyncio.to_thread(web.wait, 20)
    each = (after - before) * 1024 / len(clients)
    print(
        f"(d) {len(clients)} event streams, one web process: {each:.0f} KB each "
        f"(RSS {before:.0f} → {after:.0f} MB); one change reached all in "
        f"{max(delays) * 1000:.0f} ms ({percentiles(delays)})"
    )


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="kotak-bench-live-"))
    env = dict(
        os.environ,
        KOTAK_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="webmail.settings",
        DATABASE_URL=PG_URL,
        REDIS_URL=REDIS_URL,
        LIVE_BACKEND="redis",
        WATCHER_STATUS_INTERVAL="600",
    )
    try:
        prepare_database(env)
        os.environ.update(env)
        # Playwright's sync API keeps an event loop in this thread; the ORM calls here are safe.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        import django

        django.setup()
        from webmail.models import Team

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # many sockets, in children too
        users = {f"w{n:04d}": PASSWORD for n in range(WATCHED)} | {"live": PASSWORD}
        with (
            dovecot_dir("bench-live") as path,
            Dovecot.start(path, users=users, imap_process_limit=WATCHED + 50) as server,
        ):
            team = Team.objects.create(name="Bench")
            mailbox = make_mailbox(server, "live", team)
            latency(server, mailbox, env, data_dir)
            from webmail.models import Mailbox

            Mailbox.objects.filter(pk=mailbox.pk).update(watcher_owner="", watcher_expires_at=None)
            watching(server, [u for u in users if u != "live"], team, env, data_dir)
            asyncio.run(streams(mailbox, env, data_dir))
    except BaseException:
        for log in sorted(data_dir.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
