"""`make bench-load`: many people working at once on one web process while mail keeps coming.

Seeds a private Dovecot INBOX with BENCH_MESSAGES (default 3000) ~15 KB messages, connects it as
a mailbox and syncs it, then starts Kotak as in production, each in its own process: one uvicorn
web process and one Celery worker (prefork, 2 children) whose IDLE watcher notices new mail and
whose tasks sync it and write users' clicks back to the server, with a private redis-server as
broker and for live nudges when the machine has one (BENCH_LOAD_REDIS=0: the laptop setup,
a broker kept in files). BENCH_USERS (default 50)
simulated people log in through the login form and each loops, for BENCH_SECONDS (default 60):

    list   a page of INBOX (the first page, or an older one through the list's own link)
    open   one of the messages on that page (its body comes from the server the first time)
    act    mark it read or unread, flag or unflag it (POST with the page's CSRF token, as htmx)

pausing BENCH_THINK seconds on average after each request (default 5, uniform between half and
one and a half times that: 50 people then send ~10 requests/s, a very busy team; BENCH_THINK=1
is a stress run, 0 no pause at all). People start within the first two pauses, not all at once.
Meanwhile a new message is delivered to the server every BENCH_MAIL_EVERY seconds (default 1)
and the time until it is in the database is taken.

Prints p50/p95/p99/max per request kind and the errors (a status other than 2xx/3xx, a failed
connection, a message whose body could not be loaded) with the exceptions the processes logged,
against a baseline: the p50 of a static file from the same process, idle and under load.
Logging in (the password hasher is slow on purpose) is shown apart. Target: 0 errors, p95 <=
200 ms for list, open and act.

Environment: BENCH_LOAD_DB=postgres|sqlite (default postgres when the local server answers;
database kotak_bench_load, recreated and dropped), BENCH_USERS, BENCH_SECONDS, BENCH_THINK,
BENCH_MESSAGES, BENCH_MAIL_EVERY. The machine is shared: read p50s and ratios, not maxima.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sync import make_messages  # noqa: E402
from tests.dovecot import Dovecot, dovecot_dir, make_message  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "50"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
THINK = float(os.environ.get("BENCH_THINK", "5"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "3000"))
MAIL_EVERY = float(os.environ.get("BENCH_MAIL_EVERY", "1"))
PG_NAME = "kotak_bench_load"
IMAP_USER, IMAP_PASSWORD = "bench", "bench-imap-password"
PASSWORD = "bench-person-pass-1"
TARGET_P95_MS = 200
STATIC_PATH = "/static/vendor/htmx-2.0.11.min.js"
TIMEOUT = 30
LOGINS_AT_ONCE = threading.BoundedSemaphore(4)

MESSAGE_LINK = re.compile(r'href="(/mailboxes/\d+/messages/(\d+)/)[^"]*"')
OLDER_LINK = re.compile(r'href="([^"]+\?before=\d+)" rel="next"')
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')
LOGIN_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# --- Set-up ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(data_dir: str) -> tuple[str, str]:
    """(vendor, DATABASE_URL): PostgreSQL when it answers (or is asked for), else SQLite."""
    wanted = os.environ.get("BENCH_LOAD_DB", "")
    if wanted != "sqlite":
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
            return "postgres", f"postgres://postgres@127.0.0.1:5432/{PG_NAME}"
        except OSError:
            if wanted == "postgres":
                sys.exit("BENCH_LOAD_DB=postgres but nothing answers on 127.0.0.1:5432")
    return "sqlite", f"sqlite:///{data_dir}/bench.db"


def recreate_postgres(drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{PG_NAME}"')


def seed(server: Dovecot) -> dict:
    """The mailbox over TLS, BENCH_USERS agents on it, and its first sync; returns ids."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from webmail.imap.client import Security, ServerSettings, verify
    from webmail.mailboxes import add_mailbox
    from webmail.models import Membership, Role
    from webmail.sync.mailbox import sync_mailbox

    settings = ServerSettings(
        host=server.host,
        port=server.imaps_port,
        security=Security.SSL,
        username=IMAP_USER,
        password=IMAP_PASSWORD,
        ca_certificates=server.ca_cert_pem,
    )
    mailbox = add_mailbox(
        team_name="Support",
        name="Support",
        email="support@example.com",
        server=settings,
        capabilities=verify(settings),
    )
    hashed = make_password(PASSWORD)  # once: the hasher is slow on purpose
    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"agent{n:02d}", email=f"agent{n:02d}@example.com", password=hashed)
        for n in range(USERS)
    )
    Membership.objects.bulk_create(
        Membership(user=user, mailbox=mailbox, role=Role.AGENT) for user in users
    )
    started = time.perf_counter()
    sync_mailbox(mailbox)
    took = time.perf_counter() - started
    inbox = mailbox.folders.get(special_use="inbox")
    print(f"  first sync of {inbox.total_count:,} messages: {took:.1f} s", file=sys.stderr)
    return {"mailbox": mailbox.pk, "inbox": inbox.get_absolute_url()}


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def wait_until_serving(base: str, web: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if web.poll() is not None:
            sys.exit(f"uvicorn exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(base + "/accounts/login/", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("uvicorn did not answer within 30 s")


# --- People ----------------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.examples: dict[str, str] = {}

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.times[kind].append(seconds)

    def error(self, kind: str, what: str) -> None:
        with self.lock:
            self.errors[kind] += 1
            self.examples.setdefault(kind, what[:300])


class Person(threading.Thread):
    """One browser: its own cookies (session, CSRF), list → open → act until told to stop."""

    def __init__(self, n: int, base: str, ids: dict, stats: Stats, go, stopping):
        super().__init__(daemon=True, name=f"person-{n}")
        self.go = go  # everyone starts working at once, after all have logged in
        self.username = f"agent{n:02d}"
        self.base = base
        self.ids = ids
        self.stats = stats
        self.stopping = stopping
        self.rng = random.Random(n)
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.csrf = ""
        self.logged_in = threading.Event()

    def request(self, kind: str, path: str, data: dict | None = None, headers=None, timeout=None):
        """(status, body) or None on a failure, which is counted; the time is taken either way."""
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        started = time.perf_counter()
        try:
            with self.opener.open(request, timeout=timeout or TIMEOUT) as response:
                content = response.read()
                status = response.status
                landed = response.url
        except urllib.error.HTTPError as exc:
            content, status, landed = exc.read(), exc.code, ""
        except OSError as exc:
            self.stats.add(kind, time.perf_counter() - started)
            self.stats.error(kind, f"{path}: {exc}")
            return None
        self.stats.add(kind, time.perf_counter() - started)
        if status >= 400:
            self.stats.error(kind, f"{path}: HTTP {status} {content[:200]!r}")
            return None
        if "/accounts/login/" in landed and not kind.startswith("login"):
            self.stats.error(kind, f"{path}: sent to the login page")
            return None
        return status, content.decode("utf-8", "replace")

    def think(self) -> None:
        if THINK > 0:
            self.stopping.wait(self.rng.uniform(THINK / 2, THINK * 1.5))

    def log_in(self) -> None:
        # A few at a time: each login hashes the password (~0.7 s of CPU here, on purpose), and
        # fifty at once would only measure the queue in front of the hasher.
        with LOGINS_AT_ONCE:
            page = self.request("login page", "/accounts/login/", timeout=120)
            token = LOGIN_CSRF.search(page[1]).group(1) if page else ""
            answer = self.request(
                "login",
                "/accounts/login/",
                {"username": self.username, "password": PASSWORD, "csrfmiddlewaretoken": token},
                timeout=120,
            )
        if answer is not None and "Log out" not in answer[1]:
            self.stats.error("login", f"{self.username}: the login form did not log in")
        self.logged_in.set()

    def run(self) -> None:
        self.log_in()
        self.go.wait()
        # Staggered, as people do not all click in the same millisecond.
        self.stopping.wait(self.rng.uniform(0, 2 * max(THINK, 0.5)))
        older: list[str] = []
        while not self.stopping.is_set():
            path = self.ids["inbox"]
            if older and self.rng.random() < 0.25:
                path = self.rng.choice(older)
            page = self.request("list", path)
            if page is None:
                self.think()
                continue
            html = page[1]
            if token := CSRF.search(html):
                self.csrf = token[1]  # what htmx sends with every POST (hx-headers)
            older = (older + OLDER_LINK.findall(html))[-20:]
            links = MESSAGE_LINK.findall(html)
            self.think()
            if not links or self.stopping.is_set():
                continue
            url, message_id = self.rng.choice(links)
            opened = self.request("open", url)
            if opened is not None and "could not be loaded" in opened[1]:
                self.stats.error("open", f"{url}: the body could not be loaded")
            self.think()
            if self.stopping.is_set():
                break
            action = self.rng.choice(["read", "unread", "flag", "unflag"])
            self.request(
                "act",
                f"/mailboxes/{self.ids['mailbox']}/actions/",
                {"action": action, "message": [message_id]},
                {"X-CSRFToken": self.csrf, "HX-Request": "true"},
            )
            self.think()


def static_samples(base: str, count: int, pause: float, stopping=None) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(base + STATIC_PATH, timeout=TIMEOUT) as response:
            response.read()
        times.append(time.perf_counter() - started)
        if stopping is not None and stopping.wait(pause):
            break
        if stopping is None:
            time.sleep(pause)
    return times


def arrivals(pending: dict[str, float], lags: list[float]) -> None:
    """Move the delivered messages that have a row now from `pending` to `lags`."""
    from django.db import OperationalError

    from webmail.models import Message

    if not pending:
        return
    try:
        arrived = set(
            Message.objects.filter(message_id__in=list(pending)).values_list(
                "message_id", flat=True
            )
        )
    except OperationalError:
        return  # the database is out of connections too: look again at the next round
    for message_id in arrived:
        lags.append(time.monotonic() - pending.pop(message_id))


def deliver_mail(server: Dovecot, stopping: threading.Event, lags: list, missing: list) -> None:
    """A message every MAIL_EVERY seconds; the time until its row exists, seen from outside."""
    from django.db import connections

    client = server.client(IMAP_USER)
    pending: dict[str, float] = {}
    n = 0
    next_at = time.monotonic()
    try:
        while not stopping.is_set():
            now = time.monotonic()
            if now >= next_at:
                message_id = email.utils.make_msgid(domain="load.example")
                client.append("INBOX", make_message(f"New during load {n}", message_id=message_id))
                pending[message_id] = time.monotonic()
                n += 1
                next_at += MAIL_EVERY
            arrivals(pending, lags)
            stopping.wait(0.1)
        deadline = time.monotonic() + 15  # what was delivered last may still be on its way
        while pending and time.monotonic() < deadline:
            arrivals(pending, lags)
            time.sleep(0.1)
        missing.extend(pending)
    finally:
        client.logout()
        connections.close_all()


# --- Report ----------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] * 1000

    return {
        "p50": statistics.median(ordered) * 1000,
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1] * 1000,
    }


def ms(value: float) -> str:
    return f"{value:7.0f}" if value >= 100 else f"{value:7.1f}"


def report(setup, stats, elapsed, idle_static, busy_static, lags, missing, writeback) -> None:
    print()
    print(
        f"Kotak load benchmark — {USERS} people, {elapsed:.0f} s, think {THINK:g} s, INBOX of "
        f"{MESSAGES:,} on a private Dovecot, {setup}, one uvicorn process, one Celery worker; "
        f"{os.cpu_count()} cores, shared: noisy (load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'request, ms':28}  count     p50     p95     p99     max  errors")
    total = 0
    for kind in ("login", "list", "open", "act"):
        values = stats.times.get(kind, [])
        if not values:
            continue
        total += len(values) if kind != "login" else 0
        row = percentiles(values)
        print(
            f"  {kind:26} {len(values):6d} {ms(row['p50'])} {ms(row['p95'])} {ms(row['p99'])} "
            f"{ms(row['max'])}  {stats.errors.get(kind, 0):6d}"
        )
    for label, values in (("static file, idle", idle_static), ("static, under load", busy_static)):
        if values:
            row = percentiles(values)
            print(f"  baseline: {label:16} {len(values):6d} {ms(row['p50'])} {ms(row['p95'])}")
    print(f"  throughput: {total / elapsed:.1f} requests/s (list, open, act)")
    if lags:
        row = percentiles(lags)
        print(
            f"new mail → database, ms       {len(lags):6d} {ms(row['p50'])} {ms(row['p95'])} "
            f"{ms(row['p99'])} {ms(row['max'])}  {len(missing):6d} not arrived"
        )
    print(
        f"write-back: {len(stats.times.get('act', []))} clicks; 15 s after the run "
        f"{writeback['pending']} not yet on the server, {writeback['failed']} refused by it"
    )
    errors = sum(stats.errors.values())
    for kind, example in stats.examples.items():
        print(f"  first {kind} error: {example}")
    measured = [k for k in ("list", "open", "act") if stats.times.get(k)]
    worst = max(percentiles(stats.times[k])["p95"] for k in measured) if measured else 0
    verdict = "met" if errors == 0 and worst <= TARGET_P95_MS else "NOT met"
    print(
        f"Target: 0 errors and p95 ≤ {TARGET_P95_MS} ms for list, open and act — {verdict} "
        f"({errors} errors, worst p95 {worst:.0f} ms)"
    )


def summarize_log(path: Path) -> None:
    """The exceptions a Kotak process logged, by kind: what the errors above were."""
    text = path.read_text(errors="replace") if path.exists() else ""
    kinds: dict[str, int] = defaultdict(int)
    for line in text.splitlines():
        match = re.match(r"^([\w.]+(?:Error|Exception|Exhausted|Full|Timeout)): (.{0,160})", line)
        if match:
            kinds[f"{match[1]}: {match[2]}"] += 1
    for kind, count in sorted(kinds.items(), key=lambda item: -item[1])[:8]:
        print(f"  {path.stem} logged {count} × {kind}")


# --- Main ------------------------------------------------------------------------------------


def start_redis(data_dir: str) -> tuple[subprocess.Popen | None, str]:
    """A private redis-server (broker, live nudges, login counters) as in production, when the
    machine has the binary; else Kotak's laptop defaults."""
    binary = shutil.which("redis-server")
    if binary is None or os.environ.get("BENCH_LOAD_REDIS") == "0":
        return None, ""
    port = free_port()
    process = start(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", data_dir],
        dict(os.environ), Path(data_dir) / "redis.log",
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, url
        except OSError:
            time.sleep(0.05)
    sys.exit("redis-server did not answer within 10 s")


def main() -> None:
    data_dir = tempfile.mkdtemp(prefix="kotak-bench-load-")
    vendor, url = database_url(data_dir)
    redis, redis_url = start_redis(data_dir)
    setup = f"{vendor}, {'Redis' if redis_url else 'filesystem broker'}"
    from cryptography.fernet import Fernet

    env = dict(
        os.environ,
        KOTAK_DATA_DIR=data_dir,
        DJANGO_SETTINGS_MODULE="webmail.settings",
        DATABASE_URL=url,
        DEBUG="0",
        SECRET_KEY="bench-load-" + "x" * 50,
        KOTAK_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
        OUTBOUND_ALLOWED_PORTS="*",
        # Production's Redis (broker and live nudges) when there is one; else the laptop setup:
        # a broker kept in files, live updates by polling the change log.
        REDIS_URL=redis_url,
        CELERY_BROKER_URL="" if redis_url else "filesystem://",
        LIVE_BACKEND="redis" if redis_url else "poll",
        CELERY_TASK_ALWAYS_EAGER="0",
        PYTHONUNBUFFERED="1",
    )
    os.environ.update(env)
    web = worker = None
    try:
        if vendor == "postgres":
            recreate_postgres()
        with dovecot_dir("bench-load") as path:
            server = Dovecot.start(path, users={IMAP_USER: IMAP_PASSWORD})
            try:
                started = time.perf_counter()
                server.write_maildir(IMAP_USER, "INBOX", make_messages(MESSAGES))
                print(
                    f"  {MESSAGES:,} messages written to Dovecot in "
                    f"{time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                )
                import django

                django.setup()
                from django.core.management import call_command
                from django.db import connections

                call_command("migrate", verbosity=0)
                ids = seed(server)
                connections.close_all()

                port = free_port()
                base = f"http://127.0.0.1:{port}"
                logs = Path(data_dir)
                web = start(
                    [sys.executable, "-m", "uvicorn", "webmail.asgi:application",
                     "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
                     "--no-access-log", "--log-level", "warning"],
                    env, logs / "web.log",
                )  # fmt: skip
                worker = start(
                    [sys.executable, "-m", "celery", "-A", "webmail", "worker",
                     "--pool", "prefork", "--concurrency", "2", "--loglevel", "WARNING"],
                    env, logs / "worker.log",
                )  # fmt: skip
                wait_until_serving(base, web, logs / "web.log")
                idle_static = static_samples(base, 50, 0.02)

                stats = Stats()
                stopping = threading.Event()
                go = threading.Event()
                people = [Person(n, base, ids, stats, go, stopping) for n in range(USERS)]
                for person in people:
                    person.start()
                started = time.perf_counter()
                for person in people:
                    person.logged_in.wait(600)
                print(
                    f"  {USERS} people logged in through the form in "
                    f"{time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                )
                lags: list[float] = []
                missing: list[str] = []
                mail = threading.Thread(
                    target=deliver_mail, args=(server, stopping, lags, missing), daemon=True
                )
                busy_static: list[float] = []
                sampler = threading.Thread(
                    target=lambda: busy_static.extend(static_samples(base, 10**9, 0.5, stopping)),
                    daemon=True,
                )
                started = time.perf_counter()
                go.set()
                mail.start()
                sampler.start()
                stopping.wait(SECONDS)
                stopping.set()
                elapsed = time.perf_counter() - started
                for person in people:
                    person.join(TIMEOUT + 5)
                sampler.join(TIMEOUT + 5)
                mail.join(30)
                web_died = web.poll() is not None
                stop(web)  # the people are done; its database connections go with it
                writeback = writeback_state(ids["mailbox"])
                report(setup, stats, elapsed, idle_static, busy_static, lags, missing, writeback)
                for name in ("web.log", "worker.log"):
                    summarize_log(logs / name)
                worker_died = worker.poll() is not None
                for died, name in ((web_died, "web.log"), (worker_died, "worker.log")):
                    if died:
                        tail = (logs / name).read_text(errors="replace").splitlines()[-40:]
                        print(f"\n{name[:-4]} process died during the run:", *tail, sep="\n")
            finally:
                stop(web)
                stop(worker)
                server.stop()
    finally:
        from django.db import connections

        connections.close_all()
        stop(redis)
        if vendor == "postgres":
            recreate_postgres(drop_only=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def writeback_state(mailbox_id: int) -> dict:
    """Clicks not yet written to the server once the worker has had 15 s to catch up."""
    from django.db import OperationalError, connections

    from webmail.models import PendingChange

    changes = PendingChange.objects.filter(mailbox_id=mailbox_id)
    deadline = time.monotonic() + 15
    state = {"pending": "?", "failed": "?"}
    while time.monotonic() < deadline:
        try:
            state = {
                "pending": changes.filter(state="pending").count(),
                "failed": changes.filter(state="failed").count(),
            }
        except OperationalError:
            connections.close_all()  # out of connections: try again in a moment
        if state["pending"] == 0:
            break
        time.sleep(0.5)
    connections.close_all()
    return state


if __name__ == "__main__":
    main()
