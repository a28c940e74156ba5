"""Where Kotak may connect: no SSRF through "add a mailbox" (DESIGN §7).

Whoever configures a mailbox chooses a host and a port, and the server then connects there.
Hosts that resolve to loopback, private, link-local, shared, reserved or cloud-metadata
addresses are refused unless an administrator allows their network
(OUTBOUND_ALLOWED_NETWORKS), and only mail ports are allowed (OUTBOUND_ALLOWED_PORTS). The name
is resolved once and the checked address is the one connected to, so a DNS answer that
changes between check and connect (rebinding) cannot redirect the connection. The refusal
reads the same whatever the reason, so it does not map the inside network for anyone.
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl

from django.conf import settings
from imapclient import imap4, tls

from webmail.imap.client import ConnectError, HostNotFound

# Cloud metadata services answer on these even where they look "global" (AWS, GCP, Azure,
# Alibaba, Oracle); refused whatever the allowlist says about public addresses.
METADATA = [
    ipaddress.ip_network(n) for n in ("169.254.0.0/16", "100.100.100.200/32", "fd00:ec2::/32")
]


class AddressNotAllowed(ConnectError):
    code = "address_not_allowed"


def _allowed_networks() -> list[ipaddress._BaseNetwork]:
    return [
        ipaddress.ip_network(n.strip(), strict=False)
        for n in settings.OUTBOUND_ALLOWED_NETWORKS
        if n.strip()
    ]


def _port_allowed(port: int) -> bool:
    allowed = settings.OUTBOUND_ALLOWED_PORTS
    return "*" in allowed or port in {int(p) for p in allowed if str(p).strip().isdigit()}


def _address_allowed(ip: ipaddress._BaseAddress, allowed: list) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed):
        return True
    if any(ip in network for network in METADATA):
        return False
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> str:
    """The address to connect to for host:port, or AddressNotAllowed / HostNotFound."""
    refusal = AddressNotAllowed(
        f"Kotak does not connect to {host}:{port}. Mail servers must be on a public address "
        "and a mail port (an administrator can allow others in Kotak's settings)."
    )
    if not _port_allowed(port):
        raise refusal
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFound(f"The server name {host!r} could not be found.") from exc
    allowed = _allowed_networks()
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if _address_allowed(ip, allowed):
            return sockaddr[0]
    raise refusal


# -- connecting to the checked address while speaking TLS to the name --------------------------


class _PinnedTLS(tls.IMAP4_TLS):
    address = ""

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.address, self.port), timeout=timeout)
        return tls.wrap_socket(sock, self.ssl_context, self.host)


class _PinnedPlain(imap4.IMAP4WithTimeout):
    address = ""

    def _create_socket(self, timeout=None):
        return socket.create_connection(
            (self.address, self.port), timeout if timeout is not None else self._timeout
        )


def pinned_imap_class(address: str):
    """An IMAPClient subclass whose socket goes to `address` (certificate checked for host)."""
    import imapclient

    tls_class = type("PinnedTLS", (_PinnedTLS,), {"address": address})
    plain_class = type("PinnedPlain", (_PinnedPlain,), {"address": address})

    class PinnedIMAPClient(imapclient.IMAPClient):
        def _create_IMAP4(self):
            timeout = getattr(self._timeout, "connect", None)
            if self.ssl:
                return tls_class(self.host, self.port, self.ssl_context, timeout)
            return plain_class(self.host, self.port, timeout)

    return PinnedIMAPClient


class PinnedSMTP(smtplib.SMTP):
    def __init__(self, host: str, port: int, address: str, **kwargs):
        self._address = address
        super().__init__(host, port, **kwargs)

    def _get_socket(self, host, port, timeout):
        return socket.create_connection((self._address, port), timeout, self.source_address)


class PinnedSMTP_SSL(smtplib.SMTP_SSL):  # noqa: N801 — mirrors smtplib's name
    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext, **kwargs):
        self._address = address
        super().__init__(host, port, context=context, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((self._address, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self._host)
