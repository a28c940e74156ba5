"""Sending over SMTP from the shared address, with errors a person can act on.

TLS is verified against the system store (plus the mailbox's own CA, as for IMAP); STARTTLS
chosen means STARTTLS required; plaintext only when the mailbox says so explicitly.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage

from webmail import net
from webmail.imap.client import (
    AuthenticationFailed,
    CertificateProblem,
    ConnectError,
    ConnectionRefused,
    ConnectionTimedOut,
    HostNotFound,
    ProtocolProblem,
    Security,
    ServerUnavailable,
    TLSFailed,
    certificate_message,
    ssl_context,
)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: Security
    username: str = ""
    password: str = field(default="", repr=False)
    ca_certificates: str = field(default="", repr=False)


class Rejected(Exception):
    """The server refused this message (a recipient, its size, its content): sending it again
    as it is will not help. str() is the server's answer."""


class TryLater(Exception):
    """The server could not take the message now (4xx, connection lost): retry later."""


def settings_for(mailbox) -> SmtpSettings:
    return SmtpSettings(
        host=mailbox.smtp_host,
        port=mailbox.smtp_port or (465 if mailbox.smtp_security == Security.SSL else 587),
        security=Security(mailbox.smtp_security),
        username=mailbox.smtp_username,
        password=mailbox.smtp_password,
        ca_certificates=mailbox.ca_certificates,
    )


@contextmanager
def connection(server: SmtpSettings, timeout: float = 30) -> Iterator[smtplib.SMTP]:
    """An authenticated SMTP session; raises a ConnectError subclass on failure."""
    smtp = _open(server, timeout)
    try:
        yield smtp
    finally:
        with suppress(Exception):
            smtp.quit()
        with suppress(Exception):
            smtp.close()


def verify(server: SmtpSettings, timeout: float = 15) -> None:
    """Connect, secure and log in once, to check the settings before they are saved."""
    with connection(server, timeout):
        pass


def send(server: SmtpSettings, message: EmailMessage, sender: str, recipients: list[str]) -> None:
    """Hand one message to the server. Rejected: permanent; TryLater: transient."""
    with connection(server) as smtp:
        try:
            refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            raise Rejected(_refusals(exc.recipients)) from exc
        except smtplib.SMTPResponseException as exc:
            text = f"{exc.smtp_code} {_decode(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise TryLater(text) from exc
            raise Rejected(text) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise TryLater(f"The connection to the SMTP server was lost: {exc}") from exc
        if refused:
            # Some recipients took it, others did not: it was sent; say who was refused.
            raise Rejected("Not delivered to " + _refusals(refused))


def _open(server: SmtpSettings, timeout: float) -> smtplib.SMTP:
    where = f"{server.host}:{server.port}"
    context = ssl_context(server.ca_certificates)
    address = net.resolve(server.host, server.port)
    try:
        if server.security == Security.SSL:
            smtp = net.PinnedSMTP_SSL(
                server.host, server.port, address, context=context, timeout=timeout
            )
        else:
            smtp = net.PinnedSMTP(server.host, server.port, address, timeout=timeout)
    except socket.gaierror as exc:
        raise HostNotFound(f"The server name {server.host!r} could not be found.") from exc
    except ssl.SSLCertVerificationError as exc:
        raise CertificateProblem(certificate_message(server.host, exc)) from exc
    except ssl.SSLError as exc:
        raise TLSFailed(
            f"A TLS connection to {where} could not be set up ({exc.reason or exc}). "
            "Is this the right port for SSL/TLS?"
        ) from exc
    except TimeoutError as exc:
        raise ConnectionTimedOut(f"{where} did not answer in time.") from exc
    except ConnectionRefusedError as exc:
        raise ConnectionRefused(f"{where} refused the connection. Check the port.") from exc
    except smtplib.SMTPConnectError as exc:
        raise ServerUnavailable(f"{where} is not taking connections: {exc}") from exc
    except smtplib.SMTPException as exc:
        raise ProtocolProblem(f"{where} did not greet like an SMTP server: {exc}") from exc
    except OSError as exc:
        raise ConnectError(f"Could not connect to {where}: {exc.strerror or exc}") from exc
    try:
        smtp.ehlo()
        if server.security == Security.STARTTLS:
            if not smtp.has_extn("starttls"):
                # STARTTLS chosen means STARTTLS required: never fall back to plaintext.
                raise TLSFailed(f"{where} does not offer STARTTLS.")
            smtp.starttls(context=context)
            smtp.ehlo()
        if server.username:
            smtp.login(server.username, server.password)
    except smtplib.SMTPAuthenticationError as exc:
        _close(smtp)
        raise AuthenticationFailed(
            f"The server rejected the username or password ({_decode(exc.smtp_error)})."
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        _close(smtp)
        raise ProtocolProblem(
            f"{where} offers no login; leave the username empty if it needs none."
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        _close(smtp)
        raise CertificateProblem(certificate_message(server.host, exc)) from exc
    except ssl.SSLError as exc:
        _close(smtp)
        raise TLSFailed(f"STARTTLS with {where} failed ({exc.reason or exc}).") from exc
    except ConnectError:
        _close(smtp)
        raise
    except (smtplib.SMTPException, OSError) as exc:
        _close(smtp)
        raise ProtocolProblem(f"Setting up the session with {where} failed: {exc}") from exc
    return smtp


def _decode(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _refusals(recipients: dict) -> str:
    return "; ".join(
        f"{address}: {code} {_decode(text)}" for address, (code, text) in recipients.items()
    )


def _close(smtp: smtplib.SMTP) -> None:
    with suppress(Exception):
        smtp.close()
