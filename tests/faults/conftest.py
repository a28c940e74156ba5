"""Fault injection against real processes: a Dovecot stopped or frozen mid-work, a worker
SIGKILLed, Redis or the database gone for a moment. Every test here is marked `faults`
(`pytest -m faults` runs only them, `-m "not faults"` skips them)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ImapAccount
from tests.dovecot import Dovecot, dovecot_dir

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)


def wait_for(condition, timeout: float = 8.0, what: str = "condition", step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A Dovecot of the test's own, so stopping it disturbs no other test."""
    with dovecot_dir("faults") as path, Dovecot.start(path, users={"ops": "pw-ops"}) as server:
        yield server


@pytest.fixture
def own_account(own_dovecot) -> ImapAccount:
    return ImapAccount(own_dovecot, "ops", "pw-ops", "ops@example.com")


def bulk_messages(count: int, prefix: str = "Bulk") -> Iterator[bytes]:
    """Small distinct messages, quickly (write_maildir takes thousands in well under a second)."""
    for n in range(count):
        yield (
            f"From: Customer {n % 97} <c{n % 97}@customer.example>\r\n"
            f"To: Support <support@example.com>\r\n"
            f"Subject: {prefix} {n}\r\n"
            f"Date: Mon, 2 Mar 2026 10:{n % 60:02d}:00 +0000\r\n"
            f"Message-ID: <{prefix.lower()}-{n}-{os.getpid()}@customer.example>\r\n"
            "\r\nHello.\r\n"
        ).encode()


def database_url() -> str:
    """The test database, as DATABASE_URL for a child process (SQLite: the shared file)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def child_env(settings, **extra: str) -> dict[str, str]:
    """Environment for a Kotak process sharing this test's database, keys and loopback rules."""
    return dict(
        os.environ,
        DATABASE_URL=database_url(),
        KOTAK_ENCRYPTION_KEYS=",".join(settings.ENCRYPTION_KEYS),
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
        OUTBOUND_ALLOWED_PORTS="*",
        **extra,
    )
