"""Turning bytes in unknown or lying charsets into text without ever raising."""

import codecs

# Labels seen in the wild that Python does not know, mapped to what senders meant.
CHARSET_ALIASES = {
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
    "unknown": "utf-8",
    "x-user-defined": "windows-1252",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "gb2312": "gb18030",  # gb18030 is a superset senders often use under the older name
    "gbk": "gb18030",
    "x-mac-roman": "mac_roman",
    "ascii": "utf-8",  # mislabelled 8-bit mail is far more often UTF-8 than anything else
    "us-ascii": "utf-8",
    "iso-8859-1": "windows-1252",  # as browsers do (WHATWG): C1 range means cp1252
    "latin1": "windows-1252",
}


def normalise_charset(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    name = CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset if Python knows it, else UTF-8, else Windows-1252."""
    name = normalise_charset(charset)
    if name and name != "utf-8":
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("windows-1252", "replace")


def clean(text: str) -> str:
    """Drop NULs and other C0 controls that databases or browsers choke on (keep tab/newlines)."""
    if not text:
        return text
    return "".join(ch for ch in text if ch >= " " or ch in "\t\n\r").replace("\x7f", "")
