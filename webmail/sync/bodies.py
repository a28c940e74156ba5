"""Fetching the displayable body of a message on demand (partial fetch via BODYSTRUCTURE)."""

from __future__ import annotations

from datetime import timedelta

import imapclient
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webmail import live
from webmail.imap.bodystructure import attachments, displayable_parts, parse_bodystructure
from webmail.mail.body import decode_part, html_to_text, make_snippet
from webmail.models import Mailbox, Message, MessageBody
from webmail.sync.connection import mailbox_connection

# A displayable part larger than this is cut (a 50 MB "text" part is an attachment in disguise).
MAX_TEXT_PART = 2 * 1024 * 1024


class MessageGone(Exception):
    """The message is no longer on the server (expunged or moved by another client)."""


def load_body(message: Message, client: imapclient.IMAPClient | None = None) -> MessageBody:
    """The cached body, fetching only the text and HTML parts from the server if needed.

    With `client`, that connection is used (its selected folder may change)."""
    try:
        return message.body
    except MessageBody.DoesNotExist:
        pass
    if client is None:
        # A reader is waiting: do not queue behind a long sync for more than a few seconds.
        with mailbox_connection(message.mailbox, purpose="body", wait=5) as client:
            return load_body(message, client)
    client.select_folder(message.folder.name, readonly=True)
    response = client.fetch([message.uid], ["BODYSTRUCTURE"])
    if message.uid not in response:
        raise MessageGone(f"message UID {message.uid} is no longer in {message.folder}")
    parts = parse_bodystructure(response[message.uid][b"BODYSTRUCTURE"])
    plain, html = displayable_parts(parts)
    wanted = [part for part in (plain, html) if part is not None]
    texts: dict[str, str] = {}
    if wanted:
        items = [f"BODY.PEEK[{part.section}]<0.{MAX_TEXT_PART}>" for part in wanted]
        fetched = client.fetch([message.uid], items).get(message.uid, {})
        for part in wanted:
            raw = _section_data(fetched, part.section)
            texts[part.section] = decode_part(raw, part.encoding, part.charset)
    text = texts.get(plain.section, "") if plain else ""
    html_text = texts.get(html.section, "") if html else ""
    if not text and html_text:
        text = html_to_text(html_text)
    with transaction.atomic():
        body, _ = MessageBody.objects.update_or_create(
            message=message,
            defaults={
                "text": text,
                "html": html_text,
                "attachments": [part.as_dict() for part in attachments(parts)],
            },
        )
        Message.objects.filter(pk=message.pk).update(
            bodystructure=[part.as_dict() for part in parts],
            snippet=make_snippet(text),
            has_attachments=bool(attachments(parts)),
        )
        live.record(
            message.mailbox_id,
            "message_body",
            folder_id=message.folder_id,
            message_ids=[message.pk],
        )
    return body


def _section_data(fetched: dict, section: str) -> bytes:
    """FETCH answers BODY[1.2]<0> for BODY.PEEK[1.2]<0.N>: match on the section."""
    prefix = f"BODY[{section}]".encode()
    for key, value in fetched.items():
        if isinstance(key, bytes) and key.startswith(prefix):
            return value or b""
    return b""


def prefetch_bodies(mailbox: Mailbox, limit: int | None = None, days: int = 14) -> int:
    """Fetch the bodies of the newest messages nobody has opened yet, on one connection, so
    that opening them is instant. Returns how many were fetched."""
    limit = settings.PREFETCH_BODIES if limit is None else limit
    if limit <= 0:
        return 0
    since = timezone.now() - timedelta(days=days)
    waiting = list(
        Message.objects.filter(
            mailbox=mailbox,
            body__isnull=True,
            pending_removal=False,
            uid__gt=0,
            internal_date__gte=since,
            folder__special_use__in=["inbox", ""],
        )
        .select_related("folder", "mailbox")
        .order_by("-internal_date")[:limit]
    )
    if not waiting:
        return 0
    fetched = 0
    waiting.sort(key=lambda m: (m.folder_id, m.uid))  # one SELECT per folder
    with mailbox_connection(mailbox, purpose="prefetch", wait=0) as client:
        for message in waiting:
            try:
                load_body(message, client)
                fetched += 1
            except MessageGone:
                continue
    return fetched
