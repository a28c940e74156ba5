"""No SSRF through "add a mailbox": where Kotak connects, checked before it connects."""

from __future__ import annotations

import socket

import pytest

from webmail import net, smtp
from webmail.imap.client import CertificateProblem, Security, ServerSettings, connect

REFUSED = "Mail servers must be on a public address and a mail port"


@pytest.fixture
def strict(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.OUTBOUND_ALLOWED_PORTS = ["25", "143", "465", "587", "993"]
    return settings


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.5",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "::ffff:127.0.0.1",
        "fe80::1",
        "224.0.0.1",
    ],
)
def test_private_local_and_metadata_addresses_are_refused(strict, host):
    with pytest.raises(net.AddressNotAllowed, match=REFUSED):
        net.resolve(host, 993)


def test_only_mail_ports_are_allowed(strict, monkeypatch):
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 22))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: public)
    with pytest.raises(net.AddressNotAllowed, match=REFUSED):
        net.resolve("mail.example.com", 22)
    assert net.resolve("mail.example.com", 993) == "93.184.215.14"


def test_every_refusal_reads_the_same(strict):
    messages = set()
    for host, port in (("127.0.0.1", 993), ("10.0.0.1", 143), ("8.8.8.8", 22)):
        with pytest.raises(net.AddressNotAllowed) as info:
            net.resolve(host, port)
        messages.add(str(info.value).replace(f"{host}:{port}", "X"))
    assert len(messages) == 1


def test_an_allowed_network_is_let_through_but_metadata_never_is(strict):
    strict.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert net.resolve("10.1.2.3", 993) == "10.1.2.3"
    with pytest.raises(net.AddressNotAllowed):
        net.resolve("169.254.169.254", 993)


def test_a_name_that_resolves_to_a_private_address_is_refused(strict, monkeypatch):
    inside = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 993))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: inside)
    with pytest.raises(net.AddressNotAllowed):
        net.resolve("innocent-looking.example.com", 993)


@pytest.mark.imap
def test_the_suites_dovecot_is_refused_unless_allowed(strict, dovecot):
    server = ServerSettings(
        host="127.0.0.1",
        port=dovecot.imaps_port,
        security=Security.SSL,
        username="x",
        password="y",
        ca_certificates=dovecot.ca_cert_pem,
    )
    strict.OUTBOUND_ALLOWED_PORTS = ["*"]
    with pytest.raises(net.AddressNotAllowed):
        connect(server, timeout=5)
    with pytest.raises(net.AddressNotAllowed):
        smtp.verify(smtp.SmtpSettings(host="127.0.0.1", port=dovecot.imaps_port, security="ssl"))


@pytest.mark.imap
def test_the_checked_address_is_the_one_connected_to(settings, dovecot, monkeypatch):
    """The name is resolved once; the connection goes to that address, and the certificate
    is still checked against the name (so a rebinding DNS gains nothing either way)."""
    calls = []
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        calls.append(host)
        if host == "mail.example.test":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    server = ServerSettings(
        host="mail.example.test",
        port=dovecot.imaps_port,
        security=Security.SSL,
        username="x",
        password="y",
        ca_certificates=dovecot.ca_cert_pem,
    )
    # Our Dovecot answered (pinned to 127.0.0.1), and its certificate is not for that name.
    with pytest.raises(CertificateProblem, match="mail.example.test"):
        connect(server, timeout=5)
    assert calls.count("mail.example.test") == 1
