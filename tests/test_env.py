"""Settings from the environment."""

import pytest

from webmail.env import env_bool, env_secret, parse_database_url


def test_database_urls_for_postgres_and_sqlite():
    pg = parse_database_url("postgres://kotak:p%40ss@db.internal:5433/kotak?sslmode=require")
    assert pg["ENGINE"] == "django.db.backends.postgresql"
    assert (pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"], pg["NAME"]) == (
        "kotak", "p@ss", "db.internal", "5433", "kotak",
    )  # fmt: skip
    assert pg["OPTIONS"] == {"sslmode": "require"}
    assert parse_database_url("sqlite:////var/lib/kotak.db")["NAME"] == "/var/lib/kotak.db"
    assert parse_database_url("sqlite:///kotak.db")["NAME"] == "kotak.db"
    with pytest.raises(ValueError, match="unsupported scheme"):
        parse_database_url("mysql://x/y")


def test_booleans_are_strict(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG") is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ValueError, match="X_FLAG"):
        env_bool("X_FLAG")


def test_secrets_can_come_from_files(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    monkeypatch.setenv("X_SECRET", "from-env")
    assert env_secret("X_SECRET") == "from-a-file"
