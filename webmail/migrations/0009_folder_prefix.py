"""Mailbox.folder_prefix: where the account's own folders live on its server ("INBOX." on
Courier and Cyrus), so that they show beside the Inbox rather than inside it. None until the
next sync asks the server (NAMESPACE, RFC 2342)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webmail", "0008_fewer_foreign_key_checks"),
    ]

    operations = [
        migrations.AddField(
            model_name="mailbox",
            name="folder_prefix",
            field=models.CharField(blank=True, default=None, max_length=255, null=True),
        ),
    ]
