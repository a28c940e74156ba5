"""The Django admin: mailboxes for operators to look at, never their secrets.

Read-only on purpose. Server settings are changed through Kotak's own form, which proves them by
logging in and applies the outbound-address checks; the admin would save them unchecked. The
encrypted passwords are left out altogether: a Fernet token is the password to anyone who also
holds the key.
"""

from __future__ import annotations

from django.contrib import admin

from webmail.models import Mailbox

SECRET_FIELDS = ("imap_password_encrypted", "smtp_password_encrypted")


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "team", "status", "last_sync_at", "watcher_owner")
    list_filter = ("status",)
    search_fields = ("name", "email", "imap_host")
    exclude = SECRET_FIELDS

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
