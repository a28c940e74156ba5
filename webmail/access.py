"""The only doors from a request to mailbox data: each returns the object or raises 404."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404

from webmail.models import Folder, Mailbox, Membership, Message, Role


def get_mailbox_for_user(user, mailbox_id: int, roles: tuple[str, ...] | None = None) -> Mailbox:
    """The mailbox if the user is a member (with one of roles, if given); 404 otherwise.

    A non-member gets 404, not 403, so mailbox ids reveal nothing.
    """
    mailbox = get_object_or_404(Mailbox.objects.for_user(user).distinct(), pk=mailbox_id)
    if roles is not None and mailbox.role_of(user) not in roles:
        raise Http404("not allowed")
    return mailbox


def get_folder_for_user(user, mailbox_id: int, folder_id: int) -> Folder:
    mailbox = get_mailbox_for_user(user, mailbox_id)
    return get_object_or_404(
        Folder.objects.select_related("mailbox"), pk=folder_id, mailbox=mailbox
    )


def get_message_for_user(user, mailbox_id: int, message_id: int) -> Message:
    mailbox = get_mailbox_for_user(user, mailbox_id)
    return get_object_or_404(
        Message.objects.select_related("folder", "mailbox"), pk=message_id, mailbox=mailbox
    )


def can_add_mailbox(user) -> bool:
    """Administrators, and anyone who already manages a mailbox, may connect new ones."""
    if not user.is_authenticated:
        return False
    return user.is_staff or Membership.objects.filter(user=user, role=Role.MANAGER).exists()
