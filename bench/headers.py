"""`make bench-headers`: what hostile header blocks cost a sync, against ordinary mail.

Seeds three mailboxes of a private Dovecot by writing Maildir files, then syncs each with
`manage.py sync` in a process of its own (bench/sync.py's timing child) and prints its time and
peak memory:
  (a) BENCH_MESSAGES (default 300) ordinary ~15 KB messages (bench/sync.py's), the baseline;
  (b) 100 messages whose Subject alone is 1 MB (tests/corpus.py huge_subject);
  (c) BENCH_MESSAGES messages with 5,000 recipients each, 193 KB of To (many_recipients).
A window of such messages must not hold them all at once, and parsing a long address list must
not cost much more per byte than an ordinary header. Read (b) and (c) against (a): the machine
is noisy.

Environment: BENCH_DATABASE_URL (default the local PostgreSQL, database kotak_bench_headers,
recreated), BENCH_SQLITE=1 to use SQLite instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sync import (  # noqa: E402
    bench_mailbox,
    in_data_dir,
    make_messages,
    run_sync_timed,
    setup_django,
)
from tests.corpus import huge_subject, many_recipients  # noqa: E402
from tests.dovecot import Dovecot, dovecot_dir  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "300"))
PG_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kotak_bench_headers"
)


def numbered(raw: bytes, count: int, kind: str) -> list[bytes]:
    """count copies of raw, each with a Message-ID of its own."""
    return [f"Message-ID: <{kind}-{n}@bench.example>\r\n".encode() + raw for n in range(count)]


def main() -> None:
    in_data_dir(run)


def run(data_dir: str) -> None:
    env = setup_django(data_dir, PG_URL)
    from webmail.models import Team

    cases = {
        "ordinary": (make_messages(N), "~15 KB messages"),
        "subject": (numbered(huge_subject(), 100, "subject"), "1 MB Subject each"),
        "recipients": (numbered(many_recipients(), N, "recipients"), "5,000 recipients each"),
    }
    users = {name: f"pw-{name}" for name in cases}
    results = {}
    with dovecot_dir("bench-headers") as path, Dovecot.start(path, users=users) as server:
        team = Team.objects.create(name="Bench")
        for name, (messages, _) in cases.items():
            messages = list(messages)
            server.write_maildir(name, "INBOX", messages)
            mailbox = bench_mailbox(server, name, users[name], team)
            seconds, (peak, cpu, *_) = run_sync_timed(env, str(mailbox.pk))
            results[name] = (len(messages), seconds, peak, cpu)

    database = env["DATABASE_URL"].split(":")[0]
    print(f"\nKotak header benchmark — {database}, one sync process per mailbox")
    base_seconds, base_peak = (
        results["ordinary"][1] / results["ordinary"][0],
        results["ordinary"][2],
    )
    for label, (name, (_, what)) in zip("abc", cases.items(), strict=True):
        count, seconds, peak, cpu = results[name]
        print(
            f"({label}) {count:5d} messages, {what:24s}: {seconds:6.2f} s "
            f"({seconds / count * 1000:6.1f} ms/msg, {seconds / count / base_seconds:5.1f}× (a)), "
            f"CPU {cpu:5.2f} s, peak {peak:4.0f} MB (+{peak - base_peak:4.0f} MB on (a))"
        )


if __name__ == "__main__":
    main()
