"""ASGI entry point for uvicorn: `uvicorn webmail.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webmail.settings")

application = get_asgi_application()

from django.conf import settings  # noqa: E402  (needs the settings module configured above)

if settings.SERVE_STATIC:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)
