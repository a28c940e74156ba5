"""The local search index: maintained by the database itself, in the writer's transaction.

PostgreSQL: a text search configuration `kotak_search` (simple, plus unaccent when the extension
can be created) and a table `kotak_search_doc` holding one tsvector per message — subject
(weight A), sender (B), recipients (C) and fetched body (D) — kept current by triggers on
webmail_message and webmail_messagebody, with a GIN index; pg_trgm GIN indexes on the addresses
when pg_trgm can be created. No column of Kotak's tables changes, so the sync's COPY path writes
what it wrote before and the triggers follow. (Expression indexes over to_tsvector() were
measured first: phrase and field queries recheck every candidate by recomputing the tsvector,
1.4 s for a phrase over 10,000 messages; a stored tsvector answers in milliseconds.)

SQLite: an FTS5 table `kotak_search` (rowid = message id) and triggers that keep it current on
every INSERT, UPDATE and DELETE.

Both: an index on (internal_date DESC, id DESC), so a common word's newest matches are found by
walking the newest messages instead of sorting tens of thousands of them.

The SQL that queries all this is in webmail/search/index.py.
"""

import logging

from django.db import DatabaseError, migrations, transaction

log = logging.getLogger("webmail.search")

BODY_LIMIT = 100_000
# Two-character pieces are made of the start of a body only (they take room in the tsvector).
CJK_LIMIT = 20_000
# Token types that can hold accented letters (the ASCII ones need no unaccent).
PG_ACCENTED_TOKENS = "word, hword, hword_part, numword, numhword, hword_numpart"
PG_RECIPIENTS = "(m.\"to\"::text || ' ' || m.cc::text)"

# Scripts written without spaces (webmail/search/query.py UNSPACED, in PostgreSQL's syntax).
PG_UNSPACED = (
    r"\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf"
    r"\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
)

PG_FUNCTIONS = [
    # Chinese, Japanese, Thai … have no spaces between words, so the parser makes one token of
    # a whole run: its overlapping two-character pieces are indexed too ("注文確認" → 注文 文確
    # 確認), and a search for any part of two characters or more is an indexed phrase of them.
    f"""
CREATE FUNCTION kotak_search_cjk(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(string_agg(substr(run[1], i, 2), ' '), '')
  FROM regexp_matches(t, '[{PG_UNSPACED}]{{2,}}', 'g') AS run,
       generate_series(1, char_length(run[1]) - 1) AS i
$$
""",
    # plpgsql, not SQL: nested SQL functions that cannot be inlined cost ~60 µs a message, this
    # ~18 µs. Two-character pieces only when the text has such characters (a cheap test).
    f"""
CREATE FUNCTION kotak_search_headers(subject text, from_name text, from_address text,
                                     recipients text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  s text := left(subject, 2000);
  f text := from_name || ' ' || from_address || ' ' || translate(from_address, '@.', '  ')
            || ' ' || split_part(from_address, '@', 2);
  r text := left(recipients || ' ' || translate(recipients, '@.', '  '), 20000);
BEGIN
  IF s ~ '[{PG_UNSPACED}]' THEN s := s || ' ' || kotak_search_cjk(s); END IF;
  IF f ~ '[{PG_UNSPACED}]' THEN f := f || ' ' || kotak_search_cjk(f); END IF;
  IF r ~ '[{PG_UNSPACED}]' THEN r := r || ' ' || kotak_search_cjk(r); END IF;
  RETURN setweight(to_tsvector('kotak_search', s), 'A')
      || setweight(to_tsvector('kotak_search', f), 'B')
      || setweight(to_tsvector('kotak_search', r), 'C');
END $$
""",
    f"""
CREATE FUNCTION kotak_search_body(body text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  -- A tsvector holds at most 1 MB: the start of a very long body is enough.
  b text := left(coalesce(body, ''), {BODY_LIMIT});
BEGIN
  IF b ~ '[{PG_UNSPACED}]' THEN b := b || ' ' || kotak_search_cjk(left(b, {CJK_LIMIT})); END IF;
  RETURN setweight(to_tsvector('kotak_search', b), 'D');
END $$
""",
    """
CREATE FUNCTION kotak_search_index_message() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  recipients text := NEW."to"::text || ' ' || NEW.cc::text;
  doc tsvector := kotak_search_headers(NEW.subject, NEW.from_name, NEW.from_address, recipients);
BEGIN
  IF TG_OP = 'UPDATE' THEN
    -- A new message has no body yet; a changed one may.
    doc := doc || coalesce((SELECT kotak_search_body(b.text) FROM webmail_messagebody b
                            WHERE b.message_id = NEW.id), ''::tsvector);
  END IF;
  INSERT INTO kotak_search_doc (message_id, doc, sender, recipients)
  VALUES (NEW.id, doc, NEW.from_address, recipients)
  ON CONFLICT (message_id) DO UPDATE
  SET doc = EXCLUDED.doc, sender = EXCLUDED.sender, recipients = EXCLUDED.recipients;
  RETURN NULL;
END $$
""",
    """
CREATE FUNCTION kotak_search_forget_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM kotak_search_doc WHERE message_id = OLD.id;
  RETURN NULL;
END $$
""",
    """
CREATE FUNCTION kotak_search_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE kotak_search_doc;
  RETURN NULL;
END $$
""",
    """
CREATE FUNCTION kotak_search_index_body() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kotak_search_doc (message_id, doc, sender, recipients)
  SELECT m.id, kotak_search_headers(m.subject, m.from_name, m.from_address,
                                    m."to"::text || ' ' || m.cc::text)
               || kotak_search_body(NEW.text),
         m.from_address, m."to"::text || ' ' || m.cc::text
  FROM webmail_message m WHERE m.id = NEW.message_id
  ON CONFLICT (message_id) DO UPDATE SET doc = EXCLUDED.doc;
  RETURN NULL;
END $$
""",
    """
CREATE FUNCTION kotak_search_forget_body() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE kotak_search_doc d
  SET doc = kotak_search_headers(m.subject, m.from_name, m.from_address,
                                 m."to"::text || ' ' || m.cc::text)
  FROM webmail_message m WHERE m.id = OLD.message_id AND d.message_id = m.id;
  RETURN NULL;
END $$
""",
]

PG_TRIGGERS = [
    """
CREATE TRIGGER kotak_search_message_insert AFTER INSERT ON webmail_message
  FOR EACH ROW EXECUTE FUNCTION kotak_search_index_message()
""",
    """
-- The sync's upsert sets every header column of a message it already has: only a real change
-- re-indexes it.
CREATE TRIGGER kotak_search_message_update
  AFTER UPDATE OF subject, from_name, from_address, "to", cc ON webmail_message
  FOR EACH ROW WHEN (OLD.subject IS DISTINCT FROM NEW.subject
                     OR OLD.from_name IS DISTINCT FROM NEW.from_name
                     OR OLD.from_address IS DISTINCT FROM NEW.from_address
                     OR OLD."to" IS DISTINCT FROM NEW."to" OR OLD.cc IS DISTINCT FROM NEW.cc)
  EXECUTE FUNCTION kotak_search_index_message()
""",
    """
CREATE TRIGGER kotak_search_message_delete AFTER DELETE ON webmail_message
  FOR EACH ROW EXECUTE FUNCTION kotak_search_forget_message()
""",
    """
CREATE TRIGGER kotak_search_message_truncate AFTER TRUNCATE ON webmail_message
  FOR EACH STATEMENT EXECUTE FUNCTION kotak_search_forget_all()
""",
    """
CREATE TRIGGER kotak_search_body_insert AFTER INSERT ON webmail_messagebody
  FOR EACH ROW EXECUTE FUNCTION kotak_search_index_body()
""",
    """
CREATE TRIGGER kotak_search_body_update AFTER UPDATE OF text ON webmail_messagebody
  FOR EACH ROW WHEN (OLD.text IS DISTINCT FROM NEW.text)
  EXECUTE FUNCTION kotak_search_index_body()
""",
    """
CREATE TRIGGER kotak_search_body_delete AFTER DELETE ON webmail_messagebody
  FOR EACH ROW EXECUTE FUNCTION kotak_search_forget_body()
""",
]

DATE_INDEX = (
    "CREATE INDEX kotak_search_date ON webmail_message (internal_date DESC, id DESC)"
)


def _extension_schema(schema_editor, name: str) -> str | None:
    """Create the extension if allowed (superuser, or a trusted extension and CREATE on the
    database) and return its schema; None if it is not there."""
    connection = schema_editor.connection
    try:
        # A savepoint: a refusal must not abort the migration's transaction.
        with transaction.atomic(using=connection.alias):
            schema_editor.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")
    except DatabaseError as exc:
        log.warning("search: could not create extension %s (%s); searching without it", name, exc)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = %s",
            [name],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def postgres_forwards(schema_editor):
    unaccent = _extension_schema(schema_editor, "unaccent")
    trigram = _extension_schema(schema_editor, "pg_trgm")
    schema_editor.execute(
        "CREATE TEXT SEARCH CONFIGURATION kotak_search (COPY = pg_catalog.simple)"
    )
    if unaccent:
        schema_editor.execute(
            f"ALTER TEXT SEARCH CONFIGURATION kotak_search ALTER MAPPING FOR {PG_ACCENTED_TOKENS} "
            f"WITH {_quote(unaccent)}.unaccent, pg_catalog.simple"
        )
    schema_editor.execute(
        "CREATE TABLE kotak_search_doc (message_id bigint PRIMARY KEY, doc tsvector NOT NULL, "
        "sender text NOT NULL, recipients text NOT NULL)"
    )
    for statement in PG_FUNCTIONS:
        schema_editor.execute(statement)
    # Existing mail first (one pass, then one index build), then the triggers keep it current.
    schema_editor.execute(
        "INSERT INTO kotak_search_doc (message_id, doc, sender, recipients) "
        "SELECT m.id, kotak_search_headers(m.subject, m.from_name, m.from_address, "
        f"{PG_RECIPIENTS}) || coalesce(kotak_search_body(b.text), ''), m.from_address, "
        f"{PG_RECIPIENTS} FROM webmail_message m "
        "LEFT JOIN webmail_messagebody b ON b.message_id = m.id"
    )
    schema_editor.execute("CREATE INDEX kotak_search_doc_gin ON kotak_search_doc USING gin (doc)")
    for statement in PG_TRIGGERS:
        schema_editor.execute(statement)
    schema_editor.execute(DATE_INDEX)
    if trigram:
        ops = f"{_quote(trigram)}.gin_trgm_ops"
        # Any part of an address: "from:corp.exam" finds anna@acme-corp.example.
        schema_editor.execute(
            f"CREATE INDEX kotak_search_doc_sender ON kotak_search_doc USING gin (sender {ops})"
        )
        schema_editor.execute(
            f"CREATE INDEX kotak_search_doc_recipients ON kotak_search_doc USING gin "
            f"(recipients {ops})"
        )


def postgres_backwards(schema_editor):
    for trigger, table in (
        ("kotak_search_message_insert", "webmail_message"),
        ("kotak_search_message_update", "webmail_message"),
        ("kotak_search_message_delete", "webmail_message"),
        ("kotak_search_message_truncate", "webmail_message"),
        ("kotak_search_body_insert", "webmail_messagebody"),
        ("kotak_search_body_update", "webmail_messagebody"),
        ("kotak_search_body_delete", "webmail_messagebody"),
    ):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in (
        "kotak_search_index_message()",
        "kotak_search_forget_message()",
        "kotak_search_forget_all()",
        "kotak_search_index_body()",
        "kotak_search_forget_body()",
        "kotak_search_headers(text, text, text, text)",
        "kotak_search_body(text)",
        "kotak_search_cjk(text)",
    ):
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}")
    schema_editor.execute("DROP INDEX IF EXISTS kotak_search_date")
    schema_editor.execute("DROP TABLE IF EXISTS kotak_search_doc")
    schema_editor.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS kotak_search")
    # The extensions stay: other objects may use them, and they cost nothing.


def _recipients(row: str) -> str:
    """The names and addresses of a [[name, address], …] JSON column, as plain text."""
    parts = []
    for column in ("to", "cc"):
        value = f'{row}."{column}"'
        parts.append(
            "(SELECT coalesce(group_concat(coalesce(json_extract(value, '$[0]'), '') || ' ' || "
            "coalesce(json_extract(value, '$[1]'), ''), ' '), '') "
            f"FROM json_each(CASE WHEN json_valid({value}) THEN {value} ELSE '[]' END) "
            "WHERE type = 'array')"
        )
    return " || ' ' || ".join(parts)


def _headers(row: str) -> str:
    return (
        f"{row}.subject, {row}.from_name || ' ' || {row}.from_address, {_recipients(row)}"
    )


SQLITE_FORWARDS = [
    "CREATE VIRTUAL TABLE kotak_search USING fts5("
    "subject, sender, recipients, body, tokenize = 'unicode61 remove_diacritics 2')",
    # Existing mail first, then the triggers keep it current.
    "INSERT INTO kotak_search (rowid, subject, sender, recipients, body) "
    f"SELECT m.id, {_headers('m')}, coalesce(substr(b.text, 1, {BODY_LIMIT}), '') "
    "FROM webmail_message m LEFT JOIN webmail_messagebody b ON b.message_id = m.id",
    "CREATE TRIGGER kotak_search_message_insert AFTER INSERT ON webmail_message BEGIN "
    "INSERT INTO kotak_search (rowid, subject, sender, recipients, body) "
    f"VALUES (new.id, {_headers('new')}, coalesce((SELECT substr(text, 1, {BODY_LIMIT}) "
    "FROM webmail_messagebody WHERE message_id = new.id), '')); END",
    # The sync's upsert sets every header column of a message it already has: only a real
    # change re-indexes the row.
    'CREATE TRIGGER kotak_search_message_update AFTER UPDATE OF subject, from_name, from_address, '
    '"to", cc ON webmail_message WHEN old.subject IS NOT new.subject '
    "OR old.from_name IS NOT new.from_name OR old.from_address IS NOT new.from_address "
    'OR old."to" IS NOT new."to" OR old.cc IS NOT new.cc BEGIN '
    "UPDATE kotak_search SET subject = new.subject, "
    "sender = new.from_name || ' ' || new.from_address, "
    f"recipients = {_recipients('new')} WHERE rowid = new.id; END",
    "CREATE TRIGGER kotak_search_message_delete AFTER DELETE ON webmail_message BEGIN "
    "DELETE FROM kotak_search WHERE rowid = old.id; END",
    "CREATE TRIGGER kotak_search_body_insert AFTER INSERT ON webmail_messagebody BEGIN "
    f"UPDATE kotak_search SET body = substr(new.text, 1, {BODY_LIMIT}) "
    "WHERE rowid = new.message_id; END",
    "CREATE TRIGGER kotak_search_body_update AFTER UPDATE OF text ON webmail_messagebody "
    "WHEN old.text IS NOT new.text BEGIN "
    f"UPDATE kotak_search SET body = substr(new.text, 1, {BODY_LIMIT}) "
    "WHERE rowid = new.message_id; END",
    "CREATE TRIGGER kotak_search_body_delete AFTER DELETE ON webmail_messagebody BEGIN "
    "UPDATE kotak_search SET body = '' WHERE rowid = old.message_id; END",
    DATE_INDEX,
]

SQLITE_BACKWARDS = [
    "DROP TRIGGER IF EXISTS kotak_search_body_delete",
    "DROP TRIGGER IF EXISTS kotak_search_body_update",
    "DROP TRIGGER IF EXISTS kotak_search_body_insert",
    "DROP TRIGGER IF EXISTS kotak_search_message_delete",
    "DROP TRIGGER IF EXISTS kotak_search_message_update",
    "DROP TRIGGER IF EXISTS kotak_search_message_insert",
    "DROP TABLE IF EXISTS kotak_search",
    "DROP INDEX IF EXISTS kotak_search_date",
]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        postgres_forwards(schema_editor)
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARDS:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        postgres_backwards(schema_editor)
    elif vendor == "sqlite":
        for statement in SQLITE_BACKWARDS:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("webmail", "0004_outbox")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
