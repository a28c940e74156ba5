"""Grouping messages into conversations (DESIGN §6).

References and In-Reply-To decide; a table of every Message-ID a conversation has seen
(ThreadRef) lets a message join its conversation whatever order the messages arrive in: a reply
synced before its original, a sibling reply, a reply kept in Sent. The subject, with a time
window, is used only for a message that names no other and whose subject says it is a reply.

Called by the sync for each window of new rows (dicts, before they are written), so a message
never exists without its conversation; a whole window costs a few statements, whatever its size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max

from webmail import db
from webmail.models import Conversation, Message, SpecialUse, ThreadRef

# Mail with a reply subject and no references joins a same-subject conversation this recent.
SUBJECT_WINDOW = timedelta(days=14)
_REPLY_PREFIX = re.compile(
    r"^\s*((re|fwd?|aw|wg|sv|vs|antw|tr|rif|r)(\s*\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_MSGID = re.compile(r"<[^<>\s]+>")
# Folders whose messages are the team's own: they never reopen a conversation.
OUTBOUND_FOLDERS = {SpecialUse.SENT, SpecialUse.DRAFTS}


def ref_hash(message_id: str) -> str:
    return hashlib.blake2b(message_id.strip().lower().encode(), digest_size=16).hexdigest()


def normalized_subject(subject: str) -> str:
    return _REPLY_PREFIX.sub("", subject or "").strip()[:998]


def is_reply_subject(subject: str) -> bool:
    return bool(_REPLY_PREFIX.match(subject or ""))


def message_refs(row: dict) -> list[str]:
    """The ids a message is known by or points at: its own first, then its ancestors.

    A message without a Message-ID is known by its stable identity instead, so that it finds
    its conversation again like any other: a copy in another folder, or the same message
    after a crash between committing its conversation and itself (FolderSync._store_windows).
    """
    refs = []
    if row.get("message_id"):
        refs.append(row["message_id"])
    elif row.get("stable_id"):
        refs.append(f"<{row['stable_id']}@stable-id.kotak.invalid>")
    refs += _MSGID.findall(row.get("in_reply_to") or "")
    refs += _MSGID.findall(row.get("references") or "")
    seen, ordered = set(), []
    for ref in refs:
        key = ref.lower()
        if key not in seen:
            seen.add(key)
            ordered.append(ref)
    return ordered[:100]  # a References header of thousands of ids is an attack, not a thread


class _Groups:
    """Union-find over the rows of one window: rows sharing an id are one conversation."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


@dataclass
class _NewConversation:
    indexes: list[int]
    subject: str
    last_message_at: datetime


def assign_conversations(mailbox_id: int, rows: list[dict], folder_role: str = "") -> list[int]:
    """Set conversation_id on each row that has none, creating conversations as needed.

    Returns the ids of existing conversations that new mail joined (their last_message_at is
    updated here, and closed or pending ones reopened by newer inbound mail).
    """
    pending = [row for row in rows if not row.get("conversation_id")]
    if not pending:
        return []
    refs = [[ref_hash(ref) for ref in message_refs(row)] for row in pending]
    known = dict(
        db.select_in(
            ThreadRef,
            ["ref_hash", "conversation_id"],
            {"mailbox_id": mailbox_id},
            "ref_hash",
            {h for hashes in refs for h in hashes},
        )
    )
    groups = _Groups(len(pending))
    first_with: dict[str, int] = {}
    for index, hashes in enumerate(refs):
        for h in hashes:
            if h in first_with:
                groups.union(first_with[h], index)
            else:
                first_with[h] = index

    members: dict[int, list[int]] = {}
    for index in range(len(pending)):
        members.setdefault(groups.find(index), []).append(index)

    joined: set[int] = set()
    new_conversations: list[_NewConversation] = []
    # New conversations of this window by subject, for replies in the same window.
    by_subject: dict[str, _NewConversation] = {}
    oldest_first = sorted(
        members.values(), key=lambda indexes: min(pending[i]["internal_date"] for i in indexes)
    )
    # Groups that name no known id and whose one message is a reply by its subject only.
    candidates = [
        indexes[0]
        for indexes in oldest_first
        if len(indexes) == 1 and not any(h in known for h in refs[indexes[0]])
        and _subject_candidate([pending[indexes[0]]])
    ]  # fmt: skip
    by_earlier_subject = dict(
        zip(candidates, _by_subject(mailbox_id, [pending[i] for i in candidates]), strict=True)
    )
    for indexes in oldest_first:
        # The oldest conversation among those the group's ids already belong to.
        found = sorted({known[h] for i in indexes for h in refs[i] if h in known})
        conversation_id = found[0] if found else None
        group = [pending[i] for i in indexes]
        if conversation_id is None and len(group) == 1:
            conversation_id = by_earlier_subject.get(indexes[0])
        if conversation_id is None and _subject_candidate(group):
            earlier = by_subject.get(normalized_subject(group[0]["subject"]))
            if earlier is not None and _within_window(earlier, group[0]["internal_date"]):
                earlier.indexes.extend(indexes)
                continue
        if conversation_id is None:
            newest = max(group, key=lambda r: r["internal_date"])
            new = _NewConversation(
                list(indexes),
                normalized_subject(newest.get("subject", "")),
                newest["internal_date"],
            )
            new_conversations.append(new)
            by_subject.setdefault(new.subject, new)
            continue
        joined.add(conversation_id)
        for i in indexes:
            pending[i]["conversation_id"] = conversation_id

    created = db.insert(
        Conversation,
        {
            "subject": [new.subject for new in new_conversations],
            "last_message_at": [new.last_message_at for new in new_conversations],
        },
        {"mailbox_id": mailbox_id},
    )
    for new, conversation_id in zip(new_conversations, created, strict=True):
        for i in new.indexes:
            pending[i]["conversation_id"] = conversation_id

    # Each id once (all rows naming it are in one group, so one conversation).
    new_refs: dict[str, int] = {}
    for row, hashes in zip(pending, refs, strict=True):
        for h in hashes:
            if h not in known:
                new_refs.setdefault(h, row["conversation_id"])
    db.insert_ignoring_conflicts(
        ThreadRef,
        {"ref_hash": list(new_refs), "conversation_id": list(new_refs.values())},
        {"mailbox_id": mailbox_id},
    )
    if joined:
        _touch(joined, [row for row in pending if row["conversation_id"] in joined], folder_role)
    return sorted(joined)


def _by_subject(mailbox_id: int, rows: list[dict]) -> list[int | None]:
    """Last resort, for replies that name no other message: for each row, the conversation
    with its subject whose last message is the latest within SUBJECT_WINDOW of it, if any.

    One query for a whole window (a query per message scanned the mailbox's conversations
    once each)."""
    subjects = [normalized_subject(row["subject"]) for row in rows]
    if not any(subjects):
        return [None] * len(rows)
    dates = [row["internal_date"] for row in rows]
    conversations: dict[str, list[tuple]] = {}
    for subject, last_message_at, pk in Conversation.objects.filter(
        mailbox_id=mailbox_id,
        subject__in={subject for subject in subjects if subject},
        last_message_at__gte=min(dates) - SUBJECT_WINDOW,
        last_message_at__lte=max(dates) + SUBJECT_WINDOW,
    ).values_list("subject", "last_message_at", "pk"):
        conversations.setdefault(subject, []).append((last_message_at, pk))
    found = []
    for subject, when in zip(subjects, dates, strict=True):
        near = [
            (last, pk)
            for last, pk in conversations.get(subject, ())
            if abs(last - when) <= SUBJECT_WINDOW
        ]
        found.append(max(near)[1] if near else None)
    return found


def _subject_candidate(rows: list[dict]) -> bool:
    """One message that names no other message and whose subject says it is a reply."""
    if len(rows) != 1:
        return False
    row = rows[0]
    return is_reply_subject(row.get("subject", "")) and not message_refs(row)[1:]


def _within_window(conversation: _NewConversation, when) -> bool:
    return abs(when - conversation.last_message_at) <= SUBJECT_WINDOW


def _touch(conversation_ids: Iterable[int], rows: list[dict], folder_role: str) -> None:
    """New mail in existing conversations: move their clocks on, and reopen for customers."""
    latest: dict[int, object] = {}
    for row in rows:
        cid = row["conversation_id"]
        if cid not in latest or row["internal_date"] > latest[cid]:
            latest[cid] = row["internal_date"]
    inbound = folder_role not in OUTBOUND_FOLDERS
    later: dict[int, object] = {}
    reopen = []
    for pk, last_message_at, status, status_changed_at in db.select_in(
        Conversation,
        ["id", "last_message_at", "status", "status_changed_at"],
        {},
        "id",
        conversation_ids,
    ):
        when = latest.get(pk)
        if when is None:
            continue
        if last_message_at is None or when > last_message_at:
            later[pk] = when
        if (
            inbound
            and status != Conversation.Status.OPEN
            # INTERNALDATE has whole seconds: mail in the same second as the close counts
            # as after it (reopening wrongly costs a click; not reopening loses a customer).
            and when > status_changed_at - timedelta(seconds=1)
        ):
            reopen.append(pk)
    db.update(Conversation, "last_message_at", later)
    if reopen:
        from webmail.team import reopen_for_new_mail

        for conversation in Conversation.objects.filter(pk__in=reopen):
            reopen_for_new_mail(conversation)


def refresh_last_message(conversation_ids: Iterable[int]) -> None:
    """last_message_at from the messages themselves (after a split, merge or removal)."""
    for cid, latest in (
        Message.objects.filter(conversation_id__in=list(conversation_ids))
        .values("conversation_id")
        .annotate(latest=Max("internal_date"))
        .values_list("conversation_id", "latest")
    ):
        Conversation.objects.filter(pk=cid).update(last_message_at=latest)
