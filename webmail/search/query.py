"""Reading what an agent types in the search box: free text, "quoted phrases" and operators.

    invoice from:anna subject:"order 42" -in:trash is:unread after:2024-01-01

Whatever comes in, parse() returns a Query and never raises: an operator it cannot use is
dropped with a warning the page shows, an unknown one (`foo:bar`) is searched as text, an
unclosed quote runs to the end. Control characters (CR, LF, NUL …) never survive parsing, so
nothing typed here can end an IMAP command line early. No Django in this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

MAX_LENGTH = 500
MAX_TERMS = 20
MAX_VALUE = 200

# Fields matched against text (words or a phrase); "text" is free text, everything else is an
# operator with a fixed set of values.
TEXT_FIELDS = ("text", "from", "to", "subject")
OPERATORS = {
    "from": "from",
    "to": "to",
    "cc": "to",
    "subject": "subject",
    "has": "has",
    "is": "is",
    "in": "in",
    "folder": "in",
    "label": "in",
    "assigned": "assigned",
    "status": "status",
    "before": "before",
    "after": "after",
}
HAS_VALUES = {"attachment": "attachment", "attachments": "attachment"}
IS_VALUES = {
    "unread": "unread",
    "read": "read",
    "seen": "read",
    "flagged": "flagged",
    "starred": "flagged",
    "unflagged": "unflagged",
    "answered": "answered",
}
STATUS_VALUES = {"open", "pending", "closed", "snoozed"}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_WORD = re.compile(r"\w", re.UNICODE)
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
# Scripts written without spaces between words: a word index cannot find a part of a run of
# them, so such terms are matched as substrings.
# (Migration 0005_search lists the same ranges for PostgreSQL's two-character index.)
UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
)
_UNSPACED = re.compile(f"[{UNSPACED}]")


@dataclass(frozen=True)
class Term:
    """One condition: `field` is "text", an operator's canonical name, or a date operator."""

    field: str
    value: str
    negated: bool = False
    phrase: bool = False

    @property
    def is_text(self) -> bool:
        return self.field in TEXT_FIELDS

    @property
    def is_substring(self) -> bool:
        """Chinese, Japanese, Thai …: matched as a substring rather than by words."""
        return bool(_UNSPACED.search(self.value))

    @property
    def date(self) -> date:
        return date.fromisoformat(self.value)

    def __str__(self) -> str:
        value = f'"{self.value}"' if self.phrase or " " in self.value else self.value
        text = value if self.field == "text" else f"{self.field}:{value}"
        return f"-{text}" if self.negated else text


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[Term, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __bool__(self) -> bool:
        return bool(self.terms)

    @property
    def text_terms(self) -> list[Term]:
        """Positive free-text terms: what the server's full-text search is asked for."""
        return [t for t in self.terms if t.field == "text" and not t.negated]

    @property
    def highlights(self) -> list[Term]:
        """Terms whose matches are marked in results."""
        return [t for t in self.terms if t.is_text and not t.negated]

    def without_text(self) -> Query:
        """Only the operators that are not text: flags, folders, status, dates."""
        return Query(self.text, tuple(t for t in self.terms if not t.is_text))


def clean(text: str) -> str:
    """The input with control characters turned into spaces and a bounded length."""
    return _CONTROL.sub(" ", text or "")[:MAX_LENGTH]


def parse(text: str) -> Query:
    """The terms of a search box entry; never raises."""
    raw = text or ""
    warnings: list[str] = []
    if len(raw) > MAX_LENGTH:
        warnings.append(f"Only the first {MAX_LENGTH} characters were searched.")
    text = clean(raw)
    terms: list[Term] = []
    for negated, name, value, phrase in _tokens(text):
        term, warning = _term(negated, name, value, phrase)
        if warning:
            warnings.append(warning)
        if term is not None and term not in terms:
            terms.append(term)
    if len(terms) > MAX_TERMS:
        warnings.append(f"Only the first {MAX_TERMS} terms were searched.")
        terms = terms[:MAX_TERMS]
    return Query(text.strip(), tuple(terms), tuple(warnings))


def _tokens(text: str):
    """(negated, operator name or "", value, is_phrase) for each term, left to right."""
    position, end = 0, len(text)
    while position < end:
        if text[position].isspace():
            position += 1
            continue
        negated = False
        if text[position] == "-" and position + 1 < end and not text[position + 1].isspace():
            negated = True
            position += 1
        if text[position] == '"':
            value, position = _phrase(text, position + 1)
            yield negated, "", value, True
            continue
        start = position
        while position < end and not text[position].isspace() and text[position] != '"':
            position += 1
        word = text[start:position]
        name, colon, value = word.partition(":")
        if colon and name.lower() in OPERATORS:
            if not value and position < end and text[position] == '"':
                value, position = _phrase(text, position + 1)
                yield negated, name.lower(), value, True
            else:
                yield negated, name.lower(), value, False
        else:
            yield negated, "", word, False


def _phrase(text: str, position: int) -> tuple[str, int]:
    """The text up to the closing quote (or the end, if there is none) and what follows it."""
    closing = text.find('"', position)
    if closing < 0:
        return text[position:], len(text)
    return text[position:closing], closing + 1


def _term(negated: bool, name: str, value: str, phrase: bool) -> tuple[Term | None, str]:
    value = " ".join(value.split())[:MAX_VALUE]
    if not name:
        return (_text_term("text", value, negated, phrase), "")
    canonical = OPERATORS[name]
    if not value:
        return None, f"“{name}:” needs a value, e.g. {name}:{_example(canonical)}."
    lowered = value.lower()
    if canonical in TEXT_FIELDS:
        term = _text_term(canonical, value, negated, phrase)
        return term, "" if term else f"Ignored “{name}:{value}”: nothing to search for."
    if canonical == "has":
        if lowered in HAS_VALUES:
            return Term("has", HAS_VALUES[lowered], negated), ""
        return None, f"Ignored “has:{value}”: try has:attachment."
    if canonical == "is":
        if lowered in IS_VALUES:
            return Term("is", IS_VALUES[lowered], negated), ""
        return None, f"Ignored “is:{value}”: try is:unread, is:read or is:flagged."
    if canonical == "status":
        if lowered in STATUS_VALUES:
            return Term("status", lowered, negated), ""
        return None, f"Ignored “status:{value}”: try status:open, pending, closed or snoozed."
    if canonical in ("before", "after"):
        day = _parse_date(value)
        if day is None:
            return None, f"Ignored “{name}:{value}”: dates are written YYYY-MM-DD."
        return Term(canonical, day.isoformat(), negated), ""
    if canonical == "assigned":
        return Term("assigned", lowered if lowered in ("me", "none") else value, negated), ""
    return Term(canonical, value, negated, phrase), ""  # in:


def _text_term(name: str, value: str, negated: bool, phrase: bool) -> Term | None:
    # Punctuation alone ("#", "—", "-") matches nothing in a word index: not a term.
    if not _WORD.search(value):
        return None
    return Term(name, value, negated, phrase or " " in value)


def _parse_date(value: str) -> date | None:
    match = _DATE.fullmatch(value)
    if not match:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def _example(canonical: str) -> str:
    return {
        "from": "anna@example.com",
        "to": "billing",
        "subject": '"order 42"',
        "has": "attachment",
        "is": "unread",
        "in": "inbox",
        "assigned": "me",
        "status": "open",
        "before": "2024-12-31",
        "after": "2024-01-01",
    }[canonical]
