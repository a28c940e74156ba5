"""Re-encrypt every stored IMAP/SMTP password with the first of ENCRYPTION_KEYS.

Rotation: put the new key first in ENCRYPTION_KEYS and keep the old one after it (both are
read meanwhile), run this, then remove the old key.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from webmail import crypto
from webmail.models import Mailbox

FIELDS = ("imap_password_encrypted", "smtp_password_encrypted")


class Command(BaseCommand):
    help = "Re-encrypt stored mailbox passwords with the current (first) encryption key."

    def handle(self, *args, **options):
        done, unreadable = 0, []
        for mailbox in Mailbox.objects.only("pk", "name", *FIELDS).iterator():
            try:
                values = {field: crypto.rotate(getattr(mailbox, field)) for field in FIELDS}
            except Exception:  # noqa: BLE001 — InvalidToken: a key that is no longer configured
                unreadable.append(f"{mailbox.name} (#{mailbox.pk})")
                continue
            with transaction.atomic():
                Mailbox.objects.filter(pk=mailbox.pk).update(**values)
            done += 1
        self.stdout.write(f"Re-encrypted the passwords of {done} mailbox(es).")
        if unreadable:
            raise CommandError(
                "These mailboxes' passwords cannot be read with the configured keys (was an old "
                "key removed too early?): " + ", ".join(unreadable)
            )
