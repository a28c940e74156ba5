"""Logging in, with failed attempts throttled per account and per address.

Counters live in Django's cache (Redis in production, so every web process shares them). A
locked account answers the same whether the password was right or not, so the lockout cannot
be used to test passwords either.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

log = logging.getLogger(__name__)


def client_ip(request) -> str:
    if settings.BEHIND_PROXY:
        # The address our own proxy saw: the last hop it appended, not what the client claims.
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def _keys(username: str, ip: str) -> list[tuple[str, int]]:
    """Counters and their limits: this account from this address, the account from anywhere,
    and the address trying many accounts."""
    limit = settings.LOGIN_FAILURE_LIMIT
    user = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"login-fail:{user}:{ip}", limit),
        (f"login-fail:{user}", limit * 4),
        (f"login-fail-ip:{ip}", limit * 4),
    ]


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": (
            "Too many failed attempts to log in. Wait %(minutes)s minutes and try again, "
            "or ask an administrator to reset your password."
        ),
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        keys = _keys(username, client_ip(self.request))
        if any(_count(key) >= limit for key, limit in keys):
            raise ValidationError(
                self.error_messages["throttled"],
                code="throttled",
                params={"minutes": max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)},
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            for key, _ in keys:
                _bump(key)
            raise
        _forget(keys[0][0])
        return cleaned


# The counters fail open: with the cache (Redis) down, people can still log in — the password
# is checked as always — and the outage is logged rather than locking everyone out.


def _count(key: str) -> int:
    try:
        return cache.get(key) or 0
    except Exception as exc:  # noqa: BLE001 — any cache backend error
        log.warning("login throttle unavailable: %s", exc)
        return 0


def _bump(key: str) -> None:
    try:
        cache.add(key, 0, settings.LOGIN_LOCKOUT_SECONDS)
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, settings.LOGIN_LOCKOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001
        log.warning("login throttle unavailable: %s", exc)


def _forget(key: str) -> None:
    try:
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001
        log.warning("login throttle unavailable: %s", exc)


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True
