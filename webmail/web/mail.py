"""Screens for reading mail: dashboard, folder lists, one message."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRedirect

from webmail import actions
from webmail.access import (
    can_add_mailbox,
    get_folder_for_user,
    get_mailbox_for_user,
    get_message_for_user,
)
from webmail.imap.client import ConnectError
from webmail.models import (
    Change,
    Folder,
    Mailbox,
    Membership,
    Message,
    PendingChange,
    Presence,
)
from webmail.sync.bodies import MessageGone, load_body
from webmail.web.content import body_context

ROLE_ORDER = {
    role: rank
    for rank, role in enumerate(["inbox", "drafts", "sent", "archive", "junk", "trash", "flagged"])
}


def _folder_tree(mailbox: Mailbox) -> list[Folder]:
    """Folders depth-first: special-use roots first, then the rest alphabetically."""
    folders = list(mailbox.folders.all())
    by_pk = {folder.pk: folder for folder in folders}

    def root_of(folder: Folder) -> Folder:
        seen = set()
        while folder.parent_id in by_pk and folder.pk not in seen:
            seen.add(folder.pk)
            folder = by_pk[folder.parent_id]
        return folder

    def key(folder: Folder) -> tuple:
        root = root_of(folder)
        rank = ROLE_ORDER.get(root.special_use, len(ROLE_ORDER))
        return (rank, root.display_name.lower(), folder.display_name.lower())

    return sorted(folders, key=key)


def _latest_change_id() -> int:
    """Where a page's event stream starts, so nothing between render and connect is lost."""
    return Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@login_required
@require_GET
def folder_tree(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """The folder list with its counts, re-fetched when a live event says they changed."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    current = request.GET.get("current", "")
    context = {
        "mailbox": box,
        "folders": _folder_tree(box),
        "folder": box.folders.filter(pk=int(current)).first() if current.isdigit() else None,
    }
    return render(request, "webmail/mailbox_base.html#folder-tree", context)


@login_required
@require_GET
def message_presence(request: HttpRequest, mailbox_id: int, message_id: int) -> HttpResponse:
    """Who else has this message open right now, and who is answering it.

    With ?conversation=N (the conversation page): who is answering any of its messages."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    context = {"mailbox": box, "message_id": message_id}
    conversation = request.GET.get("conversation", "")
    ids = [message_id]
    if conversation.isdigit() and box.conversations.filter(pk=int(conversation)).exists():
        ids = presence_ids(box.messages.filter(conversation_id=int(conversation)))
        context |= {"presence_conversation": int(conversation), "presence_ids": ids}
    context |= {
        "viewers": _viewers(box, message_id, request.user),
        "replying": _replying(box, ids, request.user),
    }
    return render(request, "webmail/message.html#presence", context)


# A conversation page listens for the presence events of this many of its newest messages.
PRESENCE_IDS_MAX = 50


def presence_ids(messages) -> list[int]:
    """The messages whose presence events a conversation page follows (the newest ones)."""
    rows = messages.filter(pending_removal=False).order_by("-internal_date", "-pk")
    return list(rows.values_list("pk", flat=True)[:PRESENCE_IDS_MAX])


def _present(box: Mailbox, message_ids: list[int], user, activity: str) -> list[str]:
    others = (
        Presence.objects.filter(
            mailbox=box,
            message_id__in=message_ids,
            activity=activity,
            expires_at__gt=timezone.now(),
        )
        .exclude(user=user)
        .select_related("user")
    )
    return sorted({p.user.get_full_name() or p.user.get_username() for p in others})


def _viewers(box: Mailbox, message_id: int, user) -> list[str]:
    """Who else has the message open (those answering it are named by _replying instead)."""
    replying = set(_replying(box, [message_id], user))
    viewing = _present(box, [message_id], user, Presence.Activity.VIEWING)
    return [name for name in viewing if name not in replying]


def _replying(box: Mailbox, message_ids: list[int], user) -> list[str]:
    """Who else has a compose page open answering one of these messages."""
    return _present(box, message_ids, user, Presence.Activity.REPLYING)


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    mailboxes = list(Mailbox.objects.for_user(request.user).distinct().order_by("name"))
    memberships = {
        m.mailbox_id: m for m in Membership.objects.filter(user=request.user, mailbox__in=mailboxes)
    }
    for box in mailboxes:
        box.membership = memberships.get(box.pk)
    return render(
        request,
        "webmail/home.html",
        {"mailboxes": mailboxes, "can_add_mailbox": can_add_mailbox(request.user)},
    )


@login_required
@require_GET
def mailbox(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    box = get_mailbox_for_user(request.user, mailbox_id)
    inbox = (
        box.folders.filter(special_use="inbox").first()
        or box.folders.filter(is_selectable=True).first()
    )
    if inbox is not None:
        return redirect(inbox)
    return render(
        request,
        "webmail/mailbox_waiting.html",
        {
            "mailbox": box,
            "folders": [],
            "can_add_mailbox": can_add_mailbox(request.user),
            "last_change_id": _latest_change_id(),
        },
    )


@login_required
@require_GET
def mailbox_status(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """The sync status strip; polls itself while a first sync is running."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    if request.htmx and box.folders.exists() and request.GET.get("waiting"):
        # The folder list has arrived: move the waiting page on to the inbox.
        return HttpResponseClientRedirect(box.get_absolute_url())
    return render(request, "webmail/mailbox_status.html", _status_context(box))


def _status_context(box: Mailbox, folders: list[Folder] | None = None) -> dict:
    """The sync progress and the changes the server refused or has not taken yet.

    `folders`: the mailbox's folders if the caller has them already (one query fewer)."""
    if folders is None:
        folders = list(box.folders.all())
    syncing = [
        f
        for f in folders
        if f.is_selectable and (f.sync_state == Folder.SyncState.SYNCING or f.uidvalidity is None)
    ]
    # One query for both: refused changes, and changes the server has not taken yet.
    troubles = list(
        box.pending_changes.filter(
            Q(state=PendingChange.State.FAILED)
            | Q(state=PendingChange.State.PENDING, attempts__gt=0)
        )
        .select_related("message")
        .order_by("-pk")[:100]
    )
    refused = [c for c in troubles if c.state == PendingChange.State.FAILED]
    stuck = [c for c in troubles if c.state == PendingChange.State.PENDING]
    return {
        "mailbox": box,
        "refused": refused[:20],
        "waiting_changes": len(stuck),
        "waiting_error": stuck[0].last_error if stuck else "",
        "syncing_folders": syncing,
        "sync_done": sum(f.sync_done for f in syncing),
        "sync_total": sum(f.sync_total for f in syncing),
        "is_syncing": bool(syncing) or box.status in (Mailbox.Status.NEW, Mailbox.Status.SYNCING),
    }


LIST_FIELDS = (
    "pk",
    "mailbox_id",
    "folder_id",
    "uid",
    "subject",
    "from_name",
    "from_address",
    "internal_date",
    "date",
    "is_seen",
    "is_flagged",
    "is_answered",
    "has_attachments",
    "snippet",
    "parse_error",
)


def _list_context(request: HttpRequest, current: Folder, open_id: int | None = None) -> dict:
    """One page of a folder's list, newest first, keyset-paginated with ?before=<pk>; with
    the message open beside it, if any (its refresh keeps that row marked, ?open=<pk>)."""
    visible = current.messages.filter(pending_removal=False)
    rows_query = visible.newest_first().only(*LIST_FIELDS)
    before = request.GET.get("before", "")
    if before.isdigit():
        anchor = current.messages.filter(pk=int(before)).values("internal_date", "uid").first()
        if anchor:
            # Rows after the anchor in (internal_date, uid) order. The "<=" alone starts the
            # index scan at the anchor; the OR alone is only a filter, so the scan would walk
            # every newer row first (tens of ms on page 1,000 of a 100,000-message folder).
            rows_query = rows_query.filter(
                Q(internal_date__lte=anchor["internal_date"]),
                Q(internal_date__lt=anchor["internal_date"]) | Q(uid__lt=anchor["uid"]),
            )
    page_size = settings.MESSAGES_PER_PAGE
    rows = list(rows_query[: page_size + 1])
    has_older = len(rows) > page_size
    rows = rows[:page_size]
    box = current.mailbox
    tree = _folder_tree(box)
    list_url = current.get_absolute_url() + (f"?before={before}" if before else "")
    return {
        "mailbox": box,
        "folder": current,
        "folders": tree,
        # Not "messages": that name belongs to django.contrib.messages in base.html.
        "rows": rows,
        "has_older": has_older,
        "older_anchor": rows[-1].pk if rows else None,
        "is_first_page": not before,
        "list_url": list_url,
        "refresh_url": f"{list_url}{'&' if before else '?'}open={open_id}" if open_id else list_url,
        "last_change_id": _latest_change_id(),
        "can_act": actions.can_act(request.user, box),
        "move_targets": [f for f in tree if f.is_selectable],
        **_status_context(box, tree),
    }


@login_required
@require_GET
def folder(request: HttpRequest, mailbox_id: int, folder_id: int) -> HttpResponse:
    current = get_folder_for_user(request.user, mailbox_id, folder_id)
    template = "webmail/folder.html"
    open_id = None
    if request.htmx and request.htmx.target in {"message-list", "folder-counts"}:
        template += "#" + request.htmx.target
        # The list beside an open message, refreshed: that row stays marked open.
        if (given := request.GET.get("open", "")).isdigit():
            open_id = int(given)
    context = _list_context(request, current, open_id) | {"message_id": open_id}
    return render(request, template, context)


@login_required
@require_GET
def message(request: HttpRequest, mailbox_id: int, message_id: int) -> HttpResponse:
    if request.htmx and request.htmx.target == f"message-state-{message_id}":
        # A live refresh of the flags strip and its buttons; the message may have gone.
        box = get_mailbox_for_user(request.user, mailbox_id)
        msg = box.messages.filter(pk=message_id, pending_removal=False).first()
        return render(
            request,
            "webmail/message.html#message-state",
            {
                "mailbox": box,
                "message": msg,
                "message_id": message_id,
                "folder": msg.folder if msg else None,
                "can_act": actions.can_act(request.user, box),
                "move_targets": [f for f in _folder_tree(box) if f.is_selectable],
            },
        )
    msg = get_message_for_user(request.user, mailbox_id, message_id)
    body = error = None
    try:
        body = load_body(msg)
    except MessageGone:
        error = "This message is no longer on the server; another client moved or deleted it."
    except ConnectError as exc:
        error = f"The message body could not be loaded: {exc}"
    _mark_read_on_open(request.user, msg)
    context = {
        "message": msg,
        "message_id": msg.pk,
        "viewers": _viewers(msg.mailbox, msg.pk, request.user),
        "replying": _replying(msg.mailbox, [msg.pk], request.user),
        "body": body,
        "body_error": error,
        **body_context(request, msg, body),
    }
    if request.htmx and request.htmx.target == "reader":
        # Opened from the list beside it: only the reading pane changes.
        box = msg.mailbox
        context |= {
            "mailbox": box,
            "folder": msg.folder,
            "can_act": actions.can_act(request.user, box),
            "move_targets": [f for f in _folder_tree(box) if f.is_selectable],
        }
        return render(request, "webmail/message.html#reader", context)
    context = _list_context(request, msg.folder, msg.pk) | context
    return render(request, "webmail/message.html", context)


def _mark_read_on_open(user, msg: Message) -> None:
    """Opening marks read, for everyone, when the reader may act and has not turned it off."""
    if msg.is_seen or msg.pending_removal:
        return
    membership = Membership.objects.filter(user=user, mailbox_id=msg.mailbox_id).first()
    if membership is None or membership.role not in actions.ACTING_ROLES:
        return
    if membership.mark_read_on_open:
        actions.set_flag(user, [msg], "\\Seen", True)
