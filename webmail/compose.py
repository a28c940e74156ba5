"""Building outgoing mail: replies, forwards and new messages, always with the `email` package.

Every value a user typed is checked before it can reach a header: CR, LF and NUL are refused
(header injection), addresses are parsed and validated. The MIME message is assembled by
`email.message.EmailMessage`, never by concatenating strings.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from webmail.models import Mailbox, Membership, Message, OutgoingMessage

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
