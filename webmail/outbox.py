"""The outbox: a message is queued (undoable for a few seconds), sent once, then filed.

States: draft → queued → sending → sent, or failed (with the server's reason and a retry), or
uncertain. A row is claimed into "sending" and committed before the SMTP conversation starts;
a worker that dies during it leaves the row in "sending", and the sweeper turns that into
"uncertain" rather than send again: the server may already have it, and a customer must
never get the same answer twice. A person decides (the screen says why).

After sending: the Sent copy is APPENDed (a durable pending change), the original gets
\\Answered, and the conversation's status follows the mailbox's rule.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webmail import actions, live, smtp
from webmail.compose import ComposeError, build, recipients
from webmail.imap.client import AuthenticationFailed, ConnectError
from webmail.models import (
    Activity,
    Conversation,
    Mailbox,
    OutgoingMessage,
    PendingChange,
    SpecialUse,
)

log = logging.getLogger(__name__)

State = OutgoingMessage.State
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 10


class OutboxError(Exception):
    """Cannot be done in this state; the text is for the user."""


def save_draft(outgoing: OutgoingMessage, **fields) -> OutgoingMessage:
    """Keep what was typed (autosave), and file it in Drafts a little later, replacing the
    version filed before, so the draft survives a closed browser and shows in other clients."""
    if outgoing.state != State.DRAFT:
        raise OutboxError("This message is no longer a draft.")
    now = timezone.now()
    with transaction.atomic():
        for name, value in fields.items():
            setattr(outgoing, name, value)
        outgoing.updated_at = now
        # Only what was typed: the writer keeps draft_uid up to date in the row meanwhile.
        outgoing.save(update_fields=[*fields, "updated_at"])
        drafts = outgoing.mailbox.folders.filter(special_use=SpecialUse.DRAFTS).first()
        already = PendingChange.objects.filter(
            action=PendingChange.Action.APPEND,
            state=PendingChange.State.PENDING,
            payload__outgoing=outgoing.pk,
            payload__draft=True,
        ).exists()
        if drafts is not None and not already:
            # Coalesced: one APPEND per few seconds of typing, with the latest text.
            PendingChange.objects.create(
                mailbox_id=outgoing.mailbox_id,
                folder=drafts,
                action=PendingChange.Action.APPEND,
                payload={"outgoing": outgoing.pk, "draft": True, "flags": ["\\Draft", "\\Seen"]},
                next_attempt_at=now + timedelta(seconds=settings.DRAFT_FILE_DELAY),
                created_by=outgoing.author,
            )

            def queue_writeback() -> None:
                from webmail.sync.tasks import enqueue_writeback

                enqueue_writeback(outgoing.mailbox_id, settings.DRAFT_FILE_DELAY + 0.5)

            transaction.on_commit(queue_writeback)
    return outgoing


def discard(outgoing: OutgoingMessage) -> None:
    """Throw a draft away, with its copy in Drafts."""
    if outgoing.state not in (State.DRAFT, State.FAILED, State.UNCERTAIN):
        raise OutboxError("This message is on its way and cannot be discarded now.")
    with transaction.atomic():
        if outgoing.draft_uid:
            _drop_draft_copy(outgoing)
        conversation_id = outgoing.conversation_id
        outgoing.delete()
        live.record(outgoing.mailbox_id, "outgoing", conversation_id=conversation_id)


def queue(outgoing: OutgoingMessage, delay: float | None = None) -> OutgoingMessage:
    """Send after the undo window. Checks that it can be sent at all first."""
    if outgoing.state not in (State.DRAFT, State.FAILED, State.UNCERTAIN):
        raise OutboxError("This message is already on its way.")
    if not recipients(outgoing):
        raise ComposeError("Add at least one recipient.")
    if not outgoing.mailbox.smtp_host:
        raise OutboxError("This mailbox has no SMTP server yet: a manager can add one.")
    build(outgoing, part_data=lambda section: b"")  # headers and addresses are sound
    delay = settings.SEND_UNDO_SECONDS if delay is None else delay
    now = timezone.now()
    with transaction.atomic():
        outgoing.state = State.QUEUED
        outgoing.send_at = now + timedelta(seconds=delay)
        outgoing.last_error = ""
        # A person sends (or retries): a fresh round of automatic retries.
        outgoing.attempts = 0
        outgoing.updated_at = now
        outgoing.save(update_fields=["state", "send_at", "last_error", "attempts", "updated_at"])
        _changed(outgoing)
        transaction.on_commit(lambda: _enqueue(outgoing.mailbox_id, delay + 0.5))
    return outgoing


def undo(outgoing: OutgoingMessage) -> bool:
    """Back to a draft, if no worker has started sending it."""
    with transaction.atomic():
        taken = OutgoingMessage.objects.filter(
            pk=outgoing.pk, state=State.QUEUED, claimed_by=""
        ).update(state=State.DRAFT, send_at=None, updated_at=timezone.now())
        if taken:
            outgoing.refresh_from_db()
            _changed(outgoing)
    return bool(taken)


def reopen(outgoing: OutgoingMessage) -> bool:
    """A refused message back to a draft, to correct and send again. Never one whose fate is
    unknown (uncertain): it may have left, and editing it would hide that."""
    with transaction.atomic():
        taken = OutgoingMessage.objects.filter(pk=outgoing.pk, state=State.FAILED).update(
            state=State.DRAFT, send_at=None, updated_at=timezone.now()
        )
        if taken:
            outgoing.refresh_from_db()
            _changed(outgoing)
    return bool(taken)


def send_due(mailbox_id: int | None = None) -> int:
    """Send every queued message whose undo window is over. Returns how many left."""
    mark_stale()
    sent = 0
    owner = uuid.uuid4().hex
    due = OutgoingMessage.objects.filter(state=State.QUEUED, send_at__lte=timezone.now())
    if mailbox_id is not None:
        due = due.filter(mailbox_id=mailbox_id)
    for pk in list(due.order_by("send_at").values_list("pk", flat=True)[:100]):
        now = timezone.now()
        claimed = OutgoingMessage.objects.filter(
            pk=pk, state=State.QUEUED, send_at__lte=now
        ).update(state=State.SENDING, claimed_by=owner, claimed_until=now + LEASE)
        if not claimed:
            continue  # another worker has it, or it was undone
        outgoing = OutgoingMessage.objects.select_related("mailbox", "source", "author").get(pk=pk)
        _changed(outgoing)
        if _send(outgoing):
            sent += 1
    return sent


def mark_stale() -> int:
    """Rows left in "sending" by a dead worker: maybe sent, maybe not — ask a person."""
    stale = list(
        OutgoingMessage.objects.filter(state=State.SENDING, claimed_until__lt=timezone.now())
    )
    for outgoing in stale:
        with transaction.atomic():
            updated = OutgoingMessage.objects.filter(pk=outgoing.pk, state=State.SENDING).update(
                state=State.UNCERTAIN,
                claimed_by="",
                last_error=(
                    "Sending was interrupted while the SMTP server had the message, so it may "
                    "or may not have left. Check Sent or with the recipient before sending again."
                ),
            )
            if updated:
                _changed(outgoing)
    return len(stale)


def _send(outgoing: OutgoingMessage) -> bool:
    mailbox = outgoing.mailbox
    try:
        message = build(outgoing, part_data=_part_reader(outgoing))
        smtp.send(smtp.settings_for(mailbox), message, mailbox.email, recipients(outgoing))
    except (smtp.Rejected, ComposeError, AuthenticationFailed) as exc:
        _fail(outgoing, str(exc))
        return False
    except (smtp.TryLater, ConnectError, OSError) as exc:
        _retry(outgoing, str(exc))
        return False
    _after_sending(outgoing)
    return True


def _after_sending(outgoing: OutgoingMessage) -> None:
    now = timezone.now()
    mailbox = outgoing.mailbox
    with transaction.atomic():
        OutgoingMessage.objects.filter(pk=outgoing.pk).update(
            state=State.SENT, sent_at=now, claimed_by="", claimed_until=None, last_error=""
        )
        outgoing.state, outgoing.sent_at = State.SENT, now
        sent_folder = mailbox.folders.filter(special_use=SpecialUse.SENT).first()
        if sent_folder is not None and not mailbox.server_saves_sent:
            PendingChange.objects.create(
                mailbox=mailbox,
                folder=sent_folder,
                action=PendingChange.Action.APPEND,
                payload={"outgoing": outgoing.pk, "flags": ["\\Seen"]},
                created_by=outgoing.author,
            )
        if outgoing.draft_uid:
            _drop_draft_copy(outgoing)
        if outgoing.source_id and outgoing.kind != OutgoingMessage.Kind.FORWARD:
            source = outgoing.source
            if source is not None and not source.is_answered and not source.pending_removal:
                actions.set_flag(outgoing.author, [source], "\\Answered", True)
        conversation = outgoing.conversation
        if conversation is not None:
            Activity.objects.create(
                mailbox=mailbox,
                conversation=conversation,
                actor=outgoing.author,
                verb="replied" if outgoing.kind != OutgoingMessage.Kind.FORWARD else "forwarded",
                data={"outgoing": outgoing.pk, "to": [a for _, a in outgoing.to][:10]},
            )
            rule = mailbox.status_after_reply
            if rule and conversation.status != rule:
                Conversation.objects.filter(pk=conversation.pk).update(
                    status=rule, status_changed_at=now, snoozed_until=None, last_activity_at=now
                )
                Activity.objects.create(
                    mailbox=mailbox,
                    conversation=conversation,
                    actor=outgoing.author,
                    verb="status",
                    data={"from": conversation.status, "to": rule, "reason": "replied"},
                )
                live.record(mailbox.pk, "conversation", conversation_id=conversation.pk)
        _changed(outgoing)

        def queue_writeback() -> None:
            from webmail.sync.tasks import enqueue_writeback

            enqueue_writeback(mailbox.pk)

        transaction.on_commit(queue_writeback)


def _drop_draft_copy(outgoing: OutgoingMessage) -> None:
    PendingChange.objects.create(
        mailbox=outgoing.mailbox,
        action=PendingChange.Action.EXPUNGE,
        payload={"folder_name": outgoing.draft_folder, "uid": outgoing.draft_uid, "draft": True},
        created_by=outgoing.author,
    )


def _fail(outgoing: OutgoingMessage, reason: str) -> None:
    with transaction.atomic():
        OutgoingMessage.objects.filter(pk=outgoing.pk).update(
            state=State.FAILED, claimed_by="", claimed_until=None, last_error=reason[:2000]
        )
        outgoing.state, outgoing.last_error = State.FAILED, reason
        _changed(outgoing)
    log.info("outgoing %s refused: %s", outgoing.pk, reason)


def _retry(outgoing: OutgoingMessage, reason: str) -> None:
    attempts = outgoing.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        _fail(outgoing, f"Gave up after {attempts} attempts: {reason}")
        return
    delay = min(settings.WRITEBACK_RETRY_MAX, 15 * 2**attempts)
    with transaction.atomic():
        OutgoingMessage.objects.filter(pk=outgoing.pk).update(
            state=State.QUEUED,
            attempts=attempts,
            send_at=timezone.now() + timedelta(seconds=delay),
            claimed_by="",
            claimed_until=None,
            last_error=reason[:2000],
        )
        _changed(outgoing)
    transaction.on_commit(lambda: _enqueue(outgoing.mailbox_id, delay + 0.5))


def _part_reader(outgoing: OutgoingMessage):
    """Fetch forwarded parts of the original over IMAP, decoded, only if there are any."""
    if not outgoing.attachments.exclude(source_section="").exists():
        return None
    source = outgoing.source
    if source is None:
        raise ComposeError("The forwarded message is gone; its attachments cannot be sent.")

    def read(section: str) -> bytes:
        from webmail.mail.body import decode_transfer
        from webmail.sync.connection import mailbox_connection

        part = next((p for p in source.bodystructure or [] if p.get("section") == section), None)
        if part is None:
            raise ComposeError("A forwarded attachment is no longer in the original.")
        limit = settings.COMPOSE_MAX_ATTACHMENT_MB * 1024 * 1024
        with mailbox_connection(source.mailbox, purpose="send", wait=30) as client:
            client.select_folder(source.folder.name, readonly=True)
            item = f"BODY.PEEK[{section}]<0.{limit}>"
            data = client.fetch([source.uid], [item]).get(source.uid, {})
        prefix = f"BODY[{section}]".encode()
        raw = next(
            (v for k, v in data.items() if isinstance(k, bytes) and k.startswith(prefix)), b""
        )
        return decode_transfer(raw or b"", part.get("encoding", ""))

    return read


def _enqueue(mailbox_id: int, countdown: float) -> None:
    from kombu.exceptions import OperationalError

    from webmail.sync.tasks import send_outgoing

    try:
        send_outgoing.apply_async((mailbox_id,), countdown=countdown)
    except OperationalError as exc:
        log.warning("could not queue sending for mailbox %s: %s", mailbox_id, exc)


def _changed(outgoing: OutgoingMessage) -> None:
    live.record(
        outgoing.mailbox_id,
        "outgoing",
        conversation_id=outgoing.conversation_id,
        data={"outgoing": outgoing.pk, "state": outgoing.state},
    )


def problems(mailbox: Mailbox):
    """Messages that need a person: refused, or maybe sent."""
    return mailbox.outgoing.filter(Q(state=State.FAILED) | Q(state=State.UNCERTAIN))
