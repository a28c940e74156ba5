"""The conversation screen: one timeline of a conversation's messages across folders, its
internal notes and its history, beside the team's controls (status, snooze, assignee, split,
merge); and the notifications that lead there.

Every change goes through webmail.team, which checks the role again, writes the audit trail
and publishes the live event. The page's timeline re-fetches itself through conversation()
(bringing the header and controls along out of band), so access checks and rendering live in
one place. htmx callers get a `kotak:toast` and a refresh; plain form posts get the same words
as a flash message and a redirect back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.contrib import messages as flash
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from webmail import team
from webmail.access import get_mailbox_for_user
from webmail.models import (
    Activity,
    Conversation,
    Mailbox,
    Message,
    Note,
    Notification,
    OutgoingMessage,
    Role,
)
from webmail.web.mail import (
    PRESENCE_IDS_MAX,
    _folder_tree,
    _latest_change_id,
    _replying,
    _viewers,
)

WORKING_ROLES = (Role.MANAGER, Role.AGENT)
# Verbs the timeline shows in another form (the note itself, "edited" on it).
SHOWN_ELSEWHERE = {"noted", "note_edited"}
# What webmail.actions records when messages leave a folder.
MESSAGE_VERBS = {
    "moved": "moved",
    "archived": "archived",
    "deleted": "deleted",
    "deleted_forever": "deleted for good",
    "marked_spam": "marked as spam",
}
MAX_SPLIT = 500
MERGE_CANDIDATES = 8
_CONVERSATION_URL = re.compile(r"/conversations/(\d+)/?")
_SEEN = re.compile(r"^(\d+)-(\d+)$")


@dataclass
class Entry:
    """One line of the timeline: a message, a note, an audit event, or a message of ours on its
    way (queued, sending, sent but not yet filed in Sent, failed, uncertain)."""

    kind: str
    at: datetime
    item: Message | Note | Activity | OutgoingMessage
    is_new: bool = False
    text: str = ""
    link: str = ""
    author: str = ""
    is_open: bool = False
    anchor: str = field(init=False)

    def __post_init__(self) -> None:
        self.anchor = f"{self.kind}-{self.item.pk}"


# -- reading ----------------------------------------------------------------------------------


def _conversation_for_user(user, mailbox_id: int, conversation_id: int):
    """(mailbox, conversation) if the user is a member; 404 otherwise (outsiders learn nothing)."""
    box = get_mailbox_for_user(user, mailbox_id)
    conversation = get_object_or_404(
        Conversation.objects.select_related("assignee", "mailbox"), pk=conversation_id, mailbox=box
    )
    return box, conversation


def _conversation_for_work(request: HttpRequest, mailbox_id: int, conversation_id: int):
    """As _conversation_for_user, and 403 for a viewer: they read but change nothing."""
    box, conversation = _conversation_for_user(request.user, mailbox_id, conversation_id)
    if box.role_of(request.user) not in WORKING_ROLES:
        raise PermissionDenied("Viewers can read this conversation but not change it.")
    return box, conversation


@login_required
@require_GET
def conversation_detail(
    request: HttpRequest, mailbox_id: int, conversation_id: int
) -> HttpResponse:
    """The conversation page; its timeline (with header and controls) on a live refresh."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    # Before reading anything, so no change between this render and the stream is lost.
    last_change_id = _latest_change_id()
    current = (
        Conversation.objects.select_related("assignee", "mailbox")
        .filter(pk=conversation_id, mailbox=box)
        .first()
    )
    if current is None:
        # Merged into another since the page was opened, or a stale link: follow it there.
        target = _merged_into(box, conversation_id)
        if target is None:
            raise Http404("no such conversation")
        if request.htmx:
            return HttpResponseClientRedirect(_url(target))
        return redirect(_url(target))
    context = _context(request, box, current)
    if request.htmx and request.htmx.target == "timeline":
        return render(request, "webmail/conversation.html#refresh", context)
    _mark_notifications_read(request.user, current)
    newest = context["newest_message"]
    context |= {
        "folders": _folder_tree(box),
        "folder": None,
        "last_change_id": last_change_id,
        # The page's event stream says "viewing" the newest message: people on that message's
        # page and on this one see each other.
        "message_id": newest.pk if newest else None,
        "viewers": _viewers(box, newest.pk, request.user) if newest else [],
        # Teammates answering any message of the conversation ("bob is replying").
        "presence_conversation": current.pk,
        "presence_ids": context["presence_ids"],
        "replying": _replying(box, context["presence_ids"], request.user),
    }
    return render(request, "webmail/conversation.html", context)


def _context(request: HttpRequest, box: Mailbox, current: Conversation) -> dict:
    user = request.user
    role = box.role_of(user)
    ours = list(current.outgoing.select_related("author").order_by("created_at", "pk"))
    # Kotak's own copies of drafts in the Drafts folder: the draft shows as a draft instead.
    draft_copies = {o.message_id for o in ours}
    mails = [
        m
        for m in current.messages.filter(pending_removal=False)
        .select_related("folder")
        .order_by("internal_date", "uid")
        if not (m.is_draft and m.message_id in draft_copies)
    ]
    notes = list(current.notes.select_related("author").order_by("created_at", "pk"))
    history = list(
        current.activities.exclude(verb__in=SHOWN_ELSEWHERE)
        .select_related("actor")
        .order_by("created_at", "pk")
    )
    marker = _marker(mails, notes)
    # What the page showed when it was opened; its live refreshes carry it along.
    baseline = _parse_seen(request.GET.get("seen", "")) or marker
    seen_at, seen_note = baseline
    entries = []
    for mail in mails:
        entries.append(Entry("message", mail.internal_date, mail, is_new=_stamp(mail) > seen_at))
    for note in notes:
        entries.append(
            Entry(
                "note",
                note.created_at,
                note,
                is_new=note.pk > seen_note and note.author_id != user.pk,
                author=team.display_name(note.author) if note.author else "A former member",
            )
        )
    for activity in history:
        text, link = describe(activity, box)
        entries.append(Entry("activity", activity.created_at, activity, text=text, link=link))
    outgoing, drafts = _outgoing(box, ours, mails)
    for message in outgoing:
        entries.append(
            Entry(
                "outgoing",
                message.sent_at or message.send_at or message.updated_at,
                message,
                author=team.display_name(message.author) if message.author else "A former member",
            )
        )
    order = {"message": 0, "outgoing": 0, "note": 1, "activity": 2}
    entries.sort(key=lambda e: (e.at, order[e.kind], e.item.pk))
    message_entries = [e for e in entries if e.kind == "message"]
    for entry in message_entries:
        entry.is_open = entry.is_new
    if message_entries:
        message_entries[-1].is_open = True
    new = [e for e in entries if e.is_new]
    now = timezone.localtime()
    url = _url(current)
    return {
        "mailbox": box,
        "conversation": current,
        "conversation_url": url,
        "entries": entries,
        "message_count": len(mails),
        "newest_message": max(mails, key=lambda m: (m.internal_date, m.pk)) if mails else None,
        "assignee_name": team.display_name(current.assignee) if current.assignee else "",
        "role": role,
        "can_work": role in WORKING_ROLES,
        "is_manager": role == Role.MANAGER,
        "is_mine": current.assignee_id == user.pk,
        "members": [(m.pk, team.display_name(m)) for m in team.members(box)]
        if role == Role.MANAGER
        else [],
        "mentionable": list(
            get_user_model()
            .objects.filter(memberships__mailbox=box)
            .exclude(pk=user.pk)
            .order_by("username")
            .values_list("username", flat=True)
            .distinct()
        ),
        "statuses": Conversation.Status.choices,
        # The timeline refreshes against the page's baseline; "show" moves it to now.
        "refresh_url": f"{url}?seen={baseline[0]}-{baseline[1]}",
        "acknowledge_url": f"{url}?seen={marker[0]}-{marker[1]}",
        "new_entries": new,
        "new_summary": _new_summary(new),
        "drafts": drafts,
        "presence_ids": [m.pk for m in sorted(mails, key=lambda m: (m.internal_date, m.pk))][
            -PRESENCE_IDS_MAX:
        ],
        "snooze_presets": _snooze_presets(now),
        "snooze_min": now.strftime("%Y-%m-%dT%H:%M"),
    }


def _outgoing(
    box: Mailbox, rows: list[OutgoingMessage], mails: list[Message]
) -> tuple[list[OutgoingMessage], list[OutgoingMessage]]:
    """(our messages on their way, drafts). A sent one whose copy has been synced from Sent
    is an ordinary message of the timeline by then: it is not shown twice. (A copy in Drafts,
    flagged \\Draft, is not that: the message may still be queued or refused.)"""
    drafts = [o for o in rows if o.state == OutgoingMessage.State.DRAFT]
    others = [o for o in rows if o.state != OutgoingMessage.State.DRAFT]
    shown = {m.message_id for m in mails if not m.is_draft}
    candidates = [o.message_id for o in others if o.message_id not in shown]
    filed = shown | set(
        box.messages.filter(message_id__in=candidates, is_draft=False).values_list(
            "message_id", flat=True
        )
    )
    return [o for o in others if o.message_id not in filed], drafts


def _stamp(message: Message) -> int:
    return int(message.internal_date.timestamp())


def _marker(mails: list[Message], notes: list[Note]) -> tuple[int, int]:
    """What the page has shown: the newest message's arrival (seconds) and the newest note.

    Arrival time rather than row ids: a message another client moves to another folder comes
    back as a new row, but keeps its INTERNALDATE (RFC 6851 §3.3), so it is not "new"."""
    return (
        max((_stamp(m) for m in mails), default=0),
        max((n.pk for n in notes), default=0),
    )


def _parse_seen(value: str) -> tuple[int, int] | None:
    match = _SEEN.match(value)
    return (int(match[1]), int(match[2])) if match else None


def _new_summary(new: list[Entry]) -> str:
    """ "New message since you opened this page", "2 new messages and a new note since …"."""
    parts = []
    kinds = (("message", "new message", "new messages"), ("note", "new note", "new notes"))
    for kind, one, many in kinds:
        count = sum(1 for e in new if e.kind == kind)
        if count == 1:
            parts.append(one)
        elif count:
            parts.append(f"{count} {many}")
    if not parts:
        return ""
    text = " and ".join(parts) + " since you opened this page"
    return text[0].upper() + text[1:]


def describe(activity: Activity, box: Mailbox) -> tuple[str, str]:
    """An audit event in words, and the conversation it points to, if any."""
    data = activity.data or {}
    if activity.actor:
        actor = team.display_name(activity.actor)
    elif data.get("source") == "imap":
        actor = "Another mail client"  # keywords set outside Kotak (webmail.keywords)
    else:
        actor = "Kotak"
    verb = activity.verb
    labels = dict(Conversation.Status.choices)
    link = ""
    if verb == "assigned":
        if activity.actor_id and data.get("to") == activity.actor_id:
            text = f"{actor} took it"
        else:
            text = f"{actor} assigned it to {data.get('name', 'someone')}"
        if data.get("from"):
            text += f" (was {data['from']})"
    elif verb == "unassigned":
        text = f"{actor} unassigned {data.get('from') or 'it'}"
    elif verb == "status":
        text = f"{actor} marked it {labels.get(data.get('to'), data.get('to', '')).lower()}"
    elif verb == "snoozed":
        text = f"{actor} snoozed it until {_when(data.get('until'))}"
    elif verb == "woke":
        text = "The snooze ended: open again"
    elif verb == "reopened":
        text = "Reopened by new mail"
    elif verb == "note_deleted":
        text = f"{actor} deleted a note"
    elif verb == "split":
        count = len(data.get("messages", []))
        text = f"{actor} split {count} message{'s' if count != 1 else ''} into another conversation"
        link = _existing_url(box, data.get("into"))
    elif verb == "split_from":
        text = f"{actor} split this off another conversation"
        link = _existing_url(box, data.get("from"))
    elif verb == "merged":
        count = len(data.get("from", []))
        text = f"{actor} merged {count} conversation{'s' if count != 1 else ''} into this one"
    elif verb in MESSAGE_VERBS:
        count = data.get("count", 1)
        what = "a message" if count == 1 else f"{count} messages"
        text = f"{actor} {MESSAGE_VERBS[verb]} {what}"
        if verb == "moved" and data.get("to"):
            text += f" to {data['to']}"
    elif verb in ("replied", "forwarded"):
        to = ", ".join(data.get("to", [])[:3])
        text = f"{actor} {verb}" + (f" to {to}" if to else "")
    else:
        text = f"{actor}: {verb.replace('_', ' ')}"
    return text, link


def _when(value: str | None) -> str:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return "later"
    return format_date(timezone.localtime(moment), "D j M, H:i")


def _existing_url(box: Mailbox, conversation_id) -> str:
    if isinstance(conversation_id, int) and box.conversations.filter(pk=conversation_id).exists():
        return reverse("conversation", args=[box.pk, conversation_id])
    return ""


def _merged_into(box: Mailbox, conversation_id: int) -> Conversation | None:
    """The conversation a merged one went into (recent merges only: an old link 404s)."""
    for activity in box.activities.filter(verb="merged").order_by("-pk")[:200]:
        if conversation_id in (activity.data or {}).get("from", []) and activity.conversation_id:
            return box.conversations.filter(pk=activity.conversation_id).first()
    return None


def _url(current: Conversation) -> str:
    return reverse("conversation", args=[current.mailbox_id, current.pk])


def _snooze_presets(now: datetime) -> list[tuple[str, str]]:
    tomorrow = now.date() + timedelta(days=1)
    monday = now.date() + timedelta(days=7 - now.weekday())
    return [
        ("tomorrow", f"Tomorrow 9:00 ({format_date(tomorrow, 'D j M')})"),
        ("monday", f"Next Monday 9:00 ({format_date(monday, 'j M')})"),
    ]


def _snooze_until(post, now: datetime) -> datetime | None:
    """The moment asked for: a preset, or the datetime-local field in the server's time zone."""
    preset = post.get("preset", "")
    zone = timezone.get_current_timezone()
    if preset == "tomorrow":
        day = now.date() + timedelta(days=1)
    elif preset == "monday":
        day = now.date() + timedelta(days=7 - now.weekday())
    else:
        try:
            moment = datetime.fromisoformat(post.get("until", "").strip())
        except ValueError:
            return None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment, zone)
    return timezone.make_aware(datetime.combine(day, time(9, 0)), zone)


def _mark_notifications_read(user, current: Conversation) -> None:
    """Opening the conversation reads what pointed to it."""
    Notification.objects.filter(user=user, conversation=current, read_at__isnull=True).update(
        read_at=timezone.now()
    )


# -- acting -----------------------------------------------------------------------------------


def _answer(
    request: HttpRequest,
    current: Conversation | None,
    text: str,
    *,
    level: str = "success",
    go_to: str = "",
) -> HttpResponse:
    """A toast and a refresh for htmx; a flash message and a redirect for a plain form."""
    target = go_to or (_url(current) if current else "/")
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Trigger"] = json.dumps(
            {"kotak:toast": {"text": text, "level": level}, "kotak:refresh": {}}
        )
        if go_to:
            response["HX-Redirect"] = go_to
        return response
    getattr(flash, level)(request, text)
    return redirect(target)


@login_required
@require_POST
def set_conversation_status(
    request: HttpRequest, mailbox_id: int, conversation_id: int
) -> HttpResponse:
    box, current = _conversation_for_work(request, mailbox_id, conversation_id)
    status = request.POST.get("status", "")
    try:
        changed = team.set_status(request.user, [current], status)
    except team.TeamError as exc:
        return _answer(request, current, str(exc), level="error")
    label = dict(Conversation.Status.choices)[status]
    text = f"Marked {label.lower()}." if changed else f"Already {label.lower()}."
    return _answer(request, current, text, level="success" if changed else "warning")


@login_required
@require_POST
def snooze_conversation(
    request: HttpRequest, mailbox_id: int, conversation_id: int
) -> HttpResponse:
    box, current = _conversation_for_work(request, mailbox_id, conversation_id)
    until = _snooze_until(request.POST, timezone.localtime())
    if until is None:
        return _answer(request, current, "Choose when it should come back.", level="warning")
    try:
        team.snooze(request.user, [current], until)
    except team.TeamError as exc:
        return _answer(request, current, str(exc), level="error")
    when = format_date(timezone.localtime(until), "l j F, H:i")
    return _answer(request, current, f"Snoozed until {when}.")


@login_required
@require_POST
def assign_conversation(
    request: HttpRequest, mailbox_id: int, conversation_id: int
) -> HttpResponse:
    """Managers assign to a member, or unassign (an empty choice)."""
    box, current = _conversation_for_work(request, mailbox_id, conversation_id)
    if box.role_of(request.user) != Role.MANAGER:
        raise PermissionDenied("Only managers assign conversations; take it instead.")
    chosen = request.POST.get("assignee", "")
    assignee = None
    if chosen:
        if not chosen.isdigit():
            return _answer(request, current, "Choose someone to assign.", level="warning")
        assignee = team.members(box).filter(pk=int(chosen)).first()
        if assignee is None:
            return _answer(
                request, current, "They are not an agent or manager here.", level="error"
            )
    try:
        changed = team.assign(request.user, [current], assignee)
    except team.TeamError as exc:
        return _answer(request, current, str(exc), level="error")
    if not changed:
        return _answer(request, current, "Nothing changed.", level="warning")
    if assignee is None:
        return _answer(request, current, "Unassigned.")
    return _answer(request, current, f"Assigned to {team.display_name(assignee)}.")


@login_required
@require_POST
def take_conversation(request: HttpRequest, mailbox_id: int, conversation_id: int) -> HttpResponse:
    box, current = _conversation_for_work(request, mailbox_id, conversation_id)
    try:
        team.take(request.user, current)
    except team.TeamError as exc:
        return _answer(request, current, str(exc), level="warning")
    return _answer(request, current, "It is yours.")


@login_required
@require_POST
def add_note(request: HttpRequest, mailbox_id: int, conversation_id: int) -> HttpResponse:
    box, current = _conversation_for_work(request, mailbox_id, conversation_id)
    try:
        team.add_note(request.user, current, request.POST.get("body", ""))
    except team.TeamError as exc:
        return _answer(request, current, str(exc), level="warning")
    return _answer(request, current, "Note added (the customer does not see it).")


def _note_for_author(request: HttpRequest, mailbox_id: int, conversation_id: int, note_id: int):
    box, current = _conversation_for_work(request, mailbox_id, conversation_id)
    note = get_object_or_404(
        Note.objects.select_related("conversation__mailbox"), pk=note_id, conversation=current
    )
    if note.author_id != request.user.pk:
        raise PermissionDenied("Only the author can change a note.")
    return current, note


@login_required
@require_POST
def edit_note(
    request: HttpRequest, mailbox_id: int, conversation_id: int, note_id: int
) -> HttpResponse:
    current, note = _note_for_author(request, mailbox_id, conversation_id, note_id)
    try:
        team.edit_note(request.user, note, request.POST.get("body", ""))
    except team.TeamError as exc:
        return _answer(request, current, str(exc), level="warning")
    return _answer(request, current, "Note saved.")


@login_required
@require_POST
def delete_note(
    request: HttpRequest, mailbox_id: int, conversation_id: int, note_id: int
) -> HttpResponse:
    current, note = _note_for_author(request, mailbox_id, conversation_id, note_id)
    team.delete_note(request.user, note)
    return _answer(request, current, "Note deleted.")


@login_required
@require_POST
def split_conversation(request: HttpRequest, mailbox_id: int, conversation_id: int) -> HttpResponse:
    box, current = _conversation_for_work(request, mailbox_id, conversation_id)
    ids = [int(v) for v in request.POST.getlist("message") if v.isdigit()][:MAX_SPLIT]
    chosen = list(current.messages.filter(pk__in=ids, pending_removal=False))
    if not chosen:
        return _answer(request, current, "Select the messages to split off.", level="warning")
    try:
        new = team.split(request.user, chosen)
    except team.TeamError as exc:
        return _answer(request, current, str(exc), level="warning")
    count = len(chosen)
    return _answer(
        request,
        current,
        f"Split {count} message{'s' if count != 1 else ''} into a new conversation, "
        f"“{new.subject or '(no subject)'}”.",
    )


@login_required
@require_POST
def merge_conversation(request: HttpRequest, mailbox_id: int, conversation_id: int) -> HttpResponse:
    """Fold this conversation into another one, named by id, URL or a search result."""
    box, current = _conversation_for_work(request, mailbox_id, conversation_id)
    target_id = _conversation_id(request.POST.get("into_id") or request.POST.get("into", ""))
    target = (
        box.conversations.filter(pk=target_id).exclude(pk=current.pk).first() if target_id else None
    )
    if target is None:
        return _answer(
            request,
            current,
            "Name another conversation of this mailbox: its number or its address.",
            level="warning",
        )
    try:
        team.merge(request.user, target, [current])
    except team.TeamError as exc:
        return _answer(request, current, str(exc), level="error")
    return _answer(
        request,
        target,
        f"Merged into “{target.subject or '(no subject)'}”.",
        go_to=_url(target),
    )


def _conversation_id(value: str) -> int | None:
    value = value.strip().lstrip("#")
    if value.isdigit():
        return int(value)
    match = _CONVERSATION_URL.search(value)
    return int(match[1]) if match else None


@login_required
@require_GET
def merge_candidates(request: HttpRequest, mailbox_id: int, conversation_id: int) -> HttpResponse:
    """The mailbox's recent conversations whose subject matches, to merge this one into."""
    box, current = _conversation_for_user(request.user, mailbox_id, conversation_id)
    query = request.GET.get("into", "").strip()
    candidates = box.conversations.exclude(pk=current.pk).select_related("assignee")
    found_id = _conversation_id(query) if query else None
    if found_id:
        candidates = candidates.filter(pk=found_id)
    elif query:
        candidates = candidates.filter(subject__icontains=query)
    return render(
        request,
        "webmail/conversation.html#merge-candidates",
        {
            "mailbox": box,
            "conversation": current,
            "query": query,
            "candidates": list(candidates.order_by("-last_activity_at")[:MERGE_CANDIDATES]),
        },
    )


# -- notifications ----------------------------------------------------------------------------


def _notifications_for(user):
    return Notification.objects.filter(
        user=user, mailbox__in=Mailbox.objects.for_user(user).values("pk")
    )


@login_required
@require_GET
def notifications(request: HttpRequest) -> HttpResponse:
    rows = list(_notifications_for(request.user).select_related("mailbox").order_by("-pk")[:100])
    return render(
        request,
        "webmail/notifications.html",
        {"rows": rows, "unread": sum(1 for n in rows if n.read_at is None)},
    )


@login_required
@require_GET
def notification_bell(request: HttpRequest) -> HttpResponse:
    """The bell's unread count, re-fetched when a live event says there is news."""
    unread = _notifications_for(request.user).filter(read_at__isnull=True).count()
    return render(request, "webmail/_bell.html#bell-count", {"unread": unread})


@login_required
@require_POST
def read_notifications(request: HttpRequest) -> HttpResponse:
    _notifications_for(request.user).filter(read_at__isnull=True).update(read_at=timezone.now())
    flash.success(request, "All notifications marked read.")
    return redirect("notifications")
