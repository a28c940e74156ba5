"""Writing many Message rows fast: COPY on PostgreSQL, executemany upserts on SQLite.

Django's bulk_create sends one multi-row INSERT whose parameter handling dominates a big sync
(~12k rows/s on psycopg against ~160k with COPY). Rows here are plain dicts of field values,
the same Python values the ORM would send: on SQLite each goes through the model field's own
get_db_prep_value; on PostgreSQL psycopg adapts them (JSON as its text).
"""

from __future__ import annotations

import json
import operator

from django.db import connection, transaction
from psycopg.errors import UniqueViolation

from webmail import db
from webmail.models import Message

# Columns an upsert of a message already in the table must not touch.
KEEP_ON_CONFLICT = {
    "id",
    "folder_id",
    "uid",
    "conversation_id",
    "snippet",
    "bodystructure",
    "pending_removal",
}


# json.dumps's own encoder checks for circular references, which costs more than encoding an
# address list; most lists of a message (Cc, Reply-To, keywords) are empty.
_json = json.JSONEncoder(check_circular=False).encode


def _fields():
    return [field for field in Message._meta.concrete_fields if not field.primary_key]


def upsert_messages(rows: list[dict]) -> list[int]:
    """Insert rows (dicts keyed by field attname), or update the flags and headers of those
    whose (folder, uid) exists. Returns the ids of all rows, in their order."""
    if not rows:
        return []
    fields = _fields()
    columns = [field.column for field in fields]
    updates = [column for column in columns if column not in KEEP_ON_CONFLICT]
    table = Message._meta.db_table
    defaults = {field.attname: field.get_default() for field in fields}
    if connection.vendor == "postgresql":
        # psycopg adapts ints, strings, booleans, bytes and aware datetimes itself; JSON goes
        # in as its text, which COPY parses into jsonb. Merging each row over the defaults and
        # picking the columns with itemgetter keeps the per-value work in C.
        json_fields = [f.attname for f in fields if f.get_internal_type() == "JSONField"]
        pick = operator.itemgetter(*(field.attname for field in fields))
        values = []
        for row in rows:
            full = defaults | row
            for name in json_fields:
                value = full[name]
                if value is not None:
                    full[name] = "[]" if value == [] else _json(value)
            values.append(pick(full))
        return _copy_upsert(table, columns, updates, values)
    values = [
        tuple(field.get_db_prep_value(row.get(field.attname, defaults[field.attname]), connection)
              for field in fields)
        for row in rows
    ]  # fmt: skip
    return _executemany_upsert(table, columns, updates, values, rows)


def _copy_upsert(table: str, columns: list[str], updates: list[str], values: list[tuple]):
    column_list = ", ".join(f'"{c}"' for c in columns)
    assignments = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updates)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        # The folder's cursor says these UIDs are not stored, so the rows are normally all
        # new: COPY them straight into the table, with ids taken from its sequence first. If
        # one is there after all, the savepoint undoes the COPY and they are upserted below.
        ids = db.take_ids(Message, len(values))
        try:
            with (
                transaction.atomic(),
                raw.copy(f'COPY {table} ("id", {column_list}) FROM STDIN') as copy,
            ):
                for pk, row in zip(ids, values, strict=True):
                    copy.write_row((pk, *row))
            return ids
        except UniqueViolation:
            pass
        # Same columns and types as the table, none of its constraints; emptied at commit.
        raw.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS kotak_message_load ON COMMIT DELETE ROWS "
            f"AS SELECT {column_list} FROM {table} WITH NO DATA"
        )
        # Inside an outer transaction (a test, a caller's atomic block) commit has not
        # emptied it yet.
        raw.execute("TRUNCATE kotak_message_load")
        with raw.copy(f"COPY kotak_message_load ({column_list}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        raw.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM kotak_message_load "
            f'ON CONFLICT ("folder_id", "uid") DO UPDATE SET {assignments} RETURNING "uid", "id"'
        )
        by_uid = dict(raw.fetchall())  # RETURNING follows no particular order
        uid = columns.index("uid")
        return [by_uid[row[uid]] for row in values]


def _executemany_upsert(
    table: str, columns: list[str], updates: list[str], values: list[tuple], rows: list[dict]
):
    column_list = ", ".join(f'"{c}"' for c in columns)
    placeholders = ", ".join(["%s"] * len(columns))
    assignments = ", ".join(f'"{c}" = excluded."{c}"' for c in updates)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({column_list}) VALUES ({placeholders}) "
            f'ON CONFLICT ("folder_id", "uid") DO UPDATE SET {assignments}',
            values,
        )
    folder_id = rows[0]["folder_id"]
    uids = [row["uid"] for row in rows]
    ids = dict(Message.objects.filter(folder_id=folder_id, uid__in=uids).values_list("uid", "pk"))
    return [ids[uid] for uid in uids]
