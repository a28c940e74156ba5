"""Building outgoing mail: replies, forwards and new messages, always with the `email` package.

Every value a user typed is checked before it can reach a header: CR, LF and NUL are refused
(header injection), addresses are parsed and validated. The MIME message is assembled by
`email.message.EmailMessage`, never by concatenating strings.
"""

from __future__ import annotations

import mimetypes
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from html.parser import HTMLParser

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from webmail.models import (
    Mailbox,
    Membership,
    Message,
    OutgoingAttachment,
    OutgoingMessage,
)

FORBIDDEN = re.compile(r"[\r\n\x00]")
_REPLY = re.compile(r"^\s*(re|aw|sv|antw)\s*:", re.IGNORECASE)
_FORWARD = re.compile(r"^\s*(fwd?|wg|tr)\s*:", re.IGNORECASE)
MAX_REFERENCES = 20


class ComposeError(ValueError):
    """Input that cannot go into a message; the text says what to fix."""


def check_header_value(value: str, what: str = "This field") -> str:
    if FORBIDDEN.search(value or ""):
        raise ComposeError(f"{what} cannot contain line breaks or NUL characters.")
    return value


def parse_addresses(text: str, what: str = "Address") -> list[list[str]]:
    """ "Ana <ana@example.org>, ben@example.org" → [["Ana", "ana@example.org"], ["", "ben@…"]]."""
    check_header_value(text, what)
    if not (text or "").strip():
        return []
    result = []
    for name, address in getaddresses([text]):
        address = address.strip()
        if not address:
            raise ComposeError(f"{what}: “{text.strip()[:80]}” is not an email address.")
        try:
            validate_email(address)
        except ValidationError as exc:
            raise ComposeError(f"{what}: “{address}” is not a valid email address.") from exc
        result.append([name.strip(), address])
    if len(result) > settings.COMPOSE_MAX_RECIPIENTS:
        raise ComposeError(
            f"{what}: at most {settings.COMPOSE_MAX_RECIPIENTS} recipients per message."
        )
    return result


def format_addresses(pairs: list[list[str]]) -> str:
    return ", ".join(formataddr((name, address)) for name, address in pairs)


def new_message_id(mailbox: Mailbox) -> str:
    domain = mailbox.email.rpartition("@")[2] or "kotak.invalid"
    return make_msgid(domain=domain)


def reply_subject(subject: str) -> str:
    subject = (subject or "").strip()
    return subject if _REPLY.match(subject) else f"Re: {subject}".strip()


def forward_subject(subject: str) -> str:
    subject = (subject or "").strip()
    return subject if _FORWARD.match(subject) else f"Fwd: {subject}".strip()


def references_for(source: Message) -> str:
    """The original's References plus its own Message-ID (RFC 5322 §3.6.4), kept short."""
    refs = (source.references or source.in_reply_to or "").split()
    if source.message_id:
        refs.append(source.message_id)
    if len(refs) > MAX_REFERENCES:
        refs = refs[:1] + refs[-(MAX_REFERENCES - 1) :]
    return " ".join(dict.fromkeys(refs))


def signature_for(mailbox: Mailbox, user) -> str:
    parts = []
    membership = Membership.objects.filter(mailbox=mailbox, user=user).first()
    if membership and membership.signature.strip():
        parts.append(membership.signature.strip())
    if mailbox.signature.strip():
        parts.append(mailbox.signature.strip())
    return "\n".join(parts)


def quote(source: Message, text: str) -> str:
    when = timezone.localtime(source.date or source.internal_date).strftime("%a %-d %b %Y at %H:%M")
    who = formataddr((source.from_name, source.from_address)) if source.from_address else "someone"
    quoted = "\n".join(f"> {line}" if line else ">" for line in (text or "").splitlines())
    return f"On {when}, {who} wrote:\n{quoted}\n"


def start(user, mailbox: Mailbox, kind: str, source: Message | None = None) -> OutgoingMessage:
    """A new draft: recipients, subject, quoting, threading headers and signature filled in."""
    outgoing = OutgoingMessage(
        mailbox=mailbox,
        author=user,
        kind=kind,
        source=source,
        conversation=source.conversation if source else None,
        message_id=new_message_id(mailbox),
    )
    own = {mailbox.email.lower()}
    body_text = ""
    if source is not None:
        from webmail.sync.bodies import MessageGone, load_body

        try:
            body_text = load_body(source).text
        except (MessageGone, Exception):  # noqa: BLE001 — quote what we have, still answer
            body_text = source.snippet
    if kind in (OutgoingMessage.Kind.REPLY, OutgoingMessage.Kind.REPLY_ALL) and source:
        reply_to = source.reply_to or [[source.from_name, source.from_address]]
        outgoing.to = [pair for pair in reply_to if pair[1] and pair[1].lower() not in own]
        if kind == OutgoingMessage.Kind.REPLY_ALL:
            seen = {pair[1].lower() for pair in outgoing.to} | own
            for pair in list(source.to) + list(source.cc):
                if pair[1] and pair[1].lower() not in seen:
                    outgoing.cc.append(pair)
                    seen.add(pair[1].lower())
        if not outgoing.to and source.to:
            # Answering our own sent message: it goes to whom it went to.
            outgoing.to = [pair for pair in source.to if pair[1].lower() not in own]
        outgoing.subject = reply_subject(source.subject)
        outgoing.in_reply_to = source.message_id
        outgoing.references = references_for(source)
        outgoing.text = "\n\n" + quote(source, body_text)
    elif kind == OutgoingMessage.Kind.FORWARD and source:
        outgoing.subject = forward_subject(source.subject)
        outgoing.references = references_for(source)
        header = [
            "---------- Forwarded message ----------",
            f"From: {formataddr((source.from_name, source.from_address))}",
            f"Date: {format_datetime(source.date or source.internal_date)}",
            f"Subject: {source.subject}",
        ]
        if source.to:
            header.append(f"To: {format_addresses(source.to)}")
        outgoing.text = "\n\n" + "\n".join(header) + "\n\n" + body_text
    signature = signature_for(mailbox, user)
    if signature:
        outgoing.text = f"\n\n-- \n{signature}" + outgoing.text
    outgoing.save()
    if kind == OutgoingMessage.Kind.FORWARD and source:
        _attach_original_parts(outgoing, source)
    return outgoing


def _attach_original_parts(outgoing: OutgoingMessage, source: Message) -> None:
    from dataclasses import fields

    from webmail.imap.bodystructure import Part, attachments

    names = {f.name for f in fields(Part)}
    parts = [Part(**{k: v for k, v in p.items() if k in names}) for p in source.bodystructure or []]
    for part in attachments(parts):
        outgoing.attachments.create(
            source_section=part.section,
            filename=part.filename or "attachment",
            content_type=part.type or "application/octet-stream",
            size=part.size or 0,
        )


def sender_display(outgoing: OutgoingMessage) -> str:
    mailbox = outgoing.mailbox
    name = mailbox.from_name or mailbox.name
    if mailbox.from_agent_name and outgoing.author:
        agent = outgoing.author.get_full_name() or outgoing.author.get_username()
        name = f"{agent} via {name}"
    return name


def build(outgoing: OutgoingMessage, part_data=None) -> EmailMessage:
    """The message as it goes out (and as it is filed in Sent).

    `part_data(section) -> bytes` supplies the forwarded original's parts."""
    mailbox = outgoing.mailbox
    for value, what in (
        (outgoing.subject, "The subject"),
        (outgoing.in_reply_to, "In-Reply-To"),
        (outgoing.references, "References"),
        (outgoing.message_id, "Message-ID"),
    ):
        check_header_value(value, what)
    message = EmailMessage()
    local, _, domain = mailbox.email.partition("@")
    message["From"] = Address(display_name=sender_display(outgoing), username=local, domain=domain)
    for header, pairs in (("To", outgoing.to), ("Cc", outgoing.cc)):
        if pairs:
            message[header] = [_address(name, address) for name, address in pairs]
    message["Subject"] = outgoing.subject
    message["Date"] = format_datetime(timezone.localtime(outgoing.sent_at or timezone.now()))
    message["Message-ID"] = outgoing.message_id
    if outgoing.in_reply_to:
        message["In-Reply-To"] = outgoing.in_reply_to
    if outgoing.references:
        message["References"] = outgoing.references
    message["User-Agent"] = "Kotak"
    message.set_content(outgoing.text or "\n")
    if outgoing.html:
        message.add_alternative(outgoing.html, subtype="html")
    for attachment in outgoing.attachments.all():
        data = bytes(attachment.content or b"")
        if attachment.source_section:
            if part_data is None:
                raise ComposeError("The forwarded attachments could not be fetched.")
            data = part_data(attachment.source_section)
        maintype, _, subtype = (attachment.content_type or "").partition("/")
        if not maintype or not subtype or FORBIDDEN.search(attachment.content_type):
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype,
            filename=check_header_value(attachment.filename, "A file name") or "attachment",
        )
    return message


def recipients(outgoing: OutgoingMessage) -> list[str]:
    return list(dict.fromkeys(address for _, address in outgoing.to + outgoing.cc + outgoing.bcc))


def _address(name: str, address: str) -> Address:
    check_header_value(name, "A display name")
    check_header_value(address, "An address")
    try:
        return Address(display_name=name, addr_spec=address)
    except (ValueError, IndexError) as exc:
        raise ComposeError(f"“{address}” is not a valid email address.") from exc


# -- what the compose screen hands in -----------------------------------------------------------

PLACEHOLDERS = ("{customer_name}", "{customer_email}", "{agent_name}", "{mailbox_name}")


def fill_placeholders(body: str, outgoing: OutgoingMessage, user) -> str:
    """A saved reply with {customer_name}, {customer_email}, {agent_name} and {mailbox_name}
    filled in for this message. Other braces are left alone (no str.format)."""
    name, address = _customer(outgoing)
    agent = (user.get_full_name() or user.get_username()) if user else ""
    values = {
        "{customer_name}": name or address.partition("@")[0] or "there",
        "{customer_email}": address,
        "{agent_name}": agent,
        "{mailbox_name}": outgoing.mailbox.from_name or outgoing.mailbox.name,
    }
    for placeholder, value in values.items():
        body = body.replace(placeholder, value)
    return body


def _customer(outgoing: OutgoingMessage) -> tuple[str, str]:
    """Whom the message answers: its first recipient, else the sender of the original."""
    if outgoing.to:
        name, address = outgoing.to[0]
        return name, address
    source = outgoing.source
    if source is not None:
        return source.from_name, source.from_address
    return "", ""


def clean_rich_html(html: str) -> str:
    """Rich text from the editor, through the same allowlist as mail we display."""
    from webmail.mail.sanitize import sanitize_html

    return sanitize_html(html or "").html.strip()


class _PlainText(HTMLParser):
    """The plain-text part of a rich message: paragraphs, line breaks, "- " list items, links
    as "text <url>", and "> " before quoted lines."""

    BLOCKS = frozenset({"p", "div", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.quote = 0
        self.href: list[str] = []

    def _break(self) -> None:
        if self.lines[-1].strip(" >"):
            self.lines.append("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.lines.append("")
        elif tag == "li":
            self._break()
            self.lines[-1] = "> " * self.quote + "- "
        elif tag in self.BLOCKS:
            self._break()
            if tag == "blockquote":
                self.quote += 1
        elif tag == "a":
            self.href.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._break()
            self.lines.append("")  # a blank line between paragraphs
        elif tag == "blockquote" and self.quote:
            self._break()
            self.quote -= 1
        elif tag in self.BLOCKS or tag == "li":
            self._break()
        elif tag == "a" and self.href:
            href = self.href.pop()
            if href.startswith(("http:", "https:")) and href not in self.lines[-1]:
                self.lines[-1] += f" <{href}>"

    def handle_data(self, data: str) -> None:
        data = re.sub(r"\s+", " ", data)
        if not self.lines[-1]:
            data = data.lstrip()
            if not data:
                return
            self.lines[-1] = "> " * self.quote
        self.lines[-1] += data


def rich_to_plain(html: str) -> str:
    """The text/plain alternative of a rich message (always sent along)."""
    parser = _PlainText()
    parser.feed(html or "")
    parser.close()
    # "-- " keeps its space: it marks the signature (RFC 3676 §4.3).
    text = "\n".join(line if line == "-- " else line.rstrip() for line in parser.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def clean_body(text: str) -> str:
    """Typed text as it will be sent: line ends normalised, NUL and other controls removed."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SAFE_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


def max_attachment_bytes() -> int:
    return settings.COMPOSE_MAX_ATTACHMENT_MB * 1024 * 1024


def attach(outgoing: OutgoingMessage, uploads: list) -> list[OutgoingAttachment]:
    """Store uploaded files with the draft, all or none: the message's attachments together
    stay within COMPOSE_MAX_ATTACHMENT_MB. `uploads`: Django UploadedFiles (name, size,
    content_type, read()); sizes are checked before anything is read."""
    limit = max_attachment_bytes()
    current = sum(outgoing.attachments.values_list("size", flat=True))
    adding = sum(upload.size for upload in uploads)
    if current + adding > limit:
        raise ComposeError(
            f"Attachments are limited to {settings.COMPOSE_MAX_ATTACHMENT_MB} MB per message; "
            f"with {'this file' if len(uploads) == 1 else 'these files'} it would be "
            f"{_megabytes(current + adding)}. Nothing was added."
        )
    added = []
    for upload in uploads:
        filename = safe_filename(upload.name)
        data = upload.read()
        added.append(
            OutgoingAttachment(
                outgoing=outgoing,
                content=data,
                filename=filename,
                content_type=_content_type(filename, getattr(upload, "content_type", "")),
                size=len(data),
            )
        )
    return OutgoingAttachment.objects.bulk_create(added)


def safe_filename(name: str) -> str:
    """A file name fit for a MIME header: no path, no control characters, not too long."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL.sub("", name.replace("\r", "").replace("\n", "").replace("\x00", ""))
    name = name.strip().strip(".") or "attachment"
    stem, dot, extension = name.rpartition(".")
    if len(name) > 200:
        name = (stem[: 190 - len(extension)] + dot + extension) if dot else name[:200]
    return name


def _content_type(filename: str, declared: str) -> str:
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    for candidate in (guessed, (declared or "").lower().strip()):
        if candidate and _SAFE_TYPE.match(candidate):
            return candidate
    return "application/octet-stream"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
