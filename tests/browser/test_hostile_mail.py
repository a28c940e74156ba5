"""Hostile mail in a real Chromium: no payload runs, nothing calls out, until images are asked for.

Every hostile message points its fetches, navigations and form posts at a listener this test
runs on a free loopback port; its scripts try alert(), window.top.kotakPwned = 1 and fetch().
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.browser.test_first_slice import log_in
from tests.corpus import hostile_message, hostile_names, with_attachment
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.browser, pytest.mark.imap]

GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b"
)


class Beacon:
    """A loopback HTTP listener that records every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                hits.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(GIF)))
                self.end_headers()
                self.wfile.write(GIF)

            do_GET = do_POST = do_HEAD = _answer  # noqa: N815 — http.server's naming

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/beacon"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def beacon():
    listener = Beacon()
    yield listener
    listener.close()


def test_no_hostile_message_runs_anything_or_calls_out(page, asgi_live_server, mailbox, beacon):
    base = asgi_live_server.url
    uids = {
        name: mailbox.account.append(hostile_message(name, beacon.url)) for name in hostile_names()
    }
    sync_mailbox(mailbox)
    dialogs: list[str] = []
    popups: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.context.on("page", lambda other: popups.append(other.url))
    log_in(page, base, "bob", "bob-pass-1")

    for name, uid in uids.items():
        message = mailbox.messages.get(uid=uid)
        url = base + message.get_absolute_url()
        page.goto(url)
        expect(page.locator(f"#message-{message.pk}")).to_be_visible()
        frame = page.locator("iframe.message-body-frame")
        if frame.count():
            # The framed document has loaded (and had its chance to misbehave).
            expect(page.frame_locator("iframe.message-body-frame").locator("body")).to_be_attached()
        page.wait_for_timeout(150)
        assert page.url == url, name
        assert page.evaluate("window.kotakPwned") is None, name
        assert dialogs == [] and popups == [] and beacon.hits == [], name

    # The framed document opened on its own, in a tab: its CSP sandboxes it there too.
    script = mailbox.messages.get(uid=uids["script_tag"])
    page.goto(base + script.get_absolute_url() + "body/")
    page.wait_for_timeout(150)
    # An attached message, opened.
    forwarded = mailbox.messages.get(uid=uids["attached_message_hostile"])
    page.goto(base + forwarded.get_absolute_url())
    page.get_by_role("link", name="Open", exact=True).click()
    expect(page.get_by_role("heading", name="<script>alert(1)</script> inner")).to_be_visible()
    expect(page.frame_locator("iframe.message-body-frame").get_by_text("Inner")).to_be_visible()
    page.wait_for_timeout(150)
    assert page.evaluate("window.kotakPwned") is None
    assert dialogs == [] and popups == [] and beacon.hits == []

    # Asking for images loads them: the listener was there all along.
    pixel = mailbox.messages.get(uid=uids["tracking_pixel"])
    page.goto(base + pixel.get_absolute_url())
    expect(page.get_by_text("Remote images blocked")).to_be_visible()
    page.get_by_role("link", name="Show images").click()
    deadline = time.monotonic() + 5
    while "GET /beacon/pixel.gif" not in beacon.hits and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert beacon.hits == ["GET /beacon/pixel.gif"]
    assert dialogs == [] and page.evaluate("window.kotakPwned") is None


def test_an_attachment_downloads_whole_through_the_asgi_server(page, asgi_live_server, mailbox):
    payload = bytes(range(256)) * (3 * 4096 + 11)
    uid = mailbox.account.append(with_attachment(payload, filename="report.pdf"))
    sync_mailbox(mailbox)
    message = mailbox.messages.get(uid=uid)
    log_in(page, asgi_live_server.url, "bob", "bob-pass-1")
    page.goto(asgi_live_server.url + message.get_absolute_url())
    with page.expect_download() as download_info:
        page.get_by_role("link", name="report.pdf").click()
    download = download_info.value
    assert download.suggested_filename == "report.pdf"
    with open(download.path(), "rb") as fh:
        assert fh.read() == payload
