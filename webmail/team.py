"""What the team does to conversations: assign, take, change status, snooze, note, split and
merge. Each operation changes the conversation, writes the audit trail and the change log in
one transaction, and notifies whoever should know. Permissions are checked here too, so no
door (view, command, task) can skip them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from webmail import live
from webmail.models import (
    Activity,
    Conversation,
    Mailbox,
    Membership,
    Message,
    Note,
    Notification,
    Role,
    ThreadRef,
)

log = logging.getLogger(__name__)

Status = Conversation.Status
MENTION = re.compile(r"(?<![\w@])@([\w.+-]+)")
# Notifications that also go out by email when NOTIFY_BY_EMAIL is on.
EMAILED_KINDS = {"assigned", "mention"}


class TeamError(Exception):
    """A request that cannot be done as asked; the text says why, for the user."""


# -- permissions ------------------------------------------------------------------------------


def role_of(user, mailbox: Mailbox) -> str | None:
    return mailbox.role_of(user)


def require(user, mailbox: Mailbox, *roles: str) -> str:
    role = role_of(user, mailbox)
    if role not in roles:
        raise PermissionDenied("Your role in this mailbox does not allow that.")
    return role


def _one_mailbox(conversations: list[Conversation]) -> Mailbox:
    """The mailbox all these conversations are in; a mix is refused, so that a permission
    checked on one mailbox can never cover another's conversations."""
    mailboxes = {c.mailbox_id for c in conversations}
    if len(mailboxes) != 1:
        raise TeamError("Act on the conversations of one mailbox at a time.")
    return conversations[0].mailbox


def members(mailbox: Mailbox, roles: Iterable[str] = (Role.MANAGER, Role.AGENT)):
    """Users who can be assigned (managers and agents) — viewers cannot work conversations."""
    return (
        get_user_model()
        .objects.filter(memberships__mailbox=mailbox, memberships__role__in=list(roles))
        .order_by("first_name", "username")
        .distinct()
    )


# -- assignment -------------------------------------------------------------------------------


def assign(user, conversations: Iterable[Conversation], assignee) -> int:
    """Managers assign, reassign and unassign (assignee None), one or many at once."""
    conversations = list(conversations)
    if not conversations:
        return 0
    mailbox = _one_mailbox(conversations)
    require(user, mailbox, Role.MANAGER)
    if assignee is not None and not members(mailbox).filter(pk=assignee.pk).exists():
        raise TeamError(f"{display_name(assignee)} is not an agent or manager of this mailbox.")
    return _set_assignee(user, conversations, assignee)


def take(user, conversation: Conversation) -> None:
    """An agent takes an unassigned conversation for themselves."""
    require(user, conversation.mailbox, Role.MANAGER, Role.AGENT)
    with transaction.atomic():
        taken = Conversation.objects.filter(pk=conversation.pk, assignee__isnull=True).update(
            assignee=user, last_activity_at=timezone.now()
        )
        if not taken:
            conversation.refresh_from_db()
            raise TeamError(f"Already assigned to {display_name(conversation.assignee)}.")
        conversation.assignee = user
        _audit(user, conversation, "assigned", {"to": user.pk, "name": display_name(user)})
        _changed(conversation)
    mirror_keywords(conversation)


def _set_assignee(user, conversations: list[Conversation], assignee) -> int:
    changed = [c for c in conversations if c.assignee_id != (assignee.pk if assignee else None)]
    if not changed:
        return 0
    now = timezone.now()
    with transaction.atomic():
        Conversation.objects.filter(pk__in=[c.pk for c in changed]).update(
            assignee=assignee, last_activity_at=now
        )
        for conversation in changed:
            previous = conversation.assignee
            conversation.assignee = assignee
            if assignee is None:
                _audit(user, conversation, "unassigned", {"from": display_name(previous)})
            else:
                _audit(
                    user,
                    conversation,
                    "assigned",
                    {
                        "to": assignee.pk,
                        "name": display_name(assignee),
                        "from": display_name(previous) if previous else "",
                    },
                )
            _changed(conversation)
        if assignee is not None and assignee != user:
            _notify(
                assignee,
                changed,
                "assigned",
                lambda c: f"{display_name(user)} assigned you “{c.subject or '(no subject)'}”",
            )
    mirror_keywords(*changed)
    return len(changed)


# -- status and snooze ------------------------------------------------------------------------


def set_status(user, conversations: Iterable[Conversation], status: str) -> int:
    conversations = list(conversations)
    if not conversations:
        return 0
    if status not in Status.values:
        raise TeamError(f"Unknown status “{status}”.")
    require(user, _one_mailbox(conversations), Role.MANAGER, Role.AGENT)
    changed = [c for c in conversations if c.status != status or c.snoozed_until]
    now = timezone.now()
    with transaction.atomic():
        for conversation in changed:
            before = _set_state(conversation, status, None, now)
            _audit(user, conversation, "status", {"from": before, "to": status})
            _changed(conversation)
    mirror_keywords(*changed)
    return len(changed)


def snooze(user, conversations: Iterable[Conversation], until: datetime) -> int:
    """Out of the way until `until`; beat's `wake_snoozed` reopens it then."""
    conversations = list(conversations)
    if not conversations:
        return 0
    if until <= timezone.now():
        raise TeamError("Snooze until a time in the future.")
    require(user, _one_mailbox(conversations), Role.MANAGER, Role.AGENT)
    now = timezone.now()
    with transaction.atomic():
        for conversation in conversations:
            before = _set_state(conversation, Status.PENDING, until, now)
            _audit(user, conversation, "snoozed", {"from": before, "until": until.isoformat()})
            _changed(conversation)
    mirror_keywords(*conversations)
    return len(conversations)


def _set_state(conversation: Conversation, status: str, snoozed_until, now) -> str:
    """Write a new status (and snooze) with its clocks; returns the status it had."""
    before = conversation.status
    conversation.status = status
    conversation.status_changed_at = now
    conversation.snoozed_until = snoozed_until
    conversation.last_activity_at = now
    conversation.save(
        update_fields=["status", "status_changed_at", "snoozed_until", "last_activity_at"]
    )
    return before


def wake_snoozed(now: datetime | None = None) -> int:
    """Reopen every conversation whose snooze is over (beat runs this every minute)."""
    now = now or timezone.now()
    woken = 0
    for conversation in Conversation.objects.filter(snoozed_until__lte=now).select_related(
        "mailbox"
    ):
        with transaction.atomic():
            updated = Conversation.objects.filter(
                pk=conversation.pk, snoozed_until=conversation.snoozed_until
            ).update(
                status=Status.OPEN, snoozed_until=None, status_changed_at=now, last_activity_at=now
            )
            if not updated:
                continue  # changed by someone meanwhile
            conversation.status = Status.OPEN
            _audit(
                None,
                conversation,
                "woke",
                {"snoozed_until": conversation.snoozed_until.isoformat()},
            )
            _changed(conversation)
            if conversation.assignee_id:
                _notify(
                    conversation.assignee,
                    [conversation],
                    "snooze",
                    lambda c: f"Snooze is over: “{c.subject or '(no subject)'}”",
                )
        mirror_keywords(conversation)
        woken += 1
    return woken


def reopen_for_new_mail(conversation: Conversation) -> None:
    """A customer wrote again: a closed or pending conversation is open again (and unsnoozed).

    Runs inside the sync's transaction."""
    now = timezone.now()
    before = _set_state(conversation, Status.OPEN, None, now)
    _audit(None, conversation, "reopened", {"from": before, "reason": "new mail"})
    _changed(conversation)
    transaction.on_commit(lambda: mirror_keywords(conversation))


# -- notes ------------------------------------------------------------------------------------


def add_note(user, conversation: Conversation, body: str) -> Note:
    require(user, conversation.mailbox, Role.MANAGER, Role.AGENT)
    body = (body or "").strip()
    if not body:
        raise TeamError("A note needs some text.")
    mentioned = _mentions(conversation.mailbox, body, exclude=user)
    with transaction.atomic():
        note = Note.objects.create(
            mailbox=conversation.mailbox,
            conversation=conversation,
            author=user,
            body=body,
            mentions=[u.pk for u in mentioned],
        )
        Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=note.created_at)
        _audit(user, conversation, "noted", {"note": note.pk})
        for other in mentioned:
            _notify(
                other,
                [conversation],
                "mention",
                lambda c: _mention_text(user, c),
            )
        _changed(conversation, kind="note")
    return note


def edit_note(user, note: Note, body: str) -> Note:
    if note.author_id != user.pk:
        raise PermissionDenied("Only the author can edit a note.")
    body = (body or "").strip()
    if not body:
        raise TeamError("A note needs some text; delete it instead.")
    conversation = note.conversation
    before = set(note.mentions)
    mentioned = _mentions(conversation.mailbox, body, exclude=user)
    with transaction.atomic():
        note.body = body
        note.mentions = [u.pk for u in mentioned]
        note.edited_at = timezone.now()
        note.save(update_fields=["body", "mentions", "edited_at"])
        _audit(user, conversation, "note_edited", {"note": note.pk})
        for other in mentioned:
            if other.pk not in before:
                _notify(
                    other,
                    [conversation],
                    "mention",
                    lambda c: _mention_text(user, c),
                )
        _changed(conversation, kind="note")
    return note


def _mention_text(user, conversation: Conversation) -> str:
    return f"{display_name(user)} mentioned you on “{conversation.subject or '(no subject)'}”"


def delete_note(user, note: Note) -> None:
    if note.author_id != user.pk:
        raise PermissionDenied("Only the author can delete a note.")
    conversation = note.conversation
    with transaction.atomic():
        _audit(user, conversation, "note_deleted", {"excerpt": note.body[:80]})
        note.delete()
        _changed(conversation, kind="note")


def _mentions(mailbox: Mailbox, body: str, exclude=None) -> list:
    """Members named as @username in the text (viewers can be mentioned: they read too)."""
    names = {name.lower().rstrip(".") for name in MENTION.findall(body)}
    if not names:
        return []
    people = get_user_model().objects.filter(memberships__mailbox=mailbox).distinct()
    found = [u for u in people if u.get_username().lower() in names]
    return [u for u in found if exclude is None or u.pk != exclude.pk]


# -- split and merge --------------------------------------------------------------------------


def split(user, messages: Iterable[Message]) -> Conversation:
    """Messages that were grouped wrongly become a conversation of their own."""
    messages = list(messages)
    if not messages:
        raise TeamError("Choose the messages to split off.")
    source = messages[0].conversation
    if source is None or any(m.conversation_id != source.pk for m in messages):
        raise TeamError("Split messages of one conversation at a time.")
    require(user, source.mailbox, Role.MANAGER, Role.AGENT)
    if source.messages.count() == len(messages):
        raise TeamError("That is the whole conversation; nothing to split from.")
    from webmail.conversations import normalized_subject, refresh_last_message

    with transaction.atomic():
        newest = max(messages, key=lambda m: m.internal_date)
        target = Conversation.objects.create(
            mailbox=source.mailbox,
            subject=normalized_subject(newest.subject),
            last_message_at=newest.internal_date,
        )
        ids = [m.pk for m in messages]
        Message.objects.filter(pk__in=ids).update(conversation=target)
        # The split-off messages' own ids now lead to the new conversation.
        from webmail.conversations import ref_hash

        own = [ref_hash(m.message_id) for m in messages if m.message_id]
        ThreadRef.objects.filter(mailbox=source.mailbox, ref_hash__in=own).update(
            conversation=target
        )
        refresh_last_message([source.pk, target.pk])
        _audit(user, source, "split", {"messages": ids, "into": target.pk})
        _audit(user, target, "split_from", {"messages": ids, "from": source.pk})
        _changed(source)
        _changed(target)
    mirror_keywords(source, target)
    return target


def merge(user, target: Conversation, others: Iterable[Conversation]) -> int:
    """Fold other conversations (messages, notes, history) into target."""
    others = [c for c in others if c.pk != target.pk]
    if not others:
        return 0
    if any(c.mailbox_id != target.mailbox_id for c in others):
        raise TeamError("Only conversations of the same mailbox can be merged.")
    require(user, target.mailbox, Role.MANAGER, Role.AGENT)
    from webmail.conversations import refresh_last_message

    ids = [c.pk for c in others]
    with transaction.atomic():
        Message.objects.filter(conversation_id__in=ids).update(conversation=target)
        Note.objects.filter(conversation_id__in=ids).update(conversation=target)
        # Otherwise deleting the merged conversations would take their notifications along.
        Notification.objects.filter(conversation_id__in=ids).update(conversation=target)
        ThreadRef.objects.filter(conversation_id__in=ids).update(conversation=target)
        Activity.objects.filter(conversation_id__in=ids).update(conversation=target)
        if target.assignee_id is None:
            assignee = next((c.assignee_id for c in others if c.assignee_id), None)
            if assignee:
                Conversation.objects.filter(pk=target.pk).update(assignee_id=assignee)
        _audit(user, target, "merged", {"from": ids})
        for conversation in others:
            _changed(conversation)
        Conversation.objects.filter(pk__in=ids).delete()
        refresh_last_message([target.pk])
        _changed(target)
    target.refresh_from_db()
    mirror_keywords(target)
    return len(ids)


# -- helpers ----------------------------------------------------------------------------------


def display_name(user) -> str:
    if user is None:
        return "nobody"
    return user.get_full_name() or user.get_username()


def _audit(user, conversation: Conversation, verb: str, data: dict) -> Activity:
    return Activity.objects.create(
        mailbox_id=conversation.mailbox_id,
        conversation=conversation,
        actor=user,
        verb=verb,
        data=data,
    )


def _changed(conversation: Conversation, kind: str = "conversation") -> None:
    live.record(conversation.mailbox_id, kind, conversation_id=conversation.pk)


def _notify(user, conversations: list[Conversation], kind: str, text) -> None:
    created = [
        Notification.objects.create(
            user=user,
            mailbox_id=conversation.mailbox_id,
            conversation=conversation,
            kind=kind,
            text=text(conversation)[:300],
        )
        for conversation in conversations
    ]
    live.record(
        conversations[0].mailbox_id,
        "notification",
        data={"user": user.pk},
        conversation_id=conversations[0].pk,
    )
    if settings.NOTIFY_BY_EMAIL and kind in EMAILED_KINDS and user.email:
        transaction.on_commit(lambda: email_notifications(user, created))


def email_notifications(user, notifications: list[Notification]) -> None:
    """The same words as a plain-text email, with links; a mail failure only logs."""
    site = settings.SITE_URL.rstrip("/")
    lines = []
    for notification in notifications:
        lines.append(notification.text)
        if notification.conversation_id:
            path = reverse(
                "conversation", args=[notification.mailbox_id, notification.conversation_id]
            )
            lines.append(site + path)
        lines.append("")
    lines.append(f"All your notifications: {site}{reverse('notifications')}")
    first = notifications[0].text
    subject = first if len(notifications) == 1 else f"{first} (and {len(notifications) - 1} more)"
    try:
        send_mail(
            " ".join(subject.split())[:200],  # a header: one line
            "\n".join(lines),
            None,  # DEFAULT_FROM_EMAIL
            [user.email],
        )
    except Exception as exc:  # noqa: BLE001 — the notification is in Kotak either way
        log.warning("notification email to user %s failed: %s", user.pk, exc)


def mirror_keywords(*conversations: Conversation) -> None:
    """Queue the assignment and status of conversations of one mailbox as IMAP keywords, all
    in one pass (see webmail.keywords)."""
    from webmail.keywords import mirror_conversations

    mirror_conversations(conversations)


def is_member(user, mailbox: Mailbox) -> bool:
    return Membership.objects.filter(user=user, mailbox=mailbox).exists()
