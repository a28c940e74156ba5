"""Every environment variable Kotak reads is documented: in the README's table and in
.env.example."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READ = re.compile(r"""env_(?:str|bool|int|list|secret)\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def variables() -> set[str]:
    return set(READ.findall((ROOT / "webmail" / "settings.py").read_text()))


def test_settings_read_the_mail_variables():
    assert {
        "EMAIL_HOST",
        "EMAIL_PORT",
        "EMAIL_HOST_USER",
        "EMAIL_HOST_PASSWORD",
        "EMAIL_USE_TLS",
        "EMAIL_USE_SSL",
        "EMAIL_TIMEOUT",
        "DEFAULT_FROM_EMAIL",
    } <= variables()


def test_every_variable_is_in_the_readme_table_and_the_example_file():
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    missing_readme = sorted(v for v in variables() if f"| `{v}`" not in readme)
    missing_example = sorted(
        v for v in variables() if not re.search(rf"^# {v}=", example, re.MULTILINE)
    )
    assert missing_readme == [], "add rows to the README's settings table"
    assert missing_example == [], "add lines to .env.example"


def test_django_mail_uses_mailers_without_deprecated_settings(settings):
    from django.conf import DEPRECATED_EMAIL_SETTINGS

    assert "default" in settings.MAILERS
    source = (ROOT / "webmail" / "settings.py").read_text()
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", source, re.MULTILINE))
    assert not assigned & DEPRECATED_EMAIL_SETTINGS
