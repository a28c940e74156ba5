"""Answering customers: what leaves over SMTP (a real aiosmtpd), what is filed on the real
Dovecot, and that nothing is lost or sent twice."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

import pytest
from django.utils import timezone

from tests.dovecot import make_message
from tests.helpers import server_state
from tests.sync.test_writeback import apply_now, uids_on_server
from webmail import compose, outbox, smtp
from webmail.imap.client import AuthenticationFailed, CertificateProblem, TLSFailed
from webmail.models import Conversation, OutgoingMessage, PendingChange
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

State = OutgoingMessage.State
Kind = OutgoingMessage.Kind


def customer_mail(mailbox, subject="Where is my order?", **kwargs):
    defaults = {
        "sender": "Carla Customer <carla@customer.example>",
        "to": f"Support <{mailbox.email}>",
        "message_id": "<q1@customer.example>",
        "body": "Hello,\nmy order 42 has not arrived.\n",
    }
    mailbox.account.append(make_message(subject, **(defaults | kwargs)))
    sync_mailbox(mailbox)
    return mailbox.messages.get(subject=subject)


def send_now(outgoing):
    outbox.queue(outgoing, delay=0)
    return outbox.send_due(outgoing.mailbox_id)


def test_a_reply_leaves_threaded_from_the_shared_address_and_is_filed(sending_mailbox, bob):
    mailbox = sending_mailbox
    mailbox.signature = "Acme Support · acme.example"
    mailbox.save()
    question = customer_mail(mailbox)

    reply = compose.start(bob, mailbox, Kind.REPLY, question)
    assert reply.to == [["Carla Customer", "carla@customer.example"]]
    assert reply.subject == "Re: Where is my order?"
    assert "> my order 42 has not arrived." in reply.text
    assert "-- \nAcme Support" in reply.text
    reply.text = "It left our warehouse today.\n" + reply.text
    reply.save()

    assert send_now(reply) == 1

    (received,) = mailbox.smtp.received
    sent = received.message
    assert received.rcpt_tos == ["carla@customer.example"]
    assert received.mail_from == mailbox.email
    assert sent["From"] == f"Support <{mailbox.email}>"
    assert sent["Subject"] == "Re: Where is my order?"
    assert sent["Message-ID"] == reply.message_id
    assert sent["In-Reply-To"] == "<q1@customer.example>"
    assert sent["References"] == "<q1@customer.example>"
    assert sent.get_content_type() == "text/plain"
    assert sent.get_content().startswith("It left our warehouse today.")
    reply.refresh_from_db()
    assert reply.state == State.SENT

    apply_now(mailbox)  # the Sent copy and \Answered reach the server
    assert "Re: Where is my order?" in uids_on_server(mailbox.account, "Sent").values()
    assert server_state(mailbox.account, "INBOX")[question.uid]["is_answered"]
    sync_mailbox(mailbox)
    filed = mailbox.messages.get(message_id=reply.message_id)
    assert filed.folder.special_use == "sent"
    assert filed.conversation_id == question.conversation_id
    conversation = Conversation.objects.get(pk=question.conversation_id)
    assert conversation.status == Conversation.Status.PENDING  # the mailbox's rule


def test_reply_all_keeps_the_others_but_not_our_own_address(sending_mailbox, bob):
    question = customer_mail(
        sending_mailbox,
        to=f"Support <{sending_mailbox.email}>, Dan <dan@customer.example>",
        extra_headers={"Cc": "Eve <eve@customer.example>"},
    )
    reply = compose.start(bob, sending_mailbox, Kind.REPLY_ALL, question)
    assert reply.to == [["Carla Customer", "carla@customer.example"]]
    assert reply.cc == [["Dan", "dan@customer.example"], ["Eve", "eve@customer.example"]]
    send_now(reply)
    (received,) = sending_mailbox.smtp.received
    assert sorted(received.rcpt_tos) == [
        "carla@customer.example",
        "dan@customer.example",
        "eve@customer.example",
    ]


def test_a_forward_carries_the_originals_attachments(sending_mailbox, alice):
    original = EmailMessage()
    original["From"] = "Supplier <sales@supplier.example>"
    original["To"] = sending_mailbox.email
    original["Subject"] = "Quote attached"
    original["Message-ID"] = "<quote@supplier.example>"
    original.set_content("See the attached quote.")
    pdf = bytes(range(256)) * 400
    original.add_attachment(pdf, maintype="application", subtype="pdf", filename="quote.pdf")
    sending_mailbox.account.append(original.as_bytes())
    sync_mailbox(sending_mailbox)
    source = sending_mailbox.messages.get(subject="Quote attached")
    from webmail.sync.bodies import load_body

    load_body(source)  # the structure is known once a message has been opened
    source.refresh_from_db()

    forward = compose.start(alice, sending_mailbox, Kind.FORWARD, source)
    assert forward.subject == "Fwd: Quote attached"
    assert "---------- Forwarded message ----------" in forward.text
    assert [a.filename for a in forward.attachments.all()] == ["quote.pdf"]
    forward.to = [["Finance", "finance@acme.example"]]
    forward.save()
    send_now(forward)

    sent = sending_mailbox.smtp.received[0].message
    (attachment,) = list(sent.iter_attachments())
    assert attachment.get_filename() == "quote.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf


def test_undo_in_the_window_stops_it(sending_mailbox, bob):
    question = customer_mail(sending_mailbox)
    reply = compose.start(bob, sending_mailbox, Kind.REPLY, question)
    outbox.queue(reply, delay=60)
    assert outbox.send_due() == 0  # still in the undo window
    assert outbox.undo(reply)
    reply.refresh_from_db()
    assert reply.state == State.DRAFT
    OutgoingMessage.objects.filter(pk=reply.pk).update(send_at=timezone.now())
    assert outbox.send_due() == 0
    assert sending_mailbox.smtp.received == []


def test_a_temporary_failure_is_retried_and_sent_once(sending_mailbox, bob):
    question = customer_mail(sending_mailbox)
    reply = compose.start(bob, sending_mailbox, Kind.REPLY, question)
    sending_mailbox.smtp.faults.fail_data = 1
    send_now(reply)
    reply.refresh_from_db()
    assert reply.state == State.QUEUED and reply.attempts == 1
    assert "451" in reply.last_error
    OutgoingMessage.objects.filter(pk=reply.pk).update(send_at=timezone.now())
    assert outbox.send_due() == 1
    assert len(sending_mailbox.smtp.received) == 1
    assert outbox.send_due() == 0
    assert len(sending_mailbox.smtp.received) == 1


def test_a_refused_recipient_fails_visibly_and_can_be_sent_again(sending_mailbox, bob):
    question = customer_mail(sending_mailbox)
    reply = compose.start(bob, sending_mailbox, Kind.REPLY, question)
    sending_mailbox.smtp.faults.refuse = {"carla@customer.example"}
    send_now(reply)
    reply.refresh_from_db()
    assert reply.state == State.FAILED
    assert "carla@customer.example" in reply.last_error and "550" in reply.last_error
    sending_mailbox.smtp.faults.refuse = set()
    send_now(reply)  # the retry button
    reply.refresh_from_db()
    assert reply.state == State.SENT
    assert len(sending_mailbox.smtp.received) == 1


def test_a_message_a_dead_worker_was_sending_is_never_sent_again_by_itself(sending_mailbox, bob):
    question = customer_mail(sending_mailbox)
    reply = compose.start(bob, sending_mailbox, Kind.REPLY, question)
    outbox.queue(reply, delay=0)
    # A worker claimed it, started the SMTP conversation and was killed: its lease runs out.
    OutgoingMessage.objects.filter(pk=reply.pk).update(
        state=State.SENDING,
        claimed_by="dead-worker",
        claimed_until=timezone.now() - timedelta(seconds=1),
    )
    assert outbox.send_due() == 0
    reply.refresh_from_db()
    assert reply.state == State.UNCERTAIN
    assert "may or may not have left" in reply.last_error
    assert sending_mailbox.smtp.received == []
    assert outbox.send_due() == 0  # and it stays that way until a person decides


def test_header_injection_and_bad_addresses_are_refused(sending_mailbox, bob):
    with pytest.raises(compose.ComposeError, match="line breaks"):
        compose.parse_addresses("a@example.org\r\nBcc: everyone@example.org")
    with pytest.raises(compose.ComposeError, match="is not .*an email address"):
        compose.parse_addresses("not an address@")
    with pytest.raises(compose.ComposeError, match="not a valid email address"):
        compose.parse_addresses("Ana <ana@no-dot>")
    with pytest.raises(compose.ComposeError):
        compose.parse_addresses("x@example.org\x00")
    question = customer_mail(sending_mailbox)
    reply = compose.start(bob, sending_mailbox, Kind.REPLY, question)
    reply.subject = "Hello\r\nBcc: victim@example.org"
    reply.save()
    with pytest.raises(compose.ComposeError, match="line breaks"):
        outbox.queue(reply)
    assert sending_mailbox.smtp.received == []


def test_a_draft_is_filed_in_drafts_replaced_on_each_save_and_removed_when_sent(
    sending_mailbox, bob, settings
):
    settings.DRAFT_FILE_DELAY = 0
    question = customer_mail(sending_mailbox)
    reply = compose.start(bob, sending_mailbox, Kind.REPLY, question)
    outbox.save_draft(reply, text="First version")
    apply_now(sending_mailbox)
    assert list(uids_on_server(sending_mailbox.account, "Drafts").values()) == [reply.subject]
    outbox.save_draft(reply, text="Second version")
    apply_now(sending_mailbox)
    drafts = uids_on_server(sending_mailbox.account, "Drafts")
    assert len(drafts) == 1  # replaced, not added
    reply.refresh_from_db()
    assert reply.draft_uid in drafts

    send_now(reply)
    apply_now(sending_mailbox)
    assert uids_on_server(sending_mailbox.account, "Drafts") == {}
    assert not PendingChange.objects.filter(state=PendingChange.State.PENDING).exists()


def test_smtp_settings_are_checked_with_a_specific_error(sending_mailbox, dovecot):
    good = smtp.settings_for(sending_mailbox)
    smtp.verify(good)
    with pytest.raises(AuthenticationFailed):
        smtp.verify(smtp.SmtpSettings(**{**good.__dict__, "password": "wrong"}))
    with pytest.raises(CertificateProblem):
        smtp.verify(smtp.SmtpSettings(**{**good.__dict__, "ca_certificates": ""}))


def test_starttls_chosen_means_starttls_required(dovecot):
    from tests.smtp_server import SmtpServer

    plain = SmtpServer(dovecot.ca_cert_path, dovecot.key_path, mode="plain").start()
    try:
        settings = smtp.SmtpSettings(
            host=plain.host,
            port=plain.port,
            security="starttls",
            username="kotak",
            password="smtp-secret",
            ca_certificates=dovecot.ca_cert_pem,
        )
        with pytest.raises(TLSFailed, match="does not offer STARTTLS"):
            smtp.verify(settings)
    finally:
        plain.stop()
