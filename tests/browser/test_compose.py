"""Answering in a real browser: bob replies to a customer from the reader while alice has the
conversation open; she sees him replying, then his reply in the timeline, without a reload.
Mail leaves through the suite's aiosmtpd."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.browser.test_first_slice import log_in
from tests.dovecot import make_message
from webmail import outbox
from webmail.models import Conversation, OutgoingMessage
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.browser, pytest.mark.imap]


def question(mailbox) -> Conversation:
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    raw = make_message(
        "Where is my order?",
        sender="Carla Customer <carla@customer.example>",
        to=f"Support <{mailbox.email}>",
        message_id="<order@customer.example>",
        body="Hello,\nmy order 42 has not arrived.\n",
        date=when,
    )
    mailbox.account.append(raw, internal_date=when)
    sync_mailbox(mailbox)
    return Conversation.objects.get()


def conversation_url(base: str, conversation: Conversation) -> str:
    return base + reverse("conversation", args=[conversation.mailbox_id, conversation.pk])


def open_reader_and_reply(page: Page, base: str, conversation: Conversation) -> None:
    message = conversation.messages.get()
    log_in(page, base, "bob", "bob-pass-1")
    page.goto(base + message.get_absolute_url())
    expect(page.get_by_role("heading", name="Where is my order?")).to_be_visible()
    page.locator("#reader").get_by_role("button", name="Reply", exact=True).click()
    expect(page.get_by_role("heading", name="Reply")).to_be_visible()
    expect(page.get_by_label("To", exact=True)).to_have_value(
        "Carla Customer <carla@customer.example>"
    )


def test_bob_replies_while_alice_watches_the_conversation(
    page, second_page, asgi_live_server, sending_mailbox, settings, snapshot
):
    settings.SEND_UNDO_SECONDS = 3
    conversation = question(sending_mailbox)
    base = asgi_live_server.url

    alice = second_page
    log_in(alice, base, "alice", "alice-pass-1")
    alice.goto(conversation_url(base, conversation))
    expect(alice.get_by_role("heading", name=re.compile("Where is my order"))).to_be_visible()

    bob = page
    open_reader_and_reply(bob, base, conversation)
    presence = alice.locator(".presence").first
    expect(presence).to_contain_text("bob is replying")

    body = bob.locator("#compose-text")
    body.press("Control+Home")
    body.press_sequentially("It left our warehouse today.", delay=20)
    expect(presence).to_contain_text("bob is replying")  # still, while he types
    expect(bob.locator("#save-state")).to_have_text(re.compile(r"^Saved \d\d:\d\d$"))
    draft = OutgoingMessage.objects.get()
    assert draft.text.startswith("It left our warehouse today.")
    snapshot(bob, "compose-reply")

    bob.get_by_role("button", name="Send", exact=True).click()
    toast = bob.locator("#toasts")
    expect(toast).to_contain_text("Sending in 3 s.")
    expect(toast.get_by_role("button", name="Undo")).to_be_visible()
    expect(bob).to_have_url(conversation_url(base, conversation))
    # He left the compose page: no longer replying.
    expect(presence).not_to_contain_text("replying")

    timeline = alice.locator("#timeline")
    expect(timeline.locator(f"#outgoing-{draft.pk}")).to_contain_text("Queued")
    deadline = time.monotonic() + 10
    while outbox.send_due() == 0:  # the outbox worker, once the undo window is over
        assert time.monotonic() < deadline, "the reply never became due"
        time.sleep(0.3)
    # Undo is offered as long as the send waits (3 s), not as long as the toast stays (8 s).
    expect(toast.get_by_role("button", name="Undo")).to_have_count(0, timeout=2000)
    expect(toast).to_contain_text("Sending in 3 s.")
    expect(timeline).to_contain_text("bob replied to carla@customer.example")
    # The worker files the Sent copy at once here (Celery runs eagerly in tests): the reply is
    # then an ordinary message of the timeline, shown once.
    sent_copy = timeline.locator('.message-card:has(.folder-badge[data-role="sent"])')
    expect(sent_copy).to_contain_text("Support")
    expect(timeline.locator(f"#outgoing-{draft.pk}")).to_have_count(0)
    snapshot(alice, "conversation-after-reply")

    (received,) = sending_mailbox.smtp.received
    assert received.message["In-Reply-To"] == "<order@customer.example>"
    assert received.message.get_content().startswith("It left our warehouse today.")


def test_undo_brings_bob_back_to_his_words(page, asgi_live_server, sending_mailbox, settings):
    settings.SEND_UNDO_SECONDS = 30
    conversation = question(sending_mailbox)
    base = asgi_live_server.url
    open_reader_and_reply(page, base, conversation)
    page.locator("#compose-text").press("Control+Home")
    page.locator("#compose-text").press_sequentially("Second thoughts.")
    page.keyboard.press("Control+Enter")
    page.locator("#toasts").get_by_role("button", name="Undo").click()
    expect(page.get_by_role("heading", name="Reply")).to_be_visible()
    expect(page.locator("#compose-text")).to_have_value(re.compile(r"^Second thoughts\."))
    assert OutgoingMessage.objects.get().state == OutgoingMessage.State.DRAFT
    assert sending_mailbox.smtp.received == []


def test_rich_text_and_a_saved_reply_on_a_phone(
    phone_page, asgi_live_server, sending_mailbox, settings, snapshot
):
    from webmail.models import SavedReply

    SavedReply.objects.create(
        mailbox=sending_mailbox, name="Delay", body="Sorry for the wait, {customer_name}."
    )
    SavedReply.objects.create(mailbox=sending_mailbox, name="Refund", body="Refunded.")
    conversation = question(sending_mailbox)
    page = phone_page
    open_reader_and_reply(page, asgi_live_server.url, conversation)
    no_sideways = "document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(no_sideways)

    page.get_by_label("Rich text").check()
    editor = page.locator("#compose-editor")
    expect(editor).to_be_visible()
    editor.press("Control+Home")
    page.get_by_role("button", name="Bold").click()
    editor.press_sequentially("Good news")
    page.get_by_text("Saved replies", exact=True).click()
    page.get_by_label("Filter saved replies").fill("del")
    expect(page.get_by_role("button", name=re.compile("^Refund"))).to_be_hidden()
    page.get_by_label("Filter saved replies").press("Enter")
    expect(editor).to_contain_text("Sorry for the wait, Carla Customer.")
    expect(page.locator("#save-state")).to_have_text(re.compile(r"^Saved \d\d:\d\d$"))
    assert page.evaluate(no_sideways)
    snapshot(page, "compose-phone")

    draft = OutgoingMessage.objects.get()
    assert "<b>Good news</b>" in draft.html
    assert "Sorry for the wait, Carla Customer." in draft.text
