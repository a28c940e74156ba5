"""Connecting mailboxes, and each member's own preferences for one."""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from webmail.access import can_add_mailbox, get_mailbox_for_user
from webmail.mailboxes import add_mailbox as create_mailbox
from webmail.models import Membership, Team
from webmail.web.forms import MailboxForm


@sensitive_post_parameters("imap_password")
@login_required
def add_mailbox(request: HttpRequest) -> HttpResponse:
    if not can_add_mailbox(request.user):
        raise Http404("only administrators and managers connect mailboxes")
    if request.method == "POST":
        form = MailboxForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            mailbox = create_mailbox(
                team_name=data["team"],
                name=data["name"],
                email=data["email"],
                server=form.server_settings(),
                capabilities=data["capabilities"],
                manager=request.user,
            )
            return redirect(mailbox)
    else:
        team = Team.objects.filter(mailboxes__memberships__user=request.user).first()
        form = MailboxForm(initial={"team": team.name if team else "Support"})
    return render(request, "webmail/add_mailbox.html", {"form": form})


@login_required
@require_POST
def preferences(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """A member's own choices for a mailbox (whether opening a message marks it read)."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    mark_read = request.POST.get("mark_read_on_open") == "on"
    Membership.objects.filter(user=request.user, mailbox=box).update(mark_read_on_open=mark_read)
    flash.success(
        request,
        f"{box.name}: opening a message "
        + ("marks it read." if mark_read else "leaves it unread until you mark it."),
    )
    return redirect(reverse("home"))
