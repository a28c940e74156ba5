"""Logging in: throttled failures, a new session at login, security headers on app pages."""

from __future__ import annotations

from contextlib import suppress

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    with suppress(Exception):  # one test points the cache at a dead Redis
        cache.clear()


def log_in(client, username, password, ip="203.0.113.7"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_repeated_failures_lock_the_account_for_a_while(client, bob, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        response = log_in(client, "bob", "wrong")
        assert "Please enter a correct username and password" in response.content.decode()
    response = log_in(client, "bob", "bob-pass-1")  # the right password, too late
    assert response.status_code == 200
    assert "Too many failed attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not locked out by this one's failures on the same account…
    other = Client()
    assert log_in(other, "bob", "bob-pass-1", ip="198.51.100.9").status_code == 302
    cache.clear()  # …and the pause ends.
    assert log_in(client, "bob", "bob-pass-1").status_code == 302


def test_one_address_trying_many_accounts_is_slowed_down(client, settings, django_user_model):
    settings.LOGIN_FAILURE_LIMIT = 2
    for n in range(8):
        log_in(client, f"user{n}", "guess")
    django_user_model.objects.create_user("victim", password="victim-pass-1")
    response = log_in(client, "victim", "victim-pass-1")
    assert "Too many failed attempts" in response.content.decode()


def test_the_session_is_new_after_login(client, bob):
    client.get(reverse("login"))
    client.session.save()
    before = client.session.session_key
    assert log_in(client, "bob", "bob-pass-1").status_code == 302
    assert client.session.session_key != before


def test_app_pages_carry_a_strict_content_security_policy(client, bob):
    client.force_login(bob)
    response = client.get(reverse("home"))
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy and "script-src 'self' 'unsafe" not in policy
    assert "object-src 'none'" in policy and "base-uri 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    html = response.content.decode()
    assert " onclick=" not in html and " onchange=" not in html


def test_logging_in_still_works_when_the_cache_is_down(client, bob, settings, caplog):
    # A Redis nobody listens on: every cache call fails (Django reloads caches on the change).
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    assert log_in(client, "bob", "wrong").status_code == 200
    assert log_in(client, "bob", "bob-pass-1").status_code == 302
    assert "login throttle unavailable" in caplog.text
