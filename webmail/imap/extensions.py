"""What imapclient 3.1 lacks: pipelined STATUS, VANISHED (RFC 7162 §3.2.10) and NOTIFY
(RFC 5465).

Both reach into imaplib through `client._imap`; this module is the only place that does.
"""

from __future__ import annotations

import imaplib
from dataclasses import dataclass

import imapclient
from imapclient.response_parser import parse_response

# Not UNSEEN: the database counts unread itself, and UNSEEN makes the server scan every
# message's flags (~100 ms for a 100k folder on Dovecot, more than the rest of a resync).
STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")


@dataclass(frozen=True)
class FolderStatus:
    messages: int
    uidnext: int | None
    uidvalidity: int | None
    unseen: int | None = None
    highestmodseq: int | None = None


def _as_status(items) -> FolderStatus:
    values = {}
    pairs = list(items)
    for key, value in zip(pairs[::2], pairs[1::2], strict=False):
        name = key.decode() if isinstance(key, bytes) else str(key)
        values[name.upper()] = value
    return FolderStatus(
        messages=values.get("MESSAGES", 0),
        uidnext=values.get("UIDNEXT"),
        uidvalidity=values.get("UIDVALIDITY"),
        unseen=values.get("UNSEEN"),
        highestmodseq=values.get("HIGHESTMODSEQ"),
    )


def folder_statuses(
    client: imapclient.IMAPClient, names: list[str], condstore: bool
) -> dict[str, FolderStatus]:
    """STATUS of every named folder, the commands pipelined (RFC 3501 §5.5) in one round trip.

    Not LIST-STATUS: Dovecot answers that by syncing every folder it lists (0.1-2 s for a
    100k-message Maildir), while a STATUS is read from its index (~2 ms).
    """
    items = "({})".format(" ".join(STATUS_ITEMS + (("HIGHESTMODSEQ",) if condstore else ())))
    imap = client._imap
    imap.untagged_responses.pop("STATUS", None)
    tags = [imap._command("STATUS", client._normalise_folder(name), items) for name in names]
    for tag in tags:
        # A NO for one folder (deleted since LIST, not allowed) leaves it out; its sync says why.
        imap._command_complete("STATUS", tag)
    result = {}
    for line in imap.untagged_responses.pop("STATUS", []):
        try:
            parsed = parse_response([line] if isinstance(line, bytes) else list(line))
            name, status_items = parsed[0], parsed[1]
        except (imapclient.exceptions.ProtocolError, IndexError, ValueError):
            continue
        name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        result[name] = _as_status(status_items)
    return result


def parse_uid_set(text: str, low: int = 1, high: int = 2**32 - 1) -> set[int]:
    """ "1:3,7,9:10" → {1, 2, 3, 7, 9, 10}, clamped to low..high.

    The clamp matters: "1:4294967295" from a server must not become four billion ints.
    """
    uids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part or part == "*":
            continue
        if ":" in part:
            bounds = sorted(int(x) if x != "*" else high for x in part.split(":", 1))
            uids.update(range(max(bounds[0], low), min(bounds[1], high) + 1))
        elif low <= int(part) <= high:
            uids.add(int(part))
    return uids


def pop_vanished(client: imapclient.IMAPClient, low: int = 1, high: int = 2**32 - 1) -> set[int]:
    """UIDs reported by VANISHED responses since the last call (QRESYNC sessions only).

    With QRESYNC enabled the server reports expunges only this way, in answer to any
    command, so callers harvest after every command they send.
    """
    uids: set[int] = set()
    for line in client._imap.untagged_responses.pop("VANISHED", []):
        text = line.decode("ascii", "replace") if isinstance(line, bytes) else str(line)
        text = text.strip()
        if text.upper().startswith("(EARLIER)"):
            text = text[len("(EARLIER)") :]
        uids |= parse_uid_set(text.strip(), low, high)
    return uids


# imaplib refuses commands it does not know; NOTIFY is valid once authenticated.
imaplib.Commands.setdefault("NOTIFY", ("AUTH", "SELECTED"))


def notify_set(client: imapclient.IMAPClient) -> bool:
    """Ask to be told of changes to every personal folder on this connection, the selected
    one included (RFC 5465 §3): new mail, expunges, flags, and folders created, renamed or
    deleted. Returns False if the server refused."""
    typ, _ = client._imap._simple_command(
        "NOTIFY",
        "SET",
        "(SELECTED (MessageNew MessageExpunge FlagChange))",
        "(PERSONAL (MessageNew MessageExpunge FlagChange MailboxName))",
    )
    return typ == "OK"


def conditional_store(
    client: imapclient.IMAPClient, uids: list[int], adding: bool, flags: list[str], since: int
) -> set[int]:
    """`UID STORE uids (UNCHANGEDSINCE since) ±FLAGS.SILENT (flags)` (RFC 7162 §3.1.3).

    Returns the UIDs the server did not change because they were modified after `since`
    (its MODIFIED response code); the others now have the flags.
    """
    imap = client._imap
    imap.untagged_responses.pop("MODIFIED", None)
    client._command_and_check(
        "store",
        imapclient.imapclient.join_message_ids(uids),
        f"(UNCHANGEDSINCE {int(since)})",
        "+FLAGS.SILENT" if adding else "-FLAGS.SILENT",
        imapclient.imapclient.seq_to_parenstr([imapclient.imapclient.to_bytes(f) for f in flags]),
        uid=True,
        unpack=True,
    )
    modified: set[int] = set()
    for line in imap.untagged_responses.pop("MODIFIED", []):
        text = line.decode("ascii", "replace") if isinstance(line, bytes) else str(line)
        modified |= parse_uid_set(text.strip(), 1, max(uids))
    return modified & set(uids)


def parse_copyuid(line: bytes | str) -> tuple[int, dict[int, int]]:
    """ "uidvalidity 1:3,7 10:13" (RFC 4315 §3) → (uidvalidity, {source uid: target uid})."""
    text = line.decode("ascii", "replace") if isinstance(line, bytes) else str(line)
    uidvalidity, source, target = text.split()[:3]
    return int(uidvalidity), dict(zip(_ordered_uids(source), _ordered_uids(target), strict=False))


def _ordered_uids(text: str) -> list[int]:
    """A UID set in the order the server wrote it (COPYUID pairs them up by position)."""
    uids: list[int] = []
    for part in text.split(","):
        if ":" in part:
            # "4:2" is the same range as "2:4" (RFC 4315 §4): ascending either way.
            low, high = sorted(int(x) for x in part.split(":", 1))
            uids.extend(range(low, high + 1))
        elif part:
            uids.append(int(part))
    return uids
