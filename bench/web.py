"""`make bench-web`: how fast a 100,000-message folder lists and a cached message opens.

Seeds one mailbox whose INBOX holds N messages (BENCH_MESSAGES, default 100000) with varied
senders and subjects (non-ASCII included), dates over three years, 30% unread, some flagged,
and a cached body for every message it opens, then measures in one run:
  (a) server time through the whole Django stack (test Client, in-process), BENCH_REQUESTS
      (default 200) requests each: the list's first page, deep pages (?before= at random
      positions), the htmx refresh of the list, and opening a cached message; p50/p95/p99/max,
      this process's CPU time (p50) and SQL queries per request;
  (b) the bare ORM queries for the same rows in the same run, so view / baseline shows what
      the view and its template add;
  (c) a real browser (Debian's Chromium) against uvicorn: BENCH_NAVIGATIONS (default 20)
      navigations each, time to first byte, DOMContentLoaded and first contentful paint.
The machine is shared and has two cores: read the ratios and p50s rather than single maxima.

--db sqlite|postgres|both (default both): PostgreSQL is the local server (127.0.0.1:5432, or
the host of DATABASE_URL), database kotak_bench_web, created and dropped here; SQLite lives in a
temporary directory. BENCH_PROFILE=1 prints cProfile of the list and message views instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = int(os.environ.get("BENCH_MESSAGES", "100000"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "200"))
NAVIGATIONS = int(os.environ.get("BENCH_NAVIGATIONS", "20"))
PG_NAME = "kotak_bench_web"
USER, PASSWORD = "bench-agent", "bench-password-1"
TARGET_MS = 50
CHROMIUM = "/usr/bin/chromium"

# What the folder list reads of each row, for the baseline, unless the view names its own.
LIST_FIELDS = [
    "pk", "mailbox_id", "uid", "subject", "from_name", "from_address", "internal_date", "date",
    "is_seen", "is_flagged", "is_answered", "has_attachments", "snippet", "parse_error",
]  # fmt: skip

FIRST_NAMES = [
    "Anna", "Ben", "Chloé", "Dmitri", "Élodie", "Fatima", "Günther", "Hiroshi", "Inês", "Jakub",
    "Kasia", "Lars", "Mei", "Nuno", "Olga", "Pål", "Quentin", "Rosa", "Søren", "Tomás", "Ursula",
    "Việt", "Wojciech", "Xiu", "Yusuf", "Zoë", "Łukasz", "Ørjan", "Çağla", "Siobhán",
]  # fmt: skip
LAST_NAMES = [
    "Müller", "García", "Nguyễn", "O'Brien", "Kowalski", "Dubois", "Rossi", "Jensen", "Novák",
    "Yılmaz", "Smith", "Fernández", "Østergaard", "Šimková", "van der Berg", "Björk", "Tanaka",
]  # fmt: skip
SCRIPT_NAMES = ["Иван Петров", "田中 太郎", "محمد علي", "Παναγιώτης Παπαδόπουλος", "김민준", "王芳"]
DOMAINS = ["example.org", "example.com", "exämple.de", "mail.example.net", "customer.example"]
ROBOTS = [
    ("", "noreply@shop.example"), ("GitHub", "notifications@github.example"),
    ("Billing", "billing@vendor.example"), ("", "mailer-daemon@mx.example.com"),
]  # fmt: skip
SUBJECTS = [
    "Where is my order #{n}?", "Re: Where is my order #{n}?", "Invoice {n} overdue",
    "Fwd: Invoice {n}", "Refund request for order {n}", "Password reset not working",
    "Commande n°{n} expédiée", "Ihre Bestellung über {price} € ist unterwegs",
    "Заказ №{n} доставлен", "注文確認 #{n}", "🎉 Your invoice {n} is ready",
    "Re: Re: Re: Damaged parcel — photos attached", "Question about the {word} plan",
    "Can't log in since the update", "Änderung der Lieferadresse", "Factura {n} — pago pendiente",
    "[Ticket #{n}] {word} {word2} {word3}", "Out of office: back on Monday", "",
    "A very long subject line that someone wrote as if it were the whole message, about the "
    "{word} and the {word2} and why order {n} still has not arrived after three weeks",
]  # fmt: skip
WORDS = """
order invoice refund parcel delivery account password reset thanks please help urgent question
update status ticket customer support billing payment card shipping address tomorrow yesterday
cancel subscription upgrade plan price discount broken damaged café naïve façade über déjà
""".split()  # noqa: SIM905


# --- Seeding ---------------------------------------------------------------------------------


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_people(rng: random.Random, count: int = 2000) -> list[tuple[str, str]]:
    people = []
    for n in range(count):
        if n % 40 == 0:
            name = rng.choice(SCRIPT_NAMES)
        elif n % 25 == 0:
            name = ""  # a bare address
        else:
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        people.append((name, f"person{n}@{rng.choice(DOMAINS)}"))
    return people + ROBOTS


def make_rows(folder, count: int, rng: random.Random):
    """Message rows as webmail.sync.messages.build_message returns them, oldest UID first."""
    people = make_people(rng)
    now = datetime.now(UTC)
    start = now - timedelta(days=3 * 365)
    span = (now - start).total_seconds()
    # Internal dates grow with the UID, as they do when mail arrives over the years.
    offsets = sorted(rng.random() * span for _ in range(count))
    for uid, offset in enumerate(offsets, start=1):
        internal_date = start + timedelta(seconds=offset)
        name, address = rng.choice(people)
        subject = rng.choice(SUBJECTS).format(
            n=rng.randrange(10000, 99999), price=f"{rng.randrange(5, 500)},90",
            word=rng.choice(WORDS), word2=rng.choice(WORDS), word3=rng.choice(WORDS),
        )  # fmt: skip
        is_reply = subject.startswith("Re:")
        broken = uid % 1500 == 0
        yield {
            "mailbox_id": folder.mailbox_id,
            "folder_id": folder.pk,
            "uid": uid,
            "stable_id": f"h:{uid:040x}",
            "message_id": f"<{uid}.{rng.getrandbits(32):08x}@{address.rpartition('@')[2]}>",
            "in_reply_to": f"<{uid - 1}@example.org>" if is_reply else "",
            "references": f"<{uid - 2}@example.org> <{uid - 1}@example.org>" if is_reply else "",
            "subject": "(unreadable message)" if broken else subject,
            "from_name": name,
            "from_address": address,
            "to": [["Support", "support@example.com"]],
            "cc": [["Billing", "billing@example.com"]] if uid % 7 == 0 else [],
            "reply_to": [],
            "date": None if uid % 50 == 0 else internal_date - timedelta(seconds=rng.randrange(90)),
            "internal_date": internal_date,
            "size": rng.randrange(2_000, 250_000),
            "is_seen": rng.random() >= 0.3,
            "is_flagged": rng.random() < 0.04,
            "is_answered": rng.random() < 0.2,
            "keywords": ["$Forwarded"] if uid % 97 == 0 else [],
            "has_attachments": rng.random() < 0.15,
            "snippet": " ".join(sentence(rng, rng.randrange(6, 14)) for _ in range(3))[:200],
            "parse_error": "HeaderParseError: bad encoded word" if broken else "",
            "raw_headers": b"Subject: =?utf-8?q?broken" if broken else None,
        }


def make_body(rng: random.Random, pk: int) -> dict:
    """A cached body: a few paragraphs with links and a quoted reply; most also have HTML."""
    paragraphs = [
        " ".join(sentence(rng, rng.randrange(8, 20)) for _ in range(rng.randrange(1, 5)))
        for _ in range(rng.randrange(2, 12))
    ]
    paragraphs.insert(1, f"Tracking: https://track.example.com/parcel/{pk}?lang=en")
    paragraphs.append("Best regards,\nSam\nsupport@example.com | https://www.example.com/help")
    quoted = "\n".join("> " + sentence(rng, 10) for _ in range(rng.randrange(0, 20)))
    text = "\n\n".join(paragraphs) + ("\n\nOn Monday, Pat wrote:\n" + quoted if quoted else "")
    html = ""
    if rng.random() < 0.6:
        html = "<html><body>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</body></html>"
    attachments = []
    if rng.random() < 0.15:
        attachments = [{"section": "2", "filename": "invoice.pdf", "type": "application/pdf",
                        "size": rng.randrange(20_000, 900_000)}]  # fmt: skip
    return {"message_id": pk, "text": text, "html": html, "attachments": attachments}


def seed(count: int) -> dict:
    """A team, a mailbox, one agent, a folder tree, INBOX with `count` messages; returns ids."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from webmail.models import Folder, Mailbox, Membership, Message, MessageBody, Role, Team
    from webmail.sync.store import upsert_messages

    rng = random.Random(5)
    mailbox = Mailbox(
        team=Team.objects.create(name="Bench"),
        name="Support",
        email="support@example.com",
        imap_host="imap.invalid",  # never contacted: every page measured here reads the database
        imap_username="support@example.com",
        status=Mailbox.Status.OK,
        last_sync_at=timezone.now(),
    )
    mailbox.imap_password = "unused"
    mailbox.save()
    user = get_user_model().objects.create_user(USER, "agent@example.com", PASSWORD)
    Membership.objects.create(user=user, mailbox=mailbox, role=Role.AGENT)

    names = [
        ("INBOX", "inbox"), ("Sent", "sent"), ("Drafts", "drafts"), ("Archive", "archive"),
        ("Junk", "junk"), ("Trash", "trash"), ("Clients", ""), ("Clients/ACME", ""),
        ("Clients/Globex", ""), ("Clients/Initech", ""), ("Suppliers", ""),
        ("Suppliers/Ünterwerk", ""),
    ]  # fmt: skip
    folders: dict[str, Folder] = {}
    for name, special_use in names:
        parent = folders.get(name.rpartition("/")[0])
        folders[name] = Folder.objects.create(
            mailbox=mailbox, name=name, display_name=name, label=name.rpartition("/")[2],
            delimiter="/", parent=parent, special_use=special_use, uidvalidity=1, uidnext=1,
            unread_count=rng.randrange(0, 30) if name != "INBOX" else 0,
            last_synced_at=timezone.now(),
        )  # fmt: skip
    inbox = folders["INBOX"]

    rows = make_rows(inbox, count, rng)
    while batch := [row for _, row in zip(range(1000), rows, strict=False)]:
        with transaction.atomic():
            upsert_messages(batch)
    unread = inbox.messages.filter(is_seen=False).count()
    Folder.objects.filter(pk=inbox.pk).update(
        total_count=count, unread_count=unread, uidnext=count + 1, lowest_synced_uid=1
    )
    if connection.vendor == "postgresql":
        # Fresh statistics, as autovacuum would have gathered within a minute of such a load.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    # The list, newest first: deep pages start from any of these; messages opened are read
    # ones (opening an unread one may mark it read on the server, which needs IMAP).
    order = list(inbox.messages.newest_first().values_list("pk", "is_seen"))
    opened = rng.sample([pk for pk, is_seen in order if is_seen], REQUESTS)
    MessageBody.objects.bulk_create(MessageBody(**make_body(rng, pk)) for pk in opened)
    assert Message.objects.filter(folder=inbox).count() == count
    return {
        "user_id": user.pk,
        "mailbox_id": mailbox.pk,
        "inbox_id": inbox.pk,
        "list_order": [pk for pk, _ in order],
        "opened": opened,
    }


# --- Server time -----------------------------------------------------------------------------


def summary(values: list[float]) -> dict:
    """Percentiles in ms (nearest rank)."""
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] * 1000

    return {
        "p50": statistics.median(ordered) * 1000,
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1] * 1000,
    }


def time_requests(client, requests: list[tuple[str, dict]]) -> tuple[list[float], float, int]:
    """Seconds per request; the median CPU time of this process per request, in ms, which a busy
    machine inflates less than wall time; and the most SQL queries of three more requests."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, cpu = [], []
    for url, headers in requests:
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        check(response, url)
    # Counted apart: capturing keeps every SQL string and would slow the timed requests.
    queries = 0
    for url, headers in requests[:3]:
        with CaptureQueriesContext(connection) as captured:
            check(client.get(url, headers=headers), url)
        queries = max(queries, len(captured))
    return times, statistics.median(cpu) * 1000, queries


def check(response, url: str) -> None:
    body = response.content
    if response.status_code != 200 or b"could not be loaded" in body:
        sys.exit(f"GET {url}: {response.status_code}\n{body[:2000].decode(errors='replace')}")


def time_calls(call, arguments: list) -> list[float]:
    times = []
    for argument in arguments:
        started = time.perf_counter()
        call(argument)
        times.append(time.perf_counter() - started)
    return times


def server_times(seeded: dict) -> dict:
    """(a) and (b): the views through the test Client, then the bare ORM for the same rows."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db.models import Q
    from django.test import Client
    from django.urls import reverse

    from webmail.models import Message
    from webmail.web import mail

    rng = random.Random(7)
    client = Client()
    client.force_login(get_user_model().objects.get(pk=seeded["user_id"]))
    list_url = reverse("folder", args=[seeded["mailbox_id"], seeded["inbox_id"]])
    order = seeded["list_order"]
    page = settings.MESSAGES_PER_PAGE
    anchors = [rng.choice(order[: -page - 1]) for _ in range(REQUESTS)]
    htmx = {"HX-Request": "true", "HX-Target": "message-list", "HX-Current-URL": list_url}
    kinds = {
        "list": [(list_url, {})] * REQUESTS,
        "deep": [(f"{list_url}?before={pk}", {}) for pk in anchors],
        "htmx": [(list_url, htmx)] * REQUESTS,
        "message": [
            (reverse("message", args=[seeded["mailbox_id"], pk]), {}) for pk in seeded["opened"]
        ],
    }
    for requests in kinds.values():  # warm-up: templates compiled, URL resolver and caches filled
        for url, headers in requests[:10]:
            check(client.get(url, headers=headers), url)
    results = {}
    for kind, requests in kinds.items():
        times, cpu, queries = time_requests(client, requests)
        results[kind] = summary(times) | {"cpu": cpu, "queries": queries}

    inbox = seeded["inbox_id"]
    # The list hides rows awaiting a move; none do here, so with or without it the rows match.
    fields = getattr(mail, "LIST_FIELDS", LIST_FIELDS)
    visible = Message.objects.filter(folder_id=inbox, pending_removal=False)
    rows = visible.newest_first().only(*fields)

    def first_page(_):
        return list(rows[: page + 1])

    def deep_page(before):
        anchor = Message.objects.values("internal_date", "uid").get(folder_id=inbox, pk=before)
        return list(
            rows.filter(
                Q(internal_date__lte=anchor["internal_date"]),
                Q(internal_date__lt=anchor["internal_date"]) | Q(uid__lt=anchor["uid"]),
            )[: page + 1]
        )

    def open_message(pk):
        message = Message.objects.select_related("folder", "mailbox").get(pk=pk)
        return message.body.text

    for call, arguments in ((first_page, range(10)), (deep_page, anchors[:10])):
        time_calls(call, list(arguments))
    results["orm list"] = summary(time_calls(first_page, list(range(REQUESTS))))
    results["orm deep"] = summary(time_calls(deep_page, anchors))
    results["orm message"] = summary(time_calls(open_message, seeded["opened"]))
    results["plans"] = list_plans(client, list_url, anchors[0])
    return results


def list_plans(client, list_url: str, before: int) -> dict:
    """How the database runs the view's own page query, first page and deep page: the index,
    and whether the anchor bounds the scan (Index Cond) or only filters it."""
    from django.conf import settings
    from django.db import connection

    page = settings.MESSAGES_PER_PAGE
    plans = {}
    for kind, url in (("list", list_url), ("deep", f"{list_url}?before={before}")):
        # With its parameters bound, as it ran: SQLite plans some literals differently.
        captured = []

        def keep(execute, sql, params, many, context, captured=captured):
            captured.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(keep):
            client.get(url)
        found = [(sql, params) for sql, params in captured if f"LIMIT {page + 1}" in sql]
        if not found:
            plans[kind] = "(page query not found)"
            continue
        sql, params = found[0]
        explain = "EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
        with connection.cursor() as cursor:
            cursor.execute(explain + sql, params)
            lines = [str(row[-1]) for row in cursor.fetchall()]
        lines = [re.sub(r"\s*\(cost=[^)]*\)|->", "", line).strip() for line in lines]
        plans[kind] = "; ".join(line for line in lines if not line.startswith("Limit"))
    return plans


def profile(seeded: dict) -> None:
    """BENCH_PROFILE=1: where the list view and the message view spend their time."""
    import cProfile
    import pstats

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(get_user_model().objects.get(pk=seeded["user_id"]))
    urls = {
        "folder list, first page": [
            reverse("folder", args=[seeded["mailbox_id"], seeded["inbox_id"]])
        ]
        * 100,
        "open a cached message": [
            reverse("message", args=[seeded["mailbox_id"], pk]) for pk in seeded["opened"][:100]
        ],
    }
    for title, batch in urls.items():
        for url in batch[:5]:
            client.get(url)
        profiler = cProfile.Profile()
        profiler.enable()
        for url in batch:
            client.get(url)
        profiler.disable()
        print(f"\n=== {title}: {len(batch)} requests")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


# --- Browser ---------------------------------------------------------------------------------

# Milliseconds since the navigation started; waits for the first paint if it has not come yet.
PAINT_JS = """() => new Promise((resolve) => {
  const nav = performance.getEntriesByType("navigation")[0];
  const done = (fcp) => resolve({
    ttfb: nav.responseStart, dcl: nav.domContentLoadedEventEnd, fcp: fcp });
  const paint = () => performance.getEntriesByName("first-contentful-paint")[0];
  if (paint()) return done(paint().startTime);
  new PerformanceObserver(() => paint() && done(paint().startTime))
    .observe({type: "paint", buffered: true});
  setTimeout(() => done(paint() ? paint().startTime : null), 3000);
})"""


def serve() -> tuple[object, threading.Thread, str]:
    """Kotak under uvicorn in a thread, as tests/browser/conftest.py's asgi_live_server."""
    import uvicorn

    from webmail.asgi import application

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sys.exit("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def browser_times(seeded: dict) -> dict:
    """(c): log in through the form, then navigate and read the page's own timings."""
    from django.urls import reverse
    from playwright.sync_api import sync_playwright

    rng = random.Random(11)
    list_path = reverse("folder", args=[seeded["mailbox_id"], seeded["inbox_id"]])
    order = seeded["list_order"]
    paths = {
        "list": [list_path] * NAVIGATIONS,
        "deep": [f"{list_path}?before={rng.choice(order[:-60])}" for _ in range(NAVIGATIONS)],
        "message": [
            reverse("message", args=[seeded["mailbox_id"], pk])
            for pk in seeded["opened"][:NAVIGATIONS]
        ],
    }
    server, thread, base = serve()
    results: dict[str, dict] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-dev-shm-usage"],
            )  # fmt: skip
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(30_000)
            page.goto(base + "/accounts/login/")
            page.fill("#id_username", USER)
            page.fill("#id_password", PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
            for kind, urls in paths.items():
                page.goto(base + urls[-1])  # warm-up: static files cached, connection open
                samples = []
                for url in urls:
                    page.goto(base + url, wait_until="load")
                    if page.locator("#message-list, .message-view").count() == 0:
                        sys.exit(f"{url} did not render:\n{page.content()[:2000]}")
                    samples.append(page.evaluate(PAINT_JS))
                results[kind] = {
                    metric: browser_summary([s[metric] for s in samples])
                    for metric in ("ttfb", "dcl", "fcp")
                }
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=5)
    return results


def browser_summary(values: list[float | None]) -> dict:
    measured = sorted(v for v in values if v is not None)
    if not measured:
        return {"p50": None, "p95": None}
    return {
        "p50": statistics.median(measured),
        "p95": measured[min(len(measured) - 1, round(0.95 * (len(measured) - 1)))],
    }


# --- One database ----------------------------------------------------------------------------


def postgres_url() -> str:
    """The local server, or DATABASE_URL's if that is PostgreSQL, with our own database."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    return urlunsplit(urlsplit(url)._replace(path="/" + PG_NAME))


def postgres_reachable() -> bool:
    parts = urlsplit(postgres_url())
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


def recreate_postgres(url: str, drop_only: bool = False) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{PG_NAME}"')


def run_one(db: str) -> dict:
    """Everything against one database, in this process; returns the figures."""
    data_dir = tempfile.mkdtemp(prefix="kotak-bench-web-")
    url = f"sqlite:///{data_dir}/bench.db" if db == "sqlite" else postgres_url()
    os.environ.update(
        KOTAK_DATA_DIR=data_dir,
        DJANGO_SETTINGS_MODULE="webmail.settings",
        DATABASE_URL=url,
        DEBUG="0",
        # The test Client's host, next to the browser's.
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        # Nothing outside this process: the event stream polls the change log.
        LIVE_BACKEND="poll",
        REDIS_URL="",
        CELERY_BROKER_URL="filesystem://",
        # Playwright's sync API keeps an event loop in this thread; the ORM calls here are safe.
        DJANGO_ALLOW_ASYNC_UNSAFE="true",
    )
    try:
        if db == "postgres":
            recreate_postgres(url)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        seeded = seed(N)
        seconds = time.perf_counter() - started
        print(f"[{connection.vendor}] seeded {N:,} messages in {seconds:.1f}s", file=sys.stderr)
        if os.environ.get("BENCH_PROFILE"):
            profile(seeded)
            return {}
        results = {"vendor": connection.vendor, "seed_seconds": seconds}
        results["server"] = server_times(seeded)
        print(f"[{connection.vendor}] server times measured", file=sys.stderr)
        results["browser"] = browser_times(seeded)
        connection.close()
        return results
    finally:
        if db == "postgres":
            from django.db import connections

            connections.close_all()
            recreate_postgres(url, drop_only=True)
        shutil.rmtree(data_dir, ignore_errors=True)


# --- Report ----------------------------------------------------------------------------------

SERVER_ROWS = [
    ("list", "folder list, first page"),
    ("deep", "folder list, deep page (?before=)"),
    ("htmx", "folder list, htmx refresh (partial)"),
    ("message", "open a cached message"),
    ("orm list", "baseline: ORM, first page of rows"),
    ("orm deep", "baseline: ORM, anchor + deep page"),
    ("orm message", "baseline: ORM, message + body"),
]
TARGET_ROWS = [
    ("list", "list, first page"),
    ("deep", "list, deep page"),
    ("htmx", "list, htmx refresh"),
    ("message", "open a message"),
]
BROWSER_ROWS = [
    ("list", "folder list, first page"),
    ("deep", "folder list, deep page"),
    ("message", "open a cached message"),
]


def ms(value: float | None) -> str:
    return "    —" if value is None else f"{value:5.0f}" if value >= 100 else f"{value:5.1f}"


def report(all_results: list[dict]) -> None:
    print()
    print(
        f"Kotak web benchmark — INBOX of {N:,} messages; {REQUESTS} requests and "
        f"{NAVIGATIONS} browser navigations of each kind; {os.cpu_count()} cores, shared: noisy"
    )
    for results in all_results:
        server, browser = results["server"], results["browser"]
        print()
        print(f"== {results['vendor']} (seeded in {results['seed_seconds']:.0f} s)")
        print(
            f"{'server time, ms (Django test Client)':40}   p50    p95    p99    max"
            "  CPU p50  queries"
        )
        for key, title in SERVER_ROWS:
            row = server[key]
            extra = f"    {ms(row['cpu'])}  {row['queries']:7d}" if "queries" in row else ""
            print(
                f"  {title:38} {ms(row['p50'])}  {ms(row['p95'])}  {ms(row['p99'])}  "
                f"{ms(row['max'])}{extra}"
            )
        print(
            "  view / baseline, p50: "
            + ", ".join(
                f"{label} {server[view]['p50'] / server[base]['p50']:.1f}x"
                for label, view, base in (
                    ("first page", "list", "orm list"),
                    ("deep page", "deep", "orm deep"),
                    ("message", "message", "orm message"),
                )
            )
        )
        for kind, plan in server["plans"].items():
            print(textwrap.fill(f"plan, {kind} page: {plan}", 100, initial_indent="  ",
                                subsequent_indent="      "))  # fmt: skip
        print(f"{'browser, ms since navigation start':40} TTFB p50/p95   DCL p50/p95   FCP p50/p95")
        for key, title in BROWSER_ROWS:
            row = browser[key]
            cells = "   ".join(
                f"{ms(row[m]['p50'])}/{ms(row[m]['p95']).strip():5}" for m in ("ttfb", "dcl", "fcp")
            )
            print(f"  {title:38} {cells}")
    print()
    print(f"Target (issue 5): server time p95 ≤ {TARGET_MS} ms for the list and opening a message")
    for results in all_results:
        server = results["server"]
        for key, title in TARGET_ROWS:
            p95 = server[key]["p95"]
            verdict = "within" if p95 <= TARGET_MS else "OVER"
            print(f"  {results['vendor']:10} {title:20} p95 {p95:5.1f} ms  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # a child's results, for `both`
    args = parser.parse_args()
    if args.db != "both":
        results = run_one(args.db)
        if args.json:
            Path(args.json).write_text(json.dumps(results))
        elif results:
            report([results])
        return
    databases = ["sqlite"]
    if postgres_reachable():
        databases.append("postgres")
    else:
        print("PostgreSQL is not reachable: SQLite only", file=sys.stderr)
    all_results = []
    # One process per database: Django's settings and connections are set up once each.
    with tempfile.TemporaryDirectory(prefix="kotak-bench-web-") as out:
        for db in databases:
            path = Path(out) / f"{db}.json"
            subprocess.run(
                [sys.executable, __file__, "--db", db, "--json", str(path)], cwd=ROOT, check=True
            )
            if path.stat().st_size > 2:
                all_results.append(json.loads(path.read_text()))
    if all_results:
        report(all_results)


if __name__ == "__main__":
    main()
