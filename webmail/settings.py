"""Kotak settings. Everything comes from the environment; see .env.example for the list.

Without any variable set, Kotak runs on a laptop: SQLite in WAL mode, a Celery broker kept in
files under KOTAK_DATA_DIR, and live updates found by polling the change log.
"""

from pathlib import Path

from cryptography.fernet import Fernet
from django.utils.csp import CSP

from webmail.env import (
    env_bool,
    env_int,
    env_list,
    env_secret,
    env_str,
    parse_database_url,
    persisted_secret,
    random_secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("KOTAK_DATA_DIR", str(BASE_DIR / "var"))).resolve()

# --- Core -----------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY") or persisted_secret(
    DATA_DIR / "secret_key", random_secret_key
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "webmail",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "webmail.urls"
ASGI_APPLICATION = "webmail.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": parse_database_url(DATABASE_URL)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "kotak.db"}}

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Tests use a file, not memory: the browser tests' uvicorn threads must share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    # WAL lets the web server read while a sync worker writes; IMMEDIATE transactions take the
    # write lock up front instead of failing with "database is locked" on upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
else:
    # 0: under ASGI each request may run in another thread, and a connection kept per thread
    # is a connection leaked (PostgreSQL runs out of them under load; see bench/load.py).
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts -------------------------------------------------------------------------------

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and SITE_URL.startswith("https"))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Failed logins per account and address before a pause, and how long the pause lasts.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)

# --- HTTP security ----------------------------------------------------------------------------

_HTTPS = not DEBUG and SITE_URL.startswith("https")
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto and X-Forwarded-For.
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _HTTPS else 0)
# These cover the host's own subdomains (kotak.example.com's, not example.com's).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# App pages run only Kotak's own scripts (inline ones carry the request's nonce). Mail bodies
# are not here: they are served from their own endpoint with a stricter policy of their own.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "frame-src": [CSP.SELF],
    "frame-ancestors": [CSP.SELF],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

# --- Internationalisation and static files --------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# A bare "www.example.com" in a mail links to https://, not http://.
URLIZE_ASSUME_HTTPS = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
# uvicorn serves /static/ itself unless a reverse proxy does (SERVE_STATIC=0).
SERVE_STATIC = env_bool("SERVE_STATIC", True)

# --- Secrets at rest ------------------------------------------------------------------------

# Fernet keys, comma-separated: the first encrypts, all of them decrypt (key rotation).
ENCRYPTION_KEYS = [
    k.strip() for k in env_secret("KOTAK_ENCRYPTION_KEYS").split(",") if k.strip()
] or [persisted_secret(DATA_DIR / "encryption_key", lambda: Fernet.generate_key().decode())]

# --- IMAP -----------------------------------------------------------------------------------

IMAP_TIMEOUT = env_int("IMAP_TIMEOUT", 30)
# Mail servers on private, loopback or link-local addresses are refused (no SSRF through "add
# a mailbox") unless their network is listed here, e.g. "10.0.0.0/8,192.168.1.20/32".
OUTBOUND_ALLOWED_NETWORKS = [
    n.strip() for n in env_str("OUTBOUND_ALLOWED_NETWORKS").split(",") if n.strip()
]
# Ports mail servers may be reached on; "*" allows any.
OUTBOUND_ALLOWED_PORTS = [
    p.strip()
    for p in env_str("OUTBOUND_ALLOWED_PORTS", "25,143,465,587,993,2525").split(",")
    if p.strip()
]
# IMAP connections one mailbox may have open at once, watcher included, across all processes.
IMAP_MAX_CONNECTIONS = env_int("IMAP_MAX_CONNECTIONS", 3)
# How long a task or page waits for a free connection before giving up (a task retries).
IMAP_SLOT_WAIT = env_int("IMAP_SLOT_WAIT", 20)
# Messages fetched per round trip and per database transaction during a sync.
SYNC_WINDOW = env_int("SYNC_WINDOW", 1000)
MESSAGES_PER_PAGE = env_int("MESSAGES_PER_PAGE", 50)
# Bodies of the newest unopened messages fetched after new mail arrives (0: only on opening).
PREFETCH_BODIES = env_int("PREFETCH_BODIES", 20)
# Seconds a sent message waits in the outbox, so "Undo" can still stop it.
SEND_UNDO_SECONDS = env_int("SEND_UNDO_SECONDS", 10)
# Seconds of typing between two copies of a draft filed in the Drafts folder.
DRAFT_FILE_DELAY = env_int("DRAFT_FILE_DELAY", 20)
# Largest attachment (each, and all of a message's together), in MB.
COMPOSE_MAX_ATTACHMENT_MB = env_int("COMPOSE_MAX_ATTACHMENT_MB", 25)
COMPOSE_MAX_RECIPIENTS = env_int("COMPOSE_MAX_RECIPIENTS", 100)
# Seconds a move, archive or delete can be undone before it is sent to the server.
UNDO_SECONDS = env_int("UNDO_SECONDS", 6)
# Longest wait between two attempts to apply a change while the server cannot be reached.
WRITEBACK_RETRY_MAX = env_int("WRITEBACK_RETRY_MAX", 900)
# Every folder is compared in full (all UIDs and flags) this often, whatever CONDSTORE/QRESYNC
# say: the audit that catches a server bug or a lost notification.
SYNC_FULL_SCAN_INTERVAL = env_int("SYNC_FULL_SCAN_INTERVAL", 86400)
# Hours the change log is kept for event streams to resume from (Last-Event-ID).
CHANGE_LOG_HOURS = env_int("CHANGE_LOG_HOURS", 48)

# --- Celery ---------------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    # kombu's filesystem transport, with messages written atomically (see webmail/broker.py).
    CELERY_BROKER_TRANSPORT = "webmail.broker:Transport"
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # kombu polls the folder once a second by default: too slow for live updates.
        "polling_interval": 0.1,
    }
    for _folder in ("queue", "control", "processed"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Safety net: catches whatever a missed notification or a dead worker left behind.
    "sync-all-mailboxes": {
        "task": "webmail.sync.tasks.sync_all_mailboxes",
        "schedule": env_int("SYNC_INTERVAL", 300),
    },
    # Changes that could not be queued when made (broker down) or are due for another try.
    "apply-pending-changes": {
        "task": "webmail.sync.tasks.apply_due_changes",
        "schedule": env_int("WRITEBACK_SWEEP_INTERVAL", 15),
    },
    # The outbox: queued messages whose undo window is over, and retries.
    "send-outgoing": {
        "task": "webmail.sync.tasks.send_all_outgoing",
        "schedule": 15,
    },
    # Snoozed conversations come back on time (to the minute).
    "wake-snoozed": {
        "task": "webmail.sync.tasks.wake_snoozed",
        "schedule": 60,
    },
    # The change log, presence and move tombstones only matter for a while: keep tables small.
    "trim-logs": {
        "task": "webmail.sync.tasks.trim_logs",
        "schedule": 3600,
    },
}

# --- Watchers (IDLE connections held inside the Celery workers) ----------------------------

# 0 turns watchers off in this worker (e.g. workers on a host that should only run tasks).
WATCHERS = env_bool("WATCHERS", True)
WATCHER_MAX_MAILBOXES = env_int("WATCHER_MAX_MAILBOXES", 1000)
# A watcher renews its lease every third of this; a dead worker's mailboxes move on after it.
WATCHER_LEASE_TTL = env_int("WATCHER_LEASE_TTL", 60)
# DONE and re-IDLE this often (RFC 2177 says at most 29 minutes; NATs forget sooner).
WATCHER_IDLE_RENEW = env_int("WATCHER_IDLE_RENEW", 290)
# How often the folders other than INBOX are checked with (LIST-)STATUS.
WATCHER_STATUS_INTERVAL = env_int("WATCHER_STATUS_INTERVAL", 60)
# On a server without IDLE: how often INBOX is checked with NOOP instead.
WATCHER_POLL_INTERVAL = env_int("WATCHER_POLL_INTERVAL", 15)
WATCHER_BACKOFF_MAX = env_int("WATCHER_BACKOFF_MAX", 300)

# --- Live updates ---------------------------------------------------------------------------

# "redis" publishes a nudge after each commit; "poll" makes the event stream read the change log.
LIVE_BACKEND = env_str("LIVE_BACKEND", "redis" if REDIS_URL else "poll")

# Login throttling counters (shared by every web process through Redis when there is one).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
LIVE_POLL_INTERVAL = float(env_str("LIVE_POLL_INTERVAL", "0.5"))

# --- Notifications --------------------------------------------------------------------------

# Also email assignments and @mentions (plain text, from DEFAULT_FROM_EMAIL) besides the bell.
NOTIFY_BY_EMAIL = env_bool("NOTIFY_BY_EMAIL", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "kotak@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Django's own mail (notifications, password links) goes through this server. It is not the
# mailboxes' SMTP servers, which each mailbox sets in its answering settings. MAILERS (Django
# 6.1) instead of the deprecated EMAIL_* settings; the environment keeps the familiar names.
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": env_str("EMAIL_HOST", "localhost"),
            "port": env_int("EMAIL_PORT", 25),
            "username": env_str("EMAIL_HOST_USER"),
            "password": env_secret("EMAIL_HOST_PASSWORD"),
            "use_tls": env_bool("EMAIL_USE_TLS", False),
            "use_ssl": env_bool("EMAIL_USE_SSL", False),
            "timeout": env_int("EMAIL_TIMEOUT", 10),
        },
    }
}

# --- Logging --------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"imapclient": {"level": "WARNING"}},
}
