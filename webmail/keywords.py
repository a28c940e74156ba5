"""Assignment and status mirrored to the IMAP server as keywords, and read back (DESIGN §6).

A teammate in Thunderbird, or a server-side filter, sees "$KotakClosed" and "$KotakAssigned_ana"
on the messages of a conversation. The keywords go through the same durable pending changes
as any flag, so they reach the server even if it is down at the moment of the change.

Rules:

- Only conversations a person has worked are mirrored: assigned, or with a status other than
  open. An open, unassigned conversation (what every conversation is when its first mail
  arrives) carries no Kotak keyword, and one that returns to that state has them removed. So
  the initial sync of 100k messages stores nothing on the server, and a message without
  Kotak keywords says nothing about its conversation.
- Every message of a mirrored conversation carries its keywords, a reply that joins it later
  too (queued when the sync stores the reply), in every folder.
- Read-back: a Kotak keyword that another client added or removed (the sync sees the server's
  keywords differ from what Kotak last knew, and Kotak has no keyword change of its own queued
  for that message) changes the conversation, with an audit line whose actor is nobody and
  whose data says `"source": "imap"`; then the conversation's other messages are made to agree.
  A message that arrives already carrying Kotak keywords (a mailbox worked by an earlier Kotak
  install) restores its conversation's state the same way; a message without any says nothing.
- What a message says: a single status keyword is its status; with several, the one just added
  wins; all removed means open. Assignment likewise; all removed means unassigned. An assignee
  keyword naming nobody who can be assigned in this mailbox is ignored (and logged).
- When messages of one conversation disagree, the most recently changed one wins: the highest
  MODSEQ where the server has CONDSTORE, else the highest UID. Both are per folder, so across
  folders the one synced last wins.
- Nothing is echoed: the server's keywords then equal what Kotak stored, so the next sync sees
  no difference. With `Mailbox.mirror_keywords` off, Kotak neither writes nor reads keywords;
  turning it on queues, in a background task, what was worked meanwhile (`mirror_mailbox`).
- A server that does not keep keywords (PERMANENTFLAGS without `\\*`, or a refused STORE) turns
  the mirror off for the mailbox, with one "keywords_off" audit line saying why, instead of
  failing every change (see `turn_off`).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from webmail import live
from webmail.models import Activity, Conversation, Mailbox, Message, PendingChange

log = logging.getLogger(__name__)

Action = PendingChange.Action
Status = Conversation.Status

PREFIX = "$Kotak"
STATUS_KEYWORDS = {
    Status.OPEN: "$KotakOpen",
    Status.PENDING: "$KotakPending",
    Status.CLOSED: "$KotakClosed",
}
# Compared case-insensitively: Thunderbird lower-cases the keys of the tags it makes.
_STATUS_OF = {keyword.lower(): status for status, keyword in STATUS_KEYWORDS.items()}
ASSIGNED = "$KotakAssigned_"
# RFC 3501 atoms: no space, control, ( ) { % * " \ ] — and keep to ASCII for every server.
_NOT_ATOM = re.compile(r"[^A-Za-z0-9._+@-]")


def assignee_keyword(username: str) -> str:
    return (ASSIGNED + _NOT_ATOM.sub("_", username))[:64]


def is_kotak_keyword(keyword: str) -> bool:
    return keyword.lower().startswith(PREFIX.lower())


def kotak_keywords(keywords: Iterable[str]) -> set[str]:
    return {k for k in keywords if is_kotak_keyword(k)}


def is_mirrored(conversation: Conversation) -> bool:
    """Whether a person has worked the conversation, so its messages carry keywords."""
    return conversation.status != Status.OPEN or conversation.assignee_id is not None


def desired_keywords(conversation: Conversation) -> set[str]:
    if not is_mirrored(conversation):
        return set()
    wanted = {STATUS_KEYWORDS[conversation.status]}
    if conversation.assignee_id:
        wanted.add(assignee_keyword(conversation.assignee.get_username()))
    return wanted


# -- writing ----------------------------------------------------------------------------------


def queue_mirror(conversation: Conversation, message_ids: Iterable[int] | None = None) -> int:
    """Queue the keyword changes that make the conversation's messages show its state.

    Only the given messages when `message_ids` is passed (new mail in a window of the sync).
    Returns how many messages will change. Does nothing where the mailbox turned it off.
    """
    return mirror_conversations([conversation], message_ids)


def mirror_conversations(
    conversations: Iterable[Conversation], message_ids: Iterable[int] | None = None
) -> int:
    """queue_mirror for conversations of one mailbox at once: one query for their assignees
    (those not loaded yet), one for their messages, one transaction and one write-back queued,
    however many there are."""
    conversations = list(conversations)
    if not conversations:
        return 0
    mailbox_id = conversations[0].mailbox_id
    if not Mailbox.objects.filter(pk=mailbox_id, mirror_keywords=True).exists():
        return 0
    prefetch_related_objects(conversations, "assignee")
    wanted = {conversation.pk: desired_keywords(conversation) for conversation in conversations}
    batch = uuid.uuid4().hex
    changes, updates = [], []
    messages = Message.objects.filter(
        conversation_id__in=list(wanted), uid__gt=0, pending_removal=False
    ).select_related("folder")
    if message_ids is not None:
        messages = messages.filter(pk__in=list(message_ids))
    for message in messages:
        keywords = wanted[message.conversation_id]
        keywords_lower = {k.lower() for k in keywords}
        have = kotak_keywords(message.keywords)
        have_lower = {k.lower() for k in have}
        add = sorted(k for k in keywords if k.lower() not in have_lower)
        remove = sorted(k for k in have if k.lower() not in keywords_lower)
        for action, flags in ((Action.ADD_FLAGS, add), (Action.REMOVE_FLAGS, remove)):
            if flags:
                changes.append(
                    PendingChange(
                        mailbox_id=message.mailbox_id,
                        folder_id=message.folder_id,
                        message=message,
                        action=action,
                        payload={
                            "flags": flags,
                            "modseq": message.modseq or message.folder.highestmodseq,
                            "keywords": True,
                        },
                        batch=batch,
                    )
                )
        if add or remove:
            message.keywords = sorted((set(message.keywords) - set(remove)) | set(add))
            updates.append(message)
    if not changes:
        return 0
    with transaction.atomic():
        PendingChange.objects.bulk_create(changes)
        Message.objects.bulk_update(updates, ["keywords"], batch_size=500)

        def queue() -> None:
            from webmail.sync.tasks import enqueue_writeback

            enqueue_writeback(mailbox_id)

        transaction.on_commit(queue)
    return len(updates)


def mirror_mailbox(mailbox: Mailbox, batch: int = 500) -> int:
    """Make every message's Kotak keywords say what its conversation says, as when the mirror
    is turned on: worked conversations get theirs, and keywords left from an earlier time the
    mirror was on go where the conversation has changed since. Returns the messages queued."""
    worked = set(
        Conversation.objects.filter(mailbox=mailbox)
        .exclude(status=Status.OPEN, assignee__isnull=True)
        .values_list("pk", flat=True)
    )
    stale = {
        conversation_id
        for conversation_id, keywords in Message.objects.filter(
            mailbox=mailbox, conversation__isnull=False
        )
        .exclude(keywords=[])
        .values_list("conversation_id", "keywords")
        .iterator(chunk_size=5000)
        if kotak_keywords(keywords)
    }
    ids = sorted(worked | stale)
    queued = 0
    for start in range(0, len(ids), batch):
        conversations = Conversation.objects.filter(pk__in=ids[start : start + batch])
        queued += mirror_conversations(list(conversations.select_related("assignee")))
    return queued


def arrived(
    mailbox: Mailbox,
    new_rows: list[dict],
    message_ids: list[int],
    conversation_ids: Iterable[int] | None = None,
) -> None:
    """Messages the sync just stored (one window, in its transaction): Kotak keywords they
    arrived with restore their conversations' state (an earlier install's work, a move by
    another client), then they get their conversations' keywords where those are worked (a
    reply joining an assigned conversation; rows renumbered by a UIDVALIDITY reset).

    `conversation_ids`, when the caller knows them: the conversations these messages joined
    that existed before (one the window created is worked only if read back here)."""
    restored = read_back(mailbox, arrival_signals(new_rows), notify=False)
    if conversation_ids is not None:
        conversation_ids = {*conversation_ids, *restored}
    mirror_arrivals(mailbox, message_ids, conversation_ids)


def mirror_arrivals(
    mailbox: Mailbox, message_ids: list[int], conversation_ids: Iterable[int] | None = None
) -> int:
    """Queue the conversation's keywords for these messages; conversations nobody has worked
    are skipped with one or two queries."""
    if not message_ids or not mailbox.mirror_keywords:
        return 0
    if conversation_ids is None:
        conversation_ids = Message.objects.filter(
            pk__in=message_ids, conversation__isnull=False
        ).values_list("conversation_id", flat=True)
    conversation_ids = set(conversation_ids)
    if not conversation_ids:
        return 0
    worked = (
        Conversation.objects.filter(pk__in=conversation_ids)
        .exclude(status=Status.OPEN, assignee__isnull=True)
        .select_related("assignee")
    )
    return mirror_conversations(list(worked), message_ids)


def turn_off(mailbox: Mailbox, reason: str, folder: str = "") -> bool:
    """The server does not keep keywords: stop mirroring for this mailbox, say so once in the
    audit trail, and drop the keyword changes still queued (putting the rows back as the
    server has them). Returns whether it was on."""
    with transaction.atomic():
        was_on = Mailbox.objects.filter(pk=mailbox.pk, mirror_keywords=True).update(
            mirror_keywords=False
        )
        mailbox.mirror_keywords = False
        drop_queued(mailbox)
        if was_on:
            Activity.objects.create(
                mailbox=mailbox,
                verb="keywords_off",
                data={"reason": reason[:300], "folder": folder},
            )
            live.record(mailbox.pk, "keywords_off", data={"reason": reason[:300]})
    if was_on:
        log.warning("mailbox %s: keyword mirror turned off: %s", mailbox.pk, reason)
    return bool(was_on)


def drop_queued(mailbox: Mailbox, changes: Iterable[PendingChange] | None = None) -> int:
    """Forget queued keyword changes (all of the mailbox's, or those given) and take their
    effect off the local rows, newest first, so the rows say what the server has."""
    queued = PendingChange.objects.filter(
        mailbox=mailbox, action__in=(Action.ADD_FLAGS, Action.REMOVE_FLAGS)
    ).filter(payload__keywords=True)
    if changes is not None:
        # Those still there: turn_off may have dropped them already.
        queued = queued.filter(pk__in=[c.pk for c in changes])
    changes = list(queued.order_by("-pk"))
    if not changes:
        return 0
    messages = {
        m.pk: m
        for m in Message.objects.filter(pk__in=[c.message_id for c in changes if c.message_id])
    }
    for change in changes:
        message = messages.get(change.message_id)
        if message is None:
            continue
        flags = set(change.payload.get("flags", []))
        if change.action == Action.ADD_FLAGS:
            message.keywords = sorted(set(message.keywords) - flags)
        else:
            message.keywords = sorted(set(message.keywords) | flags)
    with transaction.atomic():
        Message.objects.bulk_update(list(messages.values()), ["keywords"], batch_size=500)
        PendingChange.objects.filter(pk__in=[c.pk for c in changes]).delete()
    return len(changes)


# -- reading back -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """A message whose Kotak keywords changed on the server (or arrived with some)."""

    conversation_id: int
    uid: int
    modseq: int | None
    before: frozenset[str]  # what Kotak knew the message had; empty for a new message
    after: frozenset[str]


def signal(
    conversation_id: int | None,
    uid: int,
    modseq: int | None,
    before: Iterable[str],
    after: Iterable[str],
) -> Signal | None:
    """A Signal if the message's Kotak keywords differ from what Kotak knew, else None."""
    old, new = frozenset(kotak_keywords(before)), frozenset(kotak_keywords(after))
    if conversation_id is None or {k.lower() for k in old} == {k.lower() for k in new}:
        return None
    return Signal(conversation_id, uid, modseq, old, new)


def arrival_signals(rows: Iterable[dict]) -> list[Signal]:
    """Signals from messages the sync is storing for the first time (dicts of field values)."""
    found = (
        signal(row.get("conversation_id"), row["uid"], row.get("modseq"), (), row["keywords"])
        for row in rows
        if row.get("keywords")
    )
    return [s for s in found if s is not None]


def implied_state(before: Iterable[str], after: Iterable[str]) -> tuple[str | None, str | None]:
    """(status, assignee keyword) that a change of a message's keywords says; None where it
    says nothing or is ambiguous. The assignee keyword is "" for "unassigned"."""
    old = {k.lower() for k in before}
    new = {k.lower() for k in after}
    status = _pick({k for k in new if k in _STATUS_OF}, {k for k in old if k in _STATUS_OF})
    prefix = ASSIGNED.lower()
    assignee = _pick(
        {k for k in new if k.startswith(prefix)}, {k for k in old if k.startswith(prefix)}
    )
    return (_STATUS_OF.get(status, Status.OPEN) if status is not None else None), assignee


def _pick(now: set[str], then: set[str]) -> str | None:
    if len(now) == 1:
        return next(iter(now))
    added = now - then
    if len(added) == 1:
        return next(iter(added))  # a client that adds "Closed" without removing "Open"
    if not now and then:
        return ""  # all removed: back to the default
    return None


def read_back(mailbox: Mailbox, signals: list[Signal], *, notify: bool) -> list[int]:
    """Apply what other clients did to Kotak keywords to the conversations; returns the ids of
    the conversations changed. Runs inside the sync's transaction.

    `notify`: tell a newly assigned person (not when restoring an earlier install's state)."""
    if not signals:
        return []
    if not Mailbox.objects.filter(pk=mailbox.pk, mirror_keywords=True).exists():
        return []  # read fresh: the writer may have turned it off since the sync started
    by_conversation: dict[int, list[Signal]] = defaultdict(list)
    for s in signals:
        by_conversation[s.conversation_id].append(s)
    people = _assignable(mailbox)
    changed = []
    conversations = Conversation.objects.filter(
        pk__in=list(by_conversation), mailbox=mailbox
    ).select_related("assignee")
    for conversation in conversations:
        winner = _latest(by_conversation[conversation.pk])
        status, assignee_key = implied_state(winner.before, winner.after)
        did = False
        if status is not None and status != conversation.status:
            _set_status(conversation, status)
            did = True
        if assignee_key is not None:
            if assignee_key == "":
                assignee = None
            elif assignee_key in people:
                assignee = people[assignee_key]
            else:
                log.info(
                    "mailbox %s conversation %s: ignoring keyword %s: no such assignable user",
                    mailbox.pk,
                    conversation.pk,
                    assignee_key,
                )
                assignee = conversation.assignee
            if (assignee.pk if assignee else None) != conversation.assignee_id:
                _set_assignee(conversation, assignee, notify)
                did = True
        if did:
            changed.append(conversation)
    # The other messages of each conversation follow the one that was changed.
    mirror_conversations(changed)
    return [c.pk for c in changed]


def _latest(signals: list[Signal]) -> Signal:
    if all(s.modseq for s in signals):
        return max(signals, key=lambda s: (s.modseq, s.uid))
    return max(signals, key=lambda s: s.uid)


def _assignable(mailbox: Mailbox) -> dict[str, object]:
    """Lower-cased assignee keyword → user, for the people who can be assigned here."""
    from webmail.team import members

    found: dict[str, object] = {}
    clashes = set()
    for user in members(mailbox):
        key = assignee_keyword(user.get_username()).lower()
        if key in found:
            clashes.add(key)  # two names that make the same keyword: neither is certain
        found[key] = user
    return {k: v for k, v in found.items() if k not in clashes}


def _set_status(conversation: Conversation, status: str) -> None:
    from webmail.team import _audit, _changed, _set_state

    before = _set_state(conversation, status, None, timezone.now())
    _audit(None, conversation, "status", {"from": before, "to": status, "source": "imap"})
    _changed(conversation)


def _set_assignee(conversation: Conversation, assignee, notify: bool) -> None:
    from webmail.team import _audit, _changed, _notify, display_name

    previous = conversation.assignee
    conversation.assignee = assignee
    conversation.last_activity_at = timezone.now()
    conversation.save(update_fields=["assignee", "last_activity_at"])
    if assignee is None:
        data = {"from": display_name(previous), "source": "imap"}
        _audit(None, conversation, "unassigned", data)
    else:
        data = {
            "to": assignee.pk,
            "name": display_name(assignee),
            "from": display_name(previous) if previous else "",
            "source": "imap",
        }
        _audit(None, conversation, "assigned", data)
        if notify:
            _notify(
                assignee,
                [conversation],
                "assigned",
                lambda c: (
                    f"“{c.subject or '(no subject)'}” was assigned to you in another mail program"
                ),
            )
    _changed(conversation)
