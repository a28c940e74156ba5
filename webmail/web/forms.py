"""Forms. The mailbox form proves its settings by logging in before anything is saved."""

from __future__ import annotations

from django import forms

from webmail.imap.client import (
    AuthenticationFailed,
    CertificateProblem,
    ConnectError,
    ConnectionRefused,
    HostNotFound,
    Security,
    ServerSettings,
    TLSFailed,
    verify,
)
from webmail.net import AddressNotAllowed

# Which field a connection error belongs to, so the message appears where the fix is.
ERROR_FIELDS = {
    HostNotFound: "imap_host",
    ConnectionRefused: "imap_port",
    AuthenticationFailed: "imap_password",
    CertificateProblem: "ca_certificates",
    TLSFailed: "imap_security",
    AddressNotAllowed: "imap_host",
}


class MailboxForm(forms.Form):
    team = forms.CharField(max_length=100, initial="Support", help_text="Who shares this mailbox.")
    name = forms.CharField(max_length=100, help_text="Shown to the team, e.g. “Support”.")
    email = forms.EmailField(label="Email address")
    imap_host = forms.CharField(label="IMAP server", max_length=255)
    imap_security = forms.ChoiceField(
        label="Security", choices=Security.choices(), initial=Security.SSL
    )
    imap_port = forms.IntegerField(label="Port", min_value=1, max_value=65535, initial=993)
    imap_username = forms.CharField(label="Username", max_length=320)
    imap_password = forms.CharField(
        label="Password", widget=forms.PasswordInput(render_value=False), strip=False
    )
    ca_certificates = forms.CharField(
        label="Trusted CA certificate (PEM, optional)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Only for servers whose certificate is signed by a private CA.",
    )

    def clean_imap_host(self) -> str:
        host = self.cleaned_data["imap_host"].strip()
        if any(ch.isspace() or ch in "/@" for ch in host):
            raise forms.ValidationError("Enter a host name or IP address, e.g. imap.example.com.")
        return host

    def server_settings(self) -> ServerSettings:
        data = self.cleaned_data
        return ServerSettings(
            host=data["imap_host"],
            port=data["imap_port"],
            security=Security(data["imap_security"]),
            username=data["imap_username"],
            password=data["imap_password"],
            ca_certificates=data.get("ca_certificates", ""),
        )

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        try:
            data["capabilities"] = verify(self.server_settings())
        except ConnectError as exc:
            field = ERROR_FIELDS.get(type(exc))
            self.add_error(field, str(exc))
        return data
