"""Search through the web against mail synced from the suite's Dovecot: every operator, text in
any script, the server's answer for bodies not fetched, and who may see what."""

from __future__ import annotations

import datetime as dt
import email.policy
import re
from email.message import EmailMessage

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.conftest import _account, connect_mailbox
from tests.dovecot import make_message
from webmail.models import Conversation, Membership, Message, MessageBody
from webmail.search import index, server
from webmail.search import messages as local
from webmail.search.query import Query, Term, parse
from webmail.sync.bodies import load_body
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

HTMX = {"HTTP_HX_REQUEST": "true"}


def with_attachment(subject: str, **kwargs) -> bytes:
    msg = EmailMessage()
    msg["From"] = kwargs.get("sender", "Customer <customer@example.com>")
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    msg.set_content(kwargs.get("body", "See the attached file.\n"))
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="a.pdf")
    return msg.as_bytes(policy=email.policy.SMTP)


def deliver(mailbox, subject: str, folder: str = "INBOX", flags=(), **kwargs) -> Message:
    mailbox.account.append(make_message(subject, **kwargs), folder, flags=flags)
    sync_mailbox(mailbox)
    return Message.objects.get(mailbox=mailbox, subject=subject)


def subjects(client, q: str, **params) -> list[str]:
    """The subjects of the local results, in order."""
    response = client.get(reverse("search"), {"q": q, **params})
    assert response.status_code == 200
    rows = response.context["results"].rows
    return [m.subject for m in rows]


def server_rows(client, q: str, **params):
    response = client.get(reverse("search_server"), {"q": q, **params}, **HTMX)
    assert response.status_code == 200
    return response


@pytest.fixture
def mail(mailbox, bob):
    """A small mailbox with something for every operator; bodies fetched (indexed)."""
    account = mailbox.account
    account.append(
        make_message(
            "Invoice 1001 overdue",
            sender="Anna Schmidt <anna@acme-corp.example>",
            to="support@example.com",
            extra_headers={"Cc": "Billing Team <billing@example.com>"},
            body="Please pay the invoice before Friday.\n",
        )
    )
    account.append(
        make_message(
            "Where is my parcel?",
            sender="Ben <ben@customer.example>",
            body="The parcel arrived damaged, photos soon.\n",
        ),
        flags=[b"\\Seen", b"\\Flagged"],
    )
    account.append(with_attachment("Signed contract", sender="Legal <legal@firm.example>"))
    account.append(
        make_message("Old newsletter", sender="News <news@robot.example>", body="Unsubscribe."),
        "Archive",
        flags=[b"\\Seen"],
    )
    sync_mailbox(mailbox)
    for message in Message.objects.filter(mailbox=mailbox):
        load_body(message)
    by_subject = {m.subject: m for m in Message.objects.filter(mailbox=mailbox)}
    Message.objects.filter(pk=by_subject["Old newsletter"].pk).update(
        internal_date=dt.datetime(2023, 5, 1, 12, tzinfo=dt.UTC)
    )
    invoice = by_subject["Invoice 1001 overdue"].conversation
    Conversation.objects.filter(pk=invoice.pk).update(assignee=bob, status="pending")
    parcel = by_subject["Where is my parcel?"].conversation
    Conversation.objects.filter(pk=parcel.pk).update(status="closed")
    return by_subject


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("invoice", {"Invoice 1001 overdue"}),
        ("damaged", {"Where is my parcel?"}),  # a word of the body only
        ("parc", {"Where is my parcel?"}),  # words match from their start
        ('"parcel arrived damaged"', {"Where is my parcel?"}),
        ('"damaged parcel"', set()),  # a phrase keeps its order
        ("from:anna", {"Invoice 1001 overdue"}),
        ("from:schmidt", {"Invoice 1001 overdue"}),
        ("from:acme-corp", {"Invoice 1001 overdue"}),
        ("from:corp.exam", {"Invoice 1001 overdue"}),  # any part of the address
        ("to:billing", {"Invoice 1001 overdue"}),  # Cc counts as to:
        ('to:"Billing Team"', {"Invoice 1001 overdue"}),
        ("subject:parcel", {"Where is my parcel?"}),
        ("subject:damaged", set()),  # in the body, not the subject
        ('subject:"invoice 1001"', {"Invoice 1001 overdue"}),
        ("has:attachment", {"Signed contract"}),
        ("is:unread", {"Invoice 1001 overdue", "Signed contract"}),
        ("is:read", {"Where is my parcel?", "Old newsletter"}),
        ("is:flagged", {"Where is my parcel?"}),
        ("in:archive", {"Old newsletter"}),
        ("in:Inbox -has:attachment", {"Invoice 1001 overdue", "Where is my parcel?"}),
        ("assigned:bob", {"Invoice 1001 overdue"}),
        ("status:pending", {"Invoice 1001 overdue"}),
        ("status:closed", {"Where is my parcel?"}),
        ("before:2024-01-01", {"Old newsletter"}),
        ("after:2024-01-01 is:read", {"Where is my parcel?"}),
        ("-from:anna is:unread", {"Signed contract"}),
        ("-damaged is:read", {"Old newsletter"}),
        ("invoice damaged", set()),  # every term must match
        ("overdue pay", {"Invoice 1001 overdue"}),  # one in the subject, one in the body
    ],
)
def test_each_operator_finds_what_it_should(client, mail, bob, q, expected):
    client.force_login(bob)
    assert set(subjects(client, q)) == expected


def test_assigned_me_and_none_and_status_snoozed(client, mail, alice, bob):
    client.force_login(bob)
    assert subjects(client, "assigned:me") == ["Invoice 1001 overdue"]
    assert "Invoice 1001 overdue" not in subjects(client, "assigned:none")
    client.force_login(alice)
    assert subjects(client, "assigned:me") == []
    snoozed = mail["Signed contract"].conversation
    Conversation.objects.filter(pk=snoozed.pk).update(
        status="pending", snoozed_until=dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    )
    assert subjects(client, "status:snoozed") == ["Signed contract"]
    assert "Signed contract" not in subjects(client, "status:pending")


def test_results_are_newest_first_and_link_to_the_message(client, mail, bob):
    client.force_login(bob)
    response = client.get(reverse("search"), {"q": "is:read"})
    rows = response.context["results"].rows
    assert [m.subject for m in rows] == ["Where is my parcel?", "Old newsletter"]
    page = response.content.decode()
    assert f'href="{rows[0].get_absolute_url()}"' in page
    assert "Archive" in page  # the folder of each result


def test_matches_are_marked_and_everything_is_escaped(client, mailbox, bob):
    message = deliver(
        mailbox,
        "<img src=x onerror=alert(1)> refund",
        sender='"<b>Evil</b>" <evil@example.com>',
        body="Text before <script>alert(2)</script> the refund is late.",
    )
    load_body(message)
    client.force_login(bob)
    page = client.get(reverse("search"), {"q": "refund"}).content.decode()
    assert "<img src=x" not in page and "<script>alert(2)" not in page and "<b>Evil" not in page
    assert "&lt;img src=x onerror=alert(1)&gt; <mark>refund</mark>" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt; the <mark>refund</mark> is late." in page


@pytest.mark.parametrize("q", ["cafe", "Café", "CAFE", "café", "subject:cafe", "crème"])
def test_accents_and_case_do_not_matter(client, mailbox, bob, q):
    message = deliver(mailbox, "Le Café est froid", body="Une crème brûlée, s'il vous plaît.")
    load_body(message)
    client.force_login(bob)
    assert subjects(client, q) == ["Le Café est froid"]


@pytest.mark.parametrize("q", ["確認", "subject:確認", "注文確認", "お知らせ"])
def test_chinese_and_japanese_subjects_are_found_by_a_part(client, mailbox, bob, q):
    deliver(mailbox, "注文確認のお知らせ")
    deliver(mailbox, "无关的邮件")
    client.force_login(bob)
    assert subjects(client, q) == ["注文確認のお知らせ"]


def test_chinese_body_text_is_found_by_two_characters(client, mailbox, bob):
    message = deliver(mailbox, "Order", body="您好，我的包裹还没有到。谢谢")
    load_body(message)
    client.force_login(bob)
    assert subjects(client, "包裹") == ["Order"]


def test_the_index_follows_bodies_and_removals(client, mailbox, bob):
    message = deliver(mailbox, "Quiet", body="The word xylophone is only in here.")
    client.force_login(bob)
    assert subjects(client, "xylophone") == []  # the body is not fetched yet
    load_body(message)
    assert subjects(client, "xylophone") == ["Quiet"]
    MessageBody.objects.filter(message=message).update(text="Now it says marimba.")
    assert subjects(client, "xylophone") == []
    assert subjects(client, "marimba") == ["Quiet"]
    Message.objects.filter(pk=message.pk).update(subject="Loud")
    assert subjects(client, "subject:loud") == ["Loud"]
    Message.objects.filter(pk=message.pk).delete()
    assert subjects(client, "marimba") == []


def test_a_body_never_fetched_is_found_on_the_server_and_marked(client, mailbox, bob):
    fetched = deliver(mailbox, "Fetched one", body="The zanzibar shipment, fetched.")
    load_body(fetched)
    deliver(mailbox, "Never opened", body="Our zanzibar office writes.")
    deliver(mailbox, "Unrelated", body="Nothing to see.")
    assert not MessageBody.objects.filter(message__subject="Never opened").exists()
    client.force_login(bob)

    page = client.get(reverse("search"), {"q": "zanzibar"})
    assert [m.subject for m in page.context["results"].rows] == ["Fetched one"]
    html = page.content.decode()
    assert 'hx-trigger="load"' in html and "Searching the server" in html
    assert reverse("search_server") + "?q=zanzibar" in html

    response = server_rows(client, "zanzibar")
    found = response.context["server"]
    # The fetched one is already among the local results: only the other comes back.
    assert [m.subject for m in found.rows] == ["Never opened"]
    assert found.searched == ["Support: Inbox"]
    html = response.content.decode()
    assert "Also found on the server" in html and "found on the server" in html
    assert "<mark>zanzibar</mark>" not in html.split("Never opened")[0]  # no body, no excerpt
    assert f'href="{found.rows[0].get_absolute_url()}"' in html


def test_the_server_search_respects_the_other_operators(client, mailbox, bob):
    deliver(mailbox, "Read one", flags=[b"\\Seen"], body="zanzibar alpha")
    deliver(mailbox, "Unread one", body="zanzibar beta")
    deliver(mailbox, "Archived", folder="Archive", flags=[b"\\Seen"], body="zanzibar gamma")
    client.force_login(bob)
    unread = server_rows(client, "zanzibar is:unread").context["server"]
    assert [m.subject for m in unread.rows] == ["Unread one"]
    archived = server_rows(client, "zanzibar in:archive").context["server"]
    assert [m.subject for m in archived.rows] == ["Archived"]
    without = server_rows(client, "zanzibar -alpha").context["server"]
    assert [m.subject for m in without.rows] == ["Archived", "Unread one"]


def test_matches_not_synced_yet_are_counted(client, mailbox, bob):
    deliver(mailbox, "Synced", body="zanzibar one")
    mailbox.account.append(make_message("Arrived later", body="zanzibar two"))
    client.force_login(bob)
    found = server_rows(client, "zanzibar").context["server"]
    assert [m.subject for m in found.rows] == ["Synced"]
    assert found.unsynced == 1


def test_the_server_is_not_asked_without_free_text(client, mail, bob):
    client.force_login(bob)
    page = client.get(reverse("search"), {"q": "from:anna is:unread"}).content.decode()
    assert "search_server" not in page and "Searching the server" not in page
    assert not server_rows(client, "from:anna").context["server"].is_applicable


def test_a_server_that_cannot_be_reached_is_a_note_not_an_error(client, mailbox, bob):
    deliver(mailbox, "Something", body="zanzibar")
    mailbox.imap_port = 1  # nothing listens there
    mailbox.save(update_fields=["imap_port"])
    client.force_login(bob)
    response = server_rows(client, "zanzibar")
    assert "Support: the server could not be searched" in response.content.decode()
    assert response.context["server"].rows == []


def test_the_server_search_keeps_to_its_time_budget(client, mailbox, bob, monkeypatch):
    deliver(mailbox, "Something", body="zanzibar")
    monkeypatch.setattr(server, "BUDGET_SECONDS", 0)
    client.force_login(bob)
    response = server_rows(client, "zanzibar")
    assert "Support: not searched, out of time." in response.content.decode()


def test_line_breaks_in_a_query_never_reach_the_imap_wire(client, mailbox, bob, monkeypatch):
    deliver(mailbox, "Injected", body="zanzibar")
    sent: list[bytes] = []
    real = server.mailbox_connection

    def recording(*args, **kwargs):
        context = real(*args, **kwargs)

        class Wrapper:
            def __enter__(self):
                client = context.__enter__()
                send = client._imap.send
                client._imap.send = lambda data: (sent.append(bytes(data)), send(data))[1]
                return client

            def __exit__(self, *exc):
                return context.__exit__(*exc)

        return Wrapper()

    monkeypatch.setattr(server, "mailbox_connection", recording)
    client.force_login(bob)
    response = server_rows(client, "zanzibar\r\nA001 DELETE INBOX\r\n")
    assert response.status_code == 200
    lines = [line for line in b"".join(sent).split(b"\r\n") if line]
    search = [line for line in lines if b" SEARCH " in line]
    # The words became search keys of one command line; no line of their own.
    assert [line for line in lines if b"DELETE" in line] == search
    assert search[0].endswith(b"UID SEARCH TEXT zanzibar TEXT A001 TEXT DELETE TEXT INBOX")
    # And if a term ever got here with a line break in it, it would be refused.
    with pytest.raises(ValueError):
        server.criteria(Query("a", (Term("text", "a\r\nb"),)))


def test_non_ascii_terms_go_to_the_server_as_utf8(client, mailbox, bob):
    deliver(mailbox, "Accented", body="Un crème brûlée offert.")
    client.force_login(bob)
    found = server_rows(client, "brûlée").context["server"]
    assert [m.subject for m in found.rows] == ["Accented"]


# --- who may see what -------------------------------------------------------------------------


def another_mailbox(mailbox, manager, name: str):
    """A mailbox of its own IMAP account, in another team, managed by `manager`."""
    account = _account(mailbox.account.server)
    box = connect_mailbox(account, manager=manager, team_name=name, name=name)
    box.account = account
    return box


def test_results_only_ever_come_from_the_users_mailboxes(client, mailbox, charlie):
    deliver(mailbox, "Secret merger plan", body="confidential")
    own = another_mailbox(mailbox, charlie, "Charlie's")
    deliver(own, "Merger gossip")
    client.force_login(charlie)
    assert subjects(client, "merger") == ["Merger gossip"]
    assert subjects(client, "secret") == []
    assert server_rows(client, "confidential").context["server"].rows == []


def test_another_mailbox_by_id_is_404(client, mailbox, charlie):
    deliver(mailbox, "Secret", body="confidential")
    client.force_login(charlie)
    for name in ("search", "search_server"):
        url = reverse(name)
        assert client.get(url, {"q": "secret", "mailbox": mailbox.pk}).status_code == 404
        assert client.get(url, {"q": "secret", "mailbox": "1 OR 1=1"}).status_code == 404
        assert client.get(url, {"q": "secret", "mailbox": 999999}).status_code == 404


def test_a_member_searches_one_mailbox_or_all(client, mailbox, bob):
    deliver(mailbox, "Refund in support")
    other = another_mailbox(mailbox, bob, "Billing")
    deliver(other, "Refund in billing")
    client.force_login(bob)
    assert set(subjects(client, "refund")) == {"Refund in support", "Refund in billing"}
    assert subjects(client, "refund", mailbox=mailbox.pk) == ["Refund in support"]
    page = client.get(reverse("search"), {"q": "refund"}).content.decode()
    assert "In all your mailboxes (2)" in page


def test_a_removed_member_finds_nothing(client, mail, bob):
    client.force_login(bob)
    assert subjects(client, "invoice")
    Membership.objects.filter(user=bob).delete()
    assert subjects(client, "invoice") == []


def test_search_needs_a_login(client):
    response = client.get(reverse("search"), {"q": "x"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_scope_is_in_the_query_itself(client, mail, bob):
    client.force_login(bob)
    with CaptureQueriesContext(connection) as captured:
        subjects(client, "invoice")
    search_sql = [q["sql"] for q in captured.captured_queries if "ORDER BY" in q["sql"]]
    assert any("webmail_membership" in sql and "kotak_search" in sql for sql in search_sql)


# --- the page -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    [
        '"',
        '"""',
        "-",
        "from:",
        "is:",
        "before:2024-02-30",
        'subject:"',
        "*",
        "NEAR(a b)",
        "a OR b AND NOT c",
        "{subject}: x",
        "x' OR '1'='1",
        "%_%",
        "\\",
        "'::regclass",
        "a:*A | b",
        "\x00\x01",
        "x" * 5000,
        "🎉",
        "-is:read -has:attachment -status:open -assigned:none -in:x -before:2020-01-01",
    ],
)
def test_garbage_never_fails(client, mail, bob, q):
    client.force_login(bob)
    assert client.get(reverse("search"), {"q": q}).status_code == 200
    assert client.get(reverse("search_server"), {"q": q}, **HTMX).status_code == 200


def test_results_are_paginated(client, mailbox, bob, monkeypatch):
    for n in range(3):
        mailbox.account.append(make_message(f"Refund {n}"))
    sync_mailbox(mailbox)
    monkeypatch.setattr(local, "PAGE_SIZE", 2)
    client.force_login(bob)
    first = client.get(reverse("search"), {"q": "refund"})
    assert len(first.context["results"].rows) == 2 and first.context["results"].has_next
    assert "page=2" in first.content.decode()
    second = client.get(reverse("search"), {"q": "refund", "page": 2})
    assert len(second.context["results"].rows) == 1 and not second.context["results"].has_next
    assert client.get(reverse("search"), {"q": "refund", "page": "x"}).status_code == 200


def test_the_list_refreshes_itself_as_a_partial_on_live_events(client, mail, bob):
    client.force_login(bob)
    page = client.get(reverse("search"), {"q": "invoice"}).content.decode()
    assert 'sse-connect="/events/?mailbox=' in page
    trigger = re.search(r'id="search-results"[^>]*hx-trigger="([^"]+)"', page, re.S).group(1)
    assert "sse:conversations" in trigger
    inbox = mail["Invoice 1001 overdue"].folder
    assert f"sse:folder-{inbox.pk}" in trigger
    partial = client.get(
        reverse("search"), {"q": "invoice"}, HTTP_HX_TARGET="search-results", **HTMX
    ).content.decode()
    assert partial.lstrip().startswith('<section id="search-results"')
    assert "<html" not in partial and "<mark>Invoice</mark> 1001 overdue" in partial


def test_the_top_bar_searches_the_current_mailbox(client, mail, bob):
    client.force_login(bob)
    inbox = mail["Invoice 1001 overdue"].folder
    page = client.get(inbox.get_absolute_url()).content.decode()
    form = re.search(r'<form class="topbar-search".*?</form>', page, re.S).group(0)
    assert f'action="{reverse("search")}"' in form
    assert f'<input type="hidden" name="mailbox" value="{inbox.mailbox_id}">' in form
    home = client.get(reverse("home")).content.decode()
    assert 'class="topbar-search"' in home and 'name="mailbox"' not in home


def test_postgres_answers_from_the_indexes(mail, bob):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL plans")
    with connection.cursor() as cursor:
        # Four messages are read faster without an index: show that the terms can use one.
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_indexscan = off")
        try:
            for q, indexes in [
                ("invoice", ["kotak_search_doc_gin"]),
                ("damaged", ["kotak_search_doc_gin"]),
                ('subject:"invoice 1001"', ["kotak_search_doc_gin"]),
                ("確認", ["kotak_search_doc_gin"]),
                ("from:corp.exam", ["kotak_search_doc_gin", "kotak_search_doc_sender"]),
                ("to:billing", ["kotak_search_doc_gin", "kotak_search_doc_recipients"]),
            ]:
                sql, params = index.term_ids(parse(q).terms[0])
                cursor.execute("EXPLAIN " + sql, params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                for name in indexes:
                    assert name in plan, (q, plan)
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_indexscan")


def test_sqlite_answers_from_the_fts_table(mail, bob):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite plans")
    plan = local.matching(bob, parse("invoice")).explain()
    assert "kotak_search VIRTUAL TABLE" in plan
