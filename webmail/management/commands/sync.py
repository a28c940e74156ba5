"""Sync a mailbox in the foreground, printing progress (the same code the workers run)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from webmail.imap.client import ConnectError
from webmail.imap.folders import decode_name
from webmail.models import Folder, Mailbox
from webmail.sync.mailbox import sync_mailbox


class Command(BaseCommand):
    help = "Sync a mailbox (id or address) with its IMAP server now, showing progress."

    def add_arguments(self, parser):
        parser.add_argument("mailbox", help="mailbox id or email address")
        parser.add_argument(
            "--folder",
            action="append",
            help="only this folder (its name as shown, or as the server spells it); repeatable",
        )

    def handle(self, *args, **options):
        mailbox = self._mailbox(options["mailbox"])
        self.stdout.write(f"Syncing {mailbox}…")
        started = time.monotonic()
        last_line: dict[int, float] = {}

        def progress(folder: Folder) -> None:
            now = time.monotonic()
            if now - last_line.get(folder.pk, 0) < 0.5 and folder.sync_done < folder.sync_total:
                return
            last_line[folder.pk] = now
            self.stdout.write(
                f"  {folder.display_name}: {folder.sync_done} / {folder.sync_total} messages"
            )

        try:
            result = sync_mailbox(mailbox, progress=progress, folder_names=options["folder"])
        except ConnectError as exc:
            raise CommandError(str(exc)) from exc
        for name, folder_result in result.folders.items():
            self.stdout.write(
                f"  {decode_name(name)}: +{folder_result.added} new, "
                f"{folder_result.flag_changes} flag changes, -{folder_result.removed} removed"
                + (" (UIDVALIDITY changed: resynced)" if folder_result.uidvalidity_reset else "")
            )
        for name, error in result.errors.items():
            self.stderr.write(f"  {decode_name(name)}: {error}")
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(f"Done in {elapsed:.1f}s: {result.added} new messages.")
        )
        if result.errors:
            raise CommandError(f"{len(result.errors)} folder(s) failed")

    def _mailbox(self, key: str) -> Mailbox:
        mailbox = (
            Mailbox.objects.filter(pk=int(key)).first()
            if key.isdigit()
            else Mailbox.objects.filter(email__iexact=key).first()
        )
        if mailbox is None:
            raise CommandError(f"no mailbox {key!r}")
        return mailbox
