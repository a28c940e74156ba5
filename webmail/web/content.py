"""What a message contains, served safely: the HTML body in a sandboxed document, inline
images, attachment downloads, attached messages and the raw source.

Mail is hostile input. Its HTML is sanitized (webmail.mail.sanitize) and then shown only in an
iframe sandboxed without scripts or same-origin, from a document whose own CSP forbids scripts,
forms and any fetch but the images we allow. Downloads are attachments with nosniff and a type
no browser renders as active content.
"""

from __future__ import annotations

import functools
import mimetypes
import re
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import urlize
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST, require_safe

from webmail.access import get_mailbox_for_user, get_message_for_user
from webmail.imap.bodystructure import Part
from webmail.imap.client import ConnectError
from webmail.mail.attached import parse_attached_message
from webmail.mail.sanitize import RASTER_IMAGE_TYPES, SanitizedHtml, sanitize_html
from webmail.mail.text import decode_bytes
from webmail.models import Message, MessageBody, Role, TrustedSender
from webmail.parts import (
    PartStream,
    fetch_section,
    find_by_content_id,
    find_part,
    message_parts,
)
from webmail.sync.bodies import MessageGone, load_body

INLINE_TOKEN_SALT = "kotak.inline-image"
INLINE_TOKEN_MAX_AGE = 3600  # seconds; the page that asked for the images is reloaded by then
MAX_SOURCE = 5 * 1024 * 1024
MAX_ATTACHED_MESSAGE = 10 * 1024 * 1024
# Declared types kept on download; anything else is application/octet-stream, so nothing a
# sender labels text/html, image/svg+xml or application/xhtml+xml can ever be rendered.
SAFE_DOWNLOAD_TYPES = frozenset(
    {
        "application/pdf", "application/zip", "application/gzip", "text/plain", "text/csv",
        "text/calendar", "audio/mpeg", "audio/ogg", "audio/wav", "video/mp4", "video/webm",
        "application/msword", "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
    }
    | RASTER_IMAGE_TYPES
)  # fmt: skip
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
# For documents that are only ever data (source, downloads): nothing in them may run or load.
LOCKED_DOWN_CSP = "default-src 'none'; sandbox"


def _unavailable_as_503(view):
    """An unreachable mail server is a 503 with the reason, not a server error."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except ConnectError as exc:
            return _plain(f"The mail server could not be reached: {exc}\n", status=503)

    return wrapper


def body_context(request: HttpRequest, message: Message, body: MessageBody | None) -> dict:
    """What the message page needs to frame the HTML body and offer remote images."""
    if body is None or not body.html:
        return {"remote_blocked": False, "show_images": False, "can_trust_sender": False}
    show_images = _allows_remote_images(request, message)
    blocked = sanitize_html(body.html, allow_remote=show_images).blocked_remote
    role = message.mailbox.role_of(request.user)
    return {
        "remote_blocked": blocked,
        # Carried on to the iframe's URL; a trusted sender's images need no asking.
        "show_images": request.GET.get("images") == "1",
        "can_trust_sender": blocked
        and bool(message.from_address)
        and role in (Role.AGENT, Role.MANAGER),
    }


@login_required
@require_GET
@xframe_options_sameorigin
def message_body(request: HttpRequest, mailbox_id: int, message_id: int) -> HttpResponse:
    """The body as a document of its own, for the message page's sandboxed iframe."""
    message = get_message_for_user(request.user, mailbox_id, message_id)
    allow_remote = _allows_remote_images(request, message)
    try:
        body = load_body(message)
        parts = message_parts(message) if body.html else []
    except MessageGone:
        return _body_document(request, message, _notice("This message is no longer on the server."))
    except ConnectError as exc:
        return _body_document(request, message, _notice(f"The body could not be loaded: {exc}"))
    if body.html:
        content = sanitize_html(
            body.html,
            cid_url=_cid_url_maker(request, message, parts),
            allow_remote=allow_remote,
        )
    else:
        content = _text_as_html(body.text)
    return _body_document(request, message, content, allow_remote=allow_remote)


@require_safe
@_unavailable_as_503
def inline_image(request: HttpRequest, mailbox_id: int, message_id: int, token: str):
    """An image the HTML body shows with cid:, authorised by a signed token in the URL.

    The sandboxed body document has an opaque origin, so the browser sends it no session
    cookie (SameSite=Lax); the token names the user, and membership is checked as everywhere.
    """
    try:
        claims = signing.loads(token, salt=INLINE_TOKEN_SALT, max_age=INLINE_TOKEN_MAX_AGE)
        user_id, signed_message_id, content_id = claims["u"], claims["m"], claims["c"]
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise Http404("no such image") from exc
    if signed_message_id != message_id:
        raise Http404("no such image")
    user = get_object_or_404(get_user_model(), pk=user_id, is_active=True)
    message = get_message_for_user(user, mailbox_id, message_id)
    part = _find_or_404(lambda parts: find_by_content_id(parts, content_id), message)
    if part.type not in RASTER_IMAGE_TYPES:
        raise Http404("not an image")
    response = _stream(request, message, part, content_type=part.type)
    response["Cache-Control"] = f"private, max-age={INLINE_TOKEN_MAX_AGE}"
    return response


@login_required
@require_GET
@_unavailable_as_503
def attachment(request: HttpRequest, mailbox_id: int, message_id: int, section: str):
    """Download one part; the section must be one the message's BODYSTRUCTURE lists."""
    message = get_message_for_user(request.user, mailbox_id, message_id)
    part = _find_or_404(lambda parts: find_part(parts, section), message)
    declared = part.type.lower()
    response = _stream(
        request,
        message,
        part,
        content_type=declared if declared in SAFE_DOWNLOAD_TYPES else "application/octet-stream",
    )
    response["Content-Disposition"] = content_disposition("attachment", _download_name(part))
    response["Cache-Control"] = "private, no-cache"
    return response


@login_required
@require_GET
@_unavailable_as_503
def attached_message(request: HttpRequest, mailbox_id: int, message_id: int, section: str):
    """A message/rfc822 attachment opened: its headers, and its body like any other."""
    message = get_message_for_user(request.user, mailbox_id, message_id)
    part = _find_or_404(lambda parts: find_part(parts, section), message)
    if part.type != "message/rfc822":
        raise Http404("not an attached message")
    attached, truncated, error = _read_attached(message, part)
    return render(
        request,
        "webmail/attached_message.html",
        {
            "mailbox": message.mailbox,
            "message": message,
            "part": part,
            "attached": attached,
            "truncated": truncated,
            "error": error,
            "show_images": request.GET.get("images") == "1",
            "remote_blocked": bool(attached and attached.html)
            and sanitize_html(attached.html).blocked_remote,
        },
    )


@login_required
@require_GET
@xframe_options_sameorigin
@_unavailable_as_503
def attached_message_body(request: HttpRequest, mailbox_id: int, message_id: int, section: str):
    """The body of an attached message, as a sandboxed document like message_body."""
    message = get_message_for_user(request.user, mailbox_id, message_id)
    part = _find_or_404(lambda parts: find_part(parts, section), message)
    if part.type != "message/rfc822":
        raise Http404("not an attached message")
    attached, _, error = _read_attached(message, part)
    allow_remote = request.GET.get("images") == "1"
    if attached is None:
        content = _notice(error)
    elif attached.html:
        # Images inside the attached message are not served (no cid: URL is rewritten).
        content = sanitize_html(attached.html, allow_remote=allow_remote)
    else:
        content = _text_as_html(attached.text)
    return _body_document(request, message, content, allow_remote=allow_remote)


@login_required
@require_GET
def message_source(request: HttpRequest, mailbox_id: int, message_id: int) -> HttpResponse:
    """The raw message as plain text ("view source"), cut at MAX_SOURCE."""
    message = get_message_for_user(request.user, mailbox_id, message_id)
    try:
        raw, truncated = fetch_section(message, "", "", MAX_SOURCE)
    except MessageGone as exc:
        raise Http404("message gone") from exc
    except ConnectError as exc:
        return _plain(f"The message could not be loaded: {exc}\n", status=503)
    text = decode_bytes(raw)
    if truncated:
        size = message.size or len(raw)
        text = (
            f"[Kotak shows the first {MAX_SOURCE // (1024 * 1024)} MB of this message "
            f"({size / (1024 * 1024):.1f} MB).]\n\n{text}"
        )
    return _plain(text)


@login_required
@require_POST
def trust_sender(request: HttpRequest, mailbox_id: int, message_id: int) -> HttpResponse:
    """Always load remote images from this message's sender, for everyone in the mailbox."""
    mailbox = get_mailbox_for_user(request.user, mailbox_id)
    if mailbox.role_of(request.user) not in (Role.AGENT, Role.MANAGER):
        raise PermissionDenied("Viewers read this mailbox but do not change its settings.")
    message = get_object_or_404(Message, pk=message_id, mailbox=mailbox)
    if message.from_address:
        TrustedSender.objects.get_or_create(
            mailbox=mailbox,
            address=message.from_address.lower(),
            defaults={"created_by": request.user},
        )
        messages.success(request, f"Images from {message.from_address} will always be shown.")
    return redirect(message)


# --- helpers ----------------------------------------------------------------------------------


def _allows_remote_images(request: HttpRequest, message: Message) -> bool:
    if request.GET.get("images") == "1":
        return True
    return bool(message.from_address) and (
        TrustedSender.objects.filter(
            mailbox_id=message.mailbox_id, address__iexact=message.from_address
        ).exists()
    )


def _cid_url_maker(request: HttpRequest, message: Message, parts: list[Part]):
    def cid_url(content_id: str) -> str | None:
        part = find_by_content_id(parts, content_id)
        if part is None or part.type not in RASTER_IMAGE_TYPES:
            return None
        token = signing.dumps(
            {"u": request.user.pk, "m": message.pk, "c": part.content_id},
            salt=INLINE_TOKEN_SALT,
            compress=True,
        )
        path = reverse("message_inline", args=[message.mailbox_id, message.pk, token])
        return request.build_absolute_uri(path)

    return cid_url


def _inline_prefix(request: HttpRequest, message: Message) -> str:
    """The URL every inline image of this message starts with, for the CSP's img-src."""
    path = reverse("message_inline", args=[message.mailbox_id, message.pk, "-"])
    return request.build_absolute_uri(path.removesuffix("-/"))


def _body_document(
    request: HttpRequest, message: Message, content: SanitizedHtml, allow_remote: bool = False
) -> HttpResponse:
    response = render(request, "webmail/message_body.html", {"content": content})
    image_sources = [_inline_prefix(request, message), "data:"]
    if allow_remote:
        image_sources += ["https:", "http:"]
    # The iframe's sandbox attribute already forbids scripts; this holds even if the document
    # is opened on its own, in a tab (CSP sandbox), and stops any request but images.
    response["Content-Security-Policy"] = (
        "default-src 'none'; "
        f"img-src {' '.join(image_sources)}; "
        "style-src 'unsafe-inline'; font-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    response["X-DNS-Prefetch-Control"] = "off"
    response["Cache-Control"] = "private, no-cache"
    return response


def _notice(text: str) -> SanitizedHtml:
    return _text_as_html(text)


def _text_as_html(text: str) -> SanitizedHtml:
    """Plain text escaped, with http, https and mailto links (sanitized like any HTML)."""
    linked = urlize(text, nofollow=True, autoescape=True)
    return SanitizedHtml(f'<div class="text">{sanitize_html(linked).html}</div>', False)


def _find_or_404(find, message: Message) -> Part:
    try:
        part = find(message_parts(message))
    except MessageGone as exc:
        raise Http404("message gone") from exc
    if part is None:
        raise Http404("no such part")
    return part


def _stream(request: HttpRequest, message: Message, part: Part, content_type: str):
    try:
        stream = PartStream(message, part.section, part.encoding).open()
    except MessageGone as exc:
        raise Http404("message gone") from exc
    # Under ASGI, Django would read a synchronous iterator to the end before sending a byte.
    content = stream.aiter() if isinstance(request, ASGIRequest) else stream
    response = StreamingHttpResponse(content, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = LOCKED_DOWN_CSP
    return response


def _read_attached(message: Message, part: Part):
    try:
        raw, truncated = fetch_section(message, part.section, part.encoding, MAX_ATTACHED_MESSAGE)
    except MessageGone:
        return None, False, "This message is no longer on the server."
    except ConnectError as exc:
        return None, False, f"The attached message could not be loaded: {exc}"
    return parse_attached_message(raw), truncated, ""


def _plain(text: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(text, content_type="text/plain; charset=utf-8", status=status)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = LOCKED_DOWN_CSP
    response["Content-Disposition"] = "inline"
    return response


def _download_name(part: Part) -> str:
    if part.filename:
        return part.filename
    extension = mimetypes.guess_extension(part.type) or ".bin"
    if part.type == "message/rfc822":
        extension = ".eml"
    return f"part-{part.section}{extension}"


def content_disposition(kind: str, filename: str) -> str:
    """A Content-Disposition with an ASCII fallback and the UTF-8 name (RFC 6266 §4.3)."""
    name = _UNSAFE_FILENAME.sub("_", filename).strip(" ._")[:200] or "attachment"
    fallback = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    fallback = fallback.replace("%", "_").replace(";", "_").replace(",", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
