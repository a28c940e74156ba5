"""Connecting a new shared mailbox: one function for the web form and `manage.py add_mailbox`."""

from __future__ import annotations

from django.db import transaction

from webmail.imap.client import ServerSettings
from webmail.models import Mailbox, Membership, Role, Team


def add_mailbox(
    *,
    team_name: str,
    name: str,
    email: str,
    server: ServerSettings,
    capabilities: list[str],
    manager=None,
) -> Mailbox:
    """Store a verified mailbox, make `manager` its manager, and queue its first sync."""
    from webmail.sync.tasks import enqueue_sync

    with transaction.atomic():
        team, _ = Team.objects.get_or_create(name=team_name)
        mailbox = Mailbox(
            team=team,
            name=name,
            email=email,
            imap_host=server.host,
            imap_port=server.port,
            imap_security=server.security,
            imap_username=server.username,
            ca_certificates=server.ca_certificates,
            capabilities=capabilities,
            created_by=manager,
        )
        mailbox.imap_password = server.password
        mailbox.save()
        if manager is not None:
            Membership.objects.create(user=manager, mailbox=mailbox, role=Role.MANAGER)
        transaction.on_commit(lambda: enqueue_sync(mailbox.pk))
    return mailbox
