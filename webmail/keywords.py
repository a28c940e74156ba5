"""Assignment and status mirrored to the IMAP server as keywords (DESIGN §6).

A teammate in Thunderbird, or a server-side filter, sees "$KotakOpen" and "$KotakAssigned_ana"
on the messages of a conversation. The keywords go through the same durable pending changes
as any flag, so they reach the server even if it is down at the moment of the change.
"""

from __future__ import annotations

import re
import uuid

from django.db import transaction

from webmail.models import Conversation, Message, PendingChange

PREFIX = "$Kotak"
STATUS_KEYWORDS = {
    Conversation.Status.OPEN: "$KotakOpen",
    Conversation.Status.PENDING: "$KotakPending",
    Conversation.Status.CLOSED: "$KotakClosed",
}
ASSIGNED = "$KotakAssigned_"
# RFC 3501 atoms: no space, control, ( ) { % * " \ ] — and keep to ASCII for every server.
_NOT_ATOM = re.compile(r"[^A-Za-z0-9._+@-]")


def assignee_keyword(username: str) -> str:
    return (ASSIGNED + _NOT_ATOM.sub("_", username))[:64]


def is_kotak_keyword(keyword: str) -> bool:
    return keyword.startswith(PREFIX)


def desired_keywords(conversation: Conversation) -> set[str]:
    wanted = {STATUS_KEYWORDS[conversation.status]}
    if conversation.assignee_id:
        wanted.add(assignee_keyword(conversation.assignee.get_username()))
    return wanted


def queue_mirror(conversation: Conversation) -> int:
    """Queue the keyword changes that make the conversation's messages show its state.

    Returns how many messages will change. Does nothing where the mailbox turned it off.
    """
    if not conversation.mailbox.mirror_keywords:
        return 0
    wanted = desired_keywords(conversation)
    batch = uuid.uuid4().hex
    changes, updates = [], []
    messages = Message.objects.filter(
        conversation=conversation, uid__gt=0, pending_removal=False
    ).select_related("folder")
    for message in messages:
        have = {k for k in message.keywords if is_kotak_keyword(k)}
        add, remove = sorted(wanted - have), sorted(have - wanted)
        for action, flags in (
            (PendingChange.Action.ADD_FLAGS, add),
            (PendingChange.Action.REMOVE_FLAGS, remove),
        ):
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

            enqueue_writeback(conversation.mailbox_id)

        transaction.on_commit(queue)
    return len(updates)
