"""Production settings pass Django's deployment checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "DEBUG",
            "SECURE_COOKIES",
            "SECURE_SSL_REDIRECT",
            # Set by the browser tests in this process; a deployment never has it.
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    env |= {
        "KOTAK_DATA_DIR": str(tmp_path),
        "DEBUG": "0",
        "SITE_URL": "https://kotak.example.com",
        "ALLOWED_HOSTS": "kotak.example.com",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_SETTINGS_MODULE": "webmail.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout + result.stderr
