"""webmail.imap.bodystructure on BODYSTRUCTURE responses from a real Dovecot, and end to end:
the part displayable_parts() picks, fetched with BODY.PEEK[section] and run through decode_part.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from imapclient import IMAPClient

from tests.dovecot import Dovecot, dovecot_dir
from tests.mail.eml import load
from webmail.imap.bodystructure import (
    Part,
    attachments,
    displayable_parts,
    parse_bodystructure,
)
from webmail.mail.body import decode_part, html_to_text
from webmail.mail.headers import FETCHED_FIELDS, parse_headers

pytestmark = pytest.mark.imap

USER = "alice"

STRUCTURES = [
    "structure/mixed_alternative_pdf.eml",
    "structure/forwarded_message.eml",
    "structure/inline_image_cid.eml",
    "structure/rfc2231_filename.eml",
    "structure/single_plain_qp.eml",
    "structure/text_attachment.eml",
    "structure/hostile_charset_labels.eml",
    "bodies/html_only_script_style.eml",
    "bodies/base64_utf8_without_trailing_newline.eml",
    "headers/no_body.eml",
]
HEADERS = [
    "headers/q_utf8_from_and_subject.eml",
    "headers/koi8r_subject.eml",
    "headers/cjk_subject_split_across_encoded_words.eml",
    "headers/long_references.eml",
    "headers/long_subject.eml",
]

# The texts the fixtures were written from.
INVOICE_PLAIN = (
    "Hallo Frau Müller,\n\nIhre Rechnung über 42 € ist angehängt. Diese Zeile ist absichtlich "
    "sehr lang, damit der Encoder sie weich umbrechen muss.\n\nGrüße\n"
)
FORWARD_PLAIN = (
    "Sehr geehrte Damen und Herren,\n\n"
    "anbei die weitergeleitete Nachricht. Grüße aus Köln, Jürgen!\n"
)
SINGLE_PLAIN = (
    "Grüß Gott! Das Passwort lautet: «geheim» – bitte nicht weitergeben. Diese Zeile ist lang "
    "genug für einen weichen Umbruch im Quoted-Printable.\n"
)


@dataclass
class Inbox:
    client: IMAPClient
    uids: dict[str, int]
    structures: dict[str, tuple]

    def parts(self, name: str) -> list[Part]:
        return parse_bodystructure(self.structures[name])

    def part(self, name: str, section: str) -> Part:
        (part,) = [p for p in self.parts(name) if p.section == section]
        return part

    def fetch(self, name: str, item: str) -> bytes:
        """One BODY.PEEK[...] item of one message, as the server sent it."""
        uid = self.uids[name]
        data = self.client.fetch([uid], [f"BODY.PEEK[{item}]"])[uid]
        (value,) = [v for k, v in data.items() if k.startswith(b"BODY[")]
        return value or b""

    def shown_text(self, name: str, part: Part) -> str:
        """What load_body() stores for a part: fetched and decoded."""
        return decode_part(self.fetch(name, part.section), part.encoding, part.charset)


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    # dovecot_dir rather than tmp_path_factory: another pytest session starting meanwhile resets
    # /tmp/pytest-of-<user> to 0700, which locks Dovecot's unprivileged processes out.
    with dovecot_dir("mail") as path, Dovecot.start(path) as server:
        uids = {name: server.append(USER, "INBOX", load(name)) for name in STRUCTURES + HEADERS}
        client = server.client(USER)
        try:
            client.select_folder("INBOX", readonly=True)
            response = client.fetch(list(uids.values()), ["BODYSTRUCTURE"])
            structures = {name: response[uid][b"BODYSTRUCTURE"] for name, uid in uids.items()}
            yield Inbox(client, uids, structures)
        finally:
            client.logout()


def outline(parts: list[Part]) -> list[tuple[str, str]]:
    return [(part.section, part.type) for part in parts]


def sections(parts: list[Part | None]) -> list[str | None]:
    return [part.section if part else None for part in parts]


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


# --- multipart/mixed with multipart/alternative and a PDF -----------------------------------------

INVOICE = "structure/mixed_alternative_pdf.eml"


def test_it_numbers_the_sections_of_an_alternative_inside_mixed(inbox):
    assert outline(inbox.parts(INVOICE)) == [
        ("TEXT", "multipart/mixed"),
        ("1", "multipart/alternative"),
        ("1.1", "text/plain"),
        ("1.2", "text/html"),
        ("2", "application/pdf"),
    ]


def test_it_reads_charset_and_transfer_encoding_of_each_alternative(inbox):
    plain, html = inbox.part(INVOICE, "1.1"), inbox.part(INVOICE, "1.2")
    assert (plain.charset.lower(), plain.encoding) == ("utf-8", "quoted-printable")
    assert (html.charset.lower(), html.encoding) == ("utf-8", "quoted-printable")
    assert (plain.disposition, plain.filename) == ("", "")


def test_it_reads_the_pdf_attachment_name_disposition_and_encoding(inbox):
    pdf = inbox.part(INVOICE, "2")
    assert (pdf.filename, pdf.disposition, pdf.encoding) == (
        "invoice-2025-03.pdf",
        "attachment",
        "base64",
    )
    assert pdf.charset == ""
    assert pdf.content_id == ""


@pytest.mark.parametrize("name", [n for n in STRUCTURES if "hostile" not in n])
def test_it_reports_the_size_of_each_part_in_octets_as_the_server_sends_it(inbox, name):
    leaves = [part for part in inbox.parts(name) if not part.type.startswith("multipart/")]
    assert leaves
    for part in leaves:
        assert part.size == len(inbox.fetch(name, part.section)), part.section


def test_it_reports_no_size_for_multipart_containers(inbox):
    assert [p.size for p in inbox.parts(INVOICE) if p.type.startswith("multipart/")] == [0, 0]


def test_it_lists_only_the_pdf_as_attachment_of_the_invoice(inbox):
    assert sections(attachments(inbox.parts(INVOICE))) == ["2"]


def test_it_shows_the_plain_and_html_alternatives_of_the_invoice(inbox):
    assert sections(displayable_parts(inbox.parts(INVOICE))) == ["1.1", "1.2"]


def test_it_decodes_the_quoted_printable_utf8_alternative_end_to_end(inbox):
    plain, _ = displayable_parts(inbox.parts(INVOICE))
    raw = inbox.fetch(INVOICE, plain.section)
    assert b"=\r\n" in raw  # really soft-broken on the wire
    assert lf(inbox.shown_text(INVOICE, plain)) == INVOICE_PLAIN


def test_it_renders_the_html_alternative_as_readable_text_end_to_end(inbox):
    _, html = displayable_parts(inbox.parts(INVOICE))
    text = html_to_text(inbox.shown_text(INVOICE, html))
    assert "Hallo Frau Müller," in text
    assert "Ihre Rechnung über 42 € ist angehängt." in text
    assert "<p>" not in text


def test_it_can_store_the_parts_as_json(inbox):
    stored = json.loads(json.dumps([part.as_dict() for part in inbox.parts(INVOICE)]))
    assert stored[2] == {
        "section": "1.1",
        "type": "text/plain",
        "charset": "UTF-8",
        "encoding": "quoted-printable",
        "size": inbox.part(INVOICE, "1.1").size,
        "disposition": "",
        "filename": "",
        "content_id": "",
    }


# --- an attached message/rfc822 ---------------------------------------------------------------

FORWARD = "structure/forwarded_message.eml"


def test_it_keeps_an_attached_message_as_one_part_without_its_inner_parts(inbox):
    assert outline(inbox.parts(FORWARD)) == [
        ("TEXT", "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "message/rfc822"),
    ]


def test_it_lists_the_attached_message_as_an_attachment_with_its_filename(inbox):
    (attached,) = attachments(inbox.parts(FORWARD))
    assert (attached.section, attached.disposition, attached.filename) == (
        "2",
        "attachment",
        "Lieferung.eml",
    )


def test_it_shows_the_forwarding_text_not_the_text_inside_the_attached_message(inbox):
    plain, html = displayable_parts(inbox.parts(FORWARD))
    assert plain.section == "1"
    assert html is None  # the attached message's own HTML is not the body


def test_it_decodes_the_base64_iso_8859_1_part_end_to_end(inbox):
    plain, _ = displayable_parts(inbox.parts(FORWARD))
    assert (plain.charset, plain.encoding) == ("ISO-8859-1", "base64")
    assert lf(inbox.shown_text(FORWARD, plain)) == FORWARD_PLAIN


# --- an inline image referenced by Content-ID ---------------------------------------------------

RELATED = "structure/inline_image_cid.eml"


def test_it_reads_the_content_id_of_an_inline_image(inbox):
    assert outline(inbox.parts(RELATED)) == [
        ("TEXT", "multipart/related"),
        ("1", "text/html"),
        ("2", "image/png"),
    ]
    image = inbox.part(RELATED, "2")
    assert image.content_id == "logo.1234@example.com"  # without the angle brackets
    assert (image.disposition, image.filename, image.encoding) == ("inline", "logo.png", "base64")


def test_it_shows_the_html_of_a_related_message_and_offers_its_image_for_download(inbox):
    parts = inbox.parts(RELATED)
    assert sections(displayable_parts(parts)) == [None, "1"]
    assert sections(attachments(parts)) == ["2"]
    html = inbox.shown_text(RELATED, inbox.part(RELATED, "1"))
    assert 'src="cid:logo.1234@example.com"' in html


# --- attachment file names --------------------------------------------------------------------

NAMES = "structure/rfc2231_filename.eml"


def test_it_decodes_an_rfc2231_utf8_filename(inbox):
    assert inbox.part(NAMES, "2").filename == "naïve résumé.pdf"


def test_it_decodes_an_rfc2047_encoded_filename(inbox):
    part = inbox.part(NAMES, "3")
    assert part.filename == "Überweisung für März.docx"
    assert part.type == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def test_it_decodes_an_rfc2231_filename_continued_over_two_parameters(inbox):
    assert inbox.part(NAMES, "4").filename == "Geschäftsbericht 2024 – final.pdf"


def test_it_lists_every_named_file_as_attachment_and_shows_the_cover_text(inbox):
    parts = inbox.parts(NAMES)
    assert sections(attachments(parts)) == ["2", "3", "4"]
    assert sections(displayable_parts(parts)) == ["1", None]
    assert lf(inbox.shown_text(NAMES, inbox.part(NAMES, "1"))) == "Please find my CV attached."


# --- single-part messages ---------------------------------------------------------------------

SINGLE = "structure/single_plain_qp.eml"


def test_it_calls_the_body_of_a_single_part_message_section_1(inbox):
    parts = inbox.parts(SINGLE)
    assert outline(parts) == [("1", "text/plain")]
    assert (parts[0].charset, parts[0].encoding) == ("utf-8", "quoted-printable")
    assert attachments(parts) == []
    assert sections(displayable_parts(parts)) == ["1", None]


def test_it_decodes_a_single_part_quoted_printable_utf8_message_end_to_end(inbox):
    plain, _ = displayable_parts(inbox.parts(SINGLE))
    assert lf(inbox.shown_text(SINGLE, plain)) == SINGLE_PLAIN


HTML_ONLY = "bodies/html_only_script_style.eml"


def test_it_shows_the_html_part_of_an_html_only_message(inbox):
    parts = inbox.parts(HTML_ONLY)
    assert outline(parts) == [("1", "text/html")]
    assert attachments(parts) == []
    assert sections(displayable_parts(parts)) == [None, "1"]


def test_it_shows_an_html_only_message_as_text_without_script_or_style_end_to_end(inbox):
    _, html = displayable_parts(inbox.parts(HTML_ONLY))
    text = html_to_text(inbox.shown_text(HTML_ONLY, html))
    assert "Hello Jane," in text
    assert "Open & waiting" in text
    for hidden in ("script-in-head-marker", "script-in-body-marker", "hidden-css-marker"):
        assert hidden not in text


NO_BODY = "headers/no_body.eml"


def test_it_describes_a_message_without_body_as_an_empty_text_part(inbox):
    parts = inbox.parts(NO_BODY)
    assert outline(parts) == [("1", "text/plain")]
    assert parts[0].size == 0
    plain, html = displayable_parts(parts)
    assert (plain.section, html) == ("1", None)
    assert inbox.shown_text(NO_BODY, plain) == ""


def test_it_shows_the_last_word_of_a_base64_body_fetched_from_the_server(inbox):
    name = "bodies/base64_utf8_without_trailing_newline.eml"
    plain, _ = displayable_parts(inbox.parts(name))
    assert inbox.shown_text(name, plain) == "Merci beaucoup pour votre aide, à bientôt, René"


# --- a text/plain attachment ------------------------------------------------------------------

NOTES = "structure/text_attachment.eml"


def test_it_keeps_a_text_part_marked_as_attachment_out_of_the_body(inbox):
    parts = inbox.parts(NOTES)
    assert outline(parts) == [
        ("TEXT", "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "text/plain"),
    ]
    notes = inbox.part(NOTES, "2")
    assert (notes.disposition, notes.filename, notes.charset) == (
        "attachment",
        "notes.txt",
        "us-ascii",
    )
    assert sections(attachments(parts)) == ["2"]
    plain, html = displayable_parts(parts)
    assert (plain.section, html) == ("1", None)
    assert lf(inbox.shown_text(NOTES, plain)) == "See the notes."


# --- hostile input ----------------------------------------------------------------------------

HOSTILE = "structure/hostile_charset_labels.eml"


def test_the_server_passes_hostile_charset_labels_through(inbox):
    flat = repr(inbox.structures[HOSTILE])
    assert "b'undefined'" in flat
    assert "punycode''%5Cx.bin" in flat


def test_it_lists_the_parts_whatever_charsets_a_hostile_sender_declares(inbox):
    parts = inbox.parts(HOSTILE)
    assert outline(parts) == [
        ("TEXT", "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "application/octet-stream"),
    ]
    plain, _ = displayable_parts(parts)
    assert lf(inbox.shown_text(HOSTILE, plain)) == "Hello from a hostile sender."


# --- the header fields the sync fetches -------------------------------------------------------


def fetched_headers(inbox: Inbox, name: str):
    return parse_headers(inbox.fetch(name, f"HEADER.FIELDS ({' '.join(FETCHED_FIELDS)})"))


def test_it_parses_the_header_fields_fetched_from_the_server(inbox):
    headers = fetched_headers(inbox, "headers/q_utf8_from_and_subject.eml")
    assert headers.subject == "Re: Rechnung für März (#4711)"
    assert (headers.from_name, headers.from_address) == ("Renée Faßbender", "renee@example.com")
    assert headers.to[1] == ["Björn Ångström", "bjorn@example.org"]
    assert headers.reply_to == [["Billing", "billing@example.com"]]
    assert headers.in_reply_to == "<ticket-4711@support.example.com>"


def test_it_parses_encoded_words_in_header_fields_fetched_from_the_server(inbox):
    assert fetched_headers(inbox, "headers/koi8r_subject.eml").subject == "Счёт на оплату 42"
    assert fetched_headers(inbox, "headers/cjk_subject_split_across_encoded_words.eml").subject == (
        "【重要】会議の議事録 / 회의록 / 会议纪要"
    )


def test_it_keeps_folded_references_fetched_from_the_server(inbox):
    headers = fetched_headers(inbox, "headers/long_references.eml")
    assert len(headers.references.split(" ")) == 30
    assert headers.references.split(" ")[0] == "<thread-01.7919@mail1.example.com>"


def test_it_keeps_a_100_kb_subject_fetched_from_the_server(inbox):
    headers = fetched_headers(inbox, "headers/long_subject.eml")
    assert len(headers.subject) > 100_000
    assert headers.subject.endswith(" END")
    assert headers.content_type == "text/plain"
