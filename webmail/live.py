"""Live updates: every change is a row in the change log, then a nudge after commit.

Writers call record() inside their transaction. After commit a nudge goes out over Redis
pub/sub (LIVE_BACKEND=redis); without Redis the event streams find new rows by polling the
log. Events name what changed (folder-12, message-345, folders); the page's elements re-fetch
their own partials through the normal views, so access checks and rendering live in one place.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from functools import cache

from django.conf import settings
from django.db import transaction

from webmail.models import Change

log = logging.getLogger(__name__)

CHANNEL = "kotak:changes"
# Per-message events are only useful for a handful of ids; bulk changes name the folder.
MESSAGE_EVENTS_MAX = 50


def record(
    mailbox_id: int,
    kind: str,
    *,
    folder_id: int | None = None,
    message_ids: Iterable[int] = (),
    conversation_id: int | None = None,
    data: dict | None = None,
) -> Change:
    """Append to the change log (in the caller's transaction) and nudge streams on commit."""
    change = Change.objects.create(
        mailbox_id=mailbox_id,
        kind=kind,
        folder_id=folder_id,
        message_ids=list(message_ids)[:500],
        conversation_id=conversation_id,
        data=data or {},
    )
    transaction.on_commit(lambda: nudge(mailbox_id, change.pk))
    return change


@cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def nudge(mailbox_id: int, change_id: int) -> None:
    """Tell event streams there is something new; never fails the caller (they also poll)."""
    if settings.LIVE_BACKEND != "redis":
        return
    try:
        _redis().publish(CHANNEL, f"{mailbox_id}:{change_id}")
    except Exception as exc:  # noqa: BLE001 — Redis down: streams fall back to polling
        log.warning("live nudge failed: %s", exc)


# Kinds that change what a folder's list shows.
FOLDER_EVENTS = {
    "messages_added",
    "messages_removed",
    "messages_restored",
    "flags_changed",
    "folder_reset",
    "action_failed",
}


def event_names(change: Change) -> list[str]:
    """The server-sent event names one change fires, most specific last."""
    names = []
    if change.kind in FOLDER_EVENTS:
        names.append(f"folder-{change.folder_id}")
        if change.kind != "messages_added":
            names += [f"message-{pk}" for pk in change.message_ids[:MESSAGE_EVENTS_MAX]]
    if change.kind in {"folders", "folder", "folder_counts", "folder_reset"}:
        names.append("folders")
    if change.kind in {"conversation", "note", "outgoing"} and change.conversation_id:
        names.append(f"conversation-{change.conversation_id}")
    if change.kind in {"conversation", "messages_added", "messages_removed", "folder_reset"}:
        # Team views (Unassigned, Mine …) and their counts.
        names.append("conversations")
    if change.kind == "notification":
        names.append("notifications")
    if change.kind == "action_failed":
        names.append("action-failed")
    if change.kind == "presence":
        names += [f"presence-message-{pk}" for pk in change.message_ids]
    return names


def format_events(change: Change) -> str:
    """The change as server-sent events (all with its id, so Last-Event-ID resumes after it)."""
    payload = json.dumps(
        {
            "kind": change.kind,
            "folder": change.folder_id,
            "messages": change.message_ids[:50],
            **({"reason": change.data.get("reason", "")} if change.kind == "action_failed" else {}),
        }
    )
    return (
        "".join(
            f"id: {change.pk}\nevent: {name}\ndata: {payload}\n\n" for name in event_names(change)
        )
        or f"id: {change.pk}\nevent: change\ndata: {payload}\n\n"
    )
