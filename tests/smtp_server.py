"""A real SMTP server for the tests: aiosmtpd on a free loopback port, with TLS (STARTTLS or
implicit), AUTH, and faults on demand (a refused recipient, a 4xx on DATA, a slow DATA)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.dovecot import _free_ports


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class Faults:
    refuse: set[str] = field(default_factory=set)
    fail_data: int = 0  # answer this many DATA commands with 451
    reject_data: str = ""  # answer DATA with this 5xx text
    data_delay: float = 0.0


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.server.faults.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        faults = self.server.faults
        if faults.data_delay:
            await asyncio.sleep(faults.data_delay)
        if faults.fail_data:
            faults.fail_data -= 1
            return "451 4.3.0 Mailbox busy, try again later"
        if faults.reject_data:
            return faults.reject_data
        with self.server.lock:
            self.server.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 2.0.0 Queued"


class SmtpServer:
    def __init__(
        self,
        cert: Path,
        key: Path,
        *,
        mode: str = "starttls",
        username: str = "kotak",
        password: str = "smtp-secret",
    ):
        self.mode = mode
        self.username = username
        self.password = password
        self.faults = Faults()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.host = "127.0.0.1"
        self.port = _free_ports(1)[0]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        options = {
            "hostname": self.host,
            "port": self.port,
            "authenticator": self._authenticate,
            # Implicit TLS is TLS too, but aiosmtpd only counts STARTTLS as such.
            "auth_require_tls": mode == "starttls",
        }
        if mode == "ssl":
            options["ssl_context"] = context
        elif mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        self.controller = Controller(_Handler(self), **options)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        if self.mode == "ssl":
            # Controller's readiness check speaks plaintext; wait for the port instead.
            self.controller.ready_timeout = 5
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
        self.faults = Faults()
