"""`make bench-sync`: how fast Kotak mirrors a big folder, against raw imapclient.

Seeds one folder with N realistic messages (~15 KB, mixed multipart) by writing Maildir files
into a private Dovecot, then measures in one run:
  (a) baseline: imapclient fetching the same items, nothing stored;
  (b) Kotak's initial sync into PostgreSQL, end to end (a separate `manage.py sync` process);
  (c) a resync with no changes;
  (d) a resync after 100 flag changes and 1,000 new messages;
  (f) a resync after 100 flag changes only (the target's own case);
  (c0), (d0), (f0) imapclient sending the same commands as (c), (d) and (f), nothing stored:
      Dovecot's own cost of opening a big Maildir folder grows with it;
  (e) the peak memory of the syncing process.
The machine is noisy: read the ratio (b)/(a) rather than the absolute figures.

Environment: BENCH_MESSAGES (default 100000), BENCH_DATABASE_URL (default the local
PostgreSQL, database kotak_bench, recreated), BENCH_SQLITE=1 to measure SQLite instead,
BENCH_GC=python to sync with Python's own garbage-collection thresholds.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.dovecot import Dovecot, dovecot_dir  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "100000"))
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kotak_bench")
USER, PASSWORD = "bench", "bench-password"

WORDS = """
order invoice refund parcel delivery account password reset thanks please help urgent
question update status ticket customer support billing payment card shipping address
tomorrow yesterday cancel subscription upgrade plan price discount broken damaged
""".split()  # noqa: SIM905


def body_text(rng: random.Random, size: int) -> str:
    words = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    return "\r\n".join(lines)


def make_messages(count: int, seed: int = 1):
    """Messages of ~15 KB: plain, alternative, and mixed with a small attachment."""
    rng = random.Random(seed)
    attachment = "\r\n".join(
        "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+"
        for _ in range(60)
    )
    for n in range(count):
        kind = n % 3
        sender = f"Customer {n % 997} <customer{n % 997}@example.org>"
        head = (
            f"From: {sender}\r\nTo: Support <support@example.com>\r\n"
            f"Subject: {rng.choice(WORDS).title()} {rng.choice(WORDS)} #{n}\r\n"
            f"Date: Mon, 2 Mar 2026 {n % 24:02d}:{n % 60:02d}:00 +0000\r\n"
            f"Message-ID: <bench-{n}@example.org>\r\n"
            + (f"In-Reply-To: <bench-{n - 1}@example.org>\r\n" if n % 5 == 0 and n else "")
            + "MIME-Version: 1.0\r\n"
        )
        text = body_text(rng, 6000 if kind else 14000)
        if kind == 0:
            raw = head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
        elif kind == 1:
            raw = (
                head + 'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
                "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
                "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>"
                + text.replace("\r\n", "</p><p>")
                + "</p></body></html>\r\n--b1--\r\n"
            )
        else:
            raw = (
                head + 'Content-Type: multipart/mixed; boundary="m1"\r\n\r\n'
                "--m1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
                "--m1\r\nContent-Type: application/pdf; name=invoice.pdf\r\n"
                "Content-Disposition: attachment; filename=invoice.pdf\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n" + attachment + "\r\n--m1--\r\n"
            )
        flags = (r"\Seen",) if n % 4 else ()
        yield raw.encode(), flags


def baseline(server: Dovecot) -> float:
    """(a) imapclient alone: the same windows and items as Kotak, nothing parsed or stored."""
    from webmail.sync.messages import NEW_MESSAGE_ITEMS, _chunks, _uid_set

    client = server.client(USER, timeout=300)
    started = time.perf_counter()
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search(["UID", "1:*"]), reverse=True)
    for window in _chunks(uids, 1000):
        client.fetch(_uid_set(sorted(window)), NEW_MESSAGE_ITEMS)
    elapsed = time.perf_counter() - started
    client.logout()
    return elapsed


def tls_client(server: Dovecot):
    """A logged-in imapclient over TLS, as Kotak connects."""
    from imapclient import IMAPClient

    client = IMAPClient(
        server.host, port=server.imaps_port, ssl_context=server.ssl_context(), timeout=60
    )
    client.login(USER, PASSWORD)
    return client


def baseline_resync(
    server: Dovecot, since: tuple[int, int] | None = None, list_first: bool = False
) -> float:
    """(c0)/(d0)/(f0) imapclient alone, sending what a resync sends, in its order: login over
    TLS, STATUS; with `since` (UIDNEXT, HIGHESTMODSEQ before the changes) also EXAMINE, the
    new messages' items and the flags CHANGEDSINCE; then LIST and NAMESPACE. What the server
    itself costs, to read (c), (d) and (f) by. With list_first, LIST and NAMESPACE come first,
    as a resync sent them before: what that order costs on the same server."""
    from webmail.sync.messages import NEW_MESSAGE_ITEMS

    started = time.perf_counter()
    client = tls_client(server)
    if list_first:
        client.list_folders()
        client.namespace()
    client.folder_status("INBOX", [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"HIGHESTMODSEQ"])
    if since:
        uidnext, modseq = since
        client.select_folder("INBOX", readonly=True)
        new = [uid for uid in client.search(["UID", f"{uidnext}:*"]) if uid >= uidnext]
        if new:
            client.fetch(new, NEW_MESSAGE_ITEMS)
        client.fetch(f"1:{uidnext - 1}", ["UID", "FLAGS"], modifiers=[f"CHANGEDSINCE {modseq}"])
    if not list_first:
        client.list_folders()
        client.namespace()
    client.logout()
    return time.perf_counter() - started


# Runs in the child: time only the sync itself (not interpreter and Django start-up), report RSS.
# "warm" and "twice" stand for a long-lived worker (code imported, TLS trust store loaded,
# database connection open): the steady state the resync figures are about. "twice" times a
# second, identical pass.
SYNC_CHILD = """
import gc, io, os, sys, threading, time, django
django.setup()
from django.core.management import call_command
if os.environ.get("BENCH_GC") == "python":
    # Python's own thresholds, to see what the sync's saves (webmail.sync.messages).
    import webmail.sync.messages
    webmail.sync.messages.FULL_COLLECTION_THRESHOLD = 0
if sys.argv[2:]:
    # A worker that has run before: its code imported, its trust store and its database
    # connection open.
    import webmail.management.commands.sync
    from webmail.imap.client import ssl_context
    from webmail.models import Mailbox
    ssl_context(Mailbox.objects.get(pk=sys.argv[1]).ca_certificates)
if sys.argv[2:] == ["twice"]:
    call_command("sync", sys.argv[1], stdout=io.StringIO())
from django.db import connection

def cpu_of(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

class Backends:
    # CPU seconds of this sync's PostgreSQL backends, when the server runs on this machine: the
    # writer's, and the one the conversations thread opens for a while. Sampled every 20 ms,
    # so a backend's last moments before it exits are missed; what the sampling itself costs
    # this process is taken off its CPU figure.
    QUERY = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
             "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")

    def __init__(self):
        self.seen, self.stop, self.own_cpu = {}, threading.Event(), 0.0
        if connection.vendor != "postgresql":
            return
        import psycopg
        settings = connection.settings_dict
        self.watcher = psycopg.connect(
            dbname=settings["NAME"], host=settings["HOST"], port=settings["PORT"],
            user=settings["USER"], password=settings["PASSWORD"] or None, autocommit=True,
        )
        self.base = self.sample()  # backends already there count from now
        self.thread = threading.Thread(target=self.watch)
        self.thread.start()

    def sample(self):
        found = {}
        for (pid,) in self.watcher.execute(self.QUERY):
            value = cpu_of(pid)
            if value is not None:
                found[pid] = value
        return found

    def watch(self):
        started = time.thread_time()
        while not self.stop.wait(0.02):
            self.seen.update(self.sample())
        self.own_cpu = time.thread_time() - started

    def total(self):
        if connection.vendor != "postgresql":
            return float("nan")
        self.stop.set()
        self.thread.join()
        self.watcher.close()
        return sum(value - self.base.get(pid, 0) for pid, value in self.seen.items())

collections = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}  # generation: [runs, seconds]

def timed_collection(phase, info, began=[0.0]):
    if phase == "start":
        began[0] = time.perf_counter()
    else:
        collections[info["generation"]][0] += 1
        collections[info["generation"]][1] += time.perf_counter() - began[0]

backends, started, cpu = Backends(), time.perf_counter(), time.process_time()
gc.callbacks.append(timed_collection)
call_command("sync", sys.argv[1], stdout=io.StringIO())
gc.callbacks.remove(timed_collection)
print(f"{time.perf_counter() - started:.4f}", file=sys.stderr)
database_cpu = backends.total()
cpu = time.process_time() - cpu - backends.own_cpu
# VmHWM, not ru_maxrss: Linux carries a forked child's ru_maxrss over from its parent, so it
# would report the bench's own size whenever that is the larger.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
young = collections[0][1] + collections[1][1]
print(peak / 1024, cpu, database_cpu, young, collections[2][0], collections[2][1])
"""


def run_sync_timed(env: dict, mailbox: str, warm: str = "") -> tuple[float, list[float]]:
    """Seconds the sync took, then [peak MB, its CPU seconds, its PostgreSQL backend's, its
    seconds of garbage collection in the young generations, its full collections and their
    seconds]."""
    process = subprocess.run(
        [sys.executable, "-c", SYNC_CHILD, mailbox, *([warm] if warm else [])], env=env, cwd=ROOT,
        capture_output=True, text=True,
    )  # fmt: skip
    if process.returncode != 0:
        sys.exit(f"sync failed:\n{process.stdout}\n{process.stderr}")
    seconds = float(process.stderr.strip().splitlines()[-1])
    return seconds, [float(x) for x in process.stdout.strip().splitlines()[-1].split()]


def profile(mailbox, server: Dovecot) -> None:
    """BENCH_PROFILE=1: run (b) in this process under cProfile and print where time goes;
    =resync: the no-change resync (c) instead; =flags: (f); =changes: (d)."""
    import cProfile
    import pstats

    from webmail.sync.mailbox import sync_mailbox

    profiler = cProfile.Profile()
    mode = os.environ["BENCH_PROFILE"]
    if mode in ("resync", "flags", "changes"):
        sync_mailbox(mailbox)
        sync_mailbox(mailbox)
        since = cursor(server)
        if mode == "flags":
            flag_changes(server)
        if mode == "changes":
            since = make_changes(server)
        if mode != "resync":
            baseline_resync(server, since)  # the server takes the changes in, as in the run
        started = time.perf_counter()
        profiler.runcall(sync_mailbox, mailbox)
        print(f"{time.perf_counter() - started:.3f} s")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return
    profiler.runcall(sync_mailbox, mailbox)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def cursor(server: Dovecot) -> tuple[int, int]:
    """The folder's UIDNEXT and HIGHESTMODSEQ now."""
    client = server.client(USER, timeout=300)
    status = client.folder_status("INBOX", [b"UIDNEXT", b"HIGHESTMODSEQ"])
    client.logout()
    return status[b"UIDNEXT"], status[b"HIGHESTMODSEQ"]


def flag_changes(server: Dovecot, seed: int = 2) -> None:
    """100 messages flagged over IMAP, as another mail client would."""
    client = server.client(USER, timeout=300)
    client.select_folder("INBOX")
    uids = client.search(["ALL"])
    client.add_flags(random.Random(seed).sample(uids, 100), [r"\Flagged"])
    client.logout()


def make_changes(server: Dovecot) -> tuple[int, int]:
    """(d)'s changes: 100 messages flagged over IMAP, 1,000 new ones written as files. Returns
    the folder's UIDNEXT and HIGHESTMODSEQ from before them."""
    since = cursor(server)
    flag_changes(server)
    server.write_maildir(USER, "INBOX", make_messages(1000, seed=3))
    return since


def prepare_database(env: dict) -> None:
    if env["DATABASE_URL"].startswith("postgres"):
        import psycopg

        base, _, name = env["DATABASE_URL"].rpartition("/")
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)


def in_data_dir(run) -> None:
    """run(data_dir) with a data directory of its own, removed afterwards."""
    data_dir = tempfile.mkdtemp(prefix="kotak-bench-")
    try:
        run(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def setup_django(data_dir: str, postgres_url: str) -> dict:
    """A fresh database (PostgreSQL at postgres_url, or SQLite with BENCH_SQLITE=1) migrated,
    and Django set up on it; returns the environment a sync child process needs."""
    env = dict(os.environ, KOTAK_DATA_DIR=data_dir, DJANGO_SETTINGS_MODULE="webmail.settings")
    if os.environ.get("BENCH_SQLITE"):
        env["DATABASE_URL"] = f"sqlite:///{data_dir}/bench.db"
    else:
        env["DATABASE_URL"] = postgres_url
    prepare_database(env)
    os.environ.update(env)
    import django

    django.setup()
    return env


def bench_mailbox(server: Dovecot, user: str, password: str, team, **fields):
    """A Mailbox row (with any other fields given) for a user of the bench's Dovecot, over TLS
    trusting its CA."""
    from webmail.models import Mailbox

    mailbox = Mailbox(
        team=team,
        name=user,
        email=f"{user}@example.com",
        imap_host=server.host,
        imap_port=server.imaps_port,
        imap_username=user,
        ca_certificates=server.ca_cert_pem,
        **fields,
    )
    mailbox.imap_password = password
    mailbox.save()
    return mailbox


def main() -> None:
    in_data_dir(run)


def run(data_dir: str) -> None:
    env = setup_django(data_dir, PG_URL)
    database = env["DATABASE_URL"].split(":")[0]
    with dovecot_dir("bench") as path, Dovecot.start(path, users={USER: PASSWORD}) as server:
        started = time.perf_counter()
        server.write_maildir(USER, "INBOX", make_messages(N))
        baseline(server)  # warm-up: Dovecot parses and caches the new files once, for both runs
        print(f"seeded {N} messages in {time.perf_counter() - started:.1f}s")
        # The kernel writes the seeded files (~1.5 GB at 100k) out up to 30 s after they were
        # written: done now, not during whichever measurement runs then.
        started = time.perf_counter()
        os.sync()
        print(f"wrote them out in {time.perf_counter() - started:.1f}s")

        from webmail.models import Team

        mailbox = bench_mailbox(server, USER, PASSWORD, Team.objects.create(name="Bench"))
        key = str(mailbox.pk)

        a = baseline(server)
        if os.environ.get("BENCH_PROFILE"):
            profile(mailbox, server)
            return
        b, (peak, b_cpu, b_database_cpu, b_young, b_full, b_full_seconds) = run_sync_timed(env, key)
        c, _ = run_sync_timed(env, key, warm="twice")
        c0 = baseline_resync(server)
        c0_list_first = baseline_resync(server, list_first=True)

        since = cursor(server)
        flag_changes(server, seed=4)
        baseline_resync(server, since)  # the server indexes the new flags once, for both runs
        f0 = baseline_resync(server, since)
        f0_list_first = baseline_resync(server, since, list_first=True)
        f, _ = run_sync_timed(env, key, warm="warm")

        since = make_changes(server)
        baseline_resync(server, since)  # the server takes in the new files once, for both runs
        d0 = baseline_resync(server, since)
        d, _ = run_sync_timed(env, key, warm="warm")

    print()
    print(f"Kotak sync benchmark — {N} messages, {database}, 2-core loopback")
    print(f"(a) raw imapclient fetch, no storage : {a:7.2f} s  {N / a:8.0f} msg/s")
    print(f"(b) Kotak initial sync, end to end   : {b:7.2f} s  {N / b:8.0f} msg/s")
    print(f"    ratio (b)/(a)                    : {b / a:7.2f}")
    print(f"    CPU: Kotak {b_cpu:.2f} s, its PostgreSQL backends {b_database_cpu:.2f} s")
    print(
        f"    Kotak's garbage collection: {b_young:.2f} s young, "
        f"{b_full:.0f} full in {b_full_seconds:.2f} s"
    )
    print(f"(c) resync, no changes               : {c * 1000:7.0f} ms")
    print(f"    the server alone (c0)            : {c0 * 1000:7.0f} ms")
    print(f"    … with LIST first                : {c0_list_first * 1000:7.0f} ms")
    print(f"(f) resync, 100 flag changes         : {f * 1000:7.0f} ms")
    print(f"    the server alone (f0)            : {f0 * 1000:7.0f} ms")
    print(f"    … with LIST first                : {f0_list_first * 1000:7.0f} ms")
    print(f"(d) resync, 100 flags + 1,000 new    : {d * 1000:7.0f} ms")
    print(f"    the server alone (d0)            : {d0 * 1000:7.0f} ms")
    print(f"(e) peak memory of the sync process  : {peak:7.0f} MB")


if __name__ == "__main__":
    main()
