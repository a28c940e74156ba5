"""No database foreign key from Message and ThreadRef to Mailbox.

PostgreSQL checks each foreign key of each inserted row at COMMIT (Django makes them
DEFERRABLE INITIALLY DEFERRED) with a query that also locks the referenced row: for a sync
window of a thousand new messages, a thousand checks per key. These two were redundant:

- a message's mailbox is its folder's, and the folder's own key (message → folder → mailbox)
  already guarantees that both exist;
- a thread reference's mailbox is its conversation's, whose key stays.

The relations stay in the ORM, and deleting a mailbox still deletes both: Django, not the
database, carries out on_delete=CASCADE. SQLite keeps its constraints (its check is cheap, and
dropping one there would mean rebuilding the table, which drops the search triggers of
0005_search): only the model state changes.
"""

import django.db.models.deletion
from django.db import migrations, models

# (table, column): the foreign keys to webmail_mailbox that go.
FOREIGN_KEYS = [("webmail_message", "mailbox_id"), ("webmail_threadref", "mailbox_id")]


def _constraint_names(cursor, table: str, column: str) -> list[str]:
    cursor.execute(
        """
        SELECT con.conname FROM pg_constraint con
        JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey)
        WHERE con.contype = 'f' AND con.conrelid = %s::regclass AND att.attname = %s
        """,
        [table, column],
    )
    return [row[0] for row in cursor.fetchall()]


def drop_foreign_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        for table, column in FOREIGN_KEYS:
            for name in _constraint_names(cursor, table, column):
                schema_editor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")


def add_foreign_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        for table, column in FOREIGN_KEYS:
            if _constraint_names(cursor, table, column):
                continue
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} ADD CONSTRAINT "
                f"{quote(f'{table}_{column}_fk_webmail_mailbox_id')} FOREIGN KEY ({quote(column)}) "
                f"REFERENCES webmail_mailbox (id) DEFERRABLE INITIALLY DEFERRED"
            )


class Migration(migrations.Migration):

    dependencies = [
        ("webmail", "0007_cheaper_message_writes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="mailbox",
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="messages", to="webmail.mailbox"),
                ),
                migrations.AlterField(
                    model_name="threadref",
                    name="mailbox",
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="webmail.mailbox"),
                ),
            ],
            database_operations=[migrations.RunPython(drop_foreign_keys, add_foreign_keys)],
        ),
    ]
