"""The local search index, as SQL: which message ids a text term matches, per database.

The index itself is made by migration 0005_search and kept current by the database, in the
writer's own transaction, whichever path writes (the ORM, the sync's COPY or executemany):

- PostgreSQL: `kotak_search_doc`, one tsvector per message — subject (weight A), sender (B),
  recipients (C), fetched body (D) — in the `kotak_search` configuration (simple, accents
  dropped), GIN-indexed and maintained by triggers; pg_trgm indexes on the addresses.
- SQLite: an FTS5 table `kotak_search` (subject, sender, recipients, body; tokenizer unicode61
  with diacritics removed) maintained by triggers.

Either way a term becomes `SELECT <message ids> …`, used as `id IN (…)`. PostgreSQL then walks
the newest messages (index kotak_search_date) probing the index for a common word, or reads the
matches from the index for a rare one; SQLite reads the matches and sorts them.
"""

from __future__ import annotations

import re

from django.db import connection

from webmail.search.query import UNSPACED, Term

PG_RECIPIENTS = "(\"to\"::text || ' ' || cc::text)"
_UNSPACED_WORD = re.compile(f"[{UNSPACED}]{{2,}}")
# tsquery weights of each field (see kotak_search_headers), and SQLite FTS5 columns.
PG_WEIGHTS = {"text": "", "subject": "A", "from": "B", "to": "C"}
FTS_COLUMNS = {"text": "", "subject": "{subject}", "from": "{sender}", "to": "{recipients}"}


def term_ids(term: Term) -> tuple[str, list]:
    """SQL selecting the ids of every message (of any mailbox) that a text term matches."""
    if connection.vendor == "postgresql":
        return _postgres(term)
    return _sqlite(term)


def like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- PostgreSQL -------------------------------------------------------------------------------


def tsquery(term: Term, weights: str = "") -> str:
    """to_tsquery input for the term: a quoted operand the configuration parses like the
    documents (so "order-42" or an address split the same way), prefix-matched unless it is a
    phrase."""
    quoted = "'" + term.value.replace("\\", "\\\\").replace("'", "''") + "'"
    suffix = ("" if term.phrase else "*") + weights
    return f"{quoted}:{suffix}" if suffix else quoted


def bigram_tsquery(term: Term, weights: str = "") -> str | None:
    """For a term in scripts written without spaces (Chinese, Japanese …), the phrase of its
    overlapping two-character pieces, which the index holds for such text (kotak_search_cjk);
    None if a word of it is a single character or mixes scripts."""
    phrases = []
    for word in term.value.split():
        if not _UNSPACED_WORD.fullmatch(word):
            return None
        suffix = f":{weights}" if weights else ""
        # The characters of these scripts are never quotes or backslashes: no escaping needed.
        pieces = [f"'{word[i : i + 2]}'{suffix}" for i in range(len(word) - 1)]
        phrases.append("(" + " <-> ".join(pieces) + ")")
    return " & ".join(phrases)


def _postgres(term: Term) -> tuple[str, list]:
    weights = PG_WEIGHTS[term.field]
    query = bigram_tsquery(term, weights) if term.is_substring else tsquery(term, weights)
    if query is None:
        return _postgres_substring(term)
    # One table, one row per message: the planner knows the ids are unique and can probe it
    # row by row (newest first) or read the matches from the GIN index, whichever is cheaper.
    sql = "SELECT message_id FROM kotak_search_doc WHERE doc @@ to_tsquery('kotak_search', %s)"
    params: list = [query]
    if term.field in ("from", "to"):
        # Any part of an address: "from:corp.exam" finds anna@acme-corp.example (pg_trgm).
        sql += f" OR {'sender' if term.field == 'from' else 'recipients'} ILIKE %s"
        params.append(like_pattern(term.value))
    return sql, params


def _postgres_substring(term: Term) -> tuple[str, list]:
    """A single Chinese character, or one mixed with Latin letters: a substring of the headers
    or the fetched body. A scan, of plain LIKE when there is no letter case to ignore."""
    like = "ILIKE" if term.value.lower() != term.value.upper() else "LIKE"
    columns = {
        "text": ["subject", "from_name", PG_RECIPIENTS],
        "subject": ["subject"],
        "from": ["from_name", "from_address"],
        "to": [PG_RECIPIENTS],
    }[term.field]
    where = [f"{column} {like} %s" for column in columns]
    if term.field == "text":
        where.append(f"id IN (SELECT message_id FROM webmail_messagebody WHERE text {like} %s)")
    sql = f"SELECT id FROM webmail_message WHERE {' OR '.join(where)}"
    return sql, [like_pattern(term.value)] * len(where)


# --- SQLite -----------------------------------------------------------------------------------


def fts_query(term: Term) -> str:
    """An FTS5 MATCH expression: the value as one quoted string (so nothing in it is FTS5
    syntax), prefix-matched unless it is a phrase, restricted to the field's column."""
    string = '"' + term.value.replace('"', '""') + '"'
    if not term.phrase:
        string += " *"
    column = FTS_COLUMNS[term.field]
    return f"{column} : {string}" if column else string


def _sqlite(term: Term) -> tuple[str, list]:
    if term.is_substring:
        return _sqlite_substring(term)
    # unicode61 splits addresses at "@", "." and "-", so "from:corp.exam" (a phrase of a word
    # and a prefix) finds anna@acme-corp.example without a scan; only PostgreSQL's trigram
    # index also finds a part from the middle of a word ("from:mail" for gmail.com).
    return "SELECT rowid FROM kotak_search WHERE kotak_search MATCH %s", [fts_query(term)]


def _sqlite_substring(term: Term) -> tuple[str, list]:
    """Chinese, Japanese, Thai …: unicode61 makes one token of a whole run of such text, so a
    part of it is a substring scan — of the plain tables, which read faster than the FTS5
    table's copy, with instr() when there is no letter case to ignore."""
    if term.value.lower() != term.value.upper():
        test, value = "{} LIKE %s ESCAPE '\\'", like_pattern(term.value)
    else:
        test, value = "instr({}, %s) > 0", term.value
    columns = {
        "text": ["subject", "from_name"],
        "subject": ["subject"],
        "from": ["from_name", "from_address"],
        "to": [],
    }[term.field]
    if term.field == "to":
        # To and Cc are JSON with non-ASCII escaped: the FTS5 table holds them decoded.
        return f"SELECT rowid FROM kotak_search WHERE {test.format('recipients')}", [value]
    sql = "SELECT id FROM webmail_message WHERE " + " OR ".join(test.format(c) for c in columns)
    params = [value] * len(columns)
    if term.field == "text":
        sql += f" UNION ALL SELECT message_id FROM webmail_messagebody WHERE {test.format('text')}"
        params.append(value)
    return sql, params
