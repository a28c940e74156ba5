"""A private, throw-away Dovecot IMAP server for the test suite.

Django-free on purpose: it only needs the `dovecot`/`doveadm` binaries
(Debian's dovecot-imapd 2.3), `openssl` and imapclient.

    with Dovecot.start(tmp_path) as dv:
        uid = dv.append("alice", "INBOX", make_message("Hello"))
        with dv.client("bob") as c:
            ...

Everything (config, runtime sockets, state, log, TLS material, mail) lives
under `base_dir`; the system Dovecot (/etc/dovecot, ports 143/993) is never
touched. Several instances can run side by side (pytest-xdist workers), each
with its own `instance_name` and free loopback ports.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as dt
import email.policy
import email.utils
import grp
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Self

from imapclient import IMAPClient
from imapclient.imap_utf7 import encode as imap_utf7_encode

__all__ = ["DEFAULT_USERS", "Dovecot", "DovecotError", "dovecot_dir", "make_message"]

_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])  # sbin: non-root
DOVECOT = shutil.which("dovecot", path=_PATH) or "dovecot"
DOVEADM = shutil.which("doveadm", path=_PATH) or "doveadm"

DEFAULT_USERS: dict[str, str] = {name: f"secret-{name}" for name in ("alice", "bob", "charlie")}

# Special-use folders of the inbox namespace, created and subscribed on first login.
SPECIAL_USE = {
    "Drafts": r"\Drafts",
    "Sent": r"\Sent",
    "Trash": r"\Trash",
    "Junk": r"\Junk",
    "Archive": r"\Archive",
}

# IMAP system flag -> Maildir info letter (letters must be sorted in the file name).
MAILDIR_FLAGS = {
    r"\draft": "D",
    r"\flagged": "F",
    r"\answered": "R",
    r"\seen": "S",
    r"\deleted": "T",
}

START_TIMEOUT = 20.0

type Flags = Iterable[str | bytes]
type MaildirMessage = bytes | tuple[bytes, Flags] | tuple[bytes, Flags, dt.datetime]


class DovecotError(RuntimeError):
    pass


class Dovecot:
    """One running Dovecot master process. Create with `Dovecot.start()`."""

    host = "127.0.0.1"
    _names = itertools.count()  # instance_name suffix, unique within this process
    _file_seq = itertools.count()  # Maildir file name sequence, see write_maildir()

    def __init__(self, base_dir: Path, capabilities: str | None, users: dict[str, str]) -> None:
        self.base_dir = base_dir.resolve()
        self.capabilities = capabilities
        self.special_folders = True
        self.dotted = False
        self.users = dict(users)
        self.instance_name = f"kotak-test-{os.getpid()}-{next(self._names)}-{uuid.uuid4().hex[:6]}"
        self.config_path = self.base_dir / "dovecot.conf"
        self.log_path = self.base_dir / "dovecot.log"
        self.run_dir = self.base_dir / "run"  # Dovecot's base_dir (sockets, master.pid)
        self.state_dir = self.base_dir / "state"
        self.mail_dir = self.base_dir / "mail"  # one home per user: mail/<user>/Maildir
        self.passwd_path = self.base_dir / "passwd"
        self.ca_cert_path = self.base_dir / "tls" / "cert.pem"
        self.key_path = self.base_dir / "tls" / "key.pem"
        self.imap_port = 0
        self.imaps_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._root = os.geteuid() == 0
        if self._root:
            # Dovecot refuses to run mail processes as root, so they run as
            # Debian's `mail` user; login/internal processes get the packaged
            # unprivileged users when present.
            mail = pwd.getpwnam("mail")
            self.mail_uid, self.mail_gid = mail.pw_uid, mail.pw_gid
            self.login_user = _first_user("dovenull", "nobody")
            self.internal_user = _first_user("dovecot", "mail")
        else:
            # Rootless: everything runs as the current user.
            me = pwd.getpwuid(os.geteuid())
            self.mail_uid, self.mail_gid = me.pw_uid, me.pw_gid
            self.login_user = self.internal_user = me.pw_name
        # Some internal listeners (stats-writer, dict, ...) are chgrp'ed to it.
        self.internal_group = grp.getgrgid(pwd.getpwnam(self.internal_user).pw_gid).gr_name

    # ----------------------------------------------------------------- life cycle

    @classmethod
    def start(
        cls,
        base_dir: Path,
        *,
        capabilities: str | None = None,
        users: dict[str, str] | None = None,
        imap_process_limit: int = 500,
        special_folders: bool = True,
        dotted: bool = False,
    ) -> Dovecot:
        """Start an instance under `base_dir` (created if missing) and wait until
        both IMAP (STARTTLS) and IMAPS ports greet.

        `capabilities` becomes `imap_capability`, e.g. to pretend to be a server
        without CONDSTORE/QRESYNC/LIST-STATUS. Dovecot 2.3.19 then advertises
        exactly that list after login (CAPABILITY command and the LOGIN
        response; plugin capabilities such as QUOTA are not appended either);
        before login it adds STARTTLS and AUTH=. It is only the advertisement:
        Dovecot still honours e.g. `ENABLE CONDSTORE` or `STATUS (HIGHESTMODSEQ)`
        from a client that does not look, and no setting turns that off.
        """
        self = cls(Path(base_dir), capabilities, DEFAULT_USERS if users is None else users)
        self.imap_process_limit = imap_process_limit  # one imap process per connection
        # False: no Sent/Trash/Junk/Archive… made at login, as on a bare server.
        self.special_folders = special_folders
        # True: folders live under "INBOX." with "." between levels (INBOX.Sent,
        # INBOX.Projects.Acme), as Courier and Cyrus lay them out by default.
        self.dotted = dotted
        self._prepare()
        # Ports are picked by binding to port 0 and releasing them, so another
        # process may grab one before Dovecot binds it: retry with fresh ports.
        for attempt in range(3):
            self.imap_port, self.imaps_port = _free_ports(2)
            self._write_config()
            try:
                self._launch()
                break
            except DovecotError:
                log = self.log_text()
                self.stop()
                if "Address already in use" not in log or attempt == 2:
                    raise
        return self

    def stop(self) -> None:
        """Stop the instance and wait for the master (and with it all children) to exit."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGTERM to the master alone (what `doveadm stop` does via master.pid)
        # takes ~1.1 s while it shuts its children down; signalling the whole
        # process group (start_new_session) is immediate. The data is thrown
        # away anyway; the log just gets "Killed with signal 15" warnings.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same ports with the same mail: a server going down."""
        self.stop()
        self._launch()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Dovecot {self.instance_name} imap={self.imap_port} imaps={self.imaps_port}>"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def ca_cert_pem(self) -> str:
        """The self-signed server certificate (CN=localhost, SAN localhost + 127.0.0.1),
        usable as CA: `ssl.create_default_context(cadata=dv.ca_cert_pem)`."""
        return self.ca_cert_path.read_text()

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this instance's certificate."""
        return ssl.create_default_context(cafile=str(self.ca_cert_path))

    # ----------------------------------------------------------------- users

    def add_user(self, name: str, password: str) -> None:
        """Add a user or change a password; works while running.

        Dovecot's passwd-file driver re-reads the file when its mtime or size
        changed, but stat()s it at most once per second (db-passwd-file.c,
        `last_sync_time == ioloop_time`). So wait for the next wall-clock second
        (<= 1 s) before returning: the next login is then guaranteed to see it.
        """
        self.users[name] = password
        self._write_passwd()
        if self.running:
            time.sleep(1.01 - time.time() % 1)

    # ----------------------------------------------------------------- IMAP access

    def client(self, user: str, password: str | None = None, *, timeout: float = 10) -> IMAPClient:
        """A logged-in IMAPClient on the plain (no TLS) port."""
        c = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=timeout)
        try:
            c.login(user, self.users[user] if password is None else password)
        except BaseException:
            c.shutdown()
            raise
        return c

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        flags: Flags = (),
        internal_date: dt.datetime | None = None,
    ) -> int:
        """APPEND one message over IMAP (creating `folder` if missing) and return its UID."""
        with self._session(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
                c.subscribe_folder(folder)
            resp = c.append(folder, raw, flags=[_str(f) for f in flags], msg_time=internal_date)
        m = re.search(rb"\[APPENDUID \d+ (\d+)\]", resp)
        if not m:
            raise DovecotError(f"no APPENDUID in {resp!r}")
        return int(m.group(1))

    def write_maildir(
        self,
        user: str,
        folder: str,
        messages: Iterable[MaildirMessage],
        *,
        new: bool = False,
        internal_date: dt.datetime | None = None,
    ) -> int:
        """Bulk-seed `folder` by writing Maildir files directly; returns how many.

        Much faster than APPEND for thousands of messages. Each item is raw bytes,
        `(raw, flags)` or `(raw, flags, internal_date)`; flags are IMAP system
        flags (keywords are not supported here, use append()). With `new=True`
        flagless messages go to new/ like a fresh delivery, everything else goes
        to cur/. The internal date is the file mtime (Dovecot's INTERNALDATE for
        Maildir). The folder is created (and subscribed) if missing.

        Dovecot picks the files up at the next SELECT/STATUS/NOOP: a changed
        new/ or cur/ mtime triggers a rescan, and new files get UIDs in file name
        order, which here is the order of `messages`.
        """
        path = self._maildir_path(user, folder)
        if not (path / "cur").is_dir():
            # Let Dovecot create it: correct ownership, `maildirfolder` marker,
            # subscription and mailbox list index all stay consistent.
            if folder.upper() == "INBOX":
                self.doveadm("mailbox", "status", "-u", user, "messages", "INBOX")
            else:
                self.doveadm("mailbox", "create", "-s", "-u", user, folder)
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        now = int(time.time())
        count = 0
        for item in messages:
            if isinstance(item, bytes):
                raw, flags, date = item, (), internal_date
            else:
                raw, flags, date = item[0], item[1], item[2] if len(item) > 2 else internal_date
            letters = "".join(sorted(_maildir_flag(f) for f in flags))
            seq = next(self._file_seq)
            # "<secs>.M<usecs>P<pid>Q<n>.<host>": Dovecot orders new files by the
            # time and M parts, so a running sequence number keeps caller order.
            base = f"{now}.M{seq % 1_000_000}P{os.getpid()}Q{seq}.{host},S={len(raw)}"
            tmp = path / "tmp" / base
            with open(tmp, "wb") as fh:
                fh.write(raw)
            if self._root:
                os.chown(tmp, self.mail_uid, self.mail_gid)
            if date is not None:
                ts = date.timestamp()
                os.utime(tmp, (ts, ts))
            if new and not letters:
                os.rename(tmp, path / "new" / base)
            else:
                os.rename(tmp, path / "cur" / f"{base}:2,{letters}")
            count += 1
        return count

    def reset_uidvalidity(self, user: str, folder: str) -> int:
        """Give `folder` a new, larger UIDVALIDITY, keeping its messages (and
        their UID numbers); returns the new value.

        `doveadm mailbox update --uid-validity` rewrites the index and
        dovecot-uidlist. A session that has the folder selected gets
        `* BYE IMAP session state is inconsistent, please relogin.` at its next
        command; new sessions see the new value in SELECT/STATUS.
        """
        status = self.doveadm("-f", "flow", "mailbox", "status", "-u", user, "uidvalidity", folder)
        new = max(int(status.split("=")[1]) + 1, int(time.time()))
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(new), folder)
        return new

    def doveadm(self, *args: str) -> str:
        """Run `doveadm -c CONFIG ARGS...` and return its stdout."""
        cmd = [DOVEADM, "-c", str(self.config_path), *args]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise DovecotError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    # ----------------------------------------------------------------- internals

    @contextmanager
    def _session(self, user: str) -> Iterator[IMAPClient]:
        c = self.client(user)
        try:
            yield c
        finally:
            try:
                c.logout()
            except Exception:
                c.shutdown()

    def _maildir_path(self, user: str, folder: str) -> Path:
        # Default Maildir++ layout: INBOX is the Maildir root, "a/b" is ".a.b"
        # (the namespace separator "/" is mapped to the on-disk ".").
        root = self.mail_dir / user / "Maildir"
        if folder.upper() == "INBOX":
            return root
        if self.dotted:  # "INBOX.a.b" is ".a.b"
            return root / ("." + imap_utf7_encode(folder).decode().removeprefix("INBOX."))
        return root / ("." + imap_utf7_encode(folder).decode().replace("/", "."))

    def _prepare(self) -> None:
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)  # stale sockets/pid from an earlier run
        for d in (self.base_dir, self.state_dir, self.mail_dir, self.ca_cert_path.parent):
            d.mkdir(parents=True, exist_ok=True)
        # Sockets live in run_dir; AF_UNIX paths are limited to 108 bytes.
        if len(str(self.run_dir / "login" / "imap-urlauth-worker-xxxxxx")) > 107:
            raise DovecotError(f"base_dir path too long for Unix sockets: {self.base_dir}")
        if self._root:
            os.chown(self.mail_dir, self.mail_uid, self.mail_gid)
            os.chmod(self.mail_dir, 0o700)
            # pytest's tmp dirs (/tmp/pytest-of-root is 0700) are not traversable
            # by the unprivileged mail/auth/login users: add the search bit (x,
            # not r) for others on base_dir and its ancestors.
            for d in (self.base_dir, *self.base_dir.parents):
                mode = d.stat().st_mode
                if not mode & 0o001:
                    os.chmod(d, mode | 0o001)
        self._write_passwd()
        self._make_cert()

    def _make_cert(self) -> None:
        if self.ca_cert_path.exists() and self.key_path.exists():
            return
        subprocess.run(
            [
                "openssl", "req", "-x509", "-nodes", "-days", "30",
                "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",  # fast to generate
                "-keyout", str(self.key_path), "-out", str(self.ca_cert_path),
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-addext", "basicConstraints=critical,CA:TRUE",
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        os.chmod(self.key_path, 0o600)

    def _write_passwd(self) -> None:
        lines = []
        for name, password in self.users.items():
            if any(c in name + password for c in ":\n\r") or not name:
                raise ValueError(f"unsupported user name or password for passwd-file: {name!r}")
            # user:password:uid:gid:gecos:home:shell — uid/gid come from mail_uid/mail_gid.
            lines.append(f"{name}:{{PLAIN}}{password}::::{self.mail_dir / name}::\n")
        tmp = self.passwd_path.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        os.chmod(tmp, 0o644)
        # Dovecot reloads passwd-file when its mtime (seconds) or size changes:
        # make sure the mtime moves even for a same-size rewrite within a second.
        try:
            old = self.passwd_path.stat().st_mtime
        except FileNotFoundError:
            old = 0
        if int(time.time()) <= int(old):
            os.utime(tmp, (old + 1, old + 1))
        os.replace(tmp, self.passwd_path)

    def _write_config(self) -> None:
        if self._root:
            # Mail processes run as `mail`; only that uid/gid may access mail.
            privileges = f"""mail_uid = {self.mail_uid}
mail_gid = {self.mail_gid}
first_valid_uid = {self.mail_uid}
last_valid_uid = {self.mail_uid}
first_valid_gid = {self.mail_gid}
last_valid_gid = {self.mail_gid}"""
            chroot = ""  # keep the defaults (login/anvil processes chroot)
        else:
            # Rootless: no privilege separation, and chroot() needs root.
            privileges = f"first_valid_uid = {self.mail_uid}\nfirst_valid_gid = {self.mail_gid}"
            chroot = "chroot ="
        caps = f"imap_capability = {self.capabilities}" if self.capabilities else ""
        mailboxes = "".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n"
            for name, flag in SPECIAL_USE.items()
            if self.special_folders
        )
        self.config_path.write_text(f"""\
# Generated by tests/dovecot.py for {self.instance_name}; do not edit.
instance_name = {self.instance_name}
base_dir = {self.run_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes
default_login_user = {self.login_user}
default_internal_user = {self.internal_user}
default_internal_group = {self.internal_group}
{privileges}
ssl = yes
ssl_cert = <{self.ca_cert_path}
ssl_key = <{self.key_path}
disable_plaintext_auth = no
auth_mechanisms = plain login
# Tests try wrong passwords: answer failures fast (2.3 still batches them in
# 0.5 s ticks), and disable anvil's per-IP auth penalty, which otherwise
# stalls the *next* login from 127.0.0.1 by 2-15 s. (login_trusted_networks
# is documented to skip the penalty but does not in 2.3.19.)
auth_failure_delay = 0
service anvil {{
  {chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_path}
}}

mail_location = maildir:~/Maildir
mail_fsync = never
mailbox_list_index = yes
mailbox_idle_check_interval = 1 secs
mail_plugins = $mail_plugins quota
namespace inbox {{
  inbox = yes
  separator = {"." if self.dotted else "/"}
  prefix = {"INBOX." if self.dotted else ""}
{mailboxes}}}
plugin {{
  quota = count:User quota
  quota_rule = *:storage=1G
  quota_vsizes = yes
}}

protocol imap {{
  mail_plugins = $mail_plugins imap_quota
  mail_max_userip_connections = 100
  {caps}
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
  {chroot}
  # One long-lived login process serving many connections ("performance mode").
  service_count = 0
  process_min_avail = 1
  client_limit = 1000
}}
service imap {{
  process_limit = {self.imap_process_limit}
}}
default_client_limit = {max(1000, self.imap_process_limit + 100)}
""")

    def _launch(self) -> None:
        self.log_path.unlink(missing_ok=True)
        with open(self.base_dir / "dovecot.stderr", "wb") as stderr:
            self._proc = subprocess.Popen(
                # -F: stay in the foreground, so we own the master's pid.
                [DOVECOT, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # own process group; no terminal Ctrl-C
                preexec_fn=_die_with_parent,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + START_TIMEOUT
        pending = {self.imap_port: False, self.imaps_port: True}
        while pending:
            if self._proc.poll() is not None:
                raise DovecotError(
                    f"dovecot exited with {self._proc.returncode}\n{self._diagnostics()}"
                )
            if time.monotonic() > deadline:
                raise DovecotError(
                    f"dovecot did not answer within {START_TIMEOUT}s\n{self._diagnostics()}"
                )
            for port, tls in list(pending.items()):
                if self._greets(port, tls):
                    del pending[port]
            if pending:
                time.sleep(0.05)

    def _greets(self, port: int, tls: bool) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=2) as sock:
                if tls:
                    with self.ssl_context().wrap_socket(sock, server_hostname="localhost") as tsock:
                        return tsock.recv(100).startswith(b"* OK")
                return sock.recv(100).startswith(b"* OK")
        except OSError:
            return False

    def _diagnostics(self) -> str:
        stderr = (self.base_dir / "dovecot.stderr").read_text(errors="replace")
        return f"--- stderr ---\n{stderr}\n--- {self.log_path} ---\n{self.log_text()}"


# --------------------------------------------------------------------- helpers


@contextmanager
def dovecot_dir(name: str) -> Iterator[Path]:
    """A fresh directory for an instance, outside pytest's basetemp, removed afterwards.

    Dovecot's unprivileged processes must traverse every parent of base_dir, and pytest resets
    its /tmp/pytest-of-<user> root to mode 0700 whenever another pytest session starts.
    """
    path = Path(tempfile.mkdtemp(prefix=f"kotak-{name}-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_message(
    subject: str,
    sender: str = "Customer <customer@example.com>",
    to: str = "support@example.com",
    body: str = "Hello,\n\nThis is a test message.\n",
    message_id: str | None = None,
    date: dt.datetime | None = None,
    in_reply_to: str | None = None,
    extra_headers: dict[str, str] | Sequence[tuple[str, str]] | None = None,
) -> bytes:
    """A small RFC 5322 text/plain message with CRLF line endings."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(date or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = message_id or email.utils.make_msgid(domain="example.com")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (
        extra_headers.items() if isinstance(extra_headers, dict) else extra_headers or ()
    ):
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


def _first_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    raise DovecotError(f"none of these users exist: {names}")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _str(flag: str | bytes) -> str:
    return flag.decode() if isinstance(flag, bytes) else flag


def _maildir_flag(flag: str | bytes) -> str:
    try:
        return MAILDIR_FLAGS[_str(flag).lower()]
    except KeyError:
        raise ValueError(f"write_maildir supports only system flags, not {flag!r}") from None


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM Dovecot when the process that started it dies, so a
    SIGKILLed pytest worker leaves nothing behind (atexit covers normal exits).
    Note: PR_SET_PDEATHSIG fires when the starting *thread* exits."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
