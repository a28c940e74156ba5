"""Small presentation filters."""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.dateformat import format as format_date

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
