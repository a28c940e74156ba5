"""Walking BODYSTRUCTURE (RFC 3501 §7.4.2) into a flat list of parts with section numbers."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from webmail.mail.headers import decode_header_value

# type "/" subtype, both RFC 2045 tokens.
_VALID_TYPE = re.compile(r"[a-z0-9!#$&.+^_`{|}~-]+/[a-z0-9!#$&.+^_`{|}~-]+")


@dataclass
class Part:
    section: str  # as used in BODY[section]
    type: str  # "text/plain"
    charset: str = ""
    encoding: str = ""  # Content-Transfer-Encoding, lower case
    size: int = 0
    disposition: str = ""  # "attachment", "inline" or ""
    filename: str = ""
    content_id: str = ""

    @property
    def is_attachment(self) -> bool:
        if self.disposition == "attachment":
            return True
        if self.type.startswith(("text/plain", "text/html")):
            return bool(self.filename) and self.disposition != "inline"
        return not self.type.startswith("multipart/")

    def as_dict(self) -> dict:
        return asdict(self)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _params(value) -> dict[str, str]:
    """A parenthesised (key value key value …) list as a dict with lower-case keys."""
    if not isinstance(value, (list, tuple)):
        return {}
    items = list(value)
    return {_text(k).lower(): _text(v) for k, v in zip(items[::2], items[1::2], strict=False)}


def _filename(params: dict[str, str], disposition_params: dict[str, str]) -> str:
    for source in (disposition_params, params):
        for key in ("filename", "name"):
            if source.get(key):
                return decode_header_value(source[key])
        # RFC 2231: filename*=utf-8''na%C3%AFve.txt (continuations are rare; first value wins)
        for key in ("filename*", "name*", "filename*0*", "filename*0"):
            if source.get(key):
                return _decode_rfc2231(source[key])
    return ""


def _decode_rfc2231(value: str) -> str:
    from urllib.parse import unquote_to_bytes

    from webmail.mail.text import decode_bytes

    charset, _, rest = value.partition("'")
    if not rest:
        return value
    _lang, _, encoded = rest.partition("'")
    return decode_bytes(unquote_to_bytes(encoded), charset or "utf-8")


def _disposition(value) -> tuple[str, dict[str, str]]:
    if isinstance(value, (list, tuple)) and value:
        return _text(value[0]).lower(), _params(value[1] if len(value) > 1 else None)
    return "", {}


def _walk(node, section: str, parts: list[Part]) -> None:
    if not isinstance(node, (list, tuple)) or not node:
        return
    if isinstance(node[0], (list, tuple)):
        # multipart: (child, child, …, subtype, params, disposition, language, location);
        # imapclient groups the children into one list as the first element.
        children = (
            node[0] if isinstance(node[0], list) else [c for c in node if isinstance(c, tuple)]
        )
        subtype = next((_text(n).lower() for n in node[1:] if isinstance(n, bytes)), "mixed")
        parts.append(Part(section=section or "TEXT", type=f"multipart/{subtype}"))
        for index, child in enumerate(children, start=1):
            _walk(child, f"{section}.{index}" if section else str(index), parts)
        return
    fields = list(node)
    declared = f"{_text(fields[0]).lower()}/{_text(fields[1]).lower() if len(fields) > 1 else ''}"
    # RFC 2045 §5.2: a syntactically invalid type ("garbage", "text/") means text/plain.
    mime_type = declared if _VALID_TYPE.fullmatch(declared) else "text/plain"
    params = _params(fields[2]) if len(fields) > 2 else {}
    content_id = _text(fields[3]) if len(fields) > 3 else ""
    encoding = _text(fields[5]).lower() if len(fields) > 5 else ""
    size = fields[6] if len(fields) > 6 and isinstance(fields[6], int) else 0
    # Where the extension fields start depends on the type the server parsed, not ours.
    if declared.startswith("text/"):
        extension_at = 8
    elif declared == "message/rfc822":
        extension_at = 10
    else:
        extension_at = 7
    disposition, disposition_params = _disposition(
        fields[extension_at + 1] if len(fields) > extension_at + 1 else None
    )
    parts.append(
        Part(
            section=section or "1",
            type=mime_type,
            charset=params.get("charset", ""),
            encoding=encoding,
            size=size,
            disposition=disposition,
            filename=_filename(params, disposition_params),
            content_id=content_id.strip("<>"),
        )
    )


def parse_bodystructure(structure) -> list[Part]:
    """Flatten a BODYSTRUCTURE; parts of attached messages are not descended into."""
    parts: list[Part] = []
    _walk(structure, "", parts)
    return parts


def displayable_parts(parts: list[Part]) -> tuple[Part | None, Part | None]:
    """The first inline text/plain and text/html parts, i.e. what a reader shows."""
    plain = html = None
    for part in parts:
        if part.is_attachment:
            continue
        if part.type == "text/plain" and plain is None:
            plain = part
        elif part.type == "text/html" and html is None:
            html = part
    return plain, html


def attachments(parts: list[Part]) -> list[Part]:
    return [part for part in parts if part.is_attachment]
