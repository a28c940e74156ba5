"""Cheaper writes of new messages: the sync inserts them a thousand or more at a time.

1. No single-column index on a foreign key that a composite index already starts with (Message
   mailbox, folder and conversation; Conversation mailbox and assignee; ThreadRef, Message-
   Tombstone and Change mailbox): a lookup or cascade on the column alone uses the composite
   index, and each extra index was one more b-tree insert per row.

   Only the indexes are dropped, beside the state change. Django's own AlterField would also
   drop and re-add the foreign key constraint on PostgreSQL (re-checking every row of
   webmail_message under lock), and on SQLite rebuild the tables, which drops the search
   triggers and index that 0005_search put on webmail_message.

2. PostgreSQL indexes new messages for search once per INSERT statement instead of once per
   row: a statement-level trigger reads the inserted rows from its transition table and writes
   their documents with one INSERT … SELECT. A row-level trigger ran plpgsql and a separate
   INSERT for each message. An INSERT … ON CONFLICT DO UPDATE (the sync's upsert) puts only the
   rows it inserted in the transition table; the rows it updated fire the row-level UPDATE
   trigger of 0005, which stays (a trigger with a column list or WHEN cannot have a transition
   table). SQLite has no statement-level triggers: its FTS5 triggers stay as they are.

Most of what a new message still costs PostgreSQL is its search document: building the tsvector
and its GIN entries (see `make bench-sync`).
"""

from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion

# (table, column, index): the indexes Django made for these foreign keys in 0001.
FOREIGN_KEY_INDEXES = [
    ("webmail_message", "mailbox_id", "webmail_message_mailbox_id_7400300c"),
    ("webmail_message", "folder_id", "webmail_message_folder_id_1da3624b"),
    ("webmail_message", "conversation_id", "webmail_message_conversation_id_584fd7a3"),
    ("webmail_conversation", "mailbox_id", "webmail_conversation_mailbox_id_591361eb"),
    ("webmail_conversation", "assignee_id", "webmail_conversation_assignee_id_c81f0ec3"),
    ("webmail_threadref", "mailbox_id", "webmail_threadref_mailbox_id_6e4e524f"),
    ("webmail_messagetombstone", "mailbox_id", "webmail_messagetombstone_mailbox_id_d89078e3"),
    ("webmail_change", "mailbox_id", "webmail_change_mailbox_id_e4301c59"),
]


def drop_foreign_key_indexes(apps, schema_editor):
    for _table, _column, index in FOREIGN_KEY_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index)}")


def create_foreign_key_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for table, column, index in FOREIGN_KEY_INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(index)} ON {quote(table)} ({quote(column)})"
        )


PG_RECIPIENTS = "(n.\"to\"::text || ' ' || n.cc::text)"

# The same document kotak_search_index_message makes of a new message: its headers (a new
# message has no body yet).
PG_INDEX_NEW_MESSAGES = f"""
CREATE FUNCTION kotak_search_index_new_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kotak_search_doc (message_id, doc, sender, recipients)
  SELECT n.id, kotak_search_headers(n.subject, n.from_name, n.from_address, {PG_RECIPIENTS}),
         n.from_address, {PG_RECIPIENTS}
  FROM kotak_new_messages n
  ON CONFLICT (message_id) DO UPDATE
  SET doc = EXCLUDED.doc, sender = EXCLUDED.sender, recipients = EXCLUDED.recipients;
  RETURN NULL;
END $$
"""

PG_STATEMENT_TRIGGER = """
CREATE TRIGGER kotak_search_message_insert AFTER INSERT ON webmail_message
  REFERENCING NEW TABLE AS kotak_new_messages
  FOR EACH STATEMENT EXECUTE FUNCTION kotak_search_index_new_messages()
"""

# As 0005_search made it.
PG_ROW_TRIGGER = """
CREATE TRIGGER kotak_search_message_insert AFTER INSERT ON webmail_message
  FOR EACH ROW EXECUTE FUNCTION kotak_search_index_message()
"""


def _has_search_index(schema_editor) -> bool:
    """Whether 0005_search set up PostgreSQL's search index here (it does on PostgreSQL only)."""
    if schema_editor.connection.vendor != "postgresql":
        return False
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('kotak_search_doc') IS NOT NULL")
        return cursor.fetchone()[0]


def index_per_statement(apps, schema_editor):
    if not _has_search_index(schema_editor):
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS kotak_search_message_insert ON webmail_message")
    schema_editor.execute(PG_INDEX_NEW_MESSAGES)
    schema_editor.execute(PG_STATEMENT_TRIGGER)


def index_per_row(apps, schema_editor):
    if not _has_search_index(schema_editor):
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS kotak_search_message_insert ON webmail_message")
    schema_editor.execute("DROP FUNCTION IF EXISTS kotak_search_index_new_messages()")
    schema_editor.execute(PG_ROW_TRIGGER)


class Migration(migrations.Migration):

    dependencies = [
        ('webmail', '0006_conversation_activity_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='change',
                    name='mailbox',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='changes', to='webmail.mailbox'),
                ),
                migrations.AlterField(
                    model_name='conversation',
                    name='assignee',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='assigned_conversations', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='conversation',
                    name='mailbox',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='conversations', to='webmail.mailbox'),
                ),
                migrations.AlterField(
                    model_name='message',
                    name='conversation',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='messages', to='webmail.conversation'),
                ),
                migrations.AlterField(
                    model_name='message',
                    name='folder',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='webmail.folder'),
                ),
                migrations.AlterField(
                    model_name='message',
                    name='mailbox',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='webmail.mailbox'),
                ),
                migrations.AlterField(
                    model_name='messagetombstone',
                    name='mailbox',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='webmail.mailbox'),
                ),
                migrations.AlterField(
                    model_name='threadref',
                    name='mailbox',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='webmail.mailbox'),
                ),
            ],
            database_operations=[
                migrations.RunPython(
                    drop_foreign_key_indexes, create_foreign_key_indexes, elidable=False
                ),
            ],
        ),
        migrations.RunPython(index_per_statement, index_per_row, elidable=False),
    ]
