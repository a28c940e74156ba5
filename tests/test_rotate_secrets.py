"""Rotating the encryption key of stored passwords without losing any."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from webmail.models import Mailbox, Team

pytestmark = pytest.mark.django_db


def make_mailbox() -> Mailbox:
    box = Mailbox(team=Team.objects.create(name="T"), name="S", email="s@example.com")
    box.imap_host, box.imap_username = "imap.example.com", "s"
    box.imap_password = "imap-secret-1"
    box.smtp_password = "smtp-secret-1"
    box.save()
    return box


def test_rotation_reencrypts_with_the_new_key_and_the_old_one_can_go(settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    box = make_mailbox()
    stored_before = box.imap_password_encrypted

    settings.ENCRYPTION_KEYS = [new, old]  # both readable during the rotation
    call_command("rotate_secrets")
    assert "1 mailbox" in capsys.readouterr().out

    settings.ENCRYPTION_KEYS = [new]  # the old key is gone
    box = Mailbox.objects.get(pk=box.pk)
    assert box.imap_password_encrypted != stored_before
    assert box.imap_password == "imap-secret-1"
    assert box.smtp_password == "smtp-secret-1"
    assert "imap-secret-1" not in box.imap_password_encrypted


def test_a_password_no_key_can_read_is_reported(settings):
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    make_mailbox()
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("rotate_secrets")
