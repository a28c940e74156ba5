"""Partial FETCH of one body section (RFC 3501 §6.4.5, BODY[section]<origin.octets>)."""

from __future__ import annotations

import re

import imapclient

# A section as BODYSTRUCTURE numbers them ("1", "2.1.3"), or "" for the whole message.
SECTION = re.compile(r"(?:[1-9][0-9]{0,5}(?:\.[1-9][0-9]{0,5}){0,99})?")


def fetch_partial(
    client: imapclient.IMAPClient, uid: int, section: str, offset: int, length: int
) -> bytes | None:
    """Up to length octets of the section from offset, without setting \\Seen; None if the
    message is no longer in the selected folder."""
    if not SECTION.fullmatch(section):
        raise ValueError(f"not a body section: {section!r}")
    item = f"BODY.PEEK[{section}]<{offset}.{length}>"
    response = client.fetch([uid], [item])
    if uid not in response:
        return None
    # The answer is keyed BODY[section]<offset>: match on the section, not the exact key.
    prefix = f"BODY[{section}]".encode()
    for key, value in response[uid].items():
        if isinstance(key, bytes) and key.startswith(prefix):
            return value or b""
    return b""
