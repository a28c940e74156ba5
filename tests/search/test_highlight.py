"""Marking matches in results: escaped first, accent- and case-insensitive, from word starts."""

from __future__ import annotations

from webmail.search.highlight import excerpt, mark, pattern
from webmail.search.query import Term, parse


def test_matches_are_marked_after_escaping():
    regex = pattern([Term("text", "script")])
    assert mark("<script>alert(1)</script>", regex) == (
        "&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt;"
    )


def test_a_term_with_markup_in_it_is_escaped_too():
    regex = pattern(parse('"<b>bold" & stuff').terms)
    marked = mark('say <b>bold" & stuff', regex)
    assert "<b>" not in marked
    # Punctuation is not part of a match (the index ignores it too); the words are.
    assert "&lt;<mark>b&gt;bold</mark>&quot;" in marked
    assert "<mark>stuff</mark>" in marked


def test_accents_and_case_do_not_matter():
    regex = pattern([Term("text", "cafe")])
    assert mark("Café, CAFÉ, cafe\u0301 and cafes", regex) == (
        "<mark>Café</mark>, <mark>CAFÉ</mark>, <mark>cafe\u0301</mark> and <mark>cafe</mark>s"
    )
    assert mark("un café", pattern([Term("text", "Café")])) == "un <mark>café</mark>"


def test_words_match_from_their_start_only():
    regex = pattern([Term("text", "order")])
    assert mark("reorder orders", regex) == "reorder <mark>order</mark>s"


def test_unspaced_scripts_match_anywhere():
    regex = pattern([Term("text", "確認")])
    assert mark("注文確認のお知らせ", regex) == "注文<mark>確認</mark>のお知らせ"


def test_a_phrase_spans_spaces_and_punctuation():
    regex = pattern([Term("text", "order 42", phrase=True)])
    assert mark("Order\n42 and order-42", regex) == (
        "<mark>Order\n42</mark> and <mark>order-42</mark>"
    )


def test_excerpt_is_cut_around_the_first_match():
    text = "Lorem ipsum " * 40 + "the parcel arrived damaged " + "dolor sit " * 40
    cut = excerpt(text, pattern([Term("text", "damaged")]))
    assert cut.startswith("…") and cut.endswith("…")
    assert "<mark>damaged</mark>" in cut
    assert len(cut) < 320


def test_no_match_no_excerpt():
    assert excerpt("nothing here", pattern([Term("text", "parcel")])) is None
    assert excerpt("", pattern([Term("text", "parcel")])) is None
    assert pattern([]) is None
    assert mark("a < b", None) == "a &lt; b"
