"""Turning bytes in unknown or lying charsets into text without ever raising."""

import codecs
import re
from functools import lru_cache

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

# Codecs Python counts as text encodings that are no charset a message can be written in:
# 'undefined' always raises, 'punycode' and 'idna' are for domain names, and the escape codecs
# would turn a literal "\u202e" typed in a body into the character itself.
NOT_CHARSETS = frozenset({"undefined", "punycode", "idna", "unicode-escape", "raw-unicode-escape"})


@lru_cache(maxsize=256)  # a handful of labels cover nearly all mail; bounded against hostile ones
def normalise_charset(charset: str | None) -> str | None:
    """The Python codec name for a charset label, or None if there is no usable text codec."""
    if not charset:
        return None
    # RFC 2231 §5 lets an encoded word carry a language: =?KOI8-R*ru?B?...?=.
    name = charset.strip().strip("\"'").partition("*")[0].strip().lower()
    name = CHARSET_ALIASES.get(name, name)
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return None
    # codecs.lookup also finds bytes-to-bytes and str-to-str codecs ("base64", "rot13", "zlib",
    # "hex", "uu", "bz2"): a declared charset must never pick one of those.
    if not codec._is_text_encoding or codec.name in NOT_CHARSETS:
        return None
    return codec.name


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset if Python knows it, else UTF-8, else Windows-1252."""
    name = normalise_charset(charset)
    if name and name != "utf-8":
        try:
            return data.decode(name)
        except (UnicodeError, LookupError):  # UnicodeError: e.g. utf-16 with an odd length
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        cut_off = _utf8_cut_off(data, error)
        if cut_off is not None:
            return cut_off
    return data.decode("windows-1252", "replace")


def _utf8_cut_off(data: bytes, error: UnicodeDecodeError) -> str | None:
    """UTF-8 text whose last character was cut off (a truncated part, a size-limited fetch).

    Only the final 1-3 bytes may be an incomplete sequence, and the text before it must hold
    some non-ASCII characters, which as valid UTF-8 prove the encoding: Latin-1 "caf\\xe9" also
    ends in what looks like the start of a UTF-8 sequence and must stay Windows-1252.
    """
    head, tail = data[: error.start], data[error.start :]  # the decoder stops at the first error
    if len(tail) > 3 or head.isascii():
        return None
    try:
        # Not final: an incomplete but so far valid sequence is buffered instead of raising.
        codecs.getincrementaldecoder("utf-8")().decode(tail, final=False)
    except UnicodeDecodeError:
        return None
    return head.decode("utf-8") + "\ufffd"


# C0 controls except tab and line ends, and DEL.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+")


def clean(text: str) -> str:
    """Drop NULs and other C0 controls that databases or browsers choke on (keep tab/newlines)."""
    if not text or text.isprintable():  # the common case, checked at C speed
        return text
    return _CONTROLS.sub("", text)
