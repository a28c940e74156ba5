"""What a message contains, served safely: the framed HTML body, inline images, downloads,
attached messages and the source; and every message of the hostile and malformed corpus
listed, opened and served without an error."""

from __future__ import annotations

import re
from html import unescape

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core import signing
from django.test import AsyncClient
from django.urls import reverse

from tests.corpus import (
    hostile_message,
    hostile_names,
    malformed_message,
    malformed_names,
    with_attachment,
)
from tests.dovecot import make_message
from tests.mail.eml import load
from webmail.models import ConnectionSlot, TrustedSender
from webmail.parts import PartStream
from webmail.sync.mailbox import sync_mailbox
from webmail.web import content

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

BEACON = "http://127.0.0.1:9/beacon"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5f5e8e40000000049454e44ae426082"
)


def deliver(mailbox, raw: bytes):
    """Append raw to INBOX, sync, and return the Message row."""
    uid = mailbox.account.append(raw)
    sync_mailbox(mailbox)
    return mailbox.messages.get(uid=uid)


def url(name: str, message, *args) -> str:
    return reverse(name, args=[message.mailbox_id, message.pk, *args])


def html_message(html: str, sender: str = "News <news@shop.example>", extra: bytes = b"") -> bytes:
    return (
        f"From: {sender}\r\nTo: support@example.com\r\nSubject: HTML\r\n".encode()
        + extra
        + b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + html.encode()
        + b"\r\n"
    )


def related_message(html: str, parts: list[tuple[str, str, bytes]]) -> bytes:
    """multipart/related: html, then (content type, content id, base64 payload) parts."""
    raw = (
        b"From: News <news@shop.example>\r\nTo: support@example.com\r\nSubject: Related\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary="rel"\r\n\r\n'
        b"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode() + b"\r\n"
    )
    for kind, content_id, payload in parts:
        raw += (
            (
                f"--rel\r\nContent-Type: {kind}\r\nContent-Transfer-Encoding: base64\r\n"
                f"Content-ID: <{content_id}>\r\nContent-Disposition: inline\r\n\r\n"
            ).encode()
            + payload
            + b"\r\n"
        )
    return raw + b"--rel--\r\n"


def streamed(response) -> bytes:
    return b"".join(response.streaming_content)


def assert_body_document_headers(response) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    policy = response["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; img-src ")
    for directive in (
        "style-src 'unsafe-inline'",
        "font-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
        "sandbox allow-popups allow-popups-to-escape-sandbox",
    ):
        assert directive in policy
    assert "script-src" not in policy and "'unsafe-eval'" not in policy
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def img_src(policy: str) -> list[str]:
    return re.search(r"img-src ([^;]*);", policy).group(1).split()


# --- the HTML body ----------------------------------------------------------------------------


def test_an_html_body_is_framed_in_a_sandbox_not_put_in_the_page(client, mailbox, bob):
    message = deliver(mailbox, html_message("<p>Big <b>sale</b></p><script>alert(1)</script>"))
    client.force_login(bob)
    page = client.get(message.get_absolute_url()).content.decode()
    frame = re.search(r"<iframe[^>]*>", page).group(0)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame
    assert "allow-scripts" not in frame and "allow-same-origin" not in frame
    assert 'referrerpolicy="no-referrer"' in frame
    assert f'src="{url("message_body", message)}"' in frame
    assert "Big <b>sale</b>" not in page and "alert(1)" not in page
    assert "Remote images blocked" not in page

    response = client.get(url("message_body", message))
    assert_body_document_headers(response)
    body = response.content.decode()
    assert "<p>Big <b>sale</b></p>" in body
    assert "<script" not in body and "alert(1)" not in body
    assert img_src(response["Content-Security-Policy"]) == [
        f"http://testserver/mailboxes/{mailbox.pk}/messages/{message.pk}/inline/",
        "data:",
    ]


def test_a_plain_text_body_stays_in_the_page_escaped_and_linked(client, mailbox, bob):
    message = deliver(mailbox, hostile_message("html_in_text_plain", BEACON))
    client.force_login(bob)
    page = client.get(message.get_absolute_url()).content.decode()
    assert "<iframe" not in page
    assert "&lt;script&gt;" in page and "<script>alert" not in page
    assert 'href="https://example.com/ok?a=' in page
    assert 'href="javascript' not in page
    body = client.get(url("message_body", message))
    assert_body_document_headers(body)
    text = body.content.decode()
    assert "&lt;script&gt;" in text
    assert '<a href="javascript' not in text
    assert '<a href="https://example.com/ok?a="' in text


def test_a_bare_domain_in_a_text_body_links_over_https(client, mailbox, bob):
    message = deliver(mailbox, make_message("Portal", body="Log in at www.portal.example today."))
    client.force_login(bob)
    page = client.get(message.get_absolute_url()).content.decode()
    assert 'href="https://www.portal.example"' in page
    assert 'href="http://www.portal.example"' not in page


def test_remote_images_are_blocked_until_the_reader_asks(client, mailbox, vera):
    message = deliver(mailbox, hostile_message("tracking_pixel", BEACON))
    client.force_login(vera)
    page = client.get(message.get_absolute_url()).content.decode()
    assert "Remote images blocked" in page
    assert f'href="{message.get_absolute_url()}?images=1"' in page
    assert "Always show from" not in page  # a viewer may not change what the team trusts
    blocked = client.get(url("message_body", message))
    assert BEACON not in blocked.content.decode()
    assert "http:" not in img_src(blocked["Content-Security-Policy"])

    page = client.get(message.get_absolute_url() + "?images=1").content.decode()
    assert f'src="{url("message_body", message)}?images=1"' in page
    assert "Remote images blocked" not in page
    shown = client.get(url("message_body", message) + "?images=1")
    assert f'src="{BEACON}/pixel.gif"' in shown.content.decode()
    assert img_src(shown["Content-Security-Policy"])[-2:] == ["https:", "http:"]


def test_an_agent_can_always_show_images_from_a_sender(client, mailbox, bob):
    message = deliver(mailbox, hostile_message("tracking_pixel", BEACON))
    client.force_login(bob)
    page = client.get(message.get_absolute_url()).content.decode()
    assert "Always show from mallory@evil.example" in page
    assert 'name="csrfmiddlewaretoken"' in page
    response = client.post(url("trust_sender", message))
    assert response.status_code == 302
    trusted = TrustedSender.objects.get()
    assert (trusted.mailbox, trusted.address, trusted.created_by) == (
        mailbox,
        "mallory@evil.example",
        bob,
    )
    page = client.get(message.get_absolute_url()).content.decode()
    assert "Remote images blocked" not in page
    body = client.get(url("message_body", message))
    assert f'src="{BEACON}/pixel.gif"' in body.content.decode()
    assert "http:" in img_src(body["Content-Security-Policy"])


def test_trusting_a_sender_needs_a_post_and_an_acting_role(client, mailbox, vera, charlie):
    message = deliver(mailbox, hostile_message("tracking_pixel", BEACON))
    client.force_login(vera)
    assert client.post(url("trust_sender", message)).status_code == 403
    assert client.get(url("trust_sender", message)).status_code == 405
    client.force_login(charlie)
    assert client.post(url("trust_sender", message)).status_code == 404
    assert not TrustedSender.objects.exists()


# --- inline images ----------------------------------------------------------------------------


def test_inline_images_are_served_by_a_signed_token_without_the_session(client, mailbox, bob):
    from webmail.mail.body import decode_transfer

    raw = load("structure/inline_image_cid.eml")
    message = deliver(mailbox, raw)
    client.force_login(bob)
    body = client.get(url("message_body", message)).content.decode()
    image_url = unescape(re.search(r'<img[^>]* src="([^"]+)"', body).group(1))
    assert image_url.startswith(f"http://testserver{url('message', message)}inline/")
    assert "cid:" not in body

    anonymous = client.__class__()  # the sandboxed frame sends no cookie
    response = anonymous.get(image_url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    png = decode_transfer(raw.split(b"\r\n\r\n")[-1].split(b"--rel--")[0], "base64")
    assert streamed(response) == png

    token = image_url.rstrip("/").rsplit("/", 1)[1]
    assert anonymous.get(image_url.replace(token, token[:-2] + "xx")).status_code == 404
    other = deliver(mailbox, make_message("Another"))
    assert anonymous.get(image_url.replace(f"/{message.pk}/", f"/{other.pk}/")).status_code == 404


def test_an_inline_image_token_expires_and_is_bound_to_a_member(
    client, mailbox, bob, charlie, monkeypatch
):
    message = deliver(mailbox, load("structure/inline_image_cid.eml"))

    def token_for(user):
        claims = {"u": user.pk, "m": message.pk, "c": "logo.1234@example.com"}
        return signing.dumps(claims, salt=content.INLINE_TOKEN_SALT, compress=True)

    assert client.get(url("message_inline", message, token_for(bob))).status_code == 200
    assert client.get(url("message_inline", message, token_for(charlie))).status_code == 404
    monkeypatch.setattr(content, "INLINE_TOKEN_MAX_AGE", -1)
    assert client.get(url("message_inline", message, token_for(bob))).status_code == 404


def test_only_raster_images_are_served_inline(client, mailbox, bob):
    message = deliver(mailbox, hostile_message("cid_svg_image", BEACON))
    client.force_login(bob)
    body = client.get(url("message_body", message)).content.decode()
    assert "/inline/" not in body and "cid:" not in body
    for content_id in ("evil@x", "html@x"):
        claims = {"u": bob.pk, "m": message.pk, "c": content_id}
        token = signing.dumps(claims, salt=content.INLINE_TOKEN_SALT, compress=True)
        assert client.get(url("message_inline", message, token)).status_code == 404


def test_a_jpeg_inline_image_is_shown_and_a_missing_one_dropped(client, mailbox, bob):
    import base64

    message = deliver(
        mailbox,
        related_message(
            '<img src="cid:photo@x"><img src="cid:nowhere@x">',
            [("image/jpeg", "photo@x", base64.b64encode(b"\xff\xd8\xff\xe0fake-jpeg"))],
        ),
    )
    client.force_login(bob)
    body = client.get(url("message_body", message)).content.decode()
    sources = re.findall(r'<img[^>]*?(?: src="([^"]*)")?>', body)
    assert len(sources) == 2 and sources[1] == ""
    response = client.get(unescape(sources[0]))
    assert response["Content-Type"] == "image/jpeg"
    assert streamed(response) == b"\xff\xd8\xff\xe0fake-jpeg"


# --- attachments ------------------------------------------------------------------------------


def test_an_attachment_streams_the_original_bytes_with_safe_headers(client, mailbox, bob):
    payload = bytes(range(256)) * (3 * 4096 + 7)  # a little over 3 MB: several FETCH pieces
    message = deliver(mailbox, with_attachment(payload, filename="Relatório final.pdf"))
    client.force_login(bob)
    page = client.get(message.get_absolute_url()).content.decode()
    download = url("message_attachment", message, "2")
    assert f'href="{download}"' in page and "Relatório final.pdf" in page
    response = client.get(download)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        "attachment; filename=\"Relat_rio final.pdf\"; filename*=UTF-8''Relat%C3%B3rio%20final.pdf"
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert streamed(response) == payload
    assert not ConnectionSlot.objects.exclude(holder="").exists()


def test_a_download_given_up_half_way_releases_its_connection(mailbox):
    """StreamingHttpResponse.close() calls the stream's close() when the reader goes away."""
    message = deliver(mailbox, with_attachment(b"x" * (2 * 1024 * 1024)))
    held = ConnectionSlot.objects.exclude(holder="")

    stream = PartStream(message, "2", "base64").open()
    assert held.count() == 1
    next(iter(stream))
    stream.close()
    assert not held.exists()

    async def read_one_piece_then_leave():
        opened = await sync_to_async(PartStream(message, "2", "base64").open)()
        stream = opened.aiter()
        async for _chunk in stream:
            break
        await sync_to_async(stream.close)()

    async_to_sync(read_one_piece_then_leave)()
    assert not held.exists()


def test_under_asgi_an_attachment_is_streamed_piece_by_piece(mailbox, bob):
    payload = bytes(range(256)) * 4096 * 2  # 2 MB
    message = deliver(mailbox, with_attachment(payload))
    async_client = AsyncClient()
    async_client.force_login(bob)

    async def download():
        response = await async_client.get(url("message_attachment", message, "2"))
        assert response.is_async  # not read into a list first, as a sync iterator would be
        return b"".join([chunk async for chunk in response.streaming_content])

    assert async_to_sync(download)() == payload


@pytest.mark.parametrize(
    ("fixture", "section", "declared"),
    [
        ("html_attachment", "2", "text/html"),
        ("svg_attachment", "2", "image/svg+xml"),
        ("svg_attachment", "3", "application/xhtml+xml"),
    ],
)
def test_active_content_downloads_as_octet_stream(client, mailbox, bob, fixture, section, declared):
    message = deliver(mailbox, hostile_message(fixture, BEACON))
    client.force_login(bob)
    response = client.get(url("message_attachment", message, section))
    message.refresh_from_db()
    assert {"section": section, "type": declared}.items() <= next(
        part for part in message.bodystructure if part["section"] == section
    ).items()
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment; ")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" in streamed(response)  # the file itself, untouched


def test_a_hostile_filename_becomes_a_harmless_one(client, mailbox, bob):
    message = deliver(mailbox, hostile_message("rfc2047_filename_markup", BEACON))
    client.force_login(bob)
    page = client.get(message.get_absolute_url()).content.decode()
    assert "<img src=x" not in page
    response = client.get(url("message_attachment", message, "2"))
    disposition = response["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert re.fullmatch(
        r"attachment; filename=\"[^\"\\]*\"; filename\*=UTF-8''[A-Za-z0-9%._~-]+", disposition
    )
    assert response["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize("section", ["3", "1.1", "0", "TEXT", "HEADER", "1.MIME", "..", "-1"])
def test_a_section_the_bodystructure_does_not_list_is_404(client, mailbox, bob, section):
    message = deliver(mailbox, with_attachment(b"data"))
    client.force_login(bob)
    assert client.get(url("message_attachment", message, section)).status_code == 404


def test_a_multipart_container_is_not_downloadable(client, mailbox, bob):
    message = deliver(mailbox, load("structure/mixed_alternative_pdf.eml"))
    client.force_login(bob)
    assert client.get(url("message_attachment", message, "1")).status_code == 404
    assert client.get(url("message_attachment", message, "TEXT")).status_code == 404


def test_outsiders_get_404_everywhere(client, mailbox, charlie):
    message = deliver(mailbox, hostile_message("attached_message_hostile", BEACON))
    client.force_login(charlie)
    for name, args in [
        ("message_body", ()),
        ("message_attachment", ("2",)),
        ("attached_message", ("2",)),
        ("attached_message_body", ("2",)),
        ("message_source", ()),
    ]:
        assert client.get(url(name, message, *args)).status_code == 404, name
    assert client.post(url("trust_sender", message)).status_code == 404


def test_logged_out_readers_are_sent_to_log_in(client, mailbox):
    message = deliver(mailbox, make_message("Private"))
    for name, args in [
        ("message_body", ()),
        ("message_attachment", ("1",)),
        ("message_source", ()),
    ]:
        response = client.get(url(name, message, *args))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- attached messages ------------------------------------------------------------------------


def test_an_attached_message_opens_with_its_headers_and_a_sanitized_body(client, mailbox, bob):
    message = deliver(mailbox, hostile_message("attached_message_hostile", BEACON))
    client.force_login(bob)
    page = client.get(message.get_absolute_url()).content.decode()
    opened = url("attached_message", message, "2")
    assert f'href="{opened}">Open</a>' in page
    response = client.get(opened)
    html = response.content.decode()
    assert response.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt; inner" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the encoded From name, escaped
    assert "<script>alert" not in html
    frame = re.search(r"<iframe[^>]*>", html).group(0)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame
    assert "Remote images blocked" in html
    body = client.get(url("attached_message_body", message, "2"))
    assert_body_document_headers(body)
    text = body.content.decode()
    assert "<p>Inner</p>" in text
    assert "<script" not in text and BEACON not in text and "javascript:" not in text


def test_only_a_message_part_opens_as_a_message(client, mailbox, bob):
    message = deliver(mailbox, with_attachment(b"data"))
    client.force_login(bob)
    assert client.get(url("attached_message", message, "2")).status_code == 404
    assert client.get(url("attached_message_body", message, "2")).status_code == 404


# --- source -----------------------------------------------------------------------------------


def test_view_source_shows_the_raw_message_as_plain_text(client, mailbox, bob):
    raw = hostile_message("script_tag", BEACON)
    message = deliver(mailbox, raw)
    client.force_login(bob)
    response = client.get(url("message_source", message))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response.content == raw
    page = client.get(message.get_absolute_url()).content.decode()
    assert f'href="{url("message_source", message)}"' in page


def test_a_large_source_is_cut_with_a_note(client, mailbox, bob, monkeypatch):
    monkeypatch.setattr(content, "MAX_SOURCE", 1024 * 1024)
    message = deliver(mailbox, with_attachment(b"y" * (3 * 1024 * 1024)))
    client.force_login(bob)
    text = client.get(url("message_source", message)).content.decode()
    assert text.startswith("[Kotak shows the first 1 MB of this message (4.1 MB).]\n\n")
    assert len(text) < 1024 * 1024 + 200


# --- the corpus -------------------------------------------------------------------------------


def open_everything(client, message) -> None:
    """List, open, frame, source and every attachment of message: all 200, nothing raised."""
    folder_page = client.get(message.folder.get_absolute_url())
    assert folder_page.status_code == 200
    assert f'id="message-row-{message.pk}"' in folder_page.content.decode()
    page = client.get(message.get_absolute_url())
    assert page.status_code == 200
    assert "no longer on the server" not in page.content.decode()
    assert_body_document_headers(client.get(url("message_body", message)))
    assert_body_document_headers(client.get(url("message_body", message) + "?images=1"))
    source = client.get(url("message_source", message))
    assert source.status_code == 200 and source.content
    message.body.refresh_from_db()
    for part in message.body.attachments:
        download = client.get(url("message_attachment", message, part["section"]))
        assert download.status_code == 200, part
        streamed(download)
        if part["type"] == "message/rfc822":
            assert client.get(url("attached_message", message, part["section"])).status_code == 200
            body = client.get(url("attached_message_body", message, part["section"]))
            assert_body_document_headers(body)


@pytest.mark.parametrize("name", hostile_names())
def test_every_hostile_message_opens_safely(client, mailbox, bob, name):
    message = deliver(mailbox, hostile_message(name, BEACON))
    client.force_login(bob)
    open_everything(client, message)
    page = client.get(message.get_absolute_url()).content.decode()
    # Subjects, names and snippets carry payloads too: on our own page they are only text.
    assert "<script>alert" not in page
    assert not re.search(r"<[^>]*kotakPwned", page)
    body = client.get(url("message_body", message)).content.decode().lower()
    assert "<script" not in body
    # Only a link the reader clicks may lead to the beacon, nothing that loads by itself.
    assert not re.search(r'(src|srcset|background|action|data|poster)="[^"]*beacon', body)
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", body)


@pytest.mark.parametrize("name", malformed_names())
def test_every_malformed_message_opens(client, mailbox, bob, name):
    message = deliver(mailbox, malformed_message(name))
    client.force_login(bob)
    open_everything(client, message)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unknown_charset", "Qapla&#x27; été café"),
        ("codec_as_charset", "SGVsbG8= plain"),
        ("rot13_charset", "Uryyb jbeyq"),
        ("utf8_label_latin1_bytes", "Café crème brûlée"),
        ("utf7_charset", "Hi Mom -☺-!"),
        ("broken_base64", "Hello world"),
        ("broken_quoted_printable", "lone = sign"),
        ("latin1_html_no_charset", "Café naïve"),
        ("bare_lf", "Line two"),
        ("nul_bytes", "<p>before"),  # Dovecot stores a NUL as 0x80
        ("unterminated_multipart", "second, never closed"),
        ("content_type_garbage", "&lt;p&gt;treated as text&lt;/p&gt;"),
        ("content_type_no_subtype", "text without subtype"),
        ("attachment_only", "only.pdf"),
        ("broken_attached_message", "see attached"),
        ("generated_deep_nesting_100", "At the bottom of 100 levels."),
        ("generated_one_line_1mb", "word word word"),
    ],
)
def test_broken_charsets_and_encodings_still_show_their_text(client, mailbox, bob, name, expected):
    message = deliver(mailbox, malformed_message(name))
    client.force_login(bob)
    page = client.get(message.get_absolute_url()).content.decode()
    if "<iframe" in page:
        page = client.get(url("message_body", message)).content.decode()
    assert expected in page


def test_a_1_mb_subject_and_5000_recipients_are_shown(client, mailbox, bob):
    message = deliver(mailbox, malformed_message("generated_huge_subject_1mb"))
    crowd = deliver(mailbox, malformed_message("generated_5000_recipients"))
    client.force_login(bob)
    assert "x" * 900 in client.get(message.get_absolute_url()).content.decode()
    page = client.get(crowd.get_absolute_url()).content.decode()
    assert "person0@example.org" in page and "person4999@example.org" in page
