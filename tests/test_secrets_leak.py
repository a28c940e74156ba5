"""The IMAP and SMTP passwords never leave the encrypted columns: not in any log line (every
logger at DEBUG, IMAP protocol traces included), not in task arguments or broker messages, not
in any page — the add-mailbox form, the status strip, the 500 page, the Django admin."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import imapclient
import pytest
from celery.app.task import Task
from django.contrib.admin.sites import site as admin_site
from django.test import Client
from django.urls import reverse
from kombu import Connection
from kombu.simple import SimpleQueue

from webmail import compose, outbox
from webmail.celery import app as celery_app
from webmail.models import Mailbox, OutgoingMessage
from webmail.sync import tasks

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

WRONG_PASSWORD = "wrong-imap-Pa55-c0ffee"
# The suite's SMTP server (aiosmtpd) logs the AUTH exchange it receives at DEBUG: its own log,
# not Kotak's.
FOREIGN_LOGGERS = ("mail.log",)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(FOREIGN_LOGGERS):
            self.records.append(record)

    def texts(self) -> list[str]:
        """Each record as any handler could write it: message, traceback, extra attributes."""
        out = []
        for record in self.records:
            extras = {k: v for k, v in vars(record).items() if k not in ("msg", "args")}
            out.append(f"{self.format(record)}\n{record.msg!r} {record.args!r} {extras!r}")
        return out


@contextmanager
def every_log_record() -> Iterator[Capture]:
    """Every logger at DEBUG (the settings keep imapclient at WARNING), all into one list."""
    capture = Capture()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    disabled = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if logger is logging.root or not logger.propagate:
            logger.addHandler(capture)
    # Loggers created from here on inherit DEBUG from the root.
    try:
        yield capture
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
            if capture in logger.handlers:
                logger.removeHandler(capture)
        logging.disable(disabled)


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, tuple, dict]]:
    """Every task queued during the test (eager, so they also run): name, args, kwargs."""
    calls: list[tuple[str, tuple, dict]] = []
    original = Task.apply_async

    def apply_async(self, args=None, kwargs=None, *rest, **options):
        calls.append((self.name, tuple(args or ()), dict(kwargs or {})))
        return original(self, args, kwargs, *rest, **options)

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return calls


def broker_messages(calls: list[tuple[str, tuple, dict]]) -> list[str]:
    """The same tasks sent for real, not eagerly, through kombu's in-memory transport: each
    message as the broker holds it (headers with argsrepr, properties, encoded body) and its
    decoded body."""
    calls = list(calls)  # the recorder is still on: sending appends to the original list
    queue_name = f"secrets-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []
    celery_app.conf.task_always_eager = False
    try:
        with Connection("memory://") as connection:
            for name, args, kwargs in calls:
                celery_app.tasks[name].apply_async(
                    args, kwargs, connection=connection, queue=queue_name
                )
            queue = SimpleQueue(connection, queue_name)
            try:
                for _ in calls:
                    message = queue.get(timeout=2)
                    seen.append(json.dumps(message.headers, default=repr))
                    seen.append(json.dumps(message.properties, default=repr))
                    seen.append(repr(message.body))
                    seen.append(json.dumps(message.decode(), default=repr))
                    message.ack()
            finally:
                queue.close()
    finally:
        celery_app.conf.task_always_eager = True  # as tests/conftest.py has it
    return seen


def test_passwords_appear_in_no_log_task_broker_message_or_page(
    client,
    admin_user,
    imap_account,
    smtp,
    published,
    monkeypatch,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.DEBUG = False
    settings.PREFETCH_BODIES = 0  # opening a message then logs in to fetch its body
    pages: dict[str, str] = {}

    def visit(label: str, response) -> None:
        pages[label] = response.content.decode("utf-8", "replace")

    def committed():
        return django_capture_on_commit_callbacks(execute=True)

    server = imap_account.server
    form = {
        "team": "Support",
        "name": "Support",
        "email": imap_account.address,
        "imap_host": server.host,
        "imap_security": "ssl",
        "imap_port": server.imaps_port,
        "imap_username": imap_account.username,
        "imap_password": imap_account.password,
        "ca_certificates": server.ca_cert_pem,
    }
    imap_account.deliver("Where is my parcel?", sender="Carla <carla@customer.example>")

    with every_log_record() as logs:
        client.force_login(admin_user)
        visit("add form", client.get(reverse("add_mailbox")))
        refused = client.post(reverse("add_mailbox"), form | {"imap_password": WRONG_PASSWORD})
        assert "rejected the username or password" in refused.content.decode()
        visit("add form, wrong password", refused)
        with committed():  # the form logs in, saves, and the first sync runs after commit
            response = client.post(reverse("add_mailbox"), form)
        assert response.status_code == 302
        mailbox = Mailbox.objects.get()
        mailbox.smtp_host, mailbox.smtp_port = smtp.host, smtp.port
        mailbox.smtp_security, mailbox.smtp_username = "starttls", smtp.username
        mailbox.smtp_password = smtp.password
        mailbox.save()
        tokens = [mailbox.imap_password_encrypted, mailbox.smtp_password_encrypted]

        inbox = mailbox.folders.get(special_use="inbox")
        message = inbox.messages.get()
        visit("mailbox", client.get(response["Location"], follow=True))
        visit("folder", client.get(inbox.get_absolute_url()))
        with committed():  # opening fetches the body over IMAP and marks it read (write-back)
            visit("message", client.get(message.get_absolute_url()))
        with committed():
            acted = client.post(
                reverse("act", args=[mailbox.pk]),
                {"action": "flag", "message": [message.pk]},
                HTTP_HX_REQUEST="true",
            )
        assert acted.status_code == 204
        assert not mailbox.pending_changes.exists(), "the flag did not reach the server"

        reply = compose.start(admin_user, mailbox, OutgoingMessage.Kind.REPLY, message)
        with committed():  # sent over SMTP with AUTH, then filed in Sent (APPEND)
            outbox.queue(reply, delay=0)
        reply.refresh_from_db()
        assert reply.state == OutgoingMessage.State.SENT
        assert len(smtp.received) == 1

        # A view that fails after logging in to IMAP, with DEBUG off: the 500 page and the
        # "Internal Server Error" record with its traceback.
        imap_account.deliver("Second question")
        with committed():
            tasks.enqueue_sync(mailbox.pk)
        second = inbox.messages.get(subject="Second question")

        def broken_fetch(self, *args, **kwargs):
            raise RuntimeError("unexpected FETCH answer")

        failing = Client(raise_request_exception=False)
        failing.force_login(admin_user)
        with monkeypatch.context() as patch:
            patch.setattr(imapclient.IMAPClient, "fetch", broken_fetch)
            crashed = failing.get(second.get_absolute_url())
        assert crashed.status_code == 500
        visit("500", crashed)

        # The server no longer takes the stored password: the status strip says so.
        mailbox.refresh_from_db()
        mailbox.imap_password = WRONG_PASSWORD
        mailbox.save()
        tokens.append(mailbox.imap_password_encrypted)
        with committed():
            tasks.enqueue_sync(mailbox.pk)
        mailbox.refresh_from_db()
        assert mailbox.status == Mailbox.Status.NEEDS_ATTENTION
        strip = client.get(reverse("mailbox_status", args=[mailbox.pk]))
        assert "rejected the username or password" in strip.content.decode()
        visit("status strip", strip)

        assert admin_site.is_registered(Mailbox)
        visit("admin list", client.get(reverse("admin:webmail_mailbox_changelist")))
        admin_page = client.get(reverse("admin:webmail_mailbox_change", args=[mailbox.pk]))
        assert admin_page.status_code == 200
        assert imap_account.username in admin_page.content.decode()  # the page shows the row
        visit("admin change", admin_page)

    assert any(r.name.startswith("imapclient") for r in logs.records), "no IMAP trace captured"
    assert any("LOGIN" in r.getMessage() for r in logs.records), "no LOGIN line captured"
    assert any(r.name == "django.request" and r.exc_info for r in logs.records)
    task_names = {name.rsplit(".", 1)[-1] for name, _, _ in published}
    assert {"sync_mailbox", "apply_changes", "send_outgoing"} <= task_names
    sent = list(published)
    messages = broker_messages(sent)
    assert len(messages) == 4 * len(sent)

    secrets = [imap_account.password, smtp.password, WRONG_PASSWORD, *tokens]
    places = {f"log: {text[:120]!r}": text for text in logs.texts()}
    places |= {f"task {name}": repr((args, kwargs)) for name, args, kwargs in sent}
    places |= {f"broker message {n}": text for n, text in enumerate(messages)}
    places |= {f"page: {label}": html for label, html in pages.items()}
    leaks = [
        f"{secret[:12]}… in {where}"
        for where, text in places.items()
        for secret in secrets
        if secret and secret in text
    ]
    assert not leaks, "\n".join(leaks)
