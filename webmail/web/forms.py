"""Forms. The mailbox and answering forms prove their server settings by logging in before
anything is saved."""

from __future__ import annotations

from django import forms

from webmail.imap.client import (
    AuthenticationFailed,
    CertificateProblem,
    ConnectError,
    ConnectionRefused,
    ConnectionTimedOut,
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


# -- answering: SMTP, how the shared address signs, what a reply does -------------------------

SMTP_SECURITY_CHOICES = [
    (Security.SSL, "SSL/TLS (port 465)"),
    (Security.STARTTLS, "STARTTLS, required (port 587)"),
    (Security.PLAIN, "None — insecure, password sent in clear"),
]
SMTP_ERROR_FIELDS = {
    HostNotFound: "smtp_host",
    AddressNotAllowed: "smtp_host",
    ConnectionTimedOut: "smtp_host",
    ConnectionRefused: "smtp_port",
    AuthenticationFailed: "smtp_password",
    TLSFailed: "smtp_security",
    CertificateProblem: "smtp_security",
    # Anything else (a server that does not speak SMTP there, say) is about the whole form.
}
SMTP_FIELDS = ("smtp_host", "smtp_port", "smtp_security", "smtp_username")


class AnsweringForm(forms.Form):
    """A mailbox's sending settings. SMTP settings that changed are proven by logging in
    before they are saved; a blank password keeps the stored one."""

    smtp_host = forms.CharField(
        label="SMTP server",
        max_length=255,
        required=False,
        help_text="Leave empty and Kotak will not send from this mailbox.",
    )
    smtp_security = forms.ChoiceField(
        label="Security", choices=SMTP_SECURITY_CHOICES, initial=Security.SSL
    )
    smtp_port = forms.IntegerField(
        label="Port",
        min_value=1,
        max_value=65535,
        required=False,
        help_text="Empty: 465 for SSL/TLS, 587 otherwise.",
    )
    smtp_username = forms.CharField(label="Username", max_length=320, required=False)
    smtp_password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    from_name = forms.CharField(
        label="Sender name",
        max_length=200,
        required=False,
        help_text="The name customers see; empty: the mailbox's name.",
    )
    from_agent_name = forms.BooleanField(
        label="Show who answered: “Ana via Support”", required=False
    )
    signature = forms.CharField(
        label="Mailbox signature",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Below every answer, after the agent's own signature.",
    )
    server_saves_sent = forms.BooleanField(
        label="The SMTP server files sent mail in Sent itself (Gmail does)",
        required=False,
        help_text="Then Kotak does not file a second copy.",
    )
    status_after_reply = forms.ChoiceField(
        label="After a reply, the conversation becomes",
        choices=[("", "Unchanged"), ("pending", "Pending"), ("closed", "Closed")],
        required=False,
    )

    def __init__(self, *args, mailbox, **kwargs) -> None:
        self.mailbox = mailbox
        super().__init__(*args, **kwargs)
        if mailbox.smtp_password_encrypted:
            self.fields["smtp_password"].help_text = "Leave empty to keep the current password."

    def clean_smtp_host(self) -> str:
        host = self.cleaned_data["smtp_host"].strip()
        if any(ch.isspace() or ch in "/@" for ch in host):
            raise forms.ValidationError("Enter a host name or IP address, e.g. smtp.example.com.")
        return host

    def clean_from_name(self) -> str:
        name = self.cleaned_data["from_name"].strip()
        if any(ch in name for ch in "\r\n\x00"):
            raise forms.ValidationError("The sender name cannot contain line breaks.")
        return name

    def smtp_settings(self):
        from webmail.smtp import SmtpSettings

        data = self.cleaned_data
        security = Security(data["smtp_security"])
        return SmtpSettings(
            host=data["smtp_host"],
            port=data["smtp_port"] or (465 if security == Security.SSL else 587),
            security=security,
            username=data["smtp_username"].strip(),
            password=data["smtp_password"] or self.mailbox.smtp_password,
            ca_certificates=self.mailbox.ca_certificates,
        )

    def smtp_changed(self) -> bool:
        data = self.cleaned_data
        stored = {
            "smtp_host": self.mailbox.smtp_host,
            "smtp_port": self.mailbox.smtp_port,
            "smtp_security": self.mailbox.smtp_security,
            "smtp_username": self.mailbox.smtp_username,
        }
        return bool(data.get("smtp_password")) or any(
            data.get(name) != stored[name] for name in SMTP_FIELDS
        )

    def clean(self) -> dict:
        data = super().clean()
        if self.errors or not data.get("smtp_host") or not self.smtp_changed():
            return data
        from webmail.smtp import verify as verify_smtp

        try:
            verify_smtp(self.smtp_settings())
        except ConnectError as exc:
            self.add_error(SMTP_ERROR_FIELDS.get(type(exc)), str(exc))
        return data

    def save(self) -> None:
        """Store the settings (call after is_valid())."""
        data = self.cleaned_data
        box = self.mailbox
        box.smtp_host = data["smtp_host"]
        box.smtp_port = data["smtp_port"]
        box.smtp_security = data["smtp_security"]
        box.smtp_username = data["smtp_username"].strip()
        if data["smtp_password"]:
            box.smtp_password = data["smtp_password"]
        for name in ("from_name", "from_agent_name", "signature", "server_saves_sent"):
            setattr(box, name, data[name])
        box.status_after_reply = data["status_after_reply"]
        box.save()


class SavedReplyForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="What agents type to find it.")
    body = forms.CharField(
        label="Text",
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Placeholders: {customer_name}, {customer_email}, {agent_name}, {mailbox_name}.",
    )

    def __init__(self, *args, mailbox, instance=None, **kwargs) -> None:
        self.mailbox = mailbox
        self.instance = instance
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        others = self.mailbox.saved_replies.filter(name__iexact=name)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError("There is already a saved reply with this name.")
        return name
