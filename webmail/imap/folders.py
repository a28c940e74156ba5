"""LIST/LSUB results as plain data: names, hierarchy, special-use roles (RFC 6154)."""

from __future__ import annotations

from dataclasses import dataclass

import imapclient
from imapclient.exceptions import IMAPClientError
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
    prefix: str = ""  # the personal namespace's, see personal_prefix()

    @property
    def parent_name(self) -> str | None:
        return parent_name(self.name, self.delimiter, self.prefix)


def parent_name(name: str, delimiter: str, prefix: str = "") -> str | None:
    """The name of the folder that holds `name`; None at the top. A folder right inside the
    personal namespace ("INBOX.Sent" where it is "INBOX.") is at the top, beside the Inbox."""
    if not delimiter or delimiter not in name:
        return None
    parent = name.rsplit(delimiter, 1)[0]
    if prefix and parent + delimiter == prefix:
        return None
    return parent


def shown_name(name: str, delimiter: str, prefix: str = "") -> tuple[str, str]:
    """The display name and label (last level) of a folder: decoded, and without the personal
    namespace's prefix, as Roundcube and Thunderbird show "INBOX.Projects.Acme" too."""
    if prefix and name.startswith(prefix) and len(name) > len(prefix):
        name = name[len(prefix) :]
    display = decode_name(name)
    return display, (display.rsplit(delimiter, 1)[-1] if delimiter else display)


def personal_prefix(client: imapclient.IMAPClient, folders: list[FolderInfo]) -> str:
    """Where the account's own folders live: the personal namespace's prefix where the server
    names it (RFC 2342), else "INBOX<delimiter>" when every folder but the Inbox is inside
    it (Courier's and Cyrus' layout); "" when they sit beside the Inbox."""
    if client.has_capability("NAMESPACE"):
        try:
            personal = client.namespace().personal
        except (IMAPClientError, ValueError, TypeError):  # a refusal, an answer unparsed
            personal = None
        if personal:
            prefix, delimiter = (_as_text(part) if part else "" for part in personal[0][:2])
            return prefix if delimiter and prefix.endswith(delimiter) else ""
    inbox = next((f for f in folders if f.name.upper() == "INBOX"), None)
    if inbox is None or not inbox.delimiter:
        return ""
    prefix = f"{inbox.name}{inbox.delimiter}"
    others = [f for f in folders if f is not inbox]
    return prefix if others and all(f.name.startswith(prefix) for f in others) else ""


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


def list_folders(client: imapclient.IMAPClient) -> tuple[list[FolderInfo], str]:
    """Every folder on the server, with special-use roles and subscription state; and the
    personal namespace's prefix the names are shown without."""
    subscribed = {_as_text(name) for _flags, _delim, name in client.list_sub_folders()}
    folders = []
    for flags, delimiter, raw_name in client.list_folders():
        name = _as_text(raw_name)
        attributes = [_as_text(flag) for flag in flags]
        lowered = {flag.lower() for flag in flags}
        delim = _as_text(delimiter) if delimiter else ""
        if name.upper() == "INBOX":
            special = "inbox"
        else:
            special = next(
                (role for attr, role in SPECIAL_USE_ATTRIBUTES.items() if attr in lowered), ""
            )
        folders.append(
            FolderInfo(
                name=name,
                display_name="",
                label="",
                delimiter=delim,
                attributes=attributes,
                special_use=special,
                is_selectable=not ({b"\\noselect", b"\\nonexistent"} & lowered),
                is_subscribed=name in subscribed or special == "inbox",
            )
        )
    prefix = personal_prefix(client, folders)
    for folder in folders:
        folder.prefix = prefix
        if folder.special_use == "inbox":
            folder.display_name = folder.label = "Inbox"
        else:
            folder.display_name, folder.label = shown_name(folder.name, folder.delimiter, prefix)
    _guess_special_use(folders)
    return folders, prefix


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
