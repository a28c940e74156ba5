"""Who works a mailbox, and its team-wide switches: invite, change roles, remove, mirror
keywords. Managers only; every change is a line in the mailbox's audit trail.

A mailbox never loses its last manager: the check runs under a lock on the managers'
memberships, so two managers demoting each other at once cannot both succeed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from webmail import team
from webmail.models import Activity, Conversation, Mailbox, Membership, Role
from webmail.team import TeamError

# Roles that can hold conversations; a member moved out of them gives theirs back.
WORKING_ROLES = (Role.MANAGER, Role.AGENT)


@dataclass
class Invitation:
    membership: Membership
    # An account made for this invitation (or one still waiting for its password): the
    # manager passes set_password_path on, since Kotak sends no mail of its own yet.
    is_new_account: bool
    set_password_path: str = ""
    # Invited before and not come yet: only the link is new.
    is_repeat: bool = False


def is_pending_invite(user) -> bool:
    """An account made by an invitation whose owner has not chosen a password yet."""
    return not user.is_active and not user.has_usable_password()


def set_password_path(user) -> str:
    """A one-time link to choose a password (Django's reset token: it dies with its use)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("password_reset_confirm", args=[uid, token])


def invite(by, mailbox: Mailbox, who: str, role: str) -> Invitation:
    """Make a Kotak user (found by username or email) a member; an unknown email address gets
    an inactive account that the link activates."""
    team.require(by, mailbox, Role.MANAGER)
    who = (who or "").strip()
    if role not in Role.values:
        raise TeamError(f"Unknown role “{role}”.")
    if not who:
        raise TeamError("Enter a username or an email address.")
    users = get_user_model().objects
    user = users.filter(username__iexact=who).first() or users.filter(email__iexact=who).first()
    if user is None:
        try:
            validate_email(who)
        except ValidationError:
            raise TeamError(
                f"There is no Kotak user called “{who}”; invite them by email address instead."
            ) from None
    existing = Membership.objects.filter(user=user, mailbox=mailbox).first() if user else None
    if existing is not None:
        if is_pending_invite(user):
            # Asked again for someone who never came: a fresh link, nothing else changes.
            return Invitation(existing, True, set_password_path(user), is_repeat=True)
        raise TeamError(f"{team.display_name(user)} is already a member of {mailbox.name}.")
    created = user is None
    try:
        with transaction.atomic():
            if created:
                user = users.create_user(_free_username(who), email=who.lower(), password=None)
                user.is_active = False
                user.save(update_fields=["is_active"])
            membership = Membership.objects.create(user=user, mailbox=mailbox, role=role)
            _audit(by, mailbox, "member_added", user, {"role": role})
    except IntegrityError:
        # Another manager added them (or took the username) a moment ago.
        raise TeamError(f"{who} was just added by someone else; see the list.") from None
    pending = created or is_pending_invite(user)
    return Invitation(membership, pending, set_password_path(user) if pending else "")


def change_role(by, membership: Membership, role: str) -> bool:
    """Give a member another role; a viewer gives back the conversations they held."""
    mailbox = membership.mailbox
    team.require(by, mailbox, Role.MANAGER)
    if role not in Role.values:
        raise TeamError(f"Unknown role “{role}”.")
    if membership.role == role:
        return False
    with transaction.atomic():
        if membership.role == Role.MANAGER:
            _keep_a_manager(membership, "demote")
        if role not in WORKING_ROLES:
            # Before the change: the manager may be demoting themselves.
            _give_back(by, membership)
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        _audit(by, mailbox, "role_changed", membership.user, {"role": role, "from": before})
    return True


def remove(by, membership: Membership) -> int:
    """Take a member off the mailbox; their open and pending conversations become unassigned.

    Returns how many conversations were unassigned."""
    mailbox = membership.mailbox
    team.require(by, mailbox, Role.MANAGER)
    with transaction.atomic():
        if membership.role == Role.MANAGER:
            _keep_a_manager(membership, "remove")
        # While the member still counts: the manager may be removing themselves.
        unassigned = _give_back(by, membership)
        membership.delete()
        _audit(
            by,
            mailbox,
            "member_removed",
            membership.user,
            {"role": membership.role, "unassigned": unassigned},
        )
    return unassigned


def set_mirror_keywords(by, mailbox: Mailbox, on: bool) -> bool:
    """Whether assignment and status are mirrored to the server as IMAP keywords."""
    team.require(by, mailbox, Role.MANAGER)
    if mailbox.mirror_keywords == on:
        return False
    with transaction.atomic():
        mailbox.mirror_keywords = on
        mailbox.save(update_fields=["mirror_keywords"])
        Activity.objects.create(
            mailbox=mailbox, actor=by, verb="settings_changed", data={"mirror_keywords": on}
        )
        if on:
            # What was worked while it was off goes to the server too, in the background.
            from webmail.sync.tasks import enqueue_mirror_keywords

            transaction.on_commit(lambda: enqueue_mirror_keywords(mailbox.pk))
    return True


def _keep_a_manager(membership: Membership, doing: str) -> None:
    managers = list(
        Membership.objects.select_for_update()
        .filter(mailbox_id=membership.mailbox_id, role=Role.MANAGER)
        .values_list("pk", flat=True)
    )
    if managers == [membership.pk]:
        raise TeamError(
            f"{team.display_name(membership.user)} is the last manager of this mailbox: "
            f"make someone else a manager before you {doing} them."
        )


def _give_back(by, membership: Membership) -> int:
    held = list(
        Conversation.objects.filter(
            mailbox_id=membership.mailbox_id,
            assignee_id=membership.user_id,
            status__in=[Conversation.Status.OPEN, Conversation.Status.PENDING],
        ).select_related("mailbox", "assignee")
    )
    return team.assign(by, held, None) if held else 0


def _audit(by, mailbox: Mailbox, verb: str, user, data: dict) -> Activity:
    return Activity.objects.create(
        mailbox=mailbox,
        actor=by,
        verb=verb,
        data={"user": user.pk, "name": team.display_name(user), **data},
    )


def _free_username(email: str) -> str:
    """A username from the address's local part (how @mentions name people), made unique."""
    base = re.sub(r"[^\w.+-]", "", email.split("@", 1)[0])[:140] or "user"
    users = get_user_model().objects
    taken = {
        name.lower()
        for name in users.filter(username__istartswith=base).values_list("username", flat=True)
    }
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base}{n}"
    return name
