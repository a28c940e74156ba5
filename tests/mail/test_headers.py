"""webmail.mail.headers on real header blocks: what the message list of a shared inbox shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.mail.eml import header_block
from webmail.mail.headers import (
    Headers,
    decode_header_value,
    parse_addresses,
    parse_date,
    parse_headers,
)

CET = timezone(timedelta(hours=1))


def parse(name: str) -> Headers:
    return parse_headers(header_block(f"headers/{name}"))


def assert_no_control_characters(text: str) -> None:
    assert not [ch for ch in text if ch < " " or ch == "\x7f"], repr(text)


# --- a well-formed message ----------------------------------------------------------------------


def test_it_shows_sender_name_and_address_from_a_q_encoded_utf8_from():
    headers = parse("q_utf8_from_and_subject.eml")
    assert (headers.from_name, headers.from_address) == ("Renée Faßbender", "renee@example.com")


def test_it_decodes_a_q_encoded_utf8_subject_between_plain_words():
    assert parse("q_utf8_from_and_subject.eml").subject == "Re: Rechnung für März (#4711)"


def test_it_lists_every_recipient_with_decoded_names():
    headers = parse("q_utf8_from_and_subject.eml")
    assert headers.to == [
        ["Support", "support@example.com"],
        ["Björn Ångström", "bjorn@example.org"],  # folded onto the next line
    ]
    assert headers.cc == [["O'Brien, Pat", "pat@example.net"]]
    assert headers.reply_to == [["Billing", "billing@example.com"]]


def test_it_keeps_the_senders_time_zone_in_the_date():
    date = parse("q_utf8_from_and_subject.eml").date
    assert date == datetime(2025, 3, 4, 9, 15, tzinfo=CET)
    assert date.utcoffset() == timedelta(hours=1)
    assert date.astimezone(UTC) == datetime(2025, 3, 4, 8, 15, tzinfo=UTC)


def test_it_reads_the_threading_ids():
    headers = parse("q_utf8_from_and_subject.eml")
    assert headers.message_id == "<20250304091500.4711@mail.example.com>"
    assert headers.in_reply_to == "<ticket-4711@support.example.com>"
    assert headers.references == "<ticket-4711@support.example.com>"


def test_it_reads_the_content_type():
    headers = parse("q_utf8_from_and_subject.eml")
    assert headers.content_type == "text/plain"
    assert not headers.is_multipart_mixed


def test_it_flags_multipart_mixed_messages_as_likely_to_have_attachments():
    assert parse_headers(header_block("structure/mixed_alternative_pdf.eml")).is_multipart_mixed
    assert parse_headers(header_block("structure/rfc2231_filename.eml")).is_multipart_mixed
    assert not parse_headers(header_block("structure/inline_image_cid.eml")).is_multipart_mixed
    assert parse_headers(header_block("structure/inline_image_cid.eml")).content_type == (
        "multipart/related"
    )


# --- encoded words in many charsets -------------------------------------------------------------


def test_it_decodes_a_b_encoded_emoji_subject_split_over_two_encoded_words():
    headers = parse("b_utf8_emoji_subject.eml")
    assert headers.subject == "🎉 Your order #123 has shipped 📦"
    assert headers.from_name == "Shop 🛒"


def test_it_joins_a_cjk_character_split_across_two_encoded_words():
    headers = parse("cjk_subject_split_across_encoded_words.eml")
    assert headers.subject == "【重要】会議の議事録 / 회의록 / 会议纪要"
    assert headers.from_name == "李小龍"
    assert headers.to == [["김민준", "minjun@example.kr"]]


def test_it_decodes_a_q_encoded_iso_8859_1_subject_and_sender():
    headers = parse("latin1_q_subject.eml")
    assert headers.subject == "Grüße aus Köln"
    assert headers.from_name == "Jürgen Müller"


def test_it_decodes_windows_1252_smart_quotes_dashes_and_euro_signs():
    headers = parse("windows1252_subject.eml")
    assert headers.subject == "“Urgent” – invoice €100"
    assert headers.from_name == "Françoise d’Arc"


def test_it_reads_windows_1252_bytes_in_words_labelled_iso_8859_1():
    assert parse("iso8859_1_label_with_windows1252_bytes.eml").subject == (
        "Price € 100 – don’t miss it"
    )


def test_it_decodes_a_koi8r_subject():
    headers = parse("koi8r_subject.eml")
    assert headers.subject == "Счёт на оплату 42"
    assert headers.from_name == "Иван Петров"


def test_it_decodes_a_koi8r_subject_whose_encoded_words_carry_a_language_tag():
    headers = parse("language_tagged_encoded_word.eml")
    assert headers.subject == "Счёт на оплату 42"
    assert headers.from_name == "Иван Петров"


def test_it_decodes_a_shift_jis_subject_and_an_iso_2022_jp_sender():
    headers = parse("japanese_subject.eml")
    assert headers.subject == "お問い合わせの件"
    assert headers.from_name == "山田太郎"
    assert headers.from_address == "taro@example.jp"


def test_it_decodes_gb2312_and_gbk_words_including_gbk_only_characters():
    headers = parse("gb2312_subject_with_gbk_characters.eml")
    assert headers.subject == "关于发票的问题"
    assert headers.from_name == "王镕"  # GBK bytes under a GB2312 label
    assert headers.to == [["客服", "support@example.com"]]


def test_it_falls_back_to_utf8_then_windows_1252_for_an_unknown_charset():
    headers = parse("unknown_charset_subject.eml")
    assert headers.subject == "Café au lait"  # UTF-8 bytes labelled x-foo
    assert headers.from_name == "François"  # Latin-1 bytes labelled x-foo


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?utf-8?q?Hello?= World", "Hello World"),
        ("Re: =?utf-8?q?Hello?=", "Re: Hello"),
        ("=?utf-8?q?Hello?= =?utf-8?q?World?=", "HelloWorld"),  # RFC 2047 §6.2
        ("=?utf-8?q?Hello_?=\r\n =?utf-8?q?World?=", "Hello World"),
        ("=?iso-8859-1?q?caf=E9?= =?utf-8?q?_cr=C3=A8me?=", "café crème"),
        ("=?UTF-8?Q?a=5Fb_c?=", "a_b c"),
        ("=?iso-8859-1*en?q?caf=E9?=", "café"),  # RFC 2231 language tag
        ("plain\r\n\tfolded   subject", "plain folded subject"),
        ("=?utf-8?b?not closed", "=?utf-8?b?not closed"),
        ("", ""),
        (None, ""),
    ],
)
def test_it_decodes_header_values_as_mail_clients_show_them(value, expected):
    assert decode_header_value(value) == expected


# --- raw 8-bit headers --------------------------------------------------------------------------


def test_it_shows_a_raw_utf8_subject():
    assert parse("raw_utf8_headers.eml").subject == "Grüße aus Köln — 日本 🎉"


def test_it_shows_raw_utf8_sender_and_recipient_names():
    headers = parse("raw_utf8_headers.eml")
    assert headers.from_name == "Jürgen Müller"
    assert headers.to == [["Zoë Brontë", "zoe@example.org"]]


def test_it_keeps_the_address_of_a_sender_with_a_raw_utf8_name():
    headers = parse("raw_utf8_headers.eml")
    assert headers.from_address == "juergen@example.de"
    assert headers.message_id == "<raw-utf8@example.de>"


def test_it_shows_a_raw_latin1_subject_and_sender():
    headers = parse("raw_latin1_headers.eml")
    assert headers.subject == "Grüße aus Köln"
    assert headers.from_name == "Jürgen Müller"


def test_it_shows_raw_utf8_text_next_to_an_encoded_word():
    assert parse("raw_utf8_mixed_with_encoded_word.eml").subject == "日本語 のお知らせ"


def test_it_keeps_cjk_text_next_to_an_encoded_word_in_a_decoded_value():
    assert decode_header_value("日本語 =?utf-8?q?caf=C3=A9?= 🎉") == "日本語 café 🎉"


def test_it_keeps_latin1_range_text_next_to_an_encoded_word_in_a_decoded_value():
    assert decode_header_value("Grüße =?utf-8?q?caf=C3=A9?=") == "Grüße café"


# --- dates --------------------------------------------------------------------------------------


def test_it_has_no_date_when_the_date_header_is_missing():
    headers = parse("missing_date.eml")
    assert headers.date is None
    assert headers.subject == "Where is my date?"


def test_it_has_no_date_when_the_date_cannot_be_parsed():
    headers = parse("unparseable_date.eml")
    assert headers.date is None
    assert headers.from_address == "baddate@example.com"


def test_it_has_no_date_when_the_year_is_absurd():
    headers = parse("absurd_year_date.eml")
    assert headers.date is None
    assert headers.subject == "From the future"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 1 Jul 2003 10:52:37 +0200 (CEST)", datetime(2003, 7, 1, 8, 52, 37, tzinfo=UTC)),
        ("Tue, 1 Jul 2003 10:52:37 EST", datetime(2003, 7, 1, 15, 52, 37, tzinfo=UTC)),
        ("1 Jul 2003 10:52:37 GMT", datetime(2003, 7, 1, 10, 52, 37, tzinfo=UTC)),
        ("Tue,\r\n 1 Jul 2003 10:52:37 +0200", datetime(2003, 7, 1, 8, 52, 37, tzinfo=UTC)),
        ("Tue, 1 Jul 03 10:52:37 +0000", datetime(2003, 7, 1, 10, 52, 37, tzinfo=UTC)),
        ("Tue, 1 Jul 2003 10:52:37 -0000", datetime(2003, 7, 1, 10, 52, 37, tzinfo=UTC)),
    ],
)
def test_it_parses_dates_as_mailers_write_them(value, expected):
    parsed = parse_date(value)
    assert parsed is not None
    assert parsed.tzinfo is not None
    assert parsed == expected


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 1 Jan 10000 00:00:00 +0000",
        "Mon, 1 Jan 1900 00:00:00 +0000",
        "Mon, 31 Feb 2025 10:00:00 +0000",
        "Mon, 1 Jan 2025 25:61:00 +0000",
        "Mon, 1 Jan 2025 10:00:00 +9999",
        "2025-03-04 09:15",
        "",
        None,
    ],
)
def test_it_has_no_date_for_impossible_dates(value):
    assert parse_date(value) is None


def test_it_gives_only_dates_that_can_be_stored_in_utc():
    parsed = parse_date("Fri, 31 Dec 9999 23:59:59 -1200")
    assert parsed is None or parsed.astimezone(UTC).year <= 9999


# --- senders and recipients ---------------------------------------------------------------------


def test_it_has_an_empty_sender_when_from_is_missing():
    headers = parse("missing_from.eml")
    assert (headers.from_name, headers.from_address) == ("", "")
    assert headers.subject == "Anonymous tip"
    assert headers.to == [["", "support@example.com"]]


def test_it_shows_the_whole_display_name_of_a_from_without_address():
    headers = parse("display_name_only_from.eml")
    assert (headers.from_name or headers.from_address) == "Support Team"


def test_it_shows_a_quoted_display_name_of_a_from_without_address():
    headers = parse_headers(b'From: "Support Team"\r\nSubject: x\r\n\r\n')
    assert (headers.from_name or headers.from_address) == "Support Team"


def test_it_shows_a_from_without_any_address_as_the_sender_name():
    headers = parse_headers(b"From: MAILER-DAEMON\r\n\r\n")
    assert (headers.from_name, headers.from_address) == ("MAILER-DAEMON", "")


def test_it_lists_the_members_of_address_groups_and_skips_empty_groups():
    headers = parse("group_recipients.eml")
    assert headers.to == []
    assert headers.cc == [
        ["", "alice@example.com"],
        ["Bob B.", "bob@example.com"],
        ["", "carol@example.org"],
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"Smith, John" <john@example.com>', [["Smith, John", "john@example.com"]]),
        ("john@example.com (John Smith)", [["John Smith", "john@example.com"]]),
        ("<alice@example.com>", [["", "alice@example.com"]]),
        (
            "=?utf-8?q?M=C3=BCller=2C_Hans?= <hans@example.de>",
            [["Müller, Hans", "hans@example.de"]],
        ),
        (
            "Alice <alice@example.com>,\r\n\tBob <bob@example.com>",
            [["Alice", "alice@example.com"], ["Bob", "bob@example.com"]],
        ),
        (
            "alice@example.com,, ,bob@example.com",
            [["", "alice@example.com"], ["", "bob@example.com"]],
        ),
        (
            "Alice <alice@example.com>, =?utf-8?q?M=C3=BCller?= <m@example.de>,<c@example.io>",
            [["Alice", "alice@example.com"], ["Müller", "m@example.de"], ["", "c@example.io"]],
        ),
        # A group, then a quoted name with a comma, in one list: the comma does not split them.
        (
            'Team: a@example.com, b@example.com;, "Doe, Jane" <jane@example.com>',
            [
                ["", "a@example.com"],
                ["", "b@example.com"],
                ["Doe, Jane", "jane@example.com"],
            ],
        ),
        ("", []),
        (None, []),
    ],
)
def test_it_parses_address_lists_as_mailers_write_them(value, expected):
    assert parse_addresses(value) == expected


def test_a_list_of_5000_recipients_is_parsed_whole_and_in_order():
    value = ",\r\n ".join(f"Person {n} <person{n}@example.org>" for n in range(5000))
    parsed = parse_addresses(value)
    assert len(parsed) == 5000
    assert parsed[0] == ["Person 0", "person0@example.org"]
    assert parsed[-1] == ["Person 4999", "person4999@example.org"]


# --- threading ids ------------------------------------------------------------------------------


def test_it_keeps_a_message_id_written_without_angle_brackets():
    assert "1234.5678@legacy.example.com" in parse("message_id_without_brackets.eml").message_id


def test_it_brackets_reply_ids_written_without_angle_brackets():
    headers = parse_headers(
        b"In-Reply-To: a.1@example.com\r\nReferences: a.0@example.com a.1@example.com\r\n\r\n"
    )
    assert headers.in_reply_to == "<a.1@example.com>"
    assert headers.references == "<a.0@example.com> <a.1@example.com>"


def test_it_keeps_a_message_id_only_if_it_is_unambiguous():
    headers = parse_headers(b"Message-ID: one@example.com two@example.com\r\n\r\n")
    assert headers.message_id == ""


def test_it_keeps_thirty_references_folded_over_many_lines_in_order():
    headers = parse("long_references.eml")
    expected = [f"<thread-{n:02d}.{n * 7919}@mail{n % 3}.example.com>" for n in range(1, 31)]
    assert headers.references.split(" ") == expected
    assert headers.in_reply_to == expected[-1]
    assert headers.message_id == "<reply-31@mail.example.com>"


def test_it_ignores_comments_and_junk_around_ids():
    headers = parse_headers(
        b"Message-ID: (generated) <a@example.com> trailing\r\n"
        b"In-Reply-To: <b@example.com> (Bob's message of Monday)\r\n"
        b"References: junk <c@example.com>,<d@example.com>\r\n\r\n"
    )
    assert headers.message_id == "<a@example.com>"
    assert headers.in_reply_to == "<b@example.com>"
    assert headers.references == "<c@example.com> <d@example.com>"


# --- hostile headers ----------------------------------------------------------------------------


def test_it_removes_nul_and_control_characters_from_the_subject():
    subject = parse("control_characters.eml").subject
    assert_no_control_characters(subject)
    assert subject.startswith("Invoice #42 is")
    assert subject.endswith("overdue !")


def test_it_removes_nul_and_control_characters_from_the_sender():
    headers = parse("control_characters.eml")
    assert headers.from_name == "Mallory"
    assert headers.from_address == "mallory@example.com"


def test_it_removes_nul_from_threading_ids():
    assert_no_control_characters(parse("control_characters.eml").message_id)


def test_it_keeps_all_of_a_100_kb_subject_folded_over_many_lines():
    subject = parse("long_subject.eml").subject
    assert len(subject) > 100_000
    assert subject.startswith("START word00000 word00001 ")
    assert subject.endswith(" END")
    assert "  " not in subject
    assert_no_control_characters(subject)


def test_it_parses_a_message_that_has_no_body():
    headers = parse("no_body.eml")
    assert headers.subject == "(nothing)"
    assert headers.from_address == "empty@example.com"
    assert headers.date == datetime(2025, 3, 17, 13, 0, tzinfo=UTC)


def test_it_gives_empty_headers_for_an_empty_header_block():
    headers = parse_headers(b"")
    assert headers == Headers()
    assert headers.content_type == "text/plain"


def test_it_shows_the_subject_whatever_charset_an_encoded_word_declares():
    headers = parse_headers(header_block("structure/hostile_charset_labels.eml"))
    assert headers.subject == "Hello"


# --- stable_id ----------------------------------------------------------------------------------


def test_it_gives_the_same_stable_id_to_the_same_message_parsed_twice():
    first = parse("q_utf8_from_and_subject.eml").stable_id()
    second = parse("q_utf8_from_and_subject.eml").stable_id()
    assert first == second
    assert first.startswith("h:")
    assert len(first) == 42


def test_it_gives_different_stable_ids_to_different_messages():
    names = [
        "q_utf8_from_and_subject.eml",
        "koi8r_subject.eml",
        "missing_date.eml",
        "missing_from.eml",
        "message_id_without_brackets.eml",
        "long_subject.eml",
        "control_characters.eml",
    ]
    ids = {parse(name).stable_id() for name in names}
    assert len(ids) == len(names)


@pytest.mark.parametrize(
    "change",
    [
        {"message_id": "<other@example.com>"},
        {"date": datetime(2025, 3, 4, 9, 16, tzinfo=CET)},
        {"from_address": "someone.else@example.com"},
        {"subject": "Re: Rechnung für März (#4712)"},
    ],
)
def test_it_changes_the_stable_id_when_an_identifying_header_differs(change):
    headers = parse("q_utf8_from_and_subject.eml")
    changed = parse("q_utf8_from_and_subject.eml")
    for key, value in change.items():
        setattr(changed, key, value)
    assert changed.stable_id() != headers.stable_id()


def test_it_keeps_the_stable_id_when_only_the_recipients_differ():
    headers = parse("q_utf8_from_and_subject.eml")
    changed = parse("q_utf8_from_and_subject.eml")
    changed.to = []
    changed.cc = [["", "new@example.com"]]
    assert changed.stable_id() == headers.stable_id()


def test_it_computes_a_stable_id_without_date_sender_or_message_id():
    assert Headers().stable_id().startswith("h:")
    assert parse("missing_from.eml").stable_id() != Headers().stable_id()
