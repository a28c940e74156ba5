"""LIST/LSUB results as plain data: names, hierarchy, special-use roles (RFC 6154)."""

from __future__ import annotations

from dataclasses import dataclass

import imapclient
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imap_utf7 import encode as encode_utf7

SPECIAL_USE_ATTRIBUTES = {
    b"\\sent": "sent",
    b"\\drafts": "drafts",
    b"\\trash": "trash",
    b"\\junk": "junk",
    b"\\archive": "archive",
    b"\\all": "all",
    b"\\flagged": "flagged",
}

# For servers without SPECIAL-USE: the names clients commonly create (lower case, leaf name).
SPECIAL_USE_NAMES = {
    "sent": "sent",
    "sent items": "sent",
    "sent messages": "sent",
    "sent mail": "sent",
    "drafts": "drafts",
    "draft": "drafts",
    "trash": "trash",
    "deleted items": "trash",
    "deleted messages": "trash",
    "junk": "junk",
    "spam": "junk",
    "junk e-mail": "junk",
    "junk email": "junk",
    "archive": "archive",
    "archives": "archive",
}


@dataclass
class FolderInfo:
    name: str  # as the server spells it (modified UTF-7)
    display_name: str  # decoded
    label: str  # last segment, decoded
    delimiter: str
    attributes: list[str]
    special_use: str
    is_selectable: bool
    is_subscribed: bool = False

    @property
    def parent_name(self) -> str | None:
        if not self.delimiter or self.delimiter not in self.name:
            return None
        return self.name.rsplit(self.delimiter, 1)[0]


def _as_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def decode_name(name: str) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3) to text; a name that is not valid shows as sent."""
    try:
        # imapclient's decoder passes str through untouched: give it bytes.
        return decode_utf7(name.encode("ascii"))
    except Exception:  # noqa: BLE001
        return name


def encode_name(text: str) -> str:
    """Text to a name segment as the server spells it: modified UTF-7 (RFC 3501 §5.1.3)."""
    return encode_utf7(text).decode("ascii")


def is_within(name: str, root: str, delimiter: str) -> bool:
    """Whether name is root itself or one of its descendants."""
    return name == root or bool(delimiter) and name.startswith(root + delimiter)


def renamed(name: str, old: str, new: str, delimiter: str) -> str | None:
    """The name a folder gets when old is renamed to new (its inferiors follow, RFC 3501
    §6.3.5); None if the rename does not touch it."""
    if not is_within(name, old, delimiter):
        return None
    return new + name[len(old) :]


def list_folders(client: imapclient.IMAPClient) -> list[FolderInfo]:
    """Every folder on the server, with special-use roles and subscription state."""
    subscribed = {_as_text(name) for _flags, _delim, name in client.list_sub_folders()}
    folders = []
    for flags, delimiter, raw_name in client.list_folders():
        name = _as_text(raw_name)
        attributes = [_as_text(flag) for flag in flags]
        lowered = {flag.lower() for flag in flags}
        delim = _as_text(delimiter) if delimiter else ""
        display = decode_name(name)
        label = display.rsplit(delim, 1)[-1] if delim else display
        if name.upper() == "INBOX":
            special = "inbox"
        else:
            special = next(
                (role for attr, role in SPECIAL_USE_ATTRIBUTES.items() if attr in lowered), ""
            )
        folders.append(
            FolderInfo(
                name=name,
                display_name="Inbox" if special == "inbox" else display,
                label="Inbox" if special == "inbox" else label,
                delimiter=delim,
                attributes=attributes,
                special_use=special,
                is_selectable=not ({b"\\noselect", b"\\nonexistent"} & lowered),
                is_subscribed=name in subscribed or special == "inbox",
            )
        )
    _guess_special_use(folders)
    return folders


def _guess_special_use(folders: list[FolderInfo]) -> None:
    """Fill roles the server did not announce, from well-known names, one folder per role."""
    taken = {folder.special_use for folder in folders if folder.special_use}
    for folder in folders:
        if folder.special_use or not folder.is_selectable:
            continue
        role = SPECIAL_USE_NAMES.get(folder.label.lower())
        # Only top-level folders or direct children of INBOX (Courier's "INBOX.Sent").
        parent = folder.parent_name
        if role and role not in taken and (parent is None or parent.upper() == "INBOX"):
            folder.special_use = role
            taken.add(role)
