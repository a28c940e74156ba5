"""Create the first administrator if there is no user yet, printing the password once."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create an 'admin' superuser with a random password when no user exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(options["username"], "", password)
        bar = "=" * 60
        self.stdout.write(
            f"{bar}\nFirst administrator created — note the password, it is shown only once:\n"
            f"  username: {options['username']}\n  password: {password}\n"
            f"Change it after logging in (Admin → Users).\n{bar}"
        )
