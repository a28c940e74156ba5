"""Acting on mail in a real browser: the keyboard on a desktop, touch on a 360 px phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_live import open_inbox
from tests.sync.test_writeback import apply_now, uids_on_server
from webmail.models import Message
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.browser, pytest.mark.imap]


def deliver(mailbox, *subjects: str) -> None:
    for subject in subjects:
        mailbox.account.deliver(subject)
    sync_mailbox(mailbox)


def test_keyboard_select_archive_and_undo(page, asgi_live_server, mailbox):
    deliver(mailbox, "Third", "Second", "First")  # newest first: First, Second, Third
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    rows = page.locator(".message-row")
    expect(rows).to_have_count(3)

    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bcursor\b"))
    page.keyboard.press("x")
    expect(page.locator("[data-selection-count]")).to_have_text("1 selected")
    page.keyboard.press("e")

    toast = page.locator(".toast")
    expect(toast).to_contain_text("Archived 1 message to Archive")
    expect(rows).to_have_count(2)
    expect(page.locator(".message-row", has_text="Second")).to_have_count(0)

    page.keyboard.press("z")
    expect(toast).to_contain_text("Undone.")
    expect(page.locator(".message-row", has_text="Second")).to_have_count(1)
    assert not Message.objects.filter(pending_removal=True).exists()


def test_the_keyboard_cursor_stays_on_its_message_when_new_mail_arrives(
    page, asgi_live_server, mailbox
):
    """A live refresh renders the list again with new mail on top: the cursor must stay on
    its message, not its position, or `e` archives the message that moved under it."""
    deliver(mailbox, "Third", "Second", "First")  # newest first: First, Second, Third
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    rows = page.locator(".message-row")
    expect(rows).to_have_count(3)
    page.wait_for_load_state("load")
    page.keyboard.press("j")
    page.keyboard.press("j")
    cursor = page.locator(".message-row.cursor")
    expect(cursor).to_contain_text("Second")

    deliver(mailbox, "Newest")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("Newest")
    expect(cursor).to_contain_text("Second")
    page.keyboard.press("e")

    expect(page.locator(".toast")).to_contain_text("Archived 1 message to Archive")
    expect(page.locator(".message-row", has_text="Second")).to_have_count(0)
    expect(page.locator(".message-row", has_text="First")).to_have_count(1)
    assert Message.objects.get(subject="Second").pending_removal
    assert not Message.objects.get(subject="First").pending_removal
    # The message that took its place has the cursor.
    expect(cursor).to_contain_text("Third")


def test_a_selection_survives_new_mail_arriving(page, asgi_live_server, mailbox):
    deliver(mailbox, "Third", "Second", "First")
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    expect(page.locator(".message-row")).to_have_count(3)
    page.wait_for_load_state("load")
    for key in "jxjx":
        page.keyboard.press(key)
    count = page.locator("[data-selection-count]")
    expect(count).to_have_text("2 selected")

    deliver(mailbox, "Newest")
    expect(page.locator(".message-row")).to_have_count(4)
    expect(count).to_have_text("2 selected")
    page.keyboard.press("e")

    expect(page.locator(".toast")).to_contain_text("Archived 2 messages to Archive")
    remaining = page.locator(".message-row")
    expect(remaining).to_have_count(2)
    expect(remaining.first).to_contain_text("Newest")
    expect(remaining.nth(1)).to_contain_text("Third")
    expect(count).to_have_text("")


def test_the_open_message_stays_marked_in_the_list_when_new_mail_arrives(
    page, asgi_live_server, mailbox
):
    deliver(mailbox, "Third", "Second", "First")
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    page.locator(".message-row", has_text="Second").locator("a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Second")
    page.wait_for_load_state("load")
    open_row = page.locator(".message-row.open")
    expect(open_row).to_contain_text("Second")

    deliver(mailbox, "Newest")
    expect(page.locator(".message-row")).to_have_count(4)
    expect(open_row).to_contain_text("Second")
    expect(open_row.locator("a")).to_have_attribute("aria-current", "true")
    page.keyboard.press("j")  # the next message after the open one
    expect(page.locator(".message-row.cursor")).to_contain_text("Third")


def test_reading_flagging_and_deleting_with_the_keyboard(page, asgi_live_server, mailbox):
    deliver(mailbox, "Older one", "Read me")
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    page.keyboard.press("j")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Read me")
    expect(page.locator(".list-pane")).to_be_visible()  # three panes on a desktop
    state = page.locator(".message-state")
    expect(state).to_contain_text("Read")  # opening marked it read
    # The page is shown before its script runs; keys pressed earlier do nothing (under load
    # the gap is long enough for the next key to fall into it).
    page.wait_for_load_state("load")

    page.keyboard.press("s")
    expect(state).to_contain_text("★ Flagged")
    expect(page.get_by_role("button", name="★ Unflag")).to_be_visible()

    page.keyboard.press("#")
    expect(page.get_by_role("heading", level=1)).to_have_text("Older one")
    # The toast rides along the page change in sessionStorage; under load the previous toast
    # (the flag's) can be the one carried, so only the outcome is checked here.
    deleted = Message.objects.get(subject="Read me")
    assert deleted.pending_removal and deleted.is_flagged and deleted.is_seen

    apply_now(mailbox)
    assert set(uids_on_server(mailbox.account, "Trash").values()) == {"Read me"}


def test_the_help_overlay_lists_the_shortcuts(page, asgi_live_server, mailbox):
    deliver(mailbox, "Anything")
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Archive")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_a_viewer_sees_no_action_buttons(page, asgi_live_server, mailbox):
    deliver(mailbox, "Look only")
    open_inbox(page, asgi_live_server.url, mailbox, "vera", "vera-pass-1")
    expect(page.locator(".message-row")).to_have_count(1)
    expect(page.locator("#bulk-form")).to_have_count(0)
    page.locator(".message-row a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Look only")
    expect(page.get_by_role("button", name="Archive")).to_have_count(0)
    assert not Message.objects.get().is_seen  # a viewer's reading changes nothing


def test_one_pane_at_a_time_on_a_phone(phone_page, asgi_live_server, mailbox):
    page = phone_page
    deliver(mailbox, "Pocket question")
    open_inbox(page, asgi_live_server.url, mailbox, "bob", "bob-pass-1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    page.locator(".message-row a").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pocket question")
    expect(page.locator(".list-pane")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    archive = page.get_by_role("button", name="Archive")
    box = archive.bounding_box()
    assert box["height"] >= 44  # a finger-sized target

    page.get_by_role("link", name="← Inbox").tap()
    expect(page.locator(".list-pane")).to_be_visible()
    page.locator(".message-row a").tap()
    page.get_by_role("button", name="Archive").tap()
    expect(page.locator(".toast")).to_contain_text("Archived 1 message")
    expect(page.locator(".message-row")).to_have_count(0)
