"""Marking what matched: escape the text, then wrap each match in <mark>.

Matching here follows the index: case- and accent-insensitive ("cafe" marks "Café"), at the
start of a word (a search for "order" also finds "orders"), anywhere for scripts written without
spaces. The patterns are compiled regular expressions, so a 100 KB body costs microseconds.
No Django in this module: callers mark the result safe.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from html import escape

from webmail.search.query import Term

EXCERPT_BEFORE = 60
EXCERPT_LENGTH = 220
# Combining marks after a base letter: text in decomposed form ("e" + U+0301).
_MARKS = "[\u0300-\u036f]*"


def fold(text: str) -> str:
    """Lower case without accents: what the index compares."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@cache
def _variants() -> dict[str, str]:
    """For each ASCII letter, the precomposed letters that fold to it (é, É, ê … for "e")."""
    table: dict[str, set[str]] = {}
    for code in [*range(0xC0, 0x250), *range(0x1E00, 0x1F00)]:
        char = chr(code)
        folded = fold(char)
        if len(folded) == 1 and folded.isascii() and folded.isalpha():
            table.setdefault(folded, set()).add(char)
    return {letter: "".join(sorted(chars)) for letter, chars in table.items()}


def _char_pattern(char: str) -> str:
    variants = _variants().get(char, "")
    if not variants:
        return re.escape(char)
    return f"[{re.escape(char)}{re.escape(variants)}]{_MARKS}"


def _term_pattern(term: Term) -> str | None:
    words = re.findall(r"\w+", fold(term.value))
    if not words:
        return None
    body = r"\W+".join("".join(_char_pattern(c) for c in word) for word in words)
    # Words match from their start (prefix search); unspaced scripts anywhere.
    return body if term.is_substring else rf"(?<!\w){body}"


def pattern(terms: list[Term]) -> re.Pattern | None:
    """One expression matching any of the terms, longest first."""
    parts = [p for p in (_term_pattern(t) for t in terms) if p]
    if not parts:
        return None
    parts.sort(key=len, reverse=True)
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


def mark(text: str, regex: re.Pattern | None) -> str:
    """The text, HTML-escaped, with every match wrapped in <mark>."""
    if regex is None or not text:
        return escape(text)
    out, last = [], 0
    for match in regex.finditer(text):
        if match.end() == match.start():
            continue
        out.append(escape(text[last : match.start()]))
        out.append(f"<mark>{escape(match.group())}</mark>")
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def excerpt(text: str, regex: re.Pattern | None) -> str | None:
    """About EXCERPT_LENGTH characters of text around its first match, marked; None if none."""
    if regex is None or not text:
        return None
    match = regex.search(text)
    if match is None:
        return None
    start = max(0, match.start() - EXCERPT_BEFORE)
    if start:
        # Start at a word boundary, not in the middle of one.
        space = text.find(" ", start, match.start())
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + EXCERPT_LENGTH)
    if end < len(text):
        space = text.rfind(" ", match.end(), end)
        end = space if space > 0 else end
    piece = " ".join(text[start:end].split())
    return ("…" if start else "") + mark(piece, regex) + ("…" if end < len(text) else "")
