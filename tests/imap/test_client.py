"""Connecting to the suite's Dovecot: every failure becomes a specific, readable error."""

import os
import socket

import pytest

from webmail.imap.client import (
    AuthenticationFailed,
    CertificateProblem,
    ConnectionRefused,
    HostNotFound,
    Security,
    ServerSettings,
    TLSFailed,
    connect,
    verify,
)

pytestmark = pytest.mark.imap


def settings_for(dovecot, security=Security.SSL, **overrides) -> ServerSettings:
    values = {
        "host": dovecot.host,
        "port": dovecot.imaps_port if security == Security.SSL else dovecot.imap_port,
        "security": security,
        "username": "alice",
        "password": "secret-alice",
        "ca_certificates": dovecot.ca_cert_pem,
    } | overrides
    return ServerSettings(**values)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS, Security.PLAIN])
def test_it_logs_in_with_each_kind_of_security(dovecot, security):
    client = connect(settings_for(dovecot, security))
    try:
        assert client.select_folder("INBOX")[b"UIDVALIDITY"]
        is_tls = hasattr(client._imap.sock, "getpeercert")
        assert is_tls == (security != Security.PLAIN)
        assert client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        client.logout()


def test_it_reports_the_servers_capabilities(dovecot):
    capabilities = verify(settings_for(dovecot))
    assert {"IDLE", "CONDSTORE", "QRESYNC", "SPECIAL-USE", "MOVE"} <= set(capabilities)


def test_a_wrong_password_is_an_authentication_error(dovecot):
    with pytest.raises(AuthenticationFailed, match="rejected the username or password"):
        connect(settings_for(dovecot, password="wrong"))


def test_an_unknown_host_is_reported_by_name():
    server = ServerSettings("imap.does-not-exist.invalid", 993, Security.SSL, "a", "b")
    with pytest.raises(HostNotFound, match="imap.does-not-exist.invalid"):
        connect(server)


def test_a_refused_port_is_reported(dovecot):
    port = unused_port()
    with pytest.raises(ConnectionRefused, match=f"127.0.0.1:{port} refused"):
        connect(settings_for(dovecot, port=port))


def test_a_self_signed_certificate_is_rejected_without_its_ca(dovecot):
    with pytest.raises(CertificateProblem, match="could not be verified"):
        connect(settings_for(dovecot, ca_certificates=""))


def test_starttls_verifies_the_certificate_too(dovecot):
    with pytest.raises(CertificateProblem):
        connect(settings_for(dovecot, Security.STARTTLS, ca_certificates=""))


def test_a_certificate_signed_by_another_ca_is_rejected(dovecot, plain_dovecot):
    # Each test server has its own self-signed certificate: trusting one is not trusting all.
    with pytest.raises(CertificateProblem):
        connect(settings_for(dovecot, ca_certificates=plain_dovecot.ca_cert_pem))


def test_ssl_on_a_plain_port_is_a_tls_error(dovecot):
    with pytest.raises(TLSFailed, match="right port"):
        connect(settings_for(dovecot, port=dovecot.imap_port))


def test_an_unreadable_custom_ca_is_reported(dovecot):
    with pytest.raises(CertificateProblem, match="custom CA"):
        connect(settings_for(dovecot, ca_certificates="-----BEGIN CERTIFICATE-----\nnope\n"))


@pytest.mark.skipif(os.geteuid() != 0, reason="Dovecot's auth process must run as another user")
def test_a_temporary_login_failure_is_not_taken_for_a_wrong_password():
    """Dovecot answers NO [UNAVAILABLE] when its user database cannot be read: retry later,
    do not stop the mailbox as if its password were wrong."""
    from tests.dovecot import Dovecot, dovecot_dir
    from webmail.imap.client import ServerUnavailable

    with dovecot_dir("unavailable") as path, Dovecot.start(path, users={"ops": "pw-ops"}) as server:
        settings = settings_for(server, username="ops", password="pw-ops")
        # Dovecot's auth process runs unprivileged: cut it off from its passwd-file.
        mode = server.passwd_path.parent.stat().st_mode
        server.passwd_path.parent.chmod(0o700)
        try:
            with pytest.raises(ServerUnavailable, match="UNAVAILABLE"):
                connect(settings)
        finally:
            server.passwd_path.parent.chmod(mode)
        connect(settings).logout()
