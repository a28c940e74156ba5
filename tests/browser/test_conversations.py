"""The conversation page in two browsers at once: alice (manager) and bob (agent) each have it
open; what one does, and mail that arrives meanwhile, reaches the other without a reload."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.browser.test_first_slice import log_in
from tests.dovecot import make_message
from webmail.models import Conversation, Note
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.browser, pytest.mark.imap]


def ago(**delta) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(**delta)


def question(mailbox) -> Conversation:
    when = ago(hours=1)
    raw = make_message(
        "Printer on fire",
        sender="Pat Jones <pat@example.net>",
        message_id="<fire@customer.example>",
        body="It started smoking after the firmware update.\n",
        date=when,
    )
    mailbox.account.append(raw, internal_date=when)
    sync_mailbox(mailbox)
    return Conversation.objects.get()


def open_conversation(page: Page, base_url: str, conversation, user: str) -> None:
    log_in(page, base_url, user, f"{user}-pass-1")
    page.goto(base_url + reverse("conversation", args=[conversation.mailbox_id, conversation.pk]))
    expect(page.get_by_role("heading", name=re.compile("Printer on fire"))).to_be_visible()
    # The event stream is open (the presence row exists) before anything else happens.
    page.wait_for_function("() => document.querySelector('#live') !== null")


def test_an_assignment_and_a_reply_reach_a_teammate_s_open_page(
    page, second_page, asgi_live_server, mailbox, snapshot
):
    conversation = question(mailbox)
    message = conversation.messages.get()
    base = asgi_live_server.url
    bob = second_page
    open_conversation(bob, base, conversation, "bob")
    header = bob.locator("#conversation-header")
    expect(header).to_contain_text("Unassigned")
    expect(bob.get_by_role("button", name="Take it")).to_be_visible()

    alice = page
    open_conversation(alice, base, conversation, "alice")
    expect(bob.locator(f"#presence-{message.pk}")).to_contain_text("alice is viewing")
    expect(alice.locator(f"#presence-{message.pk}")).to_contain_text("bob is viewing")

    alice.get_by_label("Assign to").select_option(label="bob")
    alice.get_by_role("button", name="Assign", exact=True).click()
    expect(alice.locator("#toasts")).to_contain_text("Assigned to bob.")
    expect(alice.locator("#conversation-header")).to_contain_text("Assigned to bob")

    # bob did not reload: the header, the controls and his bell follow on their own.
    expect(header).to_contain_text("Assigned to bob", timeout=5000)
    expect(bob.get_by_role("button", name="Take it")).to_have_count(0)
    expect(bob.locator("#timeline")).to_contain_text("alice assigned it to bob")
    expect(bob.locator("#notification-bell .bell-count")).to_have_text("1")
    snapshot(bob, "conversation-assigned")

    reply = make_message(
        "Re: Printer on fire",
        sender="Pat Jones <pat@example.net>",
        message_id="<fire-2@customer.example>",
        in_reply_to="<fire@customer.example>",
        body="Now the paper tray is smoking too.\n",
    )
    mailbox.account.append(reply)
    sync_mailbox(mailbox)

    banner = bob.locator(".new-since")
    expect(banner).to_contain_text("New message since you opened this page", timeout=5000)
    expect(bob.locator(".entry-message")).to_have_count(2)
    expect(bob.locator(".entry-message.is-new")).to_contain_text("Pat Jones")
    snapshot(bob, "conversation-new-message")
    banner.get_by_role("link", name="show").click()
    expect(banner).to_have_count(0)
    expect(bob.locator(".entry-message")).to_have_count(2)
    assert Conversation.objects.get().messages.count() == 2


def test_a_note_with_a_mention_reaches_the_teammate(
    page, second_page, asgi_live_server, mailbox, snapshot
):
    conversation = question(mailbox)
    base = asgi_live_server.url
    alice = second_page
    open_conversation(alice, base, conversation, "alice")
    bob = page
    open_conversation(bob, base, conversation, "bob")

    box = bob.get_by_role("textbox", name=re.compile("Internal note"))
    box.fill("Checked the logs. ")
    box.press_sequentially("@al")
    menu = bob.get_by_role("listbox", name="Mention")
    expect(menu.get_by_role("option", name="@alice")).to_be_visible()
    box.press("Enter")
    box.press_sequentially("can you approve a refund?")
    expect(box).to_have_value("Checked the logs. @alice can you approve a refund?")
    box.press("Control+Enter")
    expect(bob.locator("#toasts")).to_contain_text("Note added")
    expect(box).to_have_value("")
    note = bob.locator(".entry-note")
    expect(note).to_contain_text("Internal note — not sent")
    expect(note.get_by_text("Edit", exact=True)).to_be_visible()

    alice_note = alice.locator(".entry-note")
    expect(alice_note).to_contain_text("@alice can you approve a refund?", timeout=5000)
    expect(alice_note.get_by_text("Edit", exact=True)).to_have_count(0)
    expect(alice.locator(".new-since")).to_contain_text("New note since you opened this page")
    expect(alice.locator("#notification-bell .bell-count")).to_have_text("1")
    snapshot(alice, "conversation-note")

    # bob edits his note; alice sees the new words.
    note.get_by_text("Edit", exact=True).click()
    editor = note.get_by_role("textbox", name="Edit the note")
    editor.fill("Checked the logs. @alice refund approved?")
    note.get_by_role("button", name="Save").click()
    expect(bob.locator("#toasts")).to_contain_text("Note saved.")
    expect(alice_note).to_contain_text("refund approved?", timeout=5000)
    expect(alice_note).to_contain_text("(edited)")
    assert Note.objects.get().body == "Checked the logs. @alice refund approved?"


def test_status_and_snooze_from_the_page(page, asgi_live_server, mailbox):
    conversation = question(mailbox)
    open_conversation(page, asgi_live_server.url, conversation, "bob")
    page.get_by_role("button", name="Take it").click()
    expect(page.locator("#conversation-header")).to_contain_text("Assigned to bob")
    page.get_by_role("button", name="Closed").click()
    expect(page.locator("#conversation-header .status-pill")).to_have_text("Closed")
    expect(page.get_by_role("button", name="Closed")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name=re.compile(r"^Tomorrow 9:00")).click()
    expect(page.locator("#toasts")).to_contain_text("Snoozed until")
    expect(page.locator("#conversation-header")).to_contain_text("Snoozed until")
    expect(page.locator("#conversation-header .status-pill")).to_have_text("Pending")
    assert Conversation.objects.get().snoozed_until is not None


def test_the_conversation_page_fits_a_phone(phone_page, asgi_live_server, mailbox, snapshot):
    from tests.browser.test_first_slice import no_horizontal_scroll

    conversation = question(mailbox)
    open_conversation(phone_page, asgi_live_server.url, conversation, "alice")
    expect(phone_page.locator("#notification-bell")).to_be_visible()
    expect(phone_page.get_by_label("Assign to")).to_be_visible()
    no_horizontal_scroll(phone_page, 360)
    snapshot(phone_page, "conversation-phone")
