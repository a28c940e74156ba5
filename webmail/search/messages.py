"""Searching the mail Kotak has synced: a parsed query as one database query.

Scope comes first and lives in the same SQL: only mailboxes the user is a member of, never
filtered afterwards. Text terms go through the search index (webmail/search/index.py); the
other operators are plain conditions on the message, its folder and its conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Substr
from django.utils import timezone
from django.utils.safestring import mark_safe

from webmail.models import Conversation, Mailbox, Membership, Message, MessageBody, SpecialUse
from webmail.search import highlight, index
from webmail.search.query import Query, Term

RESULT_FIELDS = (
    "pk",
    "mailbox_id",
    "folder_id",
    "uid",
    "subject",
    "from_name",
    "from_address",
    "internal_date",
    "is_seen",
    "is_flagged",
    "has_attachments",
    "snippet",
    "folder__label",
    "folder__display_name",
    "mailbox__name",
)
# What of a body is read to cut an excerpt around the match.
EXCERPT_SOURCE = 20_000
PAGE_SIZE = 50


def in_scope(user, mailbox: Mailbox | None = None) -> QuerySet[Message]:
    """Messages of the mailboxes the user belongs to (of `mailbox` only, if given)."""
    memberships = Membership.objects.filter(user=user).values("mailbox_id")
    messages = Message.objects.filter(mailbox_id__in=memberships, pending_removal=False)
    if mailbox is not None:
        messages = messages.filter(mailbox_id=mailbox.pk)
    return messages


def matching(user, query: Query, mailbox: Mailbox | None = None) -> QuerySet[Message]:
    """The messages in scope that match every term, newest first."""
    messages = in_scope(user, mailbox)
    for term in query.terms:
        messages = messages.filter(condition(term, user))
    return messages.order_by("-internal_date", "-pk")


def condition(term: Term, user) -> Q:
    if term.is_text:
        sql, params = index.term_ids(term)
        q = Q(pk__in=RawSQL(sql, params))
    elif term.field == "has":
        q = Q(has_attachments=True)
    elif term.field == "is":
        q = {
            "unread": Q(is_seen=False),
            "read": Q(is_seen=True),
            "flagged": Q(is_flagged=True),
            "unflagged": Q(is_flagged=False),
            "answered": Q(is_answered=True),
        }[term.value]
    elif term.field == "in":
        q = folder_condition(term.value, "folder__")
    elif term.field == "assigned":
        if term.value == "me":
            q = Q(conversation__assignee=user)
        elif term.value == "none":
            q = Q(conversation__assignee__isnull=True)
        else:
            q = Q(conversation__assignee__username__iexact=term.value)
    elif term.field == "status":
        q = _status_condition(term.value)
    elif term.field in ("before", "after"):
        start = timezone.make_aware(datetime.combine(term.date, time.min))
        q = Q(internal_date__lt=start) if term.field == "before" else Q(internal_date__gte=start)
    else:  # the parser makes no other fields
        raise ValueError(f"unknown search field {term.field!r}")
    return ~q if term.negated else q


def folder_condition(value: str, prefix: str = "") -> Q:
    """A folder by its full name, display name or label, or by its role ("in:sent")."""
    q = (
        Q(**{f"{prefix}name__iexact": value})
        | Q(**{f"{prefix}display_name__iexact": value})
        | Q(**{f"{prefix}label__iexact": value})
    )
    role = value.lower()
    if role and role in SpecialUse.values:
        q |= Q(**{f"{prefix}special_use": role})
    return q


def _status_condition(value: str) -> Q:
    Status = Conversation.Status
    return {
        # As the team views count them: snoozed conversations are pending, shown apart.
        "open": Q(conversation__status=Status.OPEN),
        "pending": Q(conversation__status=Status.PENDING, conversation__snoozed_until__isnull=True),
        "snoozed": Q(conversation__snoozed_until__isnull=False),
        "closed": Q(conversation__status=Status.CLOSED),
    }[value]


@dataclass
class ResultPage:
    rows: list[Message]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def search(user, query: Query, mailbox: Mailbox | None = None, page: int = 1) -> ResultPage:
    """One page of results, each with its subject, sender and an excerpt marked up."""
    if not query:
        return ResultPage([], 1, False)
    page = max(1, page)
    # The page's ids first, then its rows: sorting every match with all its columns (subject,
    # snippet …) costs more than the search itself when a common word matches thousands.
    ids = list(
        matching(user, query, mailbox).values_list("pk", flat=True)[
            (page - 1) * PAGE_SIZE : page * PAGE_SIZE + 1
        ]
    )
    has_next = len(ids) > PAGE_SIZE
    ids = ids[:PAGE_SIZE]
    by_id = Message.objects.select_related("folder", "mailbox").only(*RESULT_FIELDS).in_bulk(ids)
    rows = [by_id[pk] for pk in ids if pk in by_id]
    decorate(rows, query)
    return ResultPage(rows, page, has_next)


def decorate(rows: list[Message], query: Query) -> None:
    """Set subject_html, sender_html and excerpt_html on each row: escaped, matches marked."""
    regex = highlight.pattern(query.highlights)
    bodies = dict(
        MessageBody.objects.filter(message_id__in=[m.pk for m in rows])
        .annotate(head=Substr("text", 1, EXCERPT_SOURCE))
        .values_list("message_id", "head")
    )
    for message in rows:
        body = bodies.get(message.pk, "")
        message.has_body = message.pk in bodies
        message.subject_html = mark_safe(highlight.mark(message.subject or "(no subject)", regex))
        message.sender_html = mark_safe(highlight.mark(message.sender, regex))
        excerpt = highlight.excerpt(body, regex) or highlight.excerpt(message.snippet, regex)
        if excerpt is None:
            excerpt = highlight.mark(message.snippet or " ".join(body[:200].split()), regex)
        message.excerpt_html = mark_safe(excerpt)
