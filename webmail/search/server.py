"""Asking the IMAP server for what the local index cannot know: words in bodies not fetched.

Kotak indexes every header it syncs, but a body only once it has been opened or prefetched.
For the rest the server's own `UID SEARCH TEXT` is asked (RFC 3501 §6.4.4), folder by folder —
INBOX first, then the folders with the most mail — within a time budget, and its UIDs are
mapped back to synced messages that satisfy the rest of the query. Matches the server knows of
but Kotak has not synced yet are counted.

Search terms reach the wire only through imapclient, which quotes them or sends them as
literals; a term with a control character in it is refused before that (CR LF inside a quoted
string would end the command early and start another).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from imapclient.exceptions import IMAPClientError

from webmail.imap.client import ConnectError
from webmail.models import Folder, Mailbox, Message
from webmail.search import messages
from webmail.search.query import Query, Term
from webmail.sync.connection import mailbox_connection

log = logging.getLogger(__name__)

# Folders searched per mailbox (INBOX and the biggest others), and the whole search's budget.
FOLDERS_PER_MAILBOX = 5
BUDGET_SECONDS = 10.0
# UIDs per folder mapped back to messages (the newest); shown rows in all.
MAX_UIDS = 1000
MAX_ROWS = 50

IS_KEYS = {
    "unread": ["UNSEEN"],
    "read": ["SEEN"],
    "flagged": ["FLAGGED"],
    "unflagged": ["UNFLAGGED"],
    "answered": ["ANSWERED"],
}


@dataclass
class ServerResults:
    rows: list[Message] = field(default_factory=list)
    # What went wrong or was left out, for the page.
    notes: list[str] = field(default_factory=list)
    # "Support: INBOX, Archive" for each mailbox searched.
    searched: list[str] = field(default_factory=list)
    # Matches on the server that Kotak has not synced yet.
    unsynced: int = 0
    more: int = 0
    is_applicable: bool = True


def imap_safe(value: str) -> str:
    """The term as it may go into a command, or ValueError if it holds a control character."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("a search term may not contain control characters")
    return value


def criteria(query: Query) -> list:
    """UID SEARCH keys for the query's free text and the operators the server understands
    (the rest are applied to the synced rows afterwards)."""
    keys: list = []
    for term in query.terms:
        key = _key(term)
        if key:
            keys += ["NOT", *key] if term.negated else key
    return keys


def _key(term: Term) -> list:
    if term.field == "text":
        return ["TEXT", imap_safe(term.value)]
    if term.field == "is":
        return IS_KEYS[term.value]
    if term.field == "after":
        return ["SINCE", term.date]
    if term.field == "before":
        return ["BEFORE", term.date]
    return []


def folders_to_search(mailbox: Mailbox, query: Query) -> list[Folder]:
    """INBOX, then the folders with the most mail; only those named by `in:` if any."""
    folders = mailbox.folders.filter(is_selectable=True, uidvalidity__isnull=False)
    for term in query.terms:
        if term.field == "in":
            wanted = messages.folder_condition(term.value)
            folders = folders.exclude(wanted) if term.negated else folders.filter(wanted)
    # An empty folder has nothing to find (its count follows every sync).
    wanted = [f for f in folders if f.special_use == "inbox" or f.total_count]
    wanted.sort(key=lambda f: (f.special_use != "inbox", -f.total_count, f.name))
    return wanted[:FOLDERS_PER_MAILBOX]


def search(user, query: Query, mailbox: Mailbox | None = None) -> ServerResults:
    """Messages the servers of the mailboxes in scope find by free text and the local index
    did not: bodies Kotak has not fetched."""
    results = ServerResults()
    if not query.text_terms:
        results.is_applicable = False
        return results
    keys = criteria(query)
    charset = None if all(str(k).isascii() for k in keys) else "UTF-8"
    mailboxes = Mailbox.objects.for_user(user).distinct().order_by("name")
    if mailbox is not None:
        mailboxes = mailboxes.filter(pk=mailbox.pk)
    deadline = time.monotonic() + BUDGET_SECONDS
    found: list[tuple[Folder, list[int]]] = []
    for box in mailboxes:
        folders = folders_to_search(box, query)
        if not folders:
            continue
        if time.monotonic() >= deadline:
            results.notes.append(f"{box.name}: not searched, out of time.")
            continue
        done: list[str] = []
        try:
            with mailbox_connection(box, purpose="search", wait=5) as client:
                for folder in folders:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        results.notes.append(f"{box.name}: stopped after {', '.join(done)}.")
                        break
                    # A server still scanning when the budget is over ends this mailbox.
                    client.socket().settimeout(max(remaining, 1.0))
                    client.select_folder(folder.name, readonly=True)
                    uids = client.search(keys, charset=charset)
                    done.append(folder.label)
                    if uids:
                        found.append((folder, sorted(uids)))
        except (ConnectError, IMAPClientError, OSError) as exc:
            log.info("search on the server of mailbox %s failed: %s", box.pk, exc)
            results.notes.append(f"{box.name}: the server could not be searched ({exc}).")
        if done:
            results.searched.append(f"{box.name}: {', '.join(done)}")
    _map_rows(user, query, mailbox, found, results)
    return results


def _map_rows(user, query: Query, mailbox, found, results: ServerResults) -> None:
    """Synced messages for the server's UIDs that match the rest of the query and are not
    among the local results already."""
    # Free text was the server's job; every other term (headers, flags, folders …) is local.
    rest = Query(query.text, tuple(t for t in query.terms if t.field != "text"))
    rows: list[Message] = []
    for folder, uids in found:
        newest = uids[-MAX_UIDS:]
        known = dict(Message.objects.filter(folder=folder, uid__in=newest).values_list("uid", "pk"))
        results.unsynced += sum(1 for uid in newest if uid not in known)
        candidates = messages.matching(user, rest, mailbox).filter(pk__in=known.values())
        shown = set(
            messages.matching(user, query, mailbox)
            .filter(pk__in=known.values())
            .values_list("pk", flat=True)
        )
        rows += list(
            candidates.exclude(pk__in=shown)
            .select_related("folder", "mailbox")
            .only(*messages.RESULT_FIELDS)
        )
    rows.sort(key=lambda m: (m.internal_date, m.pk), reverse=True)
    results.more = max(0, len(rows) - MAX_ROWS)
    results.rows = rows[:MAX_ROWS]
    messages.decorate(results.rows, query)
