"""Making HTML mail safe to show: an allowlist of tags, attributes, URL schemes and CSS.

The result is still shown only inside a sandboxed iframe under a strict Content-Security-Policy
(see webmail.web.content); this module is the first of those layers, not the only one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import nh3

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big",
        "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
        "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li",
        "main", "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "section",
        "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td",
        "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
    }
)  # fmt: skip

# Dropped with everything inside them: their content is code, or markup meant for a parser
# other than the one that will read our output (the classic mutation-XSS carriers).
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "template", "title", "noscript", "noembed", "noframes", "xmp",
        "textarea", "select", "option", "optgroup", "datalist", "svg", "math", "iframe",
        "object", "embed", "applet", "frame", "frameset", "head", "canvas", "audio", "video",
        "plaintext", "listing",
    }
)  # fmt: skip

_EVERYWHERE = {"style", "dir", "lang", "title", "align", "valign"}
_CELL = {"width", "height", "colspan", "rowspan", "bgcolor", "background", "nowrap", "scope"}
ALLOWED_ATTRIBUTES = {
    "*": _EVERYWHERE,
    "a": {"href"},
    "img": {"src", "srcset", "alt", "width", "height", "border", "hspace", "vspace"},
    "table": {"width", "height", "border", "cellpadding", "cellspacing", "bgcolor", "background"},
    "td": _CELL,
    "th": _CELL,
    "tr": {"height", "bgcolor", "background"},
    "thead": {"bgcolor"},
    "tbody": {"bgcolor"},
    "tfoot": {"bgcolor"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "hr": {"width", "size", "noshade", "color"},
    "time": {"datetime"},
    "details": {"open"},
}

# Schemes nh3 lets through on href/src before our own filter looks closer (cid and data only
# ever survive on images, see _filter_attribute).
_URL_SCHEMES = {"http", "https", "mailto", "cid", "data"}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
RASTER_IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/gif", "image/webp", "image/bmp"}
)

CSS_PROPERTIES = frozenset(
    {
        "color", "background", "background-color",
        "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
        "text-align", "text-decoration", "text-decoration-color", "text-decoration-line",
        "text-decoration-style", "text-indent", "text-transform", "text-shadow",
        "letter-spacing", "word-spacing", "word-break", "word-wrap", "overflow-wrap",
        "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
        "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
        "border", "border-top", "border-right", "border-bottom", "border-left",
        "border-color", "border-style", "border-width", "border-radius",
        "border-top-color", "border-right-color", "border-bottom-color", "border-left-color",
        "border-top-style", "border-right-style", "border-bottom-style", "border-left-style",
        "border-top-width", "border-right-width", "border-bottom-width", "border-left-width",
        "border-top-left-radius", "border-top-right-radius", "border-bottom-left-radius",
        "border-bottom-right-radius", "border-collapse", "border-spacing",
        "width", "height", "max-width", "min-width", "max-height", "min-height",
        "display", "vertical-align", "line-height", "list-style-type", "white-space",
        "table-layout", "caption-side", "empty-cells", "direction",
    }
)  # fmt: skip
DISPLAY_VALUES = frozenset(
    {
        "block", "inline", "inline-block", "none", "table", "table-row", "table-cell",
        "table-row-group", "table-header-group", "table-footer-group", "table-caption",
        "list-item",
    }
)  # fmt: skip
# Anything that can fetch, run or smuggle something past this filter. Checked on the value
# lower-cased and with all whitespace removed, so "u r l (" or "URL(" do not slip through.
_CSS_FORBIDDEN = (
    "url(", "expression", "var(", "image-set", "image(", "@import", "@", "\\", "<", ">", "/*",
    "*/", "javascript:", "vbscript:", "attr(", "env(", "element(", "cross-fade(", "paint(",
    "src(", "behavior", "binding", "{", "}",
)  # fmt: skip
_CSS_PROPERTY = re.compile(r"-?[a-z][a-z-]*")
_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# What the URL standard strips before reading a scheme: tabs and newlines anywhere, C0 controls
# and spaces at either end ("java\tscript:", " javascript:").
_URL_IGNORED = re.compile(r"[\t\n\r]")
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
_DATA_IMAGE = re.compile(r"data:(image/[a-z0-9.+-]+)((?:;[a-z0-9._=+-]*)*),", re.IGNORECASE)
_SRCSET_CANDIDATE = re.compile(r"\s*([^\s,]+)(?:\s+[0-9.]+[wx])?\s*(?:,|$)")


@dataclass(frozen=True)
class SanitizedHtml:
    html: str
    blocked_remote: bool  # a remote image was left out; "Show images" would load it


def url_scheme(url: str) -> str:
    """The scheme of a URL as a browser reads it, lower case; "" for a relative URL."""
    url = _URL_IGNORED.sub("", url).strip(_C0_AND_SPACE)
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def filter_style(style: str) -> str:
    """Only allowlisted CSS declarations with harmless values; everything else is dropped."""
    kept = []
    for declaration in _split_declarations(style):
        name, colon, value = declaration.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if not colon or name not in CSS_PROPERTIES or not _CSS_PROPERTY.fullmatch(name):
            continue
        if not value or not _is_harmless_css_value(name, value):
            continue
        kept.append(f"{name}: {value}")
    return "; ".join(kept)


def _split_declarations(style: str) -> list[str]:
    """Split at semicolons outside quotes and parentheses (a font name may hold a ';')."""
    declarations, current, quote, depth = [], [], "", 0
    for char in style:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == ";" and depth == 0:
            declarations.append("".join(current))
            current = []
            continue
        current.append(char)
    declarations.append("".join(current))
    return declarations


def _is_harmless_css_value(name: str, value: str) -> bool:
    if _CONTROL.search(value):
        return False
    compact = _WHITESPACE.sub("", value.lower())
    if any(token in compact for token in _CSS_FORBIDDEN):
        return False
    if value.count('"') % 2 or value.count("'") % 2 or value.count("(") != value.count(")"):
        return False
    if ";" in value:
        return False
    if name == "display":
        return compact.removesuffix("!important") in DISPLAY_VALUES
    return True


def _is_data_raster_image(url: str) -> bool:
    match = _DATA_IMAGE.match(url.strip())
    return bool(match) and match.group(1).lower() in RASTER_IMAGE_TYPES


class _Filter:
    """nh3's attribute callback: rewrites image URLs and remembers what it blocked."""

    def __init__(self, cid_url: Callable[[str], str | None] | None, allow_remote: bool) -> None:
        self.cid_url = cid_url
        self.allow_remote = allow_remote
        self.blocked_remote = False

    def __call__(self, tag: str, attribute: str, value: str) -> str | None:
        if attribute == "style":
            return filter_style(value) or None
        if attribute == "href":
            return value if url_scheme(value) in LINK_SCHEMES else None
        if attribute in ("src", "background"):
            return self._image(value)
        if attribute == "srcset":
            return self._srcset(value)
        return value

    def _image(self, url: str) -> str | None:
        scheme = url_scheme(url)
        if scheme == "cid":
            if self.cid_url is None:
                return None
            # RFC 2392 §2: the Content-ID in a cid: URL is %-encoded.
            content_id = unquote(_URL_IGNORED.sub("", url).strip()[4:]).strip("<> ")
            return self.cid_url(content_id) if content_id else None
        if scheme in ("http", "https"):
            if self.allow_remote:
                return url
            self.blocked_remote = True
            return None
        if scheme == "data" and _is_data_raster_image(url):
            return url
        return None

    def _srcset(self, value: str) -> str | None:
        urls = [m.group(1) for m in _SRCSET_CANDIDATE.finditer(value) if m.group(1)]
        if not urls or any(url_scheme(url) not in ("http", "https") for url in urls):
            return None
        if self.allow_remote:
            return value
        self.blocked_remote = True
        return None


def sanitize_html(
    html: str,
    *,
    cid_url: Callable[[str], str | None] | None = None,
    allow_remote: bool = False,
) -> SanitizedHtml:
    """Sanitize an HTML mail body; cid_url maps a Content-ID to the URL that serves it."""
    attribute_filter = _Filter(cid_url, allow_remote)
    cleaner = nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=attribute_filter,
        strip_comments=True,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes=set(_URL_SCHEMES),
        # A relative link would resolve against Kotak's own origin.
        url_relative="deny",
    )
    return SanitizedHtml(cleaner.clean(html), attribute_filter.blocked_remote)
