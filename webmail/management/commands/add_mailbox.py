"""Connect a shared mailbox from the command line, verified like the web form.

The password never appears on the command line (where `ps` and shell history would show it):
it comes from an environment variable (--password-env) or standard input (--password-stdin).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from webmail.imap.client import ConnectError, Security, ServerSettings, verify
from webmail.mailboxes import add_mailbox
from webmail.models import Mailbox

DEFAULT_PORTS = {Security.SSL: 993, Security.STARTTLS: 143, Security.PLAIN: 143}


class Command(BaseCommand):
    help = "Add a shared IMAP mailbox after checking that Kotak can log in to it."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True, help="the shared address, e.g. support@…")
        parser.add_argument("--name", help="display name (default: the address)")
        parser.add_argument("--team", default="Support", help="team name (created if new)")
        parser.add_argument("--imap-host", required=True)
        parser.add_argument(
            "--security", choices=[s.value for s in Security], default=Security.SSL.value
        )
        parser.add_argument("--imap-port", type=int, help="default: 993 for ssl, 143 otherwise")
        parser.add_argument("--username", help="IMAP login (default: the address)")
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--password-env",
            default="KOTAK_IMAP_PASSWORD",
            metavar="VAR",
            help="environment variable holding the password (default: KOTAK_IMAP_PASSWORD)",
        )
        source.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
        parser.add_argument("--ca-file", type=Path, help="PEM file of a private CA to trust")
        parser.add_argument("--manager", help="username to make manager of the mailbox")

    def handle(self, *args, **options):
        email = options["email"]
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"{email!r} is not a valid email address") from exc
        security = Security(options["security"])
        password = self._password(options)
        ca = options["ca_file"].read_text() if options["ca_file"] else ""
        server = ServerSettings(
            host=options["imap_host"],
            port=options["imap_port"] or DEFAULT_PORTS[security],
            security=security,
            username=options["username"] or email,
            password=password,
            ca_certificates=ca,
        )
        manager = None
        if options["manager"]:
            manager = get_user_model().objects.filter(username=options["manager"]).first()
            if manager is None:
                raise CommandError(f"no user named {options['manager']!r}")
        if Mailbox.objects.filter(team__name=options["team"], email=email).exists():
            raise CommandError(f"{email} is already connected in team {options['team']!r}")

        self.stdout.write(f"Checking {server.host}:{server.port} ({security.value})…")
        try:
            capabilities = verify(server)
        except ConnectError as exc:
            raise CommandError(str(exc)) from exc
        mailbox = add_mailbox(
            team_name=options["team"],
            name=options["name"] or email,
            email=email,
            server=server,
            capabilities=capabilities,
            manager=manager,
        )
        self.stdout.write(
            self.style.SUCCESS(f"Added mailbox {mailbox.pk}: {mailbox}.")
            + f" Run `manage.py sync {mailbox.pk}` to sync it now."
        )

    def _password(self, options) -> str:
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
            source = "standard input"
        else:
            password = os.environ.get(options["password_env"], "")
            source = f"${options['password_env']}"
        if not password:
            raise CommandError(f"no password given on {source}")
        return password
