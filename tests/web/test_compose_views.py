"""Answering through the screens, per persona: alice manages, bob is an agent, vera views,
charlie is an outsider. What leaves goes to the suite's real SMTP server (aiosmtpd, STARTTLS and
AUTH), what is filed goes to its real Dovecot."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from tests.dovecot import make_message
from tests.helpers import server_state
from tests.sync.test_writeback import apply_now, uids_on_server
from webmail import compose, outbox, team
from webmail.models import (
    Conversation,
    Message,
    Note,
    OutgoingAttachment,
    OutgoingMessage,
    PendingChange,
    Presence,
    SavedReply,
)
from webmail.sync.mailbox import sync_mailbox
from webmail.web import compose as compose_views

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

HTMX = {"HTTP_HX_REQUEST": "true"}
State = OutgoingMessage.State
Kind = OutgoingMessage.Kind


@pytest.fixture
def question(sending_mailbox) -> Message:
    """Carla's question, synced: the message everyone answers here."""
    sending_mailbox.account.append(
        make_message(
            "Where is my order?",
            sender="Carla Customer <carla@customer.example>",
            to=f"Support <{sending_mailbox.email}>",
            message_id="<q1@customer.example>",
            body="Hello,\nmy order 42 has not arrived.\n",
            date=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        ),
        internal_date=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    sync_mailbox(sending_mailbox)
    return sending_mailbox.messages.get(subject="Where is my order?")


def start_url(message: Message, kind: str = "reply") -> str:
    return reverse("start_compose", args=[message.mailbox_id, message.pk, kind])


def url(outgoing: OutgoingMessage, name: str = "compose") -> str:
    return reverse(name, args=[outgoing.mailbox_id, outgoing.pk])


def toast(response) -> dict:
    return json.loads(response["HX-Trigger"])["kotak:toast"]


def fields(outgoing: OutgoingMessage, **changes) -> dict:
    """The compose form as the page would post it."""
    values = {
        "to": compose.format_addresses(outgoing.to),
        "cc": compose.format_addresses(outgoing.cc),
        "bcc": compose.format_addresses(outgoing.bcc),
        "subject": outgoing.subject,
        "text": outgoing.text,
        "html": "",
        "format": "plain",
        "seen": "",
    }
    return values | changes


def start_reply(client, question, kind="reply") -> OutgoingMessage:
    response = client.post(start_url(question, kind))
    outgoing = OutgoingMessage.objects.get(pk=int(response.url.rstrip("/").split("/")[-1]))
    assert response.url == url(outgoing)
    return outgoing


def fresh(outgoing: OutgoingMessage) -> OutgoingMessage:
    return OutgoingMessage.objects.get(pk=outgoing.pk)


def everything() -> tuple:
    return (
        list(OutgoingMessage.objects.order_by("pk").values_list("pk", "state", "text", "to")),
        OutgoingAttachment.objects.count(),
        SavedReply.objects.count(),
        PendingChange.objects.count(),
    )


@pytest.fixture
def send_at_once(settings, django_capture_on_commit_callbacks):
    """No undo window, and the sending task (eager in tests) runs when the request commits."""
    settings.SEND_UNDO_SECONDS = 0

    def post(client, path, data, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(path, data, **extra)

    return post


# -- end to end --------------------------------------------------------------------------------


def test_bob_replies_from_the_reader_and_it_leaves_threaded_filed_and_answered(
    client, question, bob, send_at_once
):
    mailbox = question.mailbox
    mailbox.signature = "Acme Support"
    mailbox.save()
    client.force_login(bob)

    reader = client.get(question.get_absolute_url()).content.decode()
    assert f'action="{start_url(question)}"' in reader
    assert f'action="{start_url(question, "reply_all")}"' in reader
    assert f'action="{start_url(question, "forward")}"' in reader

    reply = start_reply(client, question)
    assert reply.author == bob and reply.state == State.DRAFT
    page = client.get(url(reply)).content.decode()
    assert 'value="Carla Customer &lt;carla@customer.example&gt;"' in page
    assert 'value="Re: Where is my order?"' in page
    assert "&gt; my order 42 has not arrived." in page
    assert "Acme Support" in page
    # The blank lines to write in stay (the parser eats the one after <textarea>).
    assert reply.text.startswith("\n\n-- \nAcme Support\n")
    assert f"data-plain>\n{escape(reply.text)}</textarea>" in page
    assert f"viewing={question.pk}&activity=replying" in page  # teammates see him reply

    text = "It left our warehouse today.\n" + reply.text
    saved = client.post(url(reply, "save_draft"), fields(reply, text=text), **HTMX)
    assert re.search(r'id="save-state"[^>]*>Saved \d\d:\d\d<', saved.content.decode())
    assert fresh(reply).text == text

    response = send_at_once(client, url(reply, "send"), fields(reply, text=text), **HTMX)
    assert response.status_code == 204
    assert toast(response)["undo"] == url(reply, "undo_send")
    assert response["HX-Redirect"] == reverse(
        "conversation", args=[mailbox.pk, question.conversation_id]
    )

    (received,) = mailbox.smtp.received
    sent = received.message
    assert received.mail_from == mailbox.email
    assert received.rcpt_tos == ["carla@customer.example"]
    assert sent["From"] == f"Support <{mailbox.email}>"
    assert sent["To"] == "Carla Customer <carla@customer.example>"
    assert sent["Subject"] == "Re: Where is my order?"
    assert sent["Message-ID"] == reply.message_id
    assert sent["In-Reply-To"] == "<q1@customer.example>"
    assert sent["References"] == "<q1@customer.example>"
    assert sent.get_content_type() == "text/plain"
    assert sent.get_content().startswith("It left our warehouse today.")
    assert fresh(reply).state == State.SENT

    apply_now(mailbox)
    assert "Re: Where is my order?" in uids_on_server(mailbox.account, "Sent").values()
    assert server_state(mailbox.account, "INBOX")[question.uid]["is_answered"]


def test_rich_text_leaves_as_multipart_alternative_sanitized_with_its_plain_text(
    client, question, bob, send_at_once
):
    client.force_login(bob)
    reply = start_reply(client, question)
    html = (
        '<div>Hello <b>Carla</b>,</div><div>see <a href="https://acme.example/track">'
        'tracking</a></div><ul><li>order 42</li></ul><img src="x" onerror="alert(1)">'
        "<script>alert(2)</script>"
    )
    send_at_once(
        client, url(reply, "send"), fields(reply, format="rich", html=html, text="ignored"), **HTMX
    )
    sent = question.mailbox.smtp.received[0].message
    assert sent.get_content_type() == "multipart/alternative"
    plain, rich = sent.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content().replace("\r\n", "\n") == (
        "Hello Carla,\nsee tracking <https://acme.example/track>\n- order 42\n"
    )
    assert rich.get_content_type() == "text/html"
    body = rich.get_content()
    assert "<b>Carla</b>" in body and 'href="https://acme.example/track"' in body
    assert "script" not in body and "onerror" not in body and "alert" not in body
    stored = fresh(reply)
    assert "<script" not in stored.html and stored.text.startswith("Hello Carla,")


def test_an_uploaded_file_arrives_byte_identical(client, question, bob, send_at_once):
    client.force_login(bob)
    reply = start_reply(client, question)
    data = bytes(range(256)) * 300 + b"\r\n.\r\n\x00end"
    upload = SimpleUploadedFile("invoice 42.bin", data, content_type="application/octet-stream")
    response = client.post(url(reply, "upload_attachments"), {"files": [upload]}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="attachments"')
    assert "invoice 42.bin" in html
    (attachment,) = reply.attachments.all()
    assert attachment.size == len(data)

    send_at_once(client, url(reply, "send"), fields(reply), **HTMX)

    sent = question.mailbox.smtp.received[0].message
    (part,) = list(sent.iter_attachments())
    assert part.get_filename() == "invoice 42.bin"
    assert part.get_content() == data


def test_an_upload_over_the_limit_is_refused_with_a_clear_error_and_nothing_stored(
    client, question, bob, settings
):
    settings.COMPOSE_MAX_ATTACHMENT_MB = 1
    client.force_login(bob)
    reply = start_reply(client, question)
    small = SimpleUploadedFile("a.txt", b"a" * 600_000)
    client.post(url(reply, "upload_attachments"), {"files": [small]}, **HTMX)
    assert reply.attachments.count() == 1

    second = SimpleUploadedFile("b.txt", b"b" * 300_000)
    third = SimpleUploadedFile("c.txt", b"c" * 300_000)
    response = client.post(url(reply, "upload_attachments"), {"files": [second, third]}, **HTMX)

    html = response.content.decode()
    assert "Attachments are limited to 1 MB per message" in html
    assert "Nothing was added." in html
    assert [a.filename for a in reply.attachments.all()] == ["a.txt"]

    # Far beyond the limit: refused from the request's length, before the files are read.
    huge = SimpleUploadedFile("huge.bin", b"h" * 1_300_000)
    response = client.post(url(reply, "upload_attachments"), {"files": [huge]})
    assert response.status_code == 302
    follow = client.get(response.url).content.decode()
    assert "Attachments are limited to 1 MB per message" in follow
    assert reply.attachments.count() == 1

    a = reply.attachments.get()
    remove = reverse("remove_attachment", args=[reply.mailbox_id, reply.pk, a.pk])
    assert "a.txt" not in client.post(remove, **HTMX).content.decode()
    assert reply.attachments.count() == 0


def test_a_forward_lists_the_originals_attachments_and_new_messages_start_empty(
    client, sending_mailbox, bob
):
    from email.message import EmailMessage

    original = EmailMessage()
    original["From"] = "Supplier <sales@supplier.example>"
    original["To"] = sending_mailbox.email
    original["Subject"] = "Quote attached"
    original.set_content("See the quote.")
    original.add_attachment(b"%PDF-1.4 quote", maintype="application", subtype="pdf",
                            filename="quote.pdf")  # fmt: skip
    sending_mailbox.account.append(original.as_bytes())
    sync_mailbox(sending_mailbox)
    source = sending_mailbox.messages.get(subject="Quote attached")
    client.force_login(bob)
    client.get(source.get_absolute_url())  # opening it learns its structure
    forward = start_reply(client, source, "forward")
    page = client.get(url(forward)).content.decode()
    assert "quote.pdf" in page and "from the original" in page
    assert 'value="Fwd: Quote attached"' in page

    response = client.post(reverse("new_message", args=[sending_mailbox.pk]))
    new = OutgoingMessage.objects.get(kind=Kind.NEW)
    assert response.url == url(new) and new.to == [] and new.conversation is None


def test_saved_replies_are_offered_with_their_placeholders_filled(client, question, bob):
    mailbox = question.mailbox
    bob.first_name, bob.last_name = "Bob", "Baker"
    bob.save()
    SavedReply.objects.create(
        mailbox=mailbox,
        name="Shipping delay",
        body="Hi {customer_name} ({customer_email}), {agent_name} of {mailbox_name} here. {other}",
    )
    client.force_login(bob)
    reply = start_reply(client, question)
    page = client.get(url(reply)).content.decode()
    assert "Shipping delay" in page
    assert (
        'data-body="Hi Carla Customer (carla@customer.example), Bob Baker of Support here. {other}"'
    ) in page


def test_header_injection_through_the_form_is_refused_with_a_message(
    client, question, bob, send_at_once
):
    client.force_login(bob)
    reply = start_reply(client, question)
    for name, value, message in [
        ("subject", "Hi\r\nBcc: victim@example.org", "The subject cannot contain line breaks"),
        ("to", "carla@customer.example\r\nBcc: victim@example.org", "To cannot contain line"),
        ("cc", "Eve <eve@example.org>\nX-Evil: 1", "Cc cannot contain line breaks"),
        ("bcc", "x@example.org\x00", "Bcc cannot contain line breaks or NUL"),
        ("to", "not an address@", "is not"),
    ]:
        response = send_at_once(client, url(reply, "send"), fields(reply, **{name: value}), **HTMX)
        assert response.status_code == 200, name
        assert message in response.content.decode(), name
        assert fresh(reply).state == State.DRAFT
    # Plain form posts (no JavaScript) get the page back with the error at its field.
    response = client.post(url(reply, "send"), fields(reply, subject="a\rb"))
    assert response.status_code == 200
    assert re.search(
        r'id="error-subject"[^>]*>The subject cannot contain', response.content.decode()
    )
    assert question.mailbox.smtp.received == []


def test_an_autosave_keeps_what_is_sound_and_says_what_is_not(client, question, bob):
    client.force_login(bob)
    reply = start_reply(client, question)
    response = client.post(
        url(reply, "save_draft"),
        fields(reply, to="carla@", subject="Better subject", text="Draft text"),
        **HTMX,
    )
    html = response.content.decode()
    assert 'id="error-to" class="error field-error" hx-swap-oob="true">To: “carla@”' in html
    assert 'id="error-subject" class="error field-error" hx-swap-oob="true"></p>' in html
    saved = fresh(reply)
    assert saved.subject == "Better subject" and saved.text == "Draft text"
    assert saved.to == [["Carla Customer", "carla@customer.example"]]  # the last sound value


def test_undo_within_the_window_reopens_the_compose_page(client, question, bob, settings):
    settings.SEND_UNDO_SECONDS = 60
    client.force_login(bob)
    reply = start_reply(client, question)
    response = client.post(url(reply, "send"), fields(reply, text="Sorry!"), **HTMX)
    assert toast(response)["text"] == "Sending in 60 s."
    assert fresh(reply).state == State.QUEUED
    timeline = client.get(response["HX-Redirect"]).content.decode()
    assert f'id="outgoing-{reply.pk}"' in timeline and "data-countdown=" in timeline
    assert f'action="{url(reply, "undo_send")}"' in timeline

    response = client.post(url(reply, "undo_send"), **HTMX)
    assert response["HX-Redirect"] == url(reply)
    assert toast(response)["text"] == "Not sent: it is your draft again."
    assert fresh(reply).state == State.DRAFT
    assert outbox.send_due() == 0
    assert question.mailbox.smtp.received == []
    assert "Sorry!" in client.get(url(reply)).content.decode()

    # Too late: a worker has it.
    client.post(url(reply, "send"), fields(reply, text="Sorry!"), **HTMX)
    OutgoingMessage.objects.filter(pk=reply.pk).update(state=State.SENDING, claimed_by="w1")
    response = client.post(url(reply, "undo_send"), **HTMX)
    assert toast(response) == {"text": "Too late to undo: it has been sent.", "level": "warning"}


def test_a_refused_message_shows_why_on_the_conversation_and_retry_sends_it(
    client, question, bob, send_at_once
):
    mailbox = question.mailbox
    mailbox.smtp.faults.refuse = {"carla@customer.example"}
    client.force_login(bob)
    reply = start_reply(client, question)
    send_at_once(client, url(reply, "send"), fields(reply), **HTMX)
    assert fresh(reply).state == State.FAILED

    conversation_url = reverse("conversation", args=[mailbox.pk, question.conversation_id])
    html = client.get(conversation_url).content.decode()
    assert "Not sent" in html and "550 5.1.1 No such user here" in html
    assert f'action="{url(reply, "retry_send")}"' in html

    mailbox.smtp.faults.refuse = set()
    response = send_at_once(client, url(reply, "retry_send"), {}, **HTMX)
    assert toast(response)["text"] == "Sending again."
    assert fresh(reply).state == State.SENT
    assert len(mailbox.smtp.received) == 1


def test_a_retry_after_giving_up_gets_a_fresh_round_of_attempts(
    client, question, bob, send_at_once
):
    reply = compose.start(bob, question.mailbox, Kind.REPLY, question)
    OutgoingMessage.objects.filter(pk=reply.pk).update(
        state=State.FAILED, attempts=10, last_error="Gave up after 10 attempts: 451 busy"
    )
    question.mailbox.smtp.faults.fail_data = 1  # busy once more
    client.force_login(bob)
    send_at_once(client, url(reply, "retry_send"), {}, **HTMX)
    retried = fresh(reply)
    assert (retried.state, retried.attempts) == (State.QUEUED, 1)
    assert "451" in retried.last_error


def test_a_refused_message_can_be_corrected_by_its_author(client, question, bob, send_at_once):
    question.mailbox.smtp.faults.refuse = {"carla@customer.example"}
    client.force_login(bob)
    reply = start_reply(client, question)
    send_at_once(client, url(reply, "send"), fields(reply), **HTMX)
    refused = fresh(reply)
    assert refused.state == State.FAILED, refused.last_error
    response = client.post(url(reply, "edit_failed"), **HTMX)
    assert response["HX-Redirect"] == url(reply)
    assert fresh(reply).state == State.DRAFT
    question.mailbox.smtp.faults.refuse = set()
    send_at_once(client, url(reply, "send"), fields(reply, to="carla@other.example"), **HTMX)
    assert question.mailbox.smtp.received[0].rcpt_tos == ["carla@other.example"]


def test_a_message_that_may_have_left_asks_a_person(client, question, bob, alice, send_at_once):
    reply = compose.start(bob, question.mailbox, Kind.REPLY, question)
    outbox.queue(reply, delay=0)
    OutgoingMessage.objects.filter(pk=reply.pk).update(
        state=State.SENDING,
        claimed_by="dead-worker",
        claimed_until=timezone.now() - dt.timedelta(seconds=1),
    )
    outbox.mark_stale()
    client.force_login(alice)  # a manager decides for an absent author
    conversation_url = reverse("conversation", args=[reply.mailbox_id, question.conversation_id])
    html = client.get(conversation_url).content.decode()
    assert "Maybe sent" in html and "may or may not have left" in html
    assert "Send again anyway" in html and f'action="{url(reply, "discard_outgoing")}"' in html

    response = client.post(url(reply, "discard_outgoing"), **HTMX)
    assert toast(response)["text"] == "Message discarded."
    assert not OutgoingMessage.objects.filter(pk=reply.pk).exists()


def test_sending_warns_when_a_teammate_noted_or_the_customer_wrote_since(
    client, question, alice, bob, send_at_once
):
    client.force_login(bob)
    reply = start_reply(client, question)
    page = client.get(url(reply)).content.decode()
    seen = re.search(r'name="seen" value="([\d-]+)"', page)[1]

    team.add_note(alice, question.conversation, "They already got a refund.")
    team.add_note(bob, question.conversation, "My own note is not news to me.")
    response = send_at_once(client, url(reply, "send"), fields(reply, seen=seen), **HTMX)
    html = response.content.decode()
    assert "alice added a note since you started — send anyway?" in html
    assert 'name="confirm" value="1"' in html
    assert fresh(reply).state == State.DRAFT

    mailbox = question.mailbox
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    mailbox.account.append(
        make_message(
            "Re: Where is my order?",
            sender="Carla Customer <carla@customer.example>",
            in_reply_to="<q1@customer.example>",
            date=later,
        ),
        internal_date=later,
    )
    sync_mailbox(mailbox)
    response = send_at_once(client, url(reply, "send"), fields(reply, seen=seen), **HTMX)
    assert "alice added a note and a new message arrived since you started" in (
        response.content.decode()
    )
    assert mailbox.smtp.received == []

    response = send_at_once(
        client, url(reply, "send"), fields(reply, seen=seen, confirm="1"), **HTMX
    )
    assert response.status_code == 204
    assert len(mailbox.smtp.received) == 1


def test_without_javascript_the_plain_forms_still_work(client, question, alice, bob, settings):
    settings.SEND_UNDO_SECONDS = 60
    client.force_login(bob)
    reply = start_reply(client, question)
    page = client.get(url(reply)).content.decode()
    seen = re.search(r'name="seen" value="([\d-]+)"', page)[1]

    response = client.post(url(reply, "save_draft"), fields(reply, text="Plain words"))
    assert response.url == url(reply)
    assert "Draft saved." in client.get(response.url).content.decode()

    team.add_note(alice, question.conversation, "Careful.")
    response = client.post(url(reply, "send"), fields(reply, text="Plain words", seen=seen))
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert "alice added a note since you started — send anyway?" in html
    assert f'name="confirm" value="1"\n                formaction="{url(reply, "send")}"' in html

    data = fields(reply, text="Plain words", seen=seen, confirm="1")
    response = client.post(url(reply, "send"), data)
    conversation_url = reverse("conversation", args=[reply.mailbox_id, question.conversation_id])
    assert response.url == conversation_url
    html = client.get(conversation_url).content.decode()
    assert "Sending in 60 s." in html
    assert fresh(reply).state == State.QUEUED

    response = client.post(url(reply, "undo_send"))
    assert response.url == url(reply)
    assert fresh(reply).state == State.DRAFT


def test_nothing_new_means_no_warning(client, question, bob, send_at_once):
    client.force_login(bob)
    reply = start_reply(client, question)
    seen = re.search(r'name="seen" value="([\d-]+)"', client.get(url(reply)).content.decode())[1]
    response = send_at_once(client, url(reply, "send"), fields(reply, seen=seen), **HTMX)
    assert response.status_code == 204


def test_the_timeline_shows_a_sent_reply_once_as_a_message_when_filed(
    client, question, bob, settings
):
    settings.SEND_UNDO_SECONDS = 60
    client.force_login(bob)
    reply = start_reply(client, question)
    client.post(url(reply, "send"), fields(reply, text="On its way."), **HTMX)
    OutgoingMessage.objects.filter(pk=reply.pk).update(send_at=timezone.now())
    assert outbox.send_due() == 1  # the worker; the Sent copy is not filed yet
    conversation_url = reverse("conversation", args=[reply.mailbox_id, question.conversation_id])
    html = client.get(conversation_url).content.decode()
    assert f'id="outgoing-{reply.pk}"' in html and ">Sent<" in html
    assert "bob replied to carla@customer.example" in html

    apply_now(question.mailbox)
    sync_mailbox(question.mailbox)
    filed = Message.objects.get(message_id=reply.message_id)
    html = client.get(conversation_url).content.decode()
    assert f'id="message-{filed.pk}"' in html
    assert f'id="outgoing-{reply.pk}"' not in html


def test_a_draft_survives_a_closed_browser(client, question, bob):
    client.force_login(bob)
    reply = start_reply(client, question)
    client.post(url(reply, "save_draft"), fields(reply, text="Half a thought"), **HTMX)
    conversation_url = reverse("conversation", args=[reply.mailbox_id, question.conversation_id])
    html = client.get(conversation_url).content.decode()
    assert f'href="{url(reply)}">Continue your draft reply</a>' in html
    drafts = client.get(reverse("drafts", args=[reply.mailbox_id])).content.decode()
    assert f'href="{url(reply)}"' in drafts
    # Reply again to the same message: the draft is continued, not doubled.
    assert client.post(start_url(question)).url == url(reply)
    assert OutgoingMessage.objects.count() == 1
    assert "Half a thought" in client.get(url(reply)).content.decode()


def test_a_draft_filed_in_drafts_shows_as_a_draft_not_as_news(
    client, question, alice, bob, settings
):
    settings.DRAFT_FILE_DELAY = 0
    settings.SEND_UNDO_SECONDS = 60
    mailbox = question.mailbox
    client.force_login(alice)
    conversation_url = reverse("conversation", args=[mailbox.pk, question.conversation_id])
    seen = re.search(r"\?seen=([\d-]+)", client.get(conversation_url).content.decode())[1]
    alices = compose.start(alice, mailbox, Kind.REPLY, question)
    page = client.get(url(alices)).content.decode()
    alices_seen = re.search(r'name="seen" value="([\d-]+)"', page)[1]

    client.force_login(bob)
    reply = start_reply(client, question)
    client.post(url(reply, "save_draft"), fields(reply, text="Draft in Drafts"), **HTMX)
    apply_now(mailbox)
    sync_mailbox(mailbox)
    copy = Message.objects.get(message_id=reply.message_id)
    assert copy.is_draft and copy.conversation_id == question.conversation_id

    client.force_login(alice)
    html = client.get(f"{conversation_url}?seen={seen}").content.decode()
    assert f'id="message-{copy.pk}"' not in html
    assert "since you opened this page" not in html
    assert "bob has a draft reply here." in html
    assert compose_views.news_since(alices, alices_seen, alice) == ""

    client.force_login(bob)
    client.post(url(reply, "send"), fields(reply, text="Draft in Drafts"), **HTMX)
    html = client.get(conversation_url).content.decode()
    assert f'id="outgoing-{reply.pk}"' in html and "Queued" in html


def test_discarding_a_draft_goes_back_to_the_conversation(client, question, bob):
    client.force_login(bob)
    reply = start_reply(client, question)
    response = client.post(url(reply, "discard_outgoing"), **HTMX)
    assert toast(response)["text"] == "Draft discarded."
    assert response["HX-Redirect"] == reverse(
        "conversation", args=[reply.mailbox_id, question.conversation_id]
    )
    assert not OutgoingMessage.objects.exists()


def test_teammates_see_who_is_replying_on_the_message_and_the_conversation(
    client, question, alice, bob
):
    Presence.objects.create(
        mailbox=question.mailbox,
        user=bob,
        message_id=question.pk,
        activity=Presence.Activity.REPLYING,
        stream="bob-compose",
        expires_at=timezone.now() + dt.timedelta(seconds=30),
    )
    client.force_login(alice)
    reader = client.get(question.get_absolute_url()).content.decode()
    assert "✎ bob is replying" in reader and "bob is viewing" not in reader
    conversation_url = reverse("conversation", args=[question.mailbox_id, question.conversation_id])
    page = client.get(conversation_url).content.decode()
    assert "✎ bob is replying" in page
    assert f"sse:presence-message-{question.pk}" in page
    presence = reverse("message_presence", args=[question.mailbox_id, question.pk])
    fragment = client.get(f"{presence}?conversation={question.conversation_id}", **HTMX)
    assert "bob is replying" in fragment.content.decode()
    assert f"?conversation={question.conversation_id}" in fragment.content.decode()


# -- who may do what ---------------------------------------------------------------------------


def every_url(question: Message, draft: OutgoingMessage) -> tuple[list, list]:
    """(GET pages, POST actions) of answering."""
    box = question.mailbox_id
    attachment = draft.attachments.first()
    gets = [url(draft), reverse("drafts", args=[box])]
    posts = [
        (start_url(question), {}),
        (start_url(question, "forward"), {}),
        (reverse("new_message", args=[box]), {}),
        (url(draft, "save_draft"), fields(draft, text="changed")),
        (url(draft, "send"), fields(draft, text="changed")),
        (url(draft, "discard_outgoing"), {}),
        (url(draft, "undo_send"), {}),
        (url(draft, "retry_send"), {}),
        (url(draft, "edit_failed"), {}),
        (url(draft, "upload_attachments"), {"files": [SimpleUploadedFile("x.txt", b"x")]}),
        (reverse("remove_attachment", args=[box, draft.pk, attachment.pk]), {}),
    ]
    return gets, posts


@pytest.fixture
def bobs_draft(question, bob) -> OutgoingMessage:
    draft = compose.start(bob, question.mailbox, Kind.REPLY, question)
    draft.attachments.create(content=b"x", filename="x.txt", size=1)
    return draft


def test_an_outsider_gets_404_everywhere_and_changes_nothing(client, question, bobs_draft, charlie):
    client.force_login(charlie)
    before = everything()
    gets, posts = every_url(question, bobs_draft)
    for path in gets:
        assert client.get(path).status_code == 404, path
    for path, data in posts:
        assert client.post(path, data).status_code == 404, path
    assert everything() == before
    assert question.mailbox.smtp.received == []


def test_a_viewer_gets_403_and_sees_no_reply_buttons(client, question, bobs_draft, vera):
    client.force_login(vera)
    before = everything()
    reader = client.get(question.get_absolute_url()).content.decode()
    assert start_url(question) not in reader
    conversation_url = reverse("conversation", args=[question.mailbox_id, question.conversation_id])
    assert start_url(question) not in client.get(conversation_url).content.decode()
    gets, posts = every_url(question, bobs_draft)
    for path in gets:
        assert client.get(path).status_code == 403, path
    for path, data in posts:
        assert client.post(path, data, **HTMX).status_code == 403, path
    assert everything() == before


def test_only_its_author_edits_a_draft(client, question, bobs_draft, alice):
    client.force_login(alice)  # even a manager
    before = everything()
    assert client.get(url(bobs_draft)).status_code == 403
    attachment = bobs_draft.attachments.get()
    for path, data in [
        (url(bobs_draft, "save_draft"), fields(bobs_draft, text="mine now")),
        (url(bobs_draft, "send"), fields(bobs_draft)),
        (url(bobs_draft, "discard_outgoing"), {}),
        (url(bobs_draft, "edit_failed"), {}),
        (url(bobs_draft, "upload_attachments"), {"files": [SimpleUploadedFile("y", b"y")]}),
        (
            reverse("remove_attachment", args=[question.mailbox_id, bobs_draft.pk, attachment.pk]),
            {},
        ),
    ]:
        assert client.post(path, data, **HTMX).status_code == 403, path
    assert everything() == before
    conversation_url = reverse("conversation", args=[question.mailbox_id, question.conversation_id])
    html = client.get(conversation_url).content.decode()
    assert "bob has a draft reply here." in html and url(bobs_draft) not in html


def test_an_agent_cannot_decide_about_a_teammates_stuck_message(
    client, question, bobs_draft, alice
):
    from django.contrib.auth import get_user_model

    from webmail.models import Membership, Role

    dana = get_user_model().objects.create_user("dana", "dana@example.com", "dana-pass-1")
    Membership.objects.create(user=dana, mailbox=question.mailbox, role=Role.AGENT)
    OutgoingMessage.objects.filter(pk=bobs_draft.pk).update(state=State.FAILED, last_error="550")
    client.force_login(dana)
    assert client.post(url(bobs_draft, "retry_send"), **HTMX).status_code == 403
    assert client.post(url(bobs_draft, "discard_outgoing"), **HTMX).status_code == 403
    conversation_url = reverse("conversation", args=[question.mailbox_id, question.conversation_id])
    html = client.get(conversation_url).content.decode()
    assert "Not sent" in html and url(bobs_draft, "retry_send") not in html


def test_csrf_is_enforced(question, bobs_draft, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    before = everything()
    _, posts = every_url(question, bobs_draft)
    for path, data in posts:
        assert client.post(path, data).status_code == 403, path
    assert everything() == before


def test_get_changes_nothing(client, question, bobs_draft, bob):
    client.force_login(bob)
    before = everything()
    _, posts = every_url(question, bobs_draft)
    for path, _ in posts:
        assert client.get(path).status_code == 405, path
    assert client.get(url(bobs_draft)).status_code == 200
    assert everything() == before
    assert not Note.objects.exists() and Conversation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_compose_page_s_stream_says_replying(mailbox, bob):
    from asgiref.sync import sync_to_async

    from tests.web.test_events import open_stream, read_until, run
    from webmail.models import Folder

    folder, _ = Folder.objects.get_or_create(
        mailbox=mailbox, name="INBOX", defaults={"display_name": "Inbox", "label": "Inbox"}
    )
    message = Message.objects.create(
        mailbox=mailbox, folder=folder, uid=1, stable_id="x", internal_date=timezone.now()
    )

    async def test():
        response = await open_stream(bob, mailbox, viewing=str(message.pk), activity="replying")
        reading = asyncio.create_task(read_until(aiter(response.streaming_content), "never", 30))
        for _ in range(100):
            row = await sync_to_async(Presence.objects.filter(user=bob).first)()
            if row is not None:
                break
            await asyncio.sleep(0.05)
        assert row is not None and row.activity == Presence.Activity.REPLYING
        assert row.message_id == message.pk
        reading.cancel()

    run(test)
    # Anything else is "viewing".
    assert Presence.Activity.values == ["viewing", "replying"]


def test_news_in_words(question, alice, bob):
    reply = compose.start(bob, question.mailbox, Kind.REPLY, question)
    seen = compose_views._seen_marker(reply)
    assert compose_views.news_since(reply, seen, bob) == ""
    assert compose_views.news_since(reply, "garbage", bob) == ""
    team.add_note(alice, question.conversation, "one")
    team.add_note(alice, question.conversation, "two")
    assert compose_views.news_since(reply, seen, bob) == (
        "alice added notes since you started — send anyway?"
    )
    Note.objects.all().delete()
    Message.objects.filter(pk=question.pk).update(
        internal_date=timezone.now() + dt.timedelta(minutes=5)
    )
    assert compose_views.news_since(reply, seen, bob) == (
        "A new message arrived since you started — send anyway?"
    )
