"""Searching in a real browser: the top bar's box, results that follow typing and new mail, the
server's answer for bodies not fetched yet, and opening a result."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_live import open_inbox
from tests.dovecot import make_message
from webmail.models import Message
from webmail.sync.bodies import load_body
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.browser, pytest.mark.imap]


def test_typing_a_query_in_the_top_bar_and_opening_a_result(
    page, asgi_live_server, mailbox, snapshot
):
    account = mailbox.account
    account.append(make_message("Where is my parcel?", body="The parcel never came."))
    account.append(make_message("Invoice overdue", body="Please pay."))
    account.append(make_message("Delivery question", body="Our zanzibar office asks."))
    sync_mailbox(mailbox)
    load_body(Message.objects.get(subject="Where is my parcel?"))
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")

    box = page.get_by_role("searchbox", name="Search Support")
    box.fill("parcel")
    box.press("Enter")
    expect(page).to_have_url(re.compile(rf"/search/\?mailbox={mailbox.pk}&q=parcel$"))
    rows = page.locator("#search-results .search-row")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".subject mark")).to_have_text("parcel")
    expect(rows.first.locator(".snippet")).to_contain_text("never came")
    # The server is asked too, and has nothing more to add.
    expect(page.locator("#server-results")).to_contain_text("Nothing more on the server")

    # Results follow typing, without leaving the page.
    box.fill("zanzibar")
    expect(page).to_have_url(re.compile(r"q=zanzibar"))
    expect(page.locator("#search-results")).to_contain_text("No synced message matches")
    server_rows = page.locator("#server-results .search-row")
    expect(server_rows).to_have_count(1)
    expect(server_rows.first).to_contain_text("Delivery question")
    expect(server_rows.first.locator(".server-badge")).to_have_text("found on the server")
    snapshot(page, "search-server-results")

    # New mail that matches joins the list by itself.
    box.fill("invoice")
    expect(rows.first).to_contain_text("Invoice overdue")  # not the previous query's row
    expect(rows).to_have_count(1)
    account.append(make_message("Second invoice", body="Again."))
    sync_mailbox(mailbox)
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Second invoice")
    snapshot(page, "search-results")

    rows.nth(1).locator("a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoice overdue")


def test_slash_focuses_the_search_box_on_any_screen(page, asgi_live_server, mailbox, snapshot):
    mailbox.account.deliver("Hello")
    sync_mailbox(mailbox)
    open_inbox(page, asgi_live_server.url, mailbox, "alice", "alice-pass-1")
    snapshot(page, "search-top-bar")
    page.keyboard.press("/")
    expect(page.get_by_role("searchbox")).to_be_focused()
    page.keyboard.type("hello")
    page.keyboard.press("Enter")
    expect(page.locator("#search-results .search-row")).to_have_count(1)
