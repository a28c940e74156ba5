"""The team's queues in real browsers: a manager hands work out, the agent sees it arrive."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_first_slice import log_in
from webmail.models import Conversation
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.browser, pytest.mark.imap]


def count_of(page, view: str):
    return page.locator(f'#team-nav a[data-view="{view}"] .count')


def test_a_manager_assigns_in_bulk_and_the_agent_sees_it_live(
    page, second_page, asgi_live_server, mailbox, snapshot
):
    for subject in ("Keep me for later", "Invoice missing", "Printer on fire"):
        mailbox.account.deliver(subject)
    sync_mailbox(mailbox)
    base = asgi_live_server.url

    bob = second_page
    log_in(bob, base, "bob", "bob-pass-1")
    bob.goto(f"{base}/mailboxes/{mailbox.pk}/team/mine/")
    expect(bob.get_by_role("heading", name="Mine")).to_be_visible()
    expect(bob.locator("#conversation-list")).to_contain_text("Nothing assigned to you is open.")
    expect(count_of(bob, "mine")).to_have_text("0")
    bob.evaluate("window.stillTheSamePage = true")

    alice = page
    log_in(alice, base, "alice", "alice-pass-1")
    alice.goto(f"{base}/mailboxes/{mailbox.pk}/team/unassigned/")
    rows = alice.locator(".conversation-row")
    expect(rows).to_have_count(3)
    expect(count_of(alice, "unassigned")).to_have_text("3")
    alice.get_by_label("Select “Printer on fire”").check()
    alice.get_by_label("Select “Invoice missing”").check()
    expect(alice.locator("[data-team-selection-count]")).to_have_text("2 selected")
    alice.get_by_label("Assign to").select_option(label="bob")
    snapshot(alice, "team-unassigned-before-assign")
    alice.get_by_role("button", name="Assign", exact=True).click()

    expect(alice.locator(".toast")).to_contain_text("Assigned 2 conversations to bob")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Keep me for later")
    expect(count_of(alice, "unassigned")).to_have_text("1")
    expect(alice.locator("[data-team-selection-count]")).to_have_text("")

    # Bob did nothing: his list and his counts follow by themselves.
    mine = bob.locator(".conversation-row")
    expect(mine).to_have_count(2, timeout=5000)
    expect(mine.filter(has_text="Printer on fire")).to_have_count(1)
    expect(mine.filter(has_text="Invoice missing")).to_have_count(1)
    expect(count_of(bob, "mine")).to_have_text("2")
    expect(count_of(bob, "unassigned")).to_have_text("1")
    assert bob.evaluate("window.stillTheSamePage") is True
    snapshot(bob, "team-mine-after-assign")
    assert set(
        Conversation.objects.filter(assignee__username="bob").values_list("subject", flat=True)
    ) == {"Printer on fire", "Invoice missing"}
