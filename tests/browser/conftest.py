"""Playwright fixtures: Debian's Chromium, driven through the sync API.

`page` is a desktop browser tab (1280x800), `phone_page` a touch phone (360x740); each test gets
a fresh browser context, so no cookies or storage leak between tests. A failing test leaves a
screenshot and the page's HTML in test-artifacts/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Playwright's sync API runs an asyncio event loop in the test thread; Django's ORM then refuses
# to run ("You cannot call this from an async context") unless told it is safe, which it is here:
# the loop only drives the browser and never runs ORM code itself.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Generous but bounded: the first sync of a mailbox runs inside the "add mailbox" request.
ACTION_TIMEOUT_MS = 15_000
EXPECT_TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(items):
    # Belt and braces next to each module's `pytestmark`: whatever lives here drives Chromium.
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests drive Debian's Chromium. "
            "Install it with `make system-deps` (or `make test`, which does), "
            "or `apt-get install chromium fonts-liberation`. Do not `playwright install`.",
            pytrace=False,
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def _new_page(browser, request, **context_options):
    context = browser.new_context(**context_options)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        _save_artifacts(page, request)
    context.close()


def _save_artifacts(page, request) -> None:
    out = request.config.rootpath / "test-artifacts"
    out.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
    try:
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        (out / f"{name}.html").write_text(page.content())
    except Exception as exc:  # noqa: BLE001 — the page may be gone; the failure matters more
        (out / f"{name}.txt").write_text(f"no screenshot: {exc!r}\n")


@pytest.fixture
def page(browser, request):
    yield from _new_page(browser, request, viewport={"width": 1280, "height": 800})


@pytest.fixture
def phone_page(browser, request):
    yield from _new_page(
        browser,
        request,
        viewport={"width": 360, "height": 740},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 costs ~0.8 s per hash here, paid twice per test (create the user, log in through
    # the form). The live server runs in this process, so it sees the override too.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets the page fixtures see, at teardown, whether the test itself failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def snapshot(request):
    """snapshot(page, name): a full-page screenshot in test-artifacts/ when KOTAK_SCREENSHOTS is
    set, to look at the screens during development; does nothing otherwise."""
    out = request.config.rootpath / "test-artifacts"

    def take(page, name: str) -> Path | None:
        if not os.environ.get("KOTAK_SCREENSHOTS"):
            return None
        out.mkdir(exist_ok=True)
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


class AsgiServer:
    def __init__(self, url: str):
        self.url = url


@pytest.fixture
def asgi_live_server(transactional_db):
    """Kotak under uvicorn in a thread, as in production: the event stream is an async view
    that a WSGI test server could only serve by buffering it forever."""
    import socket
    import threading
    import time

    import uvicorn

    from webmail.asgi import application

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start", pytrace=False)
        time.sleep(0.02)
    yield AsgiServer(f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=5)
    _drop_other_connections()


def _drop_other_connections() -> None:
    """uvicorn ran requests in threads of its own, each with a database connection that only
    that thread could close; PostgreSQL would refuse to drop the test database over them."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def second_page(browser, request):
    """Another person's browser, at the same time (a separate context: separate cookies)."""
    yield from _new_page(browser, request, viewport={"width": 1280, "height": 800})
