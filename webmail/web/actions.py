"""Acting on messages from the list or the reader: the doors to webmail.actions.

Every request is a POST with a CSRF token, checks membership and role, and never trusts an id
from the browser: messages are looked up within the mailbox the user belongs to. htmx callers
get a `kotak:toast` event (with an undo link where there is one) and a list refresh; plain form
posts get the same words as a flash message and a redirect back.
"""

from __future__ import annotations

import json

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from webmail import actions
from webmail.access import get_mailbox_for_user
from webmail.models import Folder, Mailbox, Message, PendingChange

MAX_SELECTION = 5000

ACTIONS = {
    "read": lambda user, box, msgs, req: actions.set_flag(user, msgs, "\\Seen", True),
    "unread": lambda user, box, msgs, req: actions.set_flag(user, msgs, "\\Seen", False),
    "flag": lambda user, box, msgs, req: actions.set_flag(user, msgs, "\\Flagged", True),
    "unflag": lambda user, box, msgs, req: actions.set_flag(user, msgs, "\\Flagged", False),
    "archive": lambda user, box, msgs, req: actions.archive(user, box, msgs),
    "spam": lambda user, box, msgs, req: actions.mark_spam(user, box, msgs),
    "notspam": lambda user, box, msgs, req: actions.mark_not_spam(user, box, msgs),
    "delete": lambda user, box, msgs, req: _delete(user, box, msgs, req),
    "move": lambda user, box, msgs, req: _move(user, box, msgs, req),
}


@login_required
@require_POST
def act(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    box = get_mailbox_for_user(request.user, mailbox_id)
    if not actions.can_act(request.user, box):
        raise PermissionDenied("Viewers can read this mailbox but not change it.")
    name = request.POST.get("action", "")
    if name not in ACTIONS:
        return HttpResponseBadRequest("Unknown action.")
    ids = [int(v) for v in request.POST.getlist("message") if v.isdigit()][:MAX_SELECTION]
    selected = list(
        Message.objects.filter(mailbox=box, pk__in=ids, pending_removal=False).select_related(
            "folder"
        )
    )
    if not selected:
        return _answer(request, box, "Select one or more messages first.", level="warning")
    try:
        outcome = ACTIONS[name](request.user, box, selected, request)
    except actions.ActionRefused as exc:
        return _answer(request, box, str(exc), level="error")
    undo_url, undo_seconds = "", 0.0
    if outcome.undo_until and outcome.batch:
        undo_url = reverse("undo", args=[box.pk, outcome.batch])
        undo_seconds = max(0.0, (outcome.undo_until - timezone.now()).total_seconds())
    response = _answer(
        request, box, outcome.description, undo_url=undo_url, undo_seconds=undo_seconds
    )
    if request.POST.get("from") == "reader" and outcome.undo_until:
        # The open message left this folder: go on to the next one (the toast goes along).
        # Without htmx too: no script, or a form the page had just swapped in and htmx had not
        # taken over yet, posts plainly.
        follow = _next_url(request, box)
        if follow:
            if request.htmx:
                response["HX-Redirect"] = follow
            else:
                response = redirect(follow)
    return response


@login_required
@require_POST
def undo(request: HttpRequest, mailbox_id: int, batch: str) -> HttpResponse:
    box = get_mailbox_for_user(request.user, mailbox_id)
    if not actions.can_act(request.user, box):
        raise PermissionDenied
    if actions.undo(request.user, box, batch):
        return _answer(request, box, "Undone.")
    return _answer(request, box, "Too late to undo: the server already has it.", level="warning")


@login_required
@require_POST
def dismiss_failures(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    box = get_mailbox_for_user(request.user, mailbox_id)
    if not actions.can_act(request.user, box):
        raise PermissionDenied
    box.pending_changes.filter(state=PendingChange.State.FAILED).delete()
    return _answer(request, box, "Dismissed.")


def _move(user, box: Mailbox, selected: list[Message], request: HttpRequest):
    target_id = request.POST.get("target", "")
    if not target_id.isdigit():
        raise actions.ActionRefused("Choose a folder to move to.")
    target = get_object_or_404(Folder, pk=int(target_id), mailbox=box)
    return actions.move(user, selected, target)


def _delete(user, box: Mailbox, selected: list[Message], request: HttpRequest):
    trash = box.folders.filter(special_use="trash").first()
    final = trash is not None and any(m.folder_id == trash.pk for m in selected)
    if final and request.POST.get("confirm") != "1":
        raise actions.ActionRefused("Deleting from Trash is final: confirm to go ahead.")
    return actions.delete(user, box, selected)


def _answer(
    request: HttpRequest,
    box: Mailbox,
    text: str,
    *,
    level: str = "success",
    undo_url: str = "",
    undo_seconds: float = 0.0,
) -> HttpResponse:
    if request.htmx:
        response = HttpResponse(status=204)
        toast = {"text": text, "level": level, "undo": undo_url}
        if undo_seconds:
            toast["seconds"] = undo_seconds  # how long Undo is offered
        response["HX-Trigger"] = json.dumps({"kotak:toast": toast, "kotak:refresh": {}})
        return response
    getattr(flash, level)(request, text)
    return redirect(_safe_next(request, box))


def _safe_next(request: HttpRequest, box: Mailbox) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return box.get_absolute_url()


def _next_url(request: HttpRequest, box: Mailbox) -> str:
    """The message to show after the open one left: the next older in the list, else newer."""
    current = request.POST.get("message", "")
    if not current.isdigit():
        return ""
    gone = Message.objects.filter(pk=int(current), mailbox=box).first()
    if gone is None:
        return ""
    siblings = Message.objects.filter(folder_id=gone.folder_id, pending_removal=False)
    older = (
        siblings.filter(internal_date__lte=gone.internal_date)
        .exclude(internal_date=gone.internal_date, uid__gte=gone.uid)
        .newest_first()
        .values_list("pk", flat=True)
        .first()
    )
    newer = (
        siblings.filter(internal_date__gte=gone.internal_date)
        .exclude(internal_date=gone.internal_date, uid__lte=gone.uid)
        .order_by("internal_date", "uid")
        .values_list("pk", flat=True)
        .first()
    )
    follow = older or newer
    if follow:
        return reverse("message", args=[box.pk, follow])
    return reverse("folder", args=[box.pk, gone.folder_id])
