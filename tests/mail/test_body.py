"""webmail.mail.body: the text a reader sees for a body part, from the bytes on the wire."""

from __future__ import annotations

import base64

import pytest

from tests.mail.eml import single_part
from webmail.mail.body import decode_part, decode_transfer, html_to_text, make_snippet


def decoded(name: str) -> str:
    body, encoding, charset = single_part(f"bodies/{name}")
    return decode_part(body, encoding, charset)


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


# --- decode_transfer ----------------------------------------------------------------------------


def test_it_decodes_base64_wrapped_in_crlf_lines():
    data = bytes(range(256)) * 3  # 768 bytes: no padding
    wrapped = base64.encodebytes(data).replace(b"\n", b"\r\n")
    assert decode_transfer(wrapped, "base64") == data


def test_it_accepts_the_transfer_encoding_in_any_case():
    assert decode_transfer(b"SGVsbG8gd29y\r\n", "BASE64") == b"Hello wor"
    assert decode_transfer(b"caf=C3=A9", "Quoted-Printable") == "café".encode()


def test_it_skips_junk_characters_in_damaged_base64():
    assert decode_transfer(b"SGVs*bG8g\r\n d29y !!", "base64") == b"Hello wor"


@pytest.mark.parametrize(
    "text", [b"Hello world", b"Hello world!!", "Café".encode(), "Merci René".encode()]
)
def test_it_decodes_the_last_characters_of_padded_base64(text):
    assert decode_transfer(base64.encodebytes(text), "base64") == text


def test_it_reads_what_it_can_from_base64_cut_off_at_a_quantum_boundary():
    encoded = base64.b64encode(b"The first twelve bytes and then some more")
    assert decode_transfer(encoded[:16], "base64") == b"The first tw"


@pytest.mark.parametrize("encoding", ["7bit", "8bit", "binary", "", "x-uuencode"])
def test_it_leaves_other_transfer_encodings_alone(encoding):
    data = "raw bytes é =41\r\n".encode()
    assert decode_transfer(data, encoding) == data


# --- decode_part on real bodies -----------------------------------------------------------------


def test_it_joins_quoted_printable_soft_line_breaks_even_inside_a_character():
    assert lf(decoded("quoted_printable_soft_breaks.eml")) == (
        "Dies ist eine sehr lange Zeile, die der Absender umgebrochen hat, damit sie nicht "
        "länger als 76 Zeichen wird: Größe und 1+1=2. \n"
        "Zweite Zeile mit Leerzeichen am Ende  \n"
        "Café € 5\n"
    )


def test_it_reads_utf8_text_declared_as_us_ascii():
    assert lf(decoded("us_ascii_declared_but_utf8.eml")) == (
        "Zoë says: the café on Straße 5 costs 3 € — naïve résumé ✓\n"
    )


def test_it_reads_latin1_text_declared_as_us_ascii():
    assert lf(decoded("us_ascii_declared_but_latin1.eml")) == (
        "Zoë says: the café on Straße 5 is très bien\n"
    )


def test_it_shows_the_last_word_of_a_base64_body_without_trailing_newline():
    assert decoded("base64_utf8_without_trailing_newline.eml") == (
        "Merci beaucoup pour votre aide, à bientôt, René"
    )


def test_it_does_not_raise_on_a_truncated_base64_body():
    text = decoded("truncated_base64.eml")
    assert text
    assert "Bestellung Nr. 815" in text


def test_it_shows_the_readable_start_of_a_truncated_base64_body_without_mojibake():
    text = lf(decoded("truncated_base64.eml"))
    assert text.startswith(
        "Größenänderung der Bestellung Nr. 815:\n"
        "Bitte ändern Sie die Menge auf fünf Stück.\n"
        "Mit freundlichen Grüßen\n"
        "Jürgen Müller\n"
    )


def test_it_decodes_an_empty_body_to_empty_text():
    assert decode_part(b"", "7bit", "us-ascii") == ""
    assert decode_part(b"", "base64", "utf-8") == ""
    assert decode_part(b"", "quoted-printable", "") == ""


def test_it_removes_nul_bytes_from_a_decoded_part():
    assert decode_part(b"Hello\x00 world=00\x07", "quoted-printable", "utf-8") == "Hello world"


# --- html_to_text ---------------------------------------------------------------------------

HTML_MARKERS = [
    "Newsletter title should not show",
    "hidden-css-marker",
    "font-family",
    "script-in-head-marker",
    "document.write",
    "nope",
    "script-in-body-marker",
    "alert(",
    "another-css-marker",
    "mso-comment-marker",
]


def test_it_shows_the_text_of_an_html_only_message():
    text = html_to_text(decoded("html_only_script_style.eml"))
    for visible in [
        "Your ticket #4711",
        "Hello Jane,",
        "your request has been updated.",
        "Open & waiting",
        "Café € 5 <tag>",
    ]:
        assert visible in text


@pytest.mark.parametrize("marker", HTML_MARKERS)
def test_it_never_shows_script_style_title_or_comment_contents(marker):
    text = html_to_text(decoded("html_only_script_style.eml"))
    assert marker not in text


def test_it_builds_a_snippet_of_an_html_only_message_without_script_or_style():
    snippet = make_snippet(html_to_text(decoded("html_only_script_style.eml")))
    assert snippet.startswith("Your ticket #4711 Hello Jane, your request has been updated.")
    assert "\n" not in snippet
    for marker in HTML_MARKERS:
        assert marker not in snippet


def test_it_keeps_at_most_one_blank_line_between_blocks_of_crlf_html():
    text = html_to_text(decoded("html_only_script_style.eml"))
    assert "\r" not in text
    assert "\n\n\n" not in text


def test_it_separates_the_cells_of_a_table_row():
    text = html_to_text(decoded("html_only_script_style.eml"))
    assert "Status:Open" not in text
    assert "Status:" in text and "Open & waiting" in text


def test_it_shows_the_body_when_the_head_element_is_never_closed():
    text = html_to_text(decoded("html_head_not_closed.eml"))
    assert "Spring sale: everything 20% off." in text
    assert "Sale\n" not in text


def test_it_hides_an_unclosed_script_to_the_end():
    assert html_to_text("<p>Hi</p><script>alert('x'); <p>still script</p>") == "Hi"


def test_it_ignores_a_stray_closing_style_tag():
    assert html_to_text("</style><p>Shown</p><style>hidden</style>") == "Shown"


def test_it_shows_escaped_markup_as_text():
    assert html_to_text("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>") == (
        "<script>alert(1)</script>"
    )


def test_it_puts_blocks_on_their_own_lines():
    assert html_to_text("<div>a</div><div>b</div><ul><li>one</li><li>two</li></ul>") == (
        "a\n\nb\n\none\n\ntwo"
    )


@pytest.mark.parametrize(
    "html",
    [
        "Line one<br>Line two",
        "Line one<br/>Line two",
        "Line one<br>\r\nLine two",
        "<p>Line one<br />\nLine two</p>",
    ],
)
def test_it_breaks_the_line_at_a_br_without_leaving_a_blank_line(html):
    assert html_to_text(html) == "Line one\nLine two"


def test_it_joins_lines_broken_in_the_html_source_as_a_browser_does():
    assert html_to_text("<p>Hello\r\n  Jane,\r\nthanks</p>") == "Hello Jane, thanks"


def test_it_keeps_the_line_breaks_of_preformatted_text():
    assert html_to_text("<pre>a = 1\r\nb = 2</pre>") == "a = 1\nb = 2"


def test_it_turns_non_breaking_spaces_and_entities_into_text():
    assert html_to_text("Hello&nbsp;&nbsp;Jane &amp; co &#x1F389;") == "Hello Jane & co 🎉"


def test_it_shows_nothing_for_an_empty_html_part():
    assert html_to_text("") == ""


# --- make_snippet -------------------------------------------------------------------------------


def test_it_leaves_quoted_lines_out_of_the_snippet():
    text = (
        "Thanks, that fixed it.\r\n\r\nOn Monday Bob wrote:\r\n> Try restarting.\r\n  > > old\r\n"
    )
    assert make_snippet(text) == "Thanks, that fixed it. On Monday Bob wrote:"


def test_it_puts_the_snippet_on_one_line():
    assert make_snippet("Line one\n\n\tLine two   and\r\nthree\n") == "Line one Line two and three"


def test_it_cuts_the_snippet_to_the_requested_length():
    text = "word " * 100
    assert len(make_snippet(text)) == 200
    assert make_snippet(text, length=9) == "word word"


def test_it_makes_an_empty_snippet_for_an_empty_body():
    assert make_snippet("") == ""
    assert make_snippet("> only a quote\n") == ""
