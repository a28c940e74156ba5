"""webmail.mail.text: charset labels as senders write them, bytes that lie about their charset."""

from __future__ import annotations

import pytest

from webmail.mail.text import clean, decode_bytes, normalise_charset

# --- normalise_charset ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("UTF-8", "utf-8"),
        (' "utf-8" ', "utf-8"),
        ("'UTF8'", "utf-8"),
        ("us-ascii", "utf-8"),
        ("ASCII", "utf-8"),
        ("ISO-8859-1", "cp1252"),
        ("latin1", "cp1252"),
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ("ks_c_5601-1987", "cp949"),
        ("koi8-r", "koi8-r"),
        ("Shift_JIS", "shift_jis"),
        ("unknown-8bit", "utf-8"),
    ],
)
def test_it_normalises_charset_labels_seen_in_mail(label, expected):
    assert normalise_charset(label) == expected


@pytest.mark.parametrize("label", [None, "", "   ", "x-foo", "utf-9"])
def test_it_has_no_charset_for_empty_or_unknown_labels(label):
    assert normalise_charset(label) is None


# --- decode_bytes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "charset"),
    [
        ("Счёт на оплату", "koi8-r"),
        ("お問い合わせ", "shift_jis"),
        ("山田太郎", "iso-2022-jp"),
        ("关于发票", "gb2312"),
        ("회의록", "euc-kr"),
        ("Grüße aus Köln", "iso-8859-15"),
    ],
)
def test_it_decodes_bytes_in_their_declared_charset(text, charset):
    assert decode_bytes(text.encode(charset), charset) == text


def test_it_decodes_gbk_only_characters_labelled_gb2312():
    # 镕 is not in GB2312; senders label GBK text "gb2312" all the time.
    assert decode_bytes("王镕".encode("gbk"), "GB2312") == "王镕"


def test_it_shows_the_euro_sign_in_windows_1252_text_labelled_iso_8859_1():
    assert decode_bytes(b"\x80 100 \x96 don\x92t", "iso-8859-1") == "€ 100 – don’t"


def test_it_reads_utf8_when_the_charset_is_unknown():
    assert decode_bytes("Café ✓".encode(), "x-foo") == "Café ✓"


def test_it_reads_utf8_when_no_charset_is_declared():
    assert decode_bytes("Zoë 🎉".encode()) == "Zoë 🎉"


def test_it_falls_back_to_windows_1252_when_the_bytes_are_not_utf8():
    assert decode_bytes(b"caf\xe9 cr\xe8me \x80", "x-foo") == "café crème €"


def test_it_falls_back_when_the_bytes_do_not_fit_the_declared_charset():
    # Latin-1 bytes under a UTF-8 label: not UTF-8, so Windows-1252.
    assert decode_bytes("Größe".encode("latin-1"), "utf-8") == "Größe"


def test_it_replaces_bytes_that_no_fallback_can_read_instead_of_raising():
    # 0x81 and 0x8d are unassigned in Windows-1252 and invalid as UTF-8.
    assert decode_bytes(b"a\x81b\x8dc", "utf-8") == "a\ufffdb\ufffdc"


@pytest.mark.parametrize("label", ["base64", "rot13", "zlib", "hex", "uu"])
def test_it_ignores_charset_labels_that_name_non_text_codecs(label):
    assert decode_bytes(b"plain words", label) == "plain words"


@pytest.mark.parametrize("label", ["undefined", "punycode"])
def test_it_never_raises_whatever_charset_a_hostile_sender_declares(label):
    assert decode_bytes(b"C:\\temp\\x", label) == "C:\\temp\\x"


@pytest.mark.parametrize("label", ["bz2", "idna", "unicode-escape", "raw_unicode_escape"])
def test_it_ignores_charset_labels_that_name_codecs_for_something_else_than_text(label):
    assert decode_bytes(b"C:\\u00e9 plain", label) == "C:\\u00e9 plain"


def test_it_drops_the_rfc_2231_language_tag_from_a_charset_label():
    assert normalise_charset("KOI8-R*ru") == "koi8-r"


def test_it_keeps_utf8_text_whose_last_character_was_cut_off():
    data = "Größenänderung für Jürgen é".encode()[:-1]  # the é loses its second byte
    assert decode_bytes(data, "utf-8").startswith("Größenänderung für Jürgen")


def test_it_still_reads_latin1_text_ending_in_an_accented_letter_as_windows_1252():
    # b"\xe9" could be the start of a cut-off UTF-8 character, but nothing before it is UTF-8.
    assert decode_bytes(b"caf\xe9", "utf-8") == "café"


# --- clean ------------------------------------------------------------------------------------


def test_it_drops_nul_and_other_control_characters_but_keeps_tabs_and_newlines():
    assert clean("a\x00b\x07c\td\ne\r\nf\x1b[0m\x7fg") == "abc\td\ne\r\nf[0mg"


def test_it_keeps_printable_unicode_untouched():
    text = "Grüße 🎉 日本語 — «ok»"
    assert clean(text) == text


def test_it_leaves_empty_text_empty():
    assert clean("") == ""
