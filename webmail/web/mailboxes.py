"""Connecting mailboxes."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from webmail.access import can_add_mailbox
from webmail.mailboxes import add_mailbox as create_mailbox
from webmail.models import Team
from webmail.web.forms import MailboxForm


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
