"""IMAP passwords are encrypted at rest and stay readable through a key rotation."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from webmail import crypto
from webmail.models import Mailbox

pytestmark = pytest.mark.django_db


def test_the_password_is_not_stored_in_clear(mailbox):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM webmail_mailbox WHERE id = %s", [mailbox.pk])
        row = cursor.fetchone()
    assert not any(mailbox.account.password in str(value) for value in row)
    assert Mailbox.objects.get().imap_password == mailbox.account.password


def test_old_keys_still_decrypt_after_a_rotation(settings):
    old_key = settings.ENCRYPTION_KEYS[0]
    token = crypto.encrypt("hunter2")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old_key]
    assert crypto.decrypt(token) == "hunter2"
    rotated = crypto.rotate(token)
    settings.ENCRYPTION_KEYS = settings.ENCRYPTION_KEYS[:1]
    assert crypto.decrypt(rotated) == "hunter2"
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(token)
