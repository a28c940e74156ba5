"""`make bench-search`: how fast search answers over 100,000 messages, and what the index costs.

Seeds one mailbox whose INBOX holds N messages (BENCH_MESSAGES, default 100000; the senders,
subjects in several scripts and dates of bench/web.py) with a fetched body for BENCH_BODIES
(default 20%) of them, into a database migrated up to 0004 — no search index yet — and then:
  (a) the index build: `migrate webmail 0005_search` over that data;
  (b) what the index costs the sync's bulk writes: 10,000 new messages through
      webmail.sync.store.upsert_messages (COPY on PostgreSQL, executemany on SQLite), the same
      rows again (a flag resync), and 2,000 bodies, before the index and after;
  (c) BENCH_REPEAT (default 20) runs of each query of a mix of free text, phrases, operators,
      negation, accents and CJK substrings through webmail.search.messages.search (the SQL and
      the marking of matches, one page of 50), p50/p95 per query and over the mix, and the
      whole view through the Django test Client for the mix.
The machine is shared and has two cores: read the p50s and the ratios rather than maxima.

--db sqlite|postgres|both (default both): PostgreSQL is the local server (127.0.0.1:5432, or
the host of DATABASE_URL), database kotak_bench_search, created and dropped here; SQLite lives in
a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.web import make_body, make_rows, summary  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "100000"))
BODIES = float(os.environ.get("BENCH_BODIES", "0.2"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "20"))
WRITES = 10_000
PG_NAME = "kotak_bench_search"
TARGET_MS = 100

QUERIES = [
    # (kind, query)
    ("common word", "order"),
    ("common word", "refund"),
    ("rare word", "façade"),
    ("prefix", "deliv"),
    ("two words", "damaged parcel"),
    ("phrase", '"please help"'),
    ("accents", "cafe"),
    ("body only", "tomorrow yesterday"),
    ("from:", "from:person12"),
    ("from: address part", "from:github"),
    ("to:", "to:billing"),
    ("subject:", 'subject:"order"'),
    ("has: + text", "has:attachment invoice"),
    ("is: + text", "is:unread refund"),
    ("in: + is:", "in:inbox is:flagged"),
    ("dates", "after:2025-01-01 before:2025-03-01"),
    ("negation", "-refund is:flagged"),
    ("CJK 2 chars", "注文"),
    ("CJK 4 chars", "注文確認"),
    ("Cyrillic", "Заказ"),
    ("no match", "xylophone"),
]


def seed(count: int) -> dict:
    """A team, a mailbox, one agent, INBOX with `count` messages, bodies for a share of them."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from webmail.models import Folder, Mailbox, Membership, MessageBody, Role, Team
    from webmail.sync.store import upsert_messages

    rng = random.Random(5)
    mailbox = Mailbox(
        team=Team.objects.create(name="Bench"),
        name="Support",
        email="support@example.com",
        imap_host="imap.invalid",
        imap_username="support@example.com",
        status=Mailbox.Status.OK,
        last_sync_at=timezone.now(),
    )
    mailbox.imap_password = "unused"
    mailbox.save()
    user = get_user_model().objects.create_user("bench-agent", "agent@example.com", "x")
    Membership.objects.create(user=user, mailbox=mailbox, role=Role.AGENT)
    inbox = Folder.objects.create(
        mailbox=mailbox, name="INBOX", display_name="INBOX", label="Inbox", delimiter="/",
        special_use="inbox", uidvalidity=1, uidnext=count + 1, total_count=count,
    )  # fmt: skip
    rows = make_rows(inbox, count, rng)
    while batch := [row for _, row in zip(range(1000), rows, strict=False)]:
        with transaction.atomic():
            upsert_messages(batch)
    pks = list(inbox.messages.values_list("pk", flat=True))
    with_body = rng.sample(pks, int(len(pks) * BODIES))
    for start in range(0, len(with_body), 2000):
        with transaction.atomic():
            MessageBody.objects.bulk_create(
                MessageBody(**make_body(rng, pk)) for pk in with_body[start : start + 2000]
            )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"user_id": user.pk, "mailbox_id": mailbox.pk, "bodies": len(with_body)}


def write_costs(seeded: dict, label: str) -> dict:
    """Seconds for 10,000 new rows, the same rows again (flags resync) and 2,000 bodies."""
    from django.db import transaction

    from webmail.models import Folder, MessageBody
    from webmail.sync.store import upsert_messages

    rng = random.Random(9)
    folder = Folder.objects.create(
        mailbox_id=seeded["mailbox_id"], name=f"Writes {label}", display_name=f"Writes {label}",
        label=label, uidvalidity=1, uidnext=1,
    )  # fmt: skip
    rows = list(make_rows(folder, WRITES, rng))
    results = {}
    started = time.perf_counter()
    for start in range(0, len(rows), 1000):
        with transaction.atomic():
            upsert_messages(rows[start : start + 1000])
    results["insert"] = time.perf_counter() - started
    for row in rows:
        row["is_seen"] = not row["is_seen"]
    started = time.perf_counter()
    for start in range(0, len(rows), 1000):
        with transaction.atomic():
            upsert_messages(rows[start : start + 1000])
    results["resync"] = time.perf_counter() - started
    pks = list(folder.messages.values_list("pk", flat=True)[:2000])
    bodies = [MessageBody(**make_body(rng, pk)) for pk in pks]
    started = time.perf_counter()
    for start in range(0, len(bodies), 200):
        with transaction.atomic():
            MessageBody.objects.bulk_create(bodies[start : start + 200])
    results["bodies"] = time.perf_counter() - started
    folder.delete()
    return results


def query_times(seeded: dict) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from webmail.search import messages
    from webmail.search.query import parse

    user = get_user_model().objects.get(pk=seeded["user_id"])
    for _, text in QUERIES:  # warm-up: caches, plans, pages of the index in memory
        messages.search(user, parse(text))
    per_query, everything, counts = {}, [], {}
    for kind, text in QUERIES:
        query = parse(text)
        times = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            page = messages.search(user, query)
            times.append(time.perf_counter() - started)
        counts[text] = len(page.rows)
        per_query[text] = {"kind": kind, **summary(times), "rows": len(page.rows)}
        everything += times
    client = Client()
    client.force_login(user)
    views = []
    for _ in range(max(1, REPEAT // 4)):
        for _, text in QUERIES:
            started = time.perf_counter()
            response = client.get(reverse("search"), {"q": text})
            views.append(time.perf_counter() - started)
            if response.status_code != 200:
                sys.exit(f"search {text!r}: {response.status_code}")
    return {"queries": per_query, "mix": summary(everything), "view": summary(views)}


def index_size() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_size_pretty(sum(pg_relation_size(indexrelid))) FROM pg_index "
                "JOIN pg_class c ON c.oid = indexrelid WHERE c.relname LIKE 'kotak_search%'"
            )
        else:
            cursor.execute(
                "SELECT printf('%.1f MB', sum(pgsize) / 1048576.0) FROM dbstat "
                "WHERE name LIKE 'kotak_search%'"
            )
        return cursor.fetchone()[0]


# --- One database ----------------------------------------------------------------------------


def postgres_url() -> str:
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
    data_dir = tempfile.mkdtemp(prefix="kotak-bench-search-")
    url = f"sqlite:///{data_dir}/bench.db" if db == "sqlite" else postgres_url()
    os.environ.update(
        KOTAK_DATA_DIR=data_dir,
        DJANGO_SETTINGS_MODULE="webmail.settings",
        DATABASE_URL=url,
        DEBUG="0",
        ALLOWED_HOSTS="testserver",
        LIVE_BACKEND="poll",
        REDIS_URL="",
        CELERY_BROKER_URL="filesystem://",
    )
    try:
        if db == "postgres":
            recreate_postgres(url)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        call_command("migrate", "webmail", "0004_outbox", verbosity=0)
        started = time.perf_counter()
        seeded = seed(N)
        vendor = connection.vendor
        print(f"[{vendor}] seeded {N:,} messages in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)  # fmt: skip
        results = {"vendor": vendor, "bodies": seeded["bodies"]}
        results["writes before"] = write_costs(seeded, "before")
        started = time.perf_counter()
        call_command("migrate", "webmail", "0005_search", verbosity=0)
        results["build"] = time.perf_counter() - started
        call_command("migrate", verbosity=0)
        if vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        results["size"] = index_size()
        print(f"[{vendor}] index built in {results['build']:.1f} s", file=sys.stderr)
        results["writes after"] = write_costs(seeded, "after")
        results |= query_times(seeded)
        connection.close()
        return results
    finally:
        if db == "postgres":
            from django.db import connections

            connections.close_all()
            recreate_postgres(url, drop_only=True)
        shutil.rmtree(data_dir, ignore_errors=True)


# --- Report ----------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value:6.0f}" if value >= 100 else f"{value:6.1f}"


def report(all_results: list[dict]) -> None:
    print()
    print(
        f"Kotak search benchmark — {N:,} messages, {BODIES:.0%} with a fetched body; "
        f"{REPEAT} runs per query; {os.cpu_count()} cores, shared: noisy"
    )
    for results in all_results:
        print()
        print(f"== {results['vendor']}")
        build, size = results["build"], results["size"]
        print(f"  index build (migrate 0005_search): {build:.1f} s; size {size}")
        before, after = results["writes before"], results["writes after"]
        print("  sync writes, s                 before index   after   ratio")
        for key, title in (
            ("insert", f"{WRITES:,} new messages"),
            ("resync", f"the same {WRITES:,} again (flags)"),
            ("bodies", "2,000 bodies"),
        ):
            print(
                f"    {title:30} {before[key]:8.2f}    {after[key]:6.2f}   "
                f"{after[key] / before[key]:5.2f}x"
            )
        print("  query, ms (search(): SQL + marking, 50 rows)      p50    p95   rows")
        for text, row in results["queries"].items():
            label = f"{row['kind']}: {text}"
            print(f"    {label:46} {ms(row['p50'])} {ms(row['p95'])}  {row['rows']:5d}")
        mix, view = results["mix"], results["view"]
        print(f"    {'the whole mix':46} {ms(mix['p50'])} {ms(mix['p95'])}")
        label = "the view (test Client), the whole mix"
        print(f"    {label:46} {ms(view['p50'])} {ms(view['p95'])}")
    print()
    print(f"Target (issue 8): p95 ≤ {TARGET_MS} ms on PostgreSQL for the mix")
    for results in all_results:
        p95 = results["mix"]["p95"]
        verdict = "within" if p95 <= TARGET_MS else "OVER"
        print(f"  {results['vendor']:10} mix p95 {p95:6.1f} ms  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.db != "both":
        results = run_one(args.db)
        if args.json:
            Path(args.json).write_text(json.dumps(results))
        else:
            report([results])
        return
    databases = ["sqlite"]
    if postgres_reachable():
        databases.append("postgres")
    else:
        print("PostgreSQL is not reachable: SQLite only", file=sys.stderr)
    all_results = []
    with tempfile.TemporaryDirectory(prefix="kotak-bench-search-") as out:
        for db in databases:
            path = Path(out) / f"{db}.json"
            subprocess.run(
                [sys.executable, __file__, "--db", db, "--json", str(path)], cwd=ROOT, check=True
            )
            all_results.append(json.loads(path.read_text()))
    report(all_results)


if __name__ == "__main__":
    main()
