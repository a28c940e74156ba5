"""The search box's language: operators, quoting, negation, and whatever else gets typed."""

from __future__ import annotations

import random
import string

import pytest

from webmail.search.query import MAX_LENGTH, MAX_TERMS, Term, parse


def terms(text: str) -> list[Term]:
    return list(parse(text).terms)


def test_free_text_words_are_separate_terms():
    assert terms("invoice  overdue") == [Term("text", "invoice"), Term("text", "overdue")]


def test_an_empty_or_blank_query_has_no_terms():
    assert not parse("")
    assert not parse("   \t ")
    assert not parse(None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from:anna@example.com", Term("from", "anna@example.com")),
        ("FROM:Anna", Term("from", "Anna")),
        ("to:billing", Term("to", "billing")),
        ("cc:billing", Term("to", "billing")),
        ("subject:refund", Term("subject", "refund")),
        ("has:attachment", Term("has", "attachment")),
        ("has:attachments", Term("has", "attachment")),
        ("is:unread", Term("is", "unread")),
        ("is:read", Term("is", "read")),
        ("is:flagged", Term("is", "flagged")),
        ("is:starred", Term("is", "flagged")),
        ("in:inbox", Term("in", "inbox")),
        ("folder:Archive", Term("in", "Archive")),
        ("assigned:me", Term("assigned", "me")),
        ("assigned:ME", Term("assigned", "me")),
        ("assigned:none", Term("assigned", "none")),
        ("assigned:Bob", Term("assigned", "Bob")),
        ("status:open", Term("status", "open")),
        ("status:Pending", Term("status", "pending")),
        ("status:closed", Term("status", "closed")),
        ("status:snoozed", Term("status", "snoozed")),
        ("before:2024-03-01", Term("before", "2024-03-01")),
        ("after:2024-3-1", Term("after", "2024-03-01")),
        ("after:2024/03/01", Term("after", "2024-03-01")),
    ],
)
def test_each_operator(text, expected):
    assert terms(text) == [expected]
    assert not parse(text).warnings


def test_a_quoted_phrase_is_one_term():
    assert terms('"exact words" here') == [
        Term("text", "exact words", phrase=True),
        Term("text", "here"),
    ]


def test_a_phrase_after_an_operator():
    assert terms('subject:"order 42" from:"Anna Müller"') == [
        Term("subject", "order 42", phrase=True),
        Term("from", "Anna Müller", phrase=True),
    ]
    assert terms('in:"Clients/ACME Corp"') == [Term("in", "Clients/ACME Corp", phrase=True)]


def test_a_single_quoted_word_is_an_exact_word_not_a_prefix():
    assert terms('"refund"') == [Term("text", "refund", phrase=True)]


def test_an_unclosed_quote_runs_to_the_end():
    assert terms('subject:"order 42') == [Term("subject", "order 42", phrase=True)]
    assert terms('a "b c') == [Term("text", "a"), Term("text", "b c", phrase=True)]


def test_negation():
    assert terms('-spam -from:robot -is:read -"out of office" -in:trash') == [
        Term("text", "spam", negated=True),
        Term("from", "robot", negated=True),
        Term("is", "read", negated=True),
        Term("text", "out of office", negated=True, phrase=True),
        Term("in", "trash", negated=True),
    ]


def test_a_lone_dash_or_punctuation_is_not_a_term():
    assert terms("- — # ... invoice") == [Term("text", "invoice")]


def test_a_word_with_a_dash_inside_is_text():
    assert terms("e-mail order-42") == [Term("text", "e-mail"), Term("text", "order-42")]


def test_unknown_operators_are_searched_as_text():
    assert terms("foo:bar http://x.example 10:30") == [
        Term("text", "foo:bar"),
        Term("text", "http://x.example"),
        Term("text", "10:30"),
    ]


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("has:pony", "has:attachment"),
        ("is:sleepy", "is:unread"),
        ("status:urgent", "status:open"),
        ("before:yesterday", "YYYY-MM-DD"),
        ("after:2024-13-45", "YYYY-MM-DD"),
        ("from:", "needs a value"),
        ("from:#", "nothing to search for"),
    ],
)
def test_an_operator_with_a_bad_value_is_dropped_with_a_warning(text, warning):
    query = parse(text + " invoice")
    assert list(query.terms) == [Term("text", "invoice")]
    assert warning in " ".join(query.warnings)


def test_control_characters_never_survive():
    query = parse("invoice\r\nA1 LOGOUT\x00 from:x\ny")
    for term in query.terms:
        assert not any(ord(c) < 0x20 for c in term.value)
    assert [t.value for t in query.terms][:3] == ["invoice", "A1", "LOGOUT"]
    assert Term("from", "x") in query.terms


def test_length_and_term_count_are_bounded():
    query = parse("word " * 400)
    assert len(query.text) <= MAX_LENGTH
    assert "first 500 characters" in query.warnings[0]
    many = parse(" ".join(f"w{n}" for n in range(50)))
    assert len(many.terms) == MAX_TERMS
    assert any("first 20 terms" in w for w in many.warnings)


def test_repeated_terms_count_once():
    assert terms("refund refund REFUND") == [Term("text", "refund"), Term("text", "REFUND")]


def test_unspaced_scripts_are_matched_as_substrings():
    assert Term("text", "確認").is_substring
    assert Term("subject", "注文").is_substring
    assert Term("text", "ภาษาไทย").is_substring
    assert not Term("text", "café").is_substring
    assert not Term("text", "Заказ").is_substring


def test_the_query_knows_its_free_text_and_highlights():
    query = parse("invoice -spam subject:refund is:unread")
    assert query.text_terms == [Term("text", "invoice")]
    assert query.highlights == [Term("text", "invoice"), Term("subject", "refund")]
    assert list(query.without_text().terms) == [Term("is", "unread")]


def test_terms_print_as_typed():
    assert str(Term("subject", "order 42", phrase=True)) == 'subject:"order 42"'
    assert str(Term("text", "spam", negated=True)) == "-spam"


def test_garbage_never_raises():
    rng = random.Random(8)
    alphabet = string.printable + '"""::--—é確\x00\r\n\u2028'
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        query = parse(text)
        for term in query.terms:
            assert term.value and term.value == term.value.strip()
            assert "\x00" not in term.value and "\r" not in term.value
            str(term)
    for text in ['"', '""', '-"', "-", ":", 'from:"', 'subject:""', "is:", "-is:", "in:-"]:
        parse(text)
