"""Answering: reply, reply all, forward and new messages from the shared address.

A click on Reply makes a draft (webmail.compose.start) and opens its compose page. The page
autosaves what is typed (webmail.outbox.save_draft, which also files a copy in Drafts), takes
attachments and saved replies, and sends through the outbox with an undo window. Before
sending it warns when the conversation moved on since the page was opened. Only a draft's
author edits it; the team sees queued, failed and uncertain messages on the conversation, and
the author or a manager decides about them (undo, retry, send again anyway, discard).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import formataddr

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from webmail import compose, outbox, team
from webmail.access import get_mailbox_for_user, get_message_for_user
from webmail.compose import ComposeError
from webmail.models import Mailbox, OutgoingMessage, Role
from webmail.outbox import OutboxError
from webmail.web.conversations import _marker
from webmail.web.mail import _folder_tree, _latest_change_id, _replying, _viewers

WORKING_ROLES = (Role.MANAGER, Role.AGENT)
State = OutgoingMessage.State
Kind = OutgoingMessage.Kind
STARTABLE = {Kind.REPLY, Kind.REPLY_ALL, Kind.FORWARD}
ADDRESS_FIELDS = (("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"))
MAX_TEXT = 1_000_000  # characters of body text: far beyond any answer, short of abuse
# Room for the multipart framing around the files when checking Content-Length up front.
UPLOAD_OVERHEAD = 64 * 1024


# -- access -----------------------------------------------------------------------------------


def _mailbox_for_work(request: HttpRequest, mailbox_id: int) -> Mailbox:
    """The mailbox if the user may answer from it: 404 for outsiders, 403 for viewers."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    if box.role_of(request.user) not in WORKING_ROLES:
        raise PermissionDenied("Viewers read this mailbox but do not write from it.")
    return box


def _outgoing_in(box: Mailbox, outgoing_id: int) -> OutgoingMessage:
    return get_object_or_404(
        OutgoingMessage.objects.select_related("mailbox", "conversation", "source", "author"),
        pk=outgoing_id,
        mailbox=box,
    )


def _own_outgoing(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> OutgoingMessage:
    """A message only its author may change (a draft is someone's unfinished words)."""
    outgoing = _outgoing_in(_mailbox_for_work(request, mailbox_id), outgoing_id)
    if outgoing.author_id != request.user.pk:
        raise PermissionDenied("Only its author edits a draft.")
    return outgoing


def _outgoing_to_decide(request: HttpRequest, mailbox_id: int, outgoing_id: int):
    """A message on its way or stuck: its author or a manager undoes, retries or discards it."""
    box = _mailbox_for_work(request, mailbox_id)
    outgoing = _outgoing_in(box, outgoing_id)
    if outgoing.author_id != request.user.pk and box.role_of(request.user) != Role.MANAGER:
        raise PermissionDenied("Only its author or a manager decides about this message.")
    return outgoing


# -- starting ---------------------------------------------------------------------------------


@login_required
@require_POST
def start_compose(
    request: HttpRequest, mailbox_id: int, message_id: int, kind: str
) -> HttpResponse:
    """Reply, reply all or forward: a draft made from the message, then its compose page.

    A draft of the same kind to the same message by the same person is continued instead."""
    if kind not in STARTABLE:
        raise Http404("no such way to answer")
    box = _mailbox_for_work(request, mailbox_id)
    source = get_message_for_user(request.user, box.pk, message_id)
    draft = box.outgoing.filter(
        author=request.user, source=source, kind=kind, state=State.DRAFT
    ).first()
    if draft is None:
        draft = compose.start(request.user, box, kind, source)
    else:
        flash.info(request, "You had already started this one: here is your draft.")
    return _go(request, compose_url(draft))


@login_required
@require_POST
def new_message(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    box = _mailbox_for_work(request, mailbox_id)
    return _go(request, compose_url(compose.start(request.user, box, Kind.NEW)))


def compose_url(outgoing: OutgoingMessage) -> str:
    return reverse("compose", args=[outgoing.mailbox_id, outgoing.pk])


def _go(request: HttpRequest, url: str) -> HttpResponse:
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


# -- the compose page -------------------------------------------------------------------------


@login_required
@require_GET
def compose_page(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> HttpResponse:
    outgoing = _own_outgoing(request, mailbox_id, outgoing_id)
    if outgoing.state != State.DRAFT:
        flash.info(request, _state_sentence(outgoing))
        return redirect(_after_url(outgoing))
    return _render_page(request, outgoing)


def _render_page(
    request: HttpRequest,
    outgoing: OutgoingMessage,
    *,
    typed: dict | None = None,
    errors: dict[str, str] | None = None,
    warning: str = "",
    seen: str = "",
    status: int = 200,
) -> HttpResponse:
    box = outgoing.mailbox
    source = outgoing.source
    answering = source.pk if source is not None and source.mailbox_id == box.pk else None
    fields = typed or {
        "to": compose.format_addresses(outgoing.to),
        "cc": compose.format_addresses(outgoing.cc),
        "bcc": compose.format_addresses(outgoing.bcc),
        "subject": outgoing.subject,
        "text": outgoing.text,
        "html": outgoing.html,
        "format": "rich" if outgoing.html else "plain",
    }
    errors = errors or {}
    context = {
        "mailbox": box,
        "outgoing": outgoing,
        "conversation": outgoing.conversation,
        "sender": formataddr((compose.sender_display(outgoing), box.email)),
        "fields": fields,
        "field_rows": [
            (name, label, fields[name], errors.get(name, ""))
            for name, label in (*ADDRESS_FIELDS, ("subject", "Subject"))
        ],
        # Stored sanitized; cleaned again on the way out all the same.
        "rich_html": compose.clean_rich_html(fields["html"]) if fields["html"] else "",
        "errors": errors,
        "warning": warning,
        "seen": seen or _seen_marker(outgoing),
        "saved_at": outgoing.updated_at,
        "on_opening": True,
        "saved_replies": _saved_replies(outgoing, request.user),
        "max_mb": settings.COMPOSE_MAX_ATTACHMENT_MB,
        "undo_seconds": settings.SEND_UNDO_SECONDS,
        "folders": _folder_tree(box),
        "folder": None,
        "last_change_id": _latest_change_id(),
        # The page's event stream says "replying" to the message answered: teammates see it.
        "message_id": answering,
        "presence_activity": "replying" if answering else "",
        "viewers": _viewers(box, answering, request.user) if answering else [],
        "replying": _replying(box, [answering], request.user) if answering else [],
        **_attachment_context(outgoing),
    }
    return render(request, "webmail/compose.html", context, status=status)


def _attachment_context(outgoing: OutgoingMessage) -> dict:
    attachments = list(outgoing.attachments.defer("content").order_by("pk"))
    return {
        "attachments": attachments,
        "attachments_total": sum(a.size for a in attachments),
        "mailbox": outgoing.mailbox,
        "outgoing": outgoing,
        "max_mb": settings.COMPOSE_MAX_ATTACHMENT_MB,
    }


def _saved_replies(outgoing: OutgoingMessage, user) -> list[dict]:
    return [
        {"name": reply.name, "body": compose.fill_placeholders(reply.body, outgoing, user)}
        for reply in outgoing.mailbox.saved_replies.all()
    ]


def _state_sentence(outgoing: OutgoingMessage) -> str:
    return {
        State.QUEUED: "This message is on its way; undo it from the conversation to change it.",
        State.SENDING: "This message is being sent.",
        State.SENT: "This message has been sent.",
        State.FAILED: "This message was not sent: the reason is shown with it.",
        State.UNCERTAIN: "This message may or may not have left: decide with it.",
    }.get(outgoing.state, "This message is no longer a draft.")


def _after_url(outgoing: OutgoingMessage) -> str:
    """Where a message is followed once it left the compose page."""
    if outgoing.conversation_id:
        return reverse("conversation", args=[outgoing.mailbox_id, outgoing.conversation_id])
    return reverse("drafts", args=[outgoing.mailbox_id])


# -- reading the form -------------------------------------------------------------------------


def _read_fields(post: QueryDict) -> tuple[dict, dict, dict[str, str]]:
    """(values for the row, the fields as typed, errors by field). Every header value is
    checked: line breaks and NUL are refused, addresses validated."""
    values: dict = {}
    errors: dict[str, str] = {}
    typed = {
        name: post.get(name, "")
        for name in ("to", "cc", "bcc", "subject", "text", "html", "format")
    }
    for name, label in ADDRESS_FIELDS:
        try:
            values[name] = compose.parse_addresses(typed[name], label)
        except ComposeError as exc:
            errors[name] = str(exc)
    try:
        values["subject"] = compose.check_header_value(typed["subject"], "The subject").strip()
        if len(values["subject"]) > 900:
            raise ComposeError("The subject is too long (at most 900 characters).")
    except ComposeError as exc:
        values.pop("subject", None)
        errors["subject"] = str(exc)
    if typed["format"] == "rich":
        values["html"] = compose.clean_rich_html(typed["html"][:MAX_TEXT])
        values["text"] = compose.rich_to_plain(values["html"])
    else:
        values["html"] = ""
        values["text"] = compose.clean_body(typed["text"][:MAX_TEXT])
    return values, typed, errors


def _locked_draft(outgoing: OutgoingMessage) -> OutgoingMessage:
    """The row, re-read under a lock inside the caller's transaction: an autosave that arrives
    after Send must not write over a queued message."""
    return (
        # Lock the outbox row only: PostgreSQL cannot lock the nullable side of the joins.
        OutgoingMessage.objects.select_for_update(of=("self",))
        .select_related("mailbox", "conversation", "source", "author")
        .get(pk=outgoing.pk)
    )


@login_required
@require_POST
def save_draft(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> HttpResponse:
    """Autosave: keep whatever is sound of what was typed, and say what is not."""
    outgoing = _own_outgoing(request, mailbox_id, outgoing_id)
    values, typed, errors = _read_fields(request.POST)
    with transaction.atomic():
        outgoing = _locked_draft(outgoing)
        try:
            outbox.save_draft(outgoing, **values)
        except OutboxError:
            return _save_state(request, outgoing, gone=True)
    if request.htmx:
        return _save_state(request, outgoing, errors=errors)
    if errors:
        return _render_page(request, outgoing, typed=typed, errors=errors)
    flash.success(request, "Draft saved.")
    return redirect(compose_url(outgoing))


def _error_rows(errors: dict[str, str]) -> list[tuple[str, str]]:
    """Every field's error, empty ones included: an out-of-band swap clears a fixed field."""
    return [(name, errors.get(name, "")) for name in ("to", "cc", "bcc", "subject")]


def _save_state(
    request: HttpRequest,
    outgoing: OutgoingMessage,
    *,
    errors: dict[str, str] | None = None,
    gone: bool = False,
) -> HttpResponse:
    return render(
        request,
        "webmail/compose.html#save-state",
        {
            "outgoing": outgoing,
            "saved_at": outgoing.updated_at,
            "gone": gone,
            "error_rows": _error_rows(errors or {}),
            "oob_errors": not gone,
        },
    )


# -- sending ----------------------------------------------------------------------------------


@login_required
@require_POST
def send(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> HttpResponse:
    """Save what was typed, check it, warn if the conversation moved on, then queue it."""
    outgoing = _own_outgoing(request, mailbox_id, outgoing_id)
    values, typed, errors = _read_fields(request.POST)
    seen = request.POST.get("seen", "")
    if errors:
        return _refuse(request, outgoing, typed, errors, seen)
    news = "" if request.POST.get("confirm") else news_since(outgoing, seen, request.user)
    with transaction.atomic():
        outgoing = _locked_draft(outgoing)
        try:
            outbox.save_draft(outgoing, **values)
            if not news:
                outbox.queue(outgoing)
        except (OutboxError, ComposeError) as exc:
            # What was typed is kept (saved above); only the sending is refused.
            return _refuse(request, outgoing, typed, {"send": str(exc)}, seen)
    if news:
        if request.htmx:
            return _send_warning(request, outgoing, warning=news, seen=seen)
        return _render_page(request, outgoing, typed=typed, warning=news, seen=seen)
    seconds = settings.SEND_UNDO_SECONDS
    text = f"Sending in {seconds} s." if seconds else "Sending now."
    return _answer(request, _after_url(outgoing), text, undo=undo_url(outgoing))


def undo_url(outgoing: OutgoingMessage) -> str:
    return reverse("undo_send", args=[outgoing.mailbox_id, outgoing.pk])


def _refuse(
    request: HttpRequest,
    outgoing: OutgoingMessage,
    typed: dict,
    errors: dict[str, str],
    seen: str,
) -> HttpResponse:
    if request.htmx:
        return _send_warning(request, outgoing, errors=errors, seen=seen)
    return _render_page(request, outgoing, typed=typed, errors=errors, seen=seen)


def _send_warning(
    request: HttpRequest,
    outgoing: OutgoingMessage,
    *,
    errors: dict[str, str] | None = None,
    warning: str = "",
    seen: str = "",
) -> HttpResponse:
    return render(
        request,
        "webmail/compose.html#send-warning",
        {
            "mailbox": outgoing.mailbox,
            "outgoing": outgoing,
            "errors": errors or {},
            "error_rows": _error_rows(errors or {}),
            "oob_errors": True,
            "warning": warning,
            "seen": seen,
        },
    )


def _answer(
    request: HttpRequest, go_to: str, text: str, *, level: str = "success", undo: str = ""
) -> HttpResponse:
    """A toast (with Undo while it can be taken back) and the next page, for htmx; a flash
    message and a redirect for a plain form."""
    if request.htmx:
        response = HttpResponse(status=204)
        toast = {"text": text, "level": level}
        if undo:  # offered as long as the send waits
            toast |= {"undo": undo, "seconds": settings.SEND_UNDO_SECONDS}
        response["HX-Trigger"] = json.dumps({"kotak:toast": toast, "kotak:refresh": {}})
        if go_to:
            response["HX-Redirect"] = go_to
        return response
    getattr(flash, level)(request, text)
    return redirect(go_to)


def _seen_marker(outgoing: OutgoingMessage) -> str:
    """What the conversation held when the compose page was opened: the newest message's
    arrival, the newest note and the time, as "<seconds>-<note id>-<seconds>"."""
    opened = int(timezone.now().timestamp())
    conversation = outgoing.conversation
    if conversation is None:
        return f"0-0-{opened}"
    # Copies of our own messages (a draft filed in Drafts) are not what the page is about.
    mails = list(
        conversation.messages.filter(pending_removal=False)
        .exclude(message_id__in=conversation.outgoing.values("message_id"))
        .only("internal_date")
    )
    notes = list(conversation.notes.only("pk"))
    newest, note = _marker(mails, notes)
    return f"{newest}-{note}-{opened}"


def _parse_marker(value: str) -> tuple[int, int, int] | None:
    parts = value.split("-")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def news_since(outgoing: OutgoingMessage, seen: str, user) -> str:
    """ "alice added a note since you started — send anyway?", or "" when nothing happened
    in the conversation since the compose page was opened (by anyone but its author)."""
    conversation = outgoing.conversation
    marker = _parse_marker(seen)
    if conversation is None or marker is None:
        return ""
    newest, note, opened = marker
    # Copies of answers sent from Kotak (ours are not news; teammates' are counted below as
    # replies, and their drafts filed in Drafts are not news at all).
    answers = conversation.outgoing.values("message_id")
    arrived = (
        conversation.messages.filter(
            pending_removal=False,
            internal_date__gte=datetime.fromtimestamp(newest + 1, UTC),
        )
        .exclude(message_id__in=answers)
        .values("message_id")
        .distinct()
        .count()
    )
    noters = list(
        conversation.notes.filter(pk__gt=note)
        .exclude(author=user)
        .select_related("author")
        .order_by("pk")
    )
    since = datetime.fromtimestamp(opened, UTC)
    answered = list(
        conversation.outgoing.exclude(author=user)
        .filter(state__in=[State.QUEUED, State.SENDING, State.SENT])
        .filter(Q(send_at__gte=since) | Q(sent_at__gte=since))
        .select_related("author")
    )
    parts = []
    for people, one, many in (
        ([n.author for n in noters], "added a note", "added notes"),
        ([o.author for o in answered], "sent a reply", "sent replies"),
    ):
        names = list(dict.fromkeys(team.display_name(p) if p else "A teammate" for p in people))
        if names:
            count = len(people)
            parts.append(f"{_and(names)} {one if count == 1 else many}")
    people_first = bool(parts)
    if arrived:
        parts.append("a new message arrived" if arrived == 1 else f"{arrived} new messages arrived")
    if not parts:
        return ""
    text = _and(parts) + " since you started — send anyway?"
    # "A new message arrived …", but a person's name is written as it is ("alice added …").
    return text if people_first else text[0].upper() + text[1:]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@login_required
@require_POST
def undo_send(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> HttpResponse:
    """Stop a queued message in its undo window: it is a draft again, open for its author."""
    outgoing = _outgoing_to_decide(request, mailbox_id, outgoing_id)
    if not outbox.undo(outgoing):
        outgoing.refresh_from_db()
        text = (
            "Too late to undo: it has been sent."
            if outgoing.state in (State.SENDING, State.SENT)
            else "Nothing to undo: this message is not waiting to be sent."
        )
        return _answer(request, _after_url(outgoing), text, level="warning")
    if outgoing.author_id == request.user.pk:
        return _answer(request, compose_url(outgoing), "Not sent: it is your draft again.")
    return _answer(request, _after_url(outgoing), "Not sent: it is a draft again.")


@login_required
@require_POST
def retry_send(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> HttpResponse:
    """Try a refused message again, or send one whose fate is unknown anyway (a person
    decided: the screen said it may already have left)."""
    outgoing = _outgoing_to_decide(request, mailbox_id, outgoing_id)
    if outgoing.state not in (State.FAILED, State.UNCERTAIN):
        return _answer(
            request,
            _after_url(outgoing),
            "This message is not waiting for a retry.",
            level="warning",
        )
    try:
        outbox.queue(outgoing)
    except (OutboxError, ComposeError) as exc:
        return _answer(request, _after_url(outgoing), str(exc), level="error")
    seconds = settings.SEND_UNDO_SECONDS
    return _answer(
        request,
        _after_url(outgoing),
        f"Sending again in {seconds} s." if seconds else "Sending again.",
        undo=undo_url(outgoing),
    )


@login_required
@require_POST
def edit_failed(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> HttpResponse:
    """A refused message back to its author's compose page, to correct (a wrong address)."""
    outgoing = _own_outgoing(request, mailbox_id, outgoing_id)
    if not outbox.reopen(outgoing):
        return _answer(
            request, _after_url(outgoing), "Only a refused message can be edited.", level="warning"
        )
    return _go(request, compose_url(outgoing))


@login_required
@require_POST
def discard(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> HttpResponse:
    """Throw away a draft (its author), or a refused or uncertain message (author or manager)."""
    outgoing = _outgoing_to_decide(request, mailbox_id, outgoing_id)
    if outgoing.state == State.DRAFT and outgoing.author_id != request.user.pk:
        raise PermissionDenied("Only its author discards a draft.")
    go_to = _after_url(outgoing)
    was_draft = outgoing.state == State.DRAFT
    try:
        outbox.discard(outgoing)
    except OutboxError as exc:
        return _answer(request, go_to, str(exc), level="warning")
    return _answer(request, go_to, "Draft discarded." if was_draft else "Message discarded.")


# -- attachments ------------------------------------------------------------------------------


@login_required
@require_POST
def upload_attachments(request: HttpRequest, mailbox_id: int, outgoing_id: int) -> HttpResponse:
    outgoing = _own_outgoing(request, mailbox_id, outgoing_id)
    error = ""
    declared = request.META.get("CONTENT_LENGTH", "")
    limit = compose.max_attachment_bytes()
    if declared.isdigit() and int(declared) > limit + UPLOAD_OVERHEAD:
        # Refused before Django reads (and spools) the files.
        error = (
            f"Attachments are limited to {settings.COMPOSE_MAX_ATTACHMENT_MB} MB per message. "
            "Nothing was added."
        )
    else:
        uploads = request.FILES.getlist("files")
        if not uploads:
            error = "Choose one or more files to attach."
        else:
            with transaction.atomic():
                outgoing = _locked_draft(outgoing)
                try:
                    if outgoing.state != State.DRAFT:
                        raise OutboxError("This message is no longer a draft.")
                    compose.attach(outgoing, uploads)
                    outbox.save_draft(outgoing)  # the Drafts copy gets them too
                except (ComposeError, OutboxError) as exc:
                    transaction.set_rollback(True)
                    error = str(exc)
    return _attachments_answer(request, outgoing, error)


@login_required
@require_POST
def remove_attachment(
    request: HttpRequest, mailbox_id: int, outgoing_id: int, attachment_id: int
) -> HttpResponse:
    outgoing = _own_outgoing(request, mailbox_id, outgoing_id)
    error = ""
    with transaction.atomic():
        outgoing = _locked_draft(outgoing)
        if outgoing.state != State.DRAFT:
            error = "This message is no longer a draft."
        else:
            get_object_or_404(outgoing.attachments, pk=attachment_id).delete()
            outbox.save_draft(outgoing)
    return _attachments_answer(request, outgoing, error)


def _attachments_answer(
    request: HttpRequest, outgoing: OutgoingMessage, error: str
) -> HttpResponse:
    if request.htmx:
        context = _attachment_context(outgoing) | {"attachment_error": error}
        return render(request, "webmail/compose.html#attachments", context)
    if error:
        flash.error(request, error)
    return redirect(compose_url(outgoing))


# -- drafts and the outbox --------------------------------------------------------------------


@login_required
@require_GET
def drafts(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """My drafts (to continue after a closed browser), what is on its way, and what needs a
    decision: mine, and for managers everyone's."""
    box = _mailbox_for_work(request, mailbox_id)
    rows = box.outgoing.select_related("conversation", "author").order_by("-updated_at")
    problems = outbox.problems(box).select_related("conversation", "author").order_by("-pk")
    if box.role_of(request.user) != Role.MANAGER:
        problems = problems.filter(author=request.user)
    context = {
        "mailbox": box,
        "drafts": list(rows.filter(author=request.user, state=State.DRAFT)[:200]),
        "on_the_way": list(
            rows.filter(author=request.user, state__in=[State.QUEUED, State.SENDING])
        ),
        "problems": list(problems[:200]),
        "is_manager": box.role_of(request.user) == Role.MANAGER,
        "folders": _folder_tree(box),
        "folder": None,
        "last_change_id": _latest_change_id(),
        "now": timezone.now(),
    }
    if request.htmx and request.htmx.target == "outbox-lists":
        return render(request, "webmail/drafts.html#outbox-lists", context)
    return render(request, "webmail/drafts.html", context)
