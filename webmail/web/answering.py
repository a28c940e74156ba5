"""Settings for answering: the mailbox's SMTP server and how it signs (managers), each
member's own signature, and the saved replies managers keep for the team."""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from webmail.access import get_mailbox_for_user
from webmail.compose import PLACEHOLDERS
from webmail.models import Mailbox, Membership, Role, SavedReply
from webmail.web.forms import AnsweringForm, SavedReplyForm
from webmail.web.mail import _folder_tree, _latest_change_id

MAX_SIGNATURE = 5000


def _mailbox_for_manager(request: HttpRequest, mailbox_id: int) -> Mailbox:
    """404 for outsiders, 403 for members who do not manage the mailbox."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    if box.role_of(request.user) != Role.MANAGER:
        raise PermissionDenied("Only the mailbox's managers change this.")
    return box


def _page(box: Mailbox) -> dict:
    """What every page inside the mailbox layout needs."""
    return {
        "mailbox": box,
        "folders": _folder_tree(box),
        "folder": None,
        "last_change_id": _latest_change_id(),
    }


@sensitive_post_parameters("smtp_password")
@login_required
@require_http_methods(["GET", "POST"])
def answering_settings(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    box = _mailbox_for_manager(request, mailbox_id)
    if request.method == "POST":
        form = AnsweringForm(request.POST, mailbox=box)
        if form.is_valid():
            form.save()
            flash.success(
                request,
                "Answering settings saved."
                + (" Kotak logged in to the SMTP server to check them." if box.smtp_host else ""),
            )
            return redirect("answering_settings", box.pk)
    else:
        form = AnsweringForm(
            mailbox=box,
            initial={
                "smtp_host": box.smtp_host,
                "smtp_port": box.smtp_port,
                "smtp_security": box.smtp_security,
                "smtp_username": box.smtp_username,
                "from_name": box.from_name,
                "from_agent_name": box.from_agent_name,
                "signature": box.signature,
                "server_saves_sent": box.server_saves_sent,
                "status_after_reply": box.status_after_reply,
            },
        )
    return render(
        request,
        "webmail/answering_settings.html",
        _page(box)
        | {
            "form": form,
            "has_password": bool(box.smtp_password_encrypted),
            "saved_reply_count": box.saved_replies.count(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def my_settings(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """A member's own signature in this mailbox (above the mailbox's)."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    if box.role_of(request.user) not in (Role.MANAGER, Role.AGENT):
        raise PermissionDenied("Viewers do not write from this mailbox.")
    membership = get_object_or_404(Membership, user=request.user, mailbox=box)
    error = ""
    if request.method == "POST":
        signature = request.POST.get("signature", "").replace("\r\n", "\n").strip()
        if len(signature) > MAX_SIGNATURE:
            error = f"A signature is at most {MAX_SIGNATURE} characters."
        else:
            membership.signature = signature
            membership.save(update_fields=["signature"])
            flash.success(request, "Your signature is saved; it goes in your new answers.")
            return redirect("my_settings", box.pk)
    return render(
        request,
        "webmail/my_settings.html",
        _page(box) | {"membership": membership, "error": error},
    )


@login_required
@require_http_methods(["GET", "POST"])
def saved_replies(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """The mailbox's saved replies, and a new one (managers; agents use them when composing)."""
    box = _mailbox_for_manager(request, mailbox_id)
    form = SavedReplyForm(request.POST or None, mailbox=box)
    if request.method == "POST" and form.is_valid():
        SavedReply.objects.create(
            mailbox=box,
            name=form.cleaned_data["name"],
            body=form.cleaned_data["body"],
            created_by=request.user,
        )
        flash.success(request, f"Saved reply “{form.cleaned_data['name']}” added.")
        return redirect("saved_replies", box.pk)
    return _saved_replies_page(request, box, form)


def _saved_replies_page(
    request: HttpRequest, box: Mailbox, form: SavedReplyForm, editing: SavedReply | None = None
) -> HttpResponse:
    return render(
        request,
        "webmail/saved_replies.html",
        _page(box)
        | {
            "replies": list(box.saved_replies.all()),
            "form": form,
            "editing": editing,
            "placeholders": PLACEHOLDERS,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def edit_saved_reply(request: HttpRequest, mailbox_id: int, reply_id: int) -> HttpResponse:
    box = _mailbox_for_manager(request, mailbox_id)
    reply = get_object_or_404(SavedReply, pk=reply_id, mailbox=box)
    initial = {"name": reply.name, "body": reply.body}
    form = SavedReplyForm(request.POST or None, mailbox=box, instance=reply, initial=initial)
    if request.method == "POST" and form.is_valid():
        reply.name = form.cleaned_data["name"]
        reply.body = form.cleaned_data["body"]
        reply.updated_at = timezone.now()
        reply.save(update_fields=["name", "body", "updated_at"])
        flash.success(request, f"Saved reply “{reply.name}” updated.")
        return redirect("saved_replies", box.pk)
    return _saved_replies_page(request, box, form, editing=reply)


@login_required
@require_POST
def delete_saved_reply(request: HttpRequest, mailbox_id: int, reply_id: int) -> HttpResponse:
    box = _mailbox_for_manager(request, mailbox_id)
    reply = get_object_or_404(SavedReply, pk=reply_id, mailbox=box)
    reply.delete()
    flash.success(request, f"Saved reply “{reply.name}” deleted.")
    return redirect("saved_replies", box.pk)
