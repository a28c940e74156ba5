"""The first slice, end to end in a real browser: log in, connect a mailbox, read its mail.

Everything is real except the browser's human: Kotak served by pytest-django's live server, its
own Dovecot over TLS, and Debian's Chromium. Celery runs eagerly in tests, so the first sync of a
mailbox added through the form runs on commit, inside the request.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.conftest import connect_mailbox
from tests.dovecot import make_message

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UNREAD = re.compile(r"\bunread\b")
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def deliver(account, subject: str, sender: str, body: str, hours_ago: int, flags=()) -> None:
    """APPEND a message whose Date header and INTERNALDATE are both `hours_ago` hours back."""
    when = NOW - dt.timedelta(hours=hours_ago)
    raw = make_message(subject, sender=sender, to=account.address, body=body, date=when)
    account.append(raw, flags=flags, internal_date=when)


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Log in to Kotak")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base_url + "/")


def header(page: Page, name: str):
    """The <dd> after the <dt>name</dt> in the message's header list."""
    return page.locator(f"xpath=//dl[contains(@class,'headers')]/dt[.='{name}']/following::dd[1]")


def fill_mailbox_form(page: Page, account, password: str) -> None:
    server = account.server
    expect(page.get_by_label("Team")).to_have_value("Support")
    page.get_by_label("Name", exact=True).fill("Support")
    page.get_by_label("Email address").fill(account.address)
    page.get_by_label("IMAP server").fill(server.host)
    page.get_by_label("Security").select_option("ssl")
    page.get_by_label("Port").fill(str(server.imaps_port))
    page.get_by_label("Username").fill(account.username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Trusted CA certificate").fill(server.ca_cert_pem)


def no_horizontal_scroll(page: Page, width: int) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} scrolls sideways: scrollWidth {scroll_width}px"


def test_a_manager_clicks_through_login_mailbox_folder_message(
    page, asgi_live_server, imap_account, django_user_model, snapshot
):
    from webmail.models import Mailbox, Membership, Role

    deliver(
        imap_account,
        "Printer on fire",
        "Pat Jones <pat@example.net>",
        "It started smoking after the firmware update.\n\nPat\n",
        hours_ago=3,
        flags=[r"\Seen"],
    )
    deliver(
        imap_account,
        "Invoice 2024-17 overdue",
        "Billing Bot <billing@example.org>",
        "Hello,\n\nInvoice 2024-17 is 14 days overdue.\nPlease pay by Friday.\n",
        hours_ago=2,
    )
    deliver(
        imap_account,
        "Where is my order?",
        "Sam Lee <sam@example.com>",
        "I ordered a week ago and heard nothing since.\n",
        hours_ago=1,
    )
    # An administrator (staff), the one who connects the team's first mailbox.
    django_user_model.objects.create_user(
        "alice", "alice@example.com", "alice-pass-1", is_staff=True
    )

    log_in(page, asgi_live_server.url, "alice", "alice-pass-1")
    onboarding = page.locator(".onboarding")
    expect(onboarding.get_by_role("heading")).to_contain_text("connect your first mailbox")
    expect(onboarding).to_contain_text("IMAP server, username and password")
    snapshot(page, "desktop-1-home-empty")
    page.get_by_role("link", name="Add your first mailbox").click()

    expect(page).to_have_url(asgi_live_server.url + "/mailboxes/add/")
    expect(page.get_by_role("heading", name="Add a shared mailbox")).to_be_visible()
    fill_mailbox_form(page, imap_account, imap_account.password)
    snapshot(page, "desktop-2-add-mailbox")
    page.get_by_role("button", name="Check and add mailbox").click()

    # The first sync ran inside that request, so the mailbox opens straight on its inbox.
    expect(page).to_have_url(re.compile(r"/mailboxes/\d+/folders/\d+/$"))
    mailbox = Mailbox.objects.get()
    assert mailbox.status == Mailbox.Status.OK
    assert Membership.objects.filter(mailbox=mailbox, role=Role.MANAGER).get().user.username == (
        "alice"
    )
    expect(page).to_have_title("Inbox · Support · Kotak")
    expect(page.locator(".pane h1")).to_have_text("Inbox")
    expect(page.locator(".list-head")).to_contain_text("3 messages, 2 unread")

    folders = page.get_by_role("navigation", name="Folders")
    expect(folders).to_be_visible()
    expect(page.locator(".folders-toggle")).to_be_hidden()  # desktop: the tree is always shown
    # Special-use folders in Kotak's order (ROLE_ORDER in webmail/web/mail.py).
    expect(folders.locator("a .label")).to_have_text(
        ["Inbox", "Drafts", "Sent", "Archive", "Junk", "Trash"]
    )
    expect(folders.locator("a[aria-current=page]")).to_have_text(re.compile(r"^\s*Inbox\s+2\s*$"))

    rows = page.locator("#message-list li.message-row")
    expect(rows.locator(".subject")).to_have_text(
        ["Where is my order?", "Invoice 2024-17 overdue", "Printer on fire"]
    )
    expect(rows.locator(".from")).to_have_text(["Sam Lee", "Billing Bot", "Pat Jones"])
    expect(rows.nth(0)).to_have_class(UNREAD)
    expect(rows.nth(1)).to_have_class(UNREAD)
    expect(rows.nth(2)).not_to_have_class(UNREAD)
    snapshot(page, "desktop-3-inbox")

    rows.filter(has_text="Invoice 2024-17 overdue").get_by_role("link").click()

    expect(page).to_have_url(re.compile(r"/mailboxes/\d+/messages/\d+/$"))
    expect(page).to_have_title("Invoice 2024-17 overdue · Kotak")
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoice 2024-17 overdue")
    expect(header(page, "From")).to_have_text("Billing Bot <billing@example.org>")
    expect(header(page, "To")).to_have_text(f"<{imap_account.address}>")
    sent = timezone.localtime(NOW - dt.timedelta(hours=2))  # shown in settings.TIME_ZONE
    expect(header(page, "Date")).to_have_text(sent.strftime("%A %-d %B %Y, %H:%M"))
    body = page.locator(".body-text")
    expect(body).to_contain_text("Invoice 2024-17 is 14 days overdue.")
    expect(body).to_contain_text("Please pay by Friday.")
    snapshot(page, "desktop-4-message")

    page.locator(".folders").get_by_role("link", name=re.compile("^Inbox")).click()
    expect(page.locator(".pane h1")).to_have_text("Inbox")


def test_the_add_mailbox_form_shows_a_wrong_password_error(
    page, asgi_live_server, imap_account, admin_user, snapshot
):
    from webmail.models import Mailbox, Membership, Team

    log_in(page, asgi_live_server.url, "admin", "admin-pass-1")
    page.goto(asgi_live_server.url + "/mailboxes/add/")
    fill_mailbox_form(page, imap_account, "not-the-password")
    page.get_by_role("button", name="Check and add mailbox").click()

    password_field = page.locator("#field-imap_password")
    expect(password_field.get_by_role("alert")).to_contain_text(
        "The server rejected the username or password"
    )
    expect(password_field).to_have_class(re.compile(r"\bhas-error\b"))
    # The only error on the page is that one, next to the field to fix.
    expect(page.get_by_role("alert")).to_have_count(1)
    expect(page).to_have_url(asgi_live_server.url + "/mailboxes/add/")
    # The rest of what was typed is still there; the password is not echoed back.
    expect(page.get_by_label("IMAP server")).to_have_value(imap_account.server.host)
    expect(page.get_by_label("Username")).to_have_value(imap_account.username)
    expect(page.get_by_label("Password")).to_have_value("")
    snapshot(page, "desktop-5-add-mailbox-wrong-password")

    assert not Mailbox.objects.exists()
    assert not Membership.objects.exists()
    assert not Team.objects.exists()


def test_a_phone_user_can_read_a_message_at_360px(
    phone_page, asgi_live_server, imap_account, alice, snapshot
):
    from webmail.sync.mailbox import sync_mailbox

    page = phone_page
    long_subject = "Refund request for order 4711 — the parcel arrived damaged and incomplete"
    long_link = "https://shop.example.com/orders/4711/returns?" + "token=" + "a1b2c3d4" * 12
    deliver(
        imap_account,
        "Your weekly newsletter",
        "Shop News <news@example.com>",
        "Ten new products this week.\n",
        hours_ago=5,
    )
    imap_account.append(
        make_message(
            long_subject,
            sender="Maximiliane Oberhauser-Wittgenstein <maximiliane.oberhauser@example.com>",
            to=imap_account.address,
            body=f"Hello,\n\nthe parcel arrived damaged. Photos: {long_link}\n\nThanks, Max\n",
            date=NOW - dt.timedelta(hours=1),
        ),
        folder="Archive",
        internal_date=NOW - dt.timedelta(hours=1),
    )
    mailbox = connect_mailbox(imap_account, manager=alice)
    sync_mailbox(mailbox)

    log_in(page, asgi_live_server.url, "alice", "alice-pass-1")
    page.get_by_role("link", name=re.compile(r"^Support")).tap()
    expect(page.locator(".pane h1")).to_have_text("Inbox")
    expect(page.locator("#message-list .subject")).to_have_text(["Your weekly newsletter"])
    no_horizontal_scroll(page, 360)
    snapshot(page, "phone-1-inbox")

    # On a phone the folder tree hides behind the "Folders" toggle.
    folders = page.get_by_role("navigation", name="Folders")
    toggle = page.get_by_role("button", name="Folders")
    expect(folders).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.tap()
    expect(folders).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    snapshot(page, "phone-2-folders-open")
    folders.get_by_role("link", name="Archive").tap()

    expect(page.locator(".pane h1")).to_have_text("Archive")
    expect(folders).to_be_hidden()  # a new page starts with the menu closed again
    row = page.locator("#message-list li.message-row")
    expect(row).to_have_count(1)
    expect(row.locator(".subject")).to_have_text(long_subject)
    expect(row).to_have_class(UNREAD)
    no_horizontal_scroll(page, 360)
    snapshot(page, "phone-3-archive")

    row.get_by_role("link").tap()
    expect(page).to_have_url(re.compile(r"/mailboxes/\d+/messages/\d+/$"))
    subject = page.get_by_role("heading", level=1)
    expect(subject).to_have_text(long_subject)
    expect(subject).to_be_in_viewport()
    body = page.locator(".body-text")
    expect(body).to_contain_text("the parcel arrived damaged")
    expect(body.get_by_role("link", name=long_link)).to_be_visible()
    expect(body).to_be_visible()
    no_horizontal_scroll(page, 360)
    snapshot(page, "phone-4-message")


def test_the_folder_page_shows_no_stray_flash_notices(page, asgi_live_server, imap_account, alice):
    from webmail.sync.mailbox import sync_mailbox

    imap_account.deliver("Where is my order?")
    mailbox = connect_mailbox(imap_account, manager=alice)
    sync_mailbox(mailbox)

    log_in(page, asgi_live_server.url, "alice", "alice-pass-1")
    page.goto(asgi_live_server.url + mailbox.get_absolute_url())
    expect(page.locator("#message-list .subject")).to_have_text(["Where is my order?"])
    # The page has loaded: read the notices once instead of waiting for them to go away.
    assert page.locator(".flash li").all_inner_texts() == []


def test_a_long_user_name_does_not_widen_the_phone_layout(
    phone_page, asgi_live_server, imap_account, django_user_model
):
    from webmail.sync.mailbox import sync_mailbox

    user = django_user_model.objects.create_user(
        "maximiliane.oberhauser", "max@example.com", "max-pass-1"
    )
    imap_account.deliver("Hello")
    mailbox = connect_mailbox(imap_account, manager=user, name="Customer Support EMEA")
    sync_mailbox(mailbox)

    log_in(phone_page, asgi_live_server.url, user.username, "max-pass-1")
    phone_page.goto(asgi_live_server.url + mailbox.get_absolute_url())
    expect(phone_page.locator(".pane h1")).to_have_text("Inbox")
    no_horizontal_scroll(phone_page, 360)
    expect(phone_page.get_by_role("button", name="Log out")).to_be_in_viewport()
