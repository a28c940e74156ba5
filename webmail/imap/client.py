"""Opening authenticated IMAP connections, with errors a person can act on."""

from __future__ import annotations

import errno
import socket
import ssl
import time
from contextlib import suppress
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError


class Security(StrEnum):
    SSL = "ssl"
    STARTTLS = "starttls"
    PLAIN = "plain"

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [
            (cls.SSL, "SSL/TLS (port 993)"),
            (cls.STARTTLS, "STARTTLS, required (port 143)"),
            (cls.PLAIN, "None — insecure, password sent in clear"),
        ]


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    security: Security
    username: str
    password: str = field(repr=False)
    ca_certificates: str = field(default="", repr=False)


class ConnectError(Exception):
    """Connecting or logging in failed; str(error) is meant for the person who configured it."""

    code = "error"

    @property
    def is_authentication(self) -> bool:
        return isinstance(self, AuthenticationFailed)


class HostNotFound(ConnectError):
    code = "host_not_found"


class ConnectionRefused(ConnectError):
    code = "connection_refused"


class ConnectionTimedOut(ConnectError):
    code = "timeout"


class CertificateProblem(ConnectError):
    code = "certificate"


class TLSFailed(ConnectError):
    code = "tls"


class AuthenticationFailed(ConnectError):
    code = "authentication"


class ServerUnavailable(ConnectError):
    """The server refused the login for a reason of its own, not the credentials."""

    code = "unavailable"


# RFC 5530 response codes of a NO to LOGIN that say "not now", not "wrong password".
TRANSIENT_LOGIN_CODES = ("[UNAVAILABLE]", "[SERVERBUG]", "[INUSE]", "[LIMIT]")


class ProtocolProblem(ConnectError):
    code = "protocol"


@lru_cache(maxsize=64)
def ssl_context(ca_certificates: str = "") -> ssl.SSLContext:
    """The system trust store, plus any PEM certificates configured for this server.

    Cached: loading the system store costs ~60 ms, more than the rest of a no-change sync.
    """
    context = ssl.create_default_context()
    if ca_certificates.strip():
        try:
            context.load_verify_locations(cadata=ca_certificates)
        except (ssl.SSLError, ValueError) as exc:
            raise CertificateProblem(f"The custom CA certificate could not be read: {exc}") from exc
    return context


def tune_socket(sock: socket.socket) -> None:
    """TCP_NODELAY (Nagle + delayed ACK cost ~40 ms per command) and keepalive for long IDLEs."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 20), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def connect(server: ServerSettings, timeout: float = 30) -> imapclient.IMAPClient:
    """Connect, secure the connection as configured, log in. Raise a ConnectError subclass.

    A login refused without an RFC 5530 code ("NO Shutting down", "NO Login failed") is
    ambiguous; it is tried once more a moment later, and only a second refusal is taken for
    wrong credentials, which stop the mailbox until a person fixes them.
    """
    try:
        return _connect(server, timeout)
    except AmbiguousLoginRefusal:
        time.sleep(LOGIN_RETRY_DELAY)
    try:
        return _connect(server, timeout)
    except AmbiguousLoginRefusal as exc:
        raise AuthenticationFailed(str(exc)) from exc


class AmbiguousLoginRefusal(AuthenticationFailed):
    """A NO to LOGIN that names no reason."""


LOGIN_RETRY_DELAY = 1.0
# RFC 5530 codes that do mean the credentials (or the account) are the problem.
CREDENTIAL_CODES = (
    "[AUTHENTICATIONFAILED]",
    "[AUTHORIZATIONFAILED]",
    "[EXPIRED]",
    "[PRIVACYREQUIRED]",
)


def _connect(server: ServerSettings, timeout: float) -> imapclient.IMAPClient:
    from webmail import net  # (imports this module)

    where = f"{server.host}:{server.port}"
    context = ssl_context(server.ca_certificates)
    address = net.resolve(server.host, server.port)
    try:
        client = net.pinned_imap_class(address)(
            server.host,
            port=server.port,
            ssl=server.security == Security.SSL,
            ssl_context=context,
            timeout=timeout,
        )
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
    except OSError as exc:
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            raise ConnectionTimedOut(f"{where} cannot be reached from here.") from exc
        raise ConnectError(f"Could not connect to {where}: {exc.strerror or exc}") from exc
    except IMAPClientError as exc:
        raise ProtocolProblem(f"{where} did not greet like an IMAP server: {exc}") from exc

    try:
        tune_socket(client.socket())
        client.folder_encode = False  # keep names as the server spells them; we decode
        if server.security == Security.STARTTLS:
            if not client.has_capability("STARTTLS"):
                # STARTTLS chosen means STARTTLS required: never fall back to plaintext.
                raise TLSFailed(f"{where} does not offer STARTTLS.")
            client.starttls(context)
        client.login(server.username, server.password)
    except LoginError as exc:
        _close(client)
        text = _server_text(exc)
        if any(code in text.upper() for code in TRANSIENT_LOGIN_CODES):
            # Treating these as a wrong password would stop the mailbox until a person came.
            raise ServerUnavailable(f"{where} could not log in right now ({text}).") from exc
        message = f"The server rejected the username or password ({text})."
        if any(code in text.upper() for code in CREDENTIAL_CODES):
            raise AuthenticationFailed(message) from exc
        raise AmbiguousLoginRefusal(message) from exc
    except ssl.SSLCertVerificationError as exc:
        _close(client)
        raise CertificateProblem(certificate_message(server.host, exc)) from exc
    except ssl.SSLError as exc:
        _close(client)
        raise TLSFailed(f"STARTTLS with {where} failed ({exc.reason or exc}).") from exc
    except TimeoutError as exc:
        _close(client)
        raise ConnectionTimedOut(f"{where} stopped answering during login.") from exc
    except (IMAPClientError, OSError) as exc:
        _close(client)
        raise ProtocolProblem(f"Login to {where} failed: {exc}") from exc
    except ConnectError:
        _close(client)
        raise
    return client


def certificate_message(host: str, exc: ssl.SSLCertVerificationError) -> str:
    """What to tell the person who configured a server whose certificate did not verify."""
    reason = exc.verify_message or exc.reason or str(exc)
    return (
        f"The certificate of {host} could not be verified ({reason}). "
        "If the server uses a private CA, add its certificate to the mailbox settings."
    )


def _server_text(exc: Exception) -> str:
    text = str(exc)
    return text.removeprefix("b'").removeprefix('b"').rstrip("'\"") or "no reason given"


def _close(client: imapclient.IMAPClient) -> None:
    # Already failing: the first error is the one to report.
    with suppress(Exception):
        client.shutdown()


def capability_names(client: imapclient.IMAPClient) -> list[str]:
    return sorted(
        cap.decode("ascii", "replace") if isinstance(cap, bytes) else str(cap)
        for cap in client.capabilities()
    )


def verify(server: ServerSettings, timeout: float = 15) -> list[str]:
    """Connect and log in once to check settings; return the server's capabilities."""
    client = connect(server, timeout=timeout)
    try:
        return capability_names(client)
    finally:
        with suppress(Exception):
            client.logout()
