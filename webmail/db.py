"""Bulk reads and writes in raw SQL, where building model instances costs more than the database.

bulk_create builds a model instance per row and compiles every value, and a filter on thousands
of values compiles each of them: grouping a sync window into conversations spent most of its
time there. Here rows come column by column, as lists of plain values (`{attname: [value per
row]}`), with the values every row shares apart. PostgreSQL takes each list as one array
parameter (unnest), bound on the server in binary: psycopg's client-side binding, which Django
uses, quotes every element of an array in Python, and so did PostgreSQL's parser the text, for
several times the cost. SQLite, in process, runs a prepared statement per row or chunks.

What is written matches the ORM: a field given neither per row nor shared gets its default, as a
new instance would (computed once per call). On SQLite each value goes through its field's
get_db_prep_save or get_db_prep_value; psycopg adapts the plain values used with these helpers
(ints, strings, aware datetimes) itself, so on PostgreSQL only shared values are prepared.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import connection


def insert(model, columns: dict[str, list], shared: dict | None = None) -> list[int]:
    """Insert one row per position of the lists in columns; returns their ids in that order."""
    count = _count(columns)
    if not count:
        return []
    pk = model._meta.pk
    if connection.vendor == "postgresql":
        # Ids are taken from the sequence first and written with the rows, so each row's id is
        # known: SQL leaves the order of an INSERT's RETURNING rows undefined. Sorted, they
        # also grow with the rows' order, as the ORM's do (the oldest conversation has the
        # smallest id).
        ids = take_ids(model, count)
        _insert_arrays(model, {pk.attname: ids, **columns}, shared)
        return ids
    # SQLite: one row per statement, in order, each reading back its own id.
    sql, rows = _insert_rows(model, columns, shared)
    ids = []
    with connection.cursor() as cursor:
        for row in rows:
            cursor.execute(sql, row)
            ids.append(cursor.lastrowid)
    return ids


def take_ids(model, count: int) -> list[int]:
    """`count` ids from the table's sequence (PostgreSQL), ascending, to write with new rows."""
    sequence = _sequences.get(model)
    with connection.cursor() as cursor:
        if sequence is None:
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, %s)",
                [quote(model._meta.db_table), model._meta.pk.column],
            )
            sequence = _sequences[model] = cursor.fetchone()[0]
        # The name as a constant, resolved once: pg_get_serial_sequence in the select list
        # was evaluated again for each of the count rows, and cost more than nextval itself.
        cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count]
        )
        return sorted(row[0] for row in cursor.fetchall())


_sequences: dict = {}  # model → the name of the sequence its ids come from


def insert_ignoring_conflicts(model, columns: dict[str, list], shared: dict | None = None) -> None:
    """Insert rows, leaving out those that a unique constraint says are already there."""
    if not _count(columns):
        return
    suffix = " ON CONFLICT DO NOTHING"
    if connection.vendor == "postgresql":
        _insert_arrays(model, columns, shared, suffix)
        return
    sql, rows = _insert_rows(model, columns, shared)
    with connection.cursor() as cursor:
        cursor.executemany(sql + suffix, rows)


def update(model, attname: str, values: dict[int, object]) -> None:
    """Set one field of many rows: values maps an id to that row's new value."""
    update_rows(model, [attname], {key: (value,) for key, value in values.items()})


def update_rows(model, attnames: list[str], rows: dict[int, tuple]) -> None:
    """Set fields of many rows in one statement: rows maps an id to that row's new values, in
    the order of attnames."""
    if not rows:
        return
    pk = model._meta.pk
    fields = [model._meta.get_field(name) for name in attnames]
    table, pk_column = quote(model._meta.db_table), quote(pk.column)
    with _cursor() as cursor:
        if connection.vendor == "postgresql":
            names = [f"v{i}" for i in range(len(fields))]
            arrays = ", ".join(f"%b::{_type(field)}[]" for field in fields)
            assignments = ", ".join(
                f"{quote(field.column)} = given.{name}"
                for field, name in zip(fields, names, strict=True)
            )
            columns = [
                [field.get_db_prep_save(row[i], connection) for row in rows.values()]
                for i, field in enumerate(fields)
            ]
            cursor.execute(
                f"UPDATE {table} SET {assignments} "
                f"FROM unnest(%b::{_type(pk)}[], {arrays}) AS given (id, {', '.join(names)}) "
                f"WHERE {table}.{pk_column} = given.id",
                [list(rows), *columns],
            )
        else:
            assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s",
                [
                    (
                        *(
                            f.get_db_prep_save(v, connection)
                            for f, v in zip(fields, row, strict=True)
                        ),
                        key,
                    )
                    for key, row in rows.items()
                ],
            )


def select_in(
    model, attnames: list[str], where: dict, attname: str, values: Iterable
) -> list[tuple]:
    """The attnames of the rows matching where (equality) whose attname is one of values
    (each row once, however often its value is given).

    Values come back as the ORM's values_list gives them (aware datetimes on SQLite too)."""
    values = list(dict.fromkeys(values))
    if not values:
        return []
    meta = model._meta
    field = meta.get_field(attname)
    select = ", ".join(quote(meta.get_field(name).column) for name in attnames)
    conditions = [f"{quote(meta.get_field(name).column)} = %s" for name in where]
    params = [meta.get_field(name).get_db_prep_value(v, connection) for name, v in where.items()]
    sql = f"SELECT {select} FROM {quote(meta.db_table)} WHERE {' AND '.join(conditions)}"
    sql += " AND " if conditions else ""
    found = []
    with _cursor() as cursor:
        if connection.vendor == "postgresql":
            # One index probe per value, as a lateral subquery (OFFSET 0 keeps the planner from
            # flattening it into a join). `column = ANY(…)` lets the planner scan every row
            # matching `where` instead, which it prefers for a long list on a table it has no
            # statistics for yet — as during a mailbox's first sync, which it made quadratic.
            cursor.execute(
                f"SELECT found.* FROM unnest(%b::{_type(field)}[]) AS given (value) "
                f"CROSS JOIN LATERAL ({sql}{quote(field.column)} = given.value OFFSET 0) found",
                [values, *params],
            )
            found = cursor.fetchall()
        else:
            # SQLite limits the number of parameters of a statement.
            size = connection.features.max_query_params - len(params)
            for start in range(0, len(values), size):
                chunk = [
                    field.get_db_prep_value(v, connection) for v in values[start : start + size]
                ]
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(f"{sql}{quote(field.column)} IN ({marks})", [*params, *chunk])
                found += cursor.fetchall()
    return _converted(model, attnames, found)


def refresh_statistics(model, rows: int) -> None:
    """ANALYZE the model's table (PostgreSQL) when its statistics describe a table ten times
    smaller than the `rows` the caller knows it holds.

    The planner picks indexes by these statistics. On a table last analyzed nearly empty (a new
    database's first sync) it tells apart neither the rows nor two indexes that start with the
    same column, and was seen probing webmail_message by (mailbox, message_id) for a stable id:
    every row of the mailbox read for each of a window's thousand lookups.
    Autovacuum would analyze the table only on its next round, a minute or more later.
    Run outside a transaction: ANALYZE holds its lock until the end of the one it runs in."""
    if connection.vendor != "postgresql" or connection.in_atomic_block or rows <= 0:
        return
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [quote(table)])
        (known,) = cursor.fetchone()
        if known * 10 < rows:
            cursor.execute(f"ANALYZE {quote(table)}")


def _converted(model, attnames: list[str], rows: list[tuple]) -> list[tuple]:
    """Rows with the conversions the ORM applies to what the database returns."""
    converters = []
    for position, name in enumerate(attnames):
        col = model._meta.get_field(name).get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if functions:
            converters.append((position, col, functions))
    if not converters:
        return rows
    converted = []
    for row in map(list, rows):
        for position, col, functions in converters:
            for function in functions:
                row[position] = function(row[position], col, connection)
        converted.append(tuple(row))
    return converted


def _count(columns: dict[str, list]) -> int:
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise ValueError("Every column needs one value per row.")
    return lengths.pop()


def _shared(model, columns: dict[str, list], shared: dict | None) -> dict:
    """Shared values, prepared, with the default of every field given no value."""
    shared = shared or {}
    values = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in columns:
            continue
        value = shared[field.attname] if field.attname in shared else field.get_default()
        values[field.attname] = field.get_db_prep_save(value, connection)
    return values


def _insert_arrays(model, columns: dict[str, list], shared: dict | None, suffix: str = "") -> None:
    fields = {field.attname: field for field in model._meta.concrete_fields}
    constants = _shared(model, columns, shared)
    names = [*columns, *constants]
    arrays = ", ".join(f"%b::{_type(fields[name])}[]" for name in columns)
    select = [f"given.{quote(fields[name].column)}" for name in columns]
    select += [f"%s::{_type(fields[name])}" for name in constants]
    aliases = ", ".join(quote(fields[name].column) for name in columns)
    with _cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} "
            f"({', '.join(quote(fields[name].column) for name in names)}) "
            f"SELECT {', '.join(select)} FROM unnest({arrays}) AS given ({aliases}){suffix}",
            [*constants.values(), *columns.values()],
        )


def _insert_rows(model, columns: dict[str, list], shared: dict | None):
    """An INSERT of one row, and each row's parameters, prepared as the ORM prepares them."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    constants = _shared(model, columns, shared)
    names = [*columns, *constants]
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(fields[name].column) for name in names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))})"
    )
    prepare = [fields[name].get_db_prep_save for name in columns]
    tail = tuple(constants.values())
    rows = [
        tuple(p(v, connection) for p, v in zip(prepare, values, strict=True)) + tail
        for values in zip(*columns.values(), strict=True)
    ]
    return sql, rows


def _type(field) -> str:
    return field.cast_db_type(connection)


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


@contextmanager
def _cursor() -> Iterator:
    """A cursor of the default connection; on PostgreSQL one that binds parameters on the
    server, so that arrays given as `%b` travel in binary. Wrapped as Django wraps its own, so
    errors are Django's and the queries are logged and seen by execute wrappers."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection._prepare_cursor(psycopg.Cursor(connection.connection))
    with cursor:
        yield cursor
