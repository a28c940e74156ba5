"""Reading an attached message (message/rfc822) for display, however broken it is."""

from __future__ import annotations

import pytest

from tests.corpus import hostile_messages, malformed_message, malformed_names
from webmail.mail.attached import parse_attached_message


def test_it_reads_headers_bodies_and_the_names_of_other_parts():
    raw = (
        b"From: =?utf-8?q?Ana_L=C3=ADma?= <ana@example.org>\r\nTo: support@example.com\r\n"
        b"Subject: =?utf-8?b?T2zDoQ==?=\r\nDate: Tue, 03 Mar 2026 08:00:00 +0000\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b'--b\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
        b"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain text\r\n"
        b"--a\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: "
        b"quoted-printable\r\n\r\n<p>Caf=E9</p>\r\n--a--\r\n"
        b'--b\r\nContent-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64'
        b"\r\n\r\nJVBERi0=\r\n--b--\r\n"
    )
    attached = parse_attached_message(raw)
    assert attached.subject == "Olá"
    assert (attached.from_name, attached.from_address) == ("Ana Líma", "ana@example.org")
    assert attached.to == [["", "support@example.com"]]
    assert attached.date.isoformat() == "2026-03-03T08:00:00+00:00"
    assert attached.text.strip() == "Plain text"
    assert attached.html.strip() == "<p>Café</p>"
    assert [(a.filename, a.type, a.size) for a in attached.attachments] == [
        ("a.pdf", "application/pdf", 5)
    ]
    assert not attached.is_damaged


@pytest.mark.parametrize("name", malformed_names())
def test_no_malformed_message_makes_it_raise(name):
    parse_attached_message(malformed_message(name))


def test_no_hostile_message_makes_it_raise():
    for _name, raw in hostile_messages("http://127.0.0.1:9/beacon"):
        parse_attached_message(raw)


def test_nesting_deeper_than_it_reads_is_marked_damaged():
    from tests.corpus import deep_nesting

    attached = parse_attached_message(deep_nesting(100))
    assert attached.is_damaged
