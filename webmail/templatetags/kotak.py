"""Small presentation filters."""

from datetime import datetime

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.dates import MONTHS, MONTHS_3
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def short_date(value: datetime | None) -> str:
    """15:10 today, 3 Mar this year, 3 Mar 2024 otherwise — as mail clients show dates."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    today = timezone.localdate()
    if local.date() == today:
        return format_date(local, "H:i")
    if local.year == today.year:
        return format_date(local, "j M")
    return format_date(local, "j M Y")


_PLACEHOLDER = 987654321


def _long_date(local: datetime) -> str:
    return f"{local.day} {MONTHS[local.month]} {local.year}, {local:%H:%M}"


@register.simple_tag(takes_context=True)
def message_rows(context, rows, open_id=None, can_act=False, before="") -> str:
    """The rows of a message list, built in Python: a folder page shows 50 of them, and the
    template engine took ~0.6 ms a row — most of the page's time (see bench/web.py)."""
    if not rows:
        return ""
    first = rows[0]
    url = reverse("message", args=[first.mailbox_id, _PLACEHOLDER])
    suffix = f"?before={before}" if before else ""
    today = timezone.localdate()
    html = []
    for m in rows:
        local = timezone.localtime(m.internal_date)
        if local.date() == today:
            short = f"{local:%H:%M}"
        elif local.year == today.year:
            short = f"{local.day} {str(MONTHS_3[local.month]).title()}"
        else:
            short = f"{local.day} {str(MONTHS_3[local.month]).title()} {local.year}"
        subject = m.subject or "(no subject)"
        classes = "message-row"
        if not m.is_seen:
            classes += " unread"
        if m.is_flagged:
            classes += " flagged"
        is_open = m.pk == open_id
        if is_open:
            classes += " open"
        pick = ""
        if can_act:
            label = subject if len(subject) <= 60 else subject[:59] + "…"
            pick = (
                f'<input type="checkbox" class="pick" name="message" value="{m.pk}" '
                f'form="bulk-form" aria-label="Select “{escape(label)}”">'
            )
        meta = []
        if m.is_flagged:
            meta.append('<span class="flag" title="Flagged">★</span>')
        if m.is_answered:
            meta.append('<span title="Answered">↩</span>')
        if m.has_attachments:
            meta.append('<span title="Has attachments">📎</span>')
        badge = '<span class="badge warn">unreadable</span> ' if m.parse_error else ""
        snippet = f'<span class="snippet">{escape(m.snippet)}</span>' if m.snippet else ""
        hidden = ('<span class="visually-hidden">unread</span>' if not m.is_seen else "") + (
            '<span class="visually-hidden">flagged</span>' if m.is_flagged else ""
        )
        html.append(
            f'<li id="message-row-{m.pk}" class="{classes}" data-message="{m.pk}">{pick}'
            f'<a href="{url.replace(str(_PLACEHOLDER), str(m.pk))}{escape(suffix)}"'
            f"{' aria-current="true"' if is_open else ''}>"
            f'<span class="from">{escape(m.sender)}</span>'
            f'<span class="subject">{badge}{escape(subject)}</span>'
            f'<span class="meta">{"".join(meta)}'
            f'<time datetime="{local.isoformat()}" title="{_long_date(local)}">{short}</time>'
            f"</span>{snippet}{hidden}</a></li>"
        )
    return mark_safe("".join(html))  # noqa: S308 — every value above is escaped
