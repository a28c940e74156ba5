"""Pages update themselves: new mail, another client's flags, a teammate's presence."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_first_slice import log_in
from webmail.sync.mailbox import sync_mailbox
from webmail.sync.watchers import WatcherPool

pytestmark = [pytest.mark.browser, pytest.mark.imap]


@pytest.fixture
def watchers(settings):
    settings.WATCHER_LEASE_TTL = 3
    pool = WatcherPool(owner="test-worker")
    pool.start()
    yield pool
    pool.stop()


def wait_connected(pool, mailbox):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        watcher = pool.watchers.get(mailbox.pk)
        if watcher is not None and watcher.connected:
            return
        time.sleep(0.05)
    pytest.fail("the watcher did not connect")


def open_inbox(page: Page, base_url: str, mailbox, user: str, password: str):
    log_in(page, base_url, user, password)
    inbox = mailbox.folders.get(special_use="inbox")
    page.goto(base_url + inbox.get_absolute_url())
    expect(page.locator("#message-list")).to_be_visible()
    return inbox


def test_mail_from_another_client_appears_and_its_flags_follow(
    page, asgi_live_server, mailbox, watchers
):
    account = mailbox.account
    account.deliver("Already here")
    sync_mailbox(mailbox)
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    expect(page.locator(".folders .current .count")).to_have_text("1")
    wait_connected(watchers, mailbox)

    uid = account.deliver("Arrived while you looked", sender="Live Customer <live@example.org>")
    row = page.locator(".message-row", has_text="Arrived while you looked")
    expect(row).to_be_visible(timeout=5000)
    expect(row).to_have_class(re.compile(r"\bunread\b"))
    expect(page.locator(".folders .current .count")).to_have_text("2")

    other = account.client()
    other.select_folder("INBOX")
    other.add_flags([uid], [r"\Seen", r"\Flagged"])
    other.logout()
    expect(row).not_to_have_class(re.compile(r"\bunread\b"), timeout=5000)
    expect(row.locator(".flag")).to_be_visible()
    expect(page.locator(".folders .current .count")).to_have_text("1")

    other = account.client()
    other.select_folder("INBOX")
    other.delete_messages([uid])
    other.expunge()
    other.logout()
    expect(row).to_have_count(0, timeout=5000)


def test_a_teammate_sees_who_is_viewing_a_message(page, second_page, asgi_live_server, mailbox):
    mailbox.account.deliver("Refund request")
    sync_mailbox(mailbox)
    message = mailbox.messages.get()
    url = asgi_live_server.url + message.get_absolute_url()
    log_in(second_page, asgi_live_server.url, "alice", "alice-pass-1")
    second_page.goto(url)
    presence = second_page.locator(f"#presence-{message.pk}")
    expect(presence).to_have_text("")

    log_in(page, asgi_live_server.url, "bob", "bob-pass-1")
    page.goto(url)
    expect(presence).to_contain_text("bob is viewing", timeout=5000)
    page.goto(asgi_live_server.url + "/")  # bob leaves the message
    expect(presence).to_have_text("", timeout=5000)


def test_a_reader_scrolled_down_gets_a_marker_instead_of_a_jump(page, asgi_live_server, mailbox):
    from tests.dovecot import make_message

    account = mailbox.account
    account.server.write_maildir(
        account.username, "INBOX", [make_message(f"Older question {n}") for n in range(40)]
    )
    sync_mailbox(mailbox)
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    page.hover("#message-list")  # the list scrolls on its own beside the reading pane
    page.mouse.wheel(0, 1500)
    page.wait_for_function("() => kotakListTop() > 200")

    account.deliver("Fresh while scrolled")
    sync_mailbox(mailbox)
    marker = page.locator("#new-marker")
    expect(marker).to_be_visible(timeout=5000)
    expect(marker).to_have_text("1 new message — show")
    expect(page.locator(".message-row", has_text="Fresh while scrolled")).to_have_count(0)
    assert page.evaluate("kotakListTop()") > 200  # the list did not move under the reader

    marker.click()
    expect(page.locator(".message-row", has_text="Fresh while scrolled")).to_be_visible()
    expect(marker).to_be_hidden()
    assert page.evaluate("kotakListTop()") < 50
