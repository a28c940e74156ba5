"""Kotak's data model.

The IMAP server is the source of truth for mail: Folder and Message mirror it (with the sync
cursor on Folder). What the team adds — conversations, assignment, status — lives here only and
hangs off Conversation, never off a UID, so it survives UIDVALIDITY resets and moves.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from webmail import crypto
from webmail.imap.client import Security, ServerSettings


class Team(models.Model):
    """A group of people sharing one or more mailboxes."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    MANAGER = "manager", "Manager"
    AGENT = "agent", "Agent"
    VIEWER = "viewer", "Viewer"


class MailboxQuerySet(models.QuerySet):
    def for_user(self, user) -> MailboxQuerySet:
        """Mailboxes the user is a member of (any role)."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Mailbox(models.Model):
    """A shared IMAP account (support@, billing@ …) and how to reach it."""

    class Status(models.TextChoices):
        NEW = "new", "Waiting for first sync"
        SYNCING = "syncing", "Syncing"
        OK = "ok", "Up to date"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"
        UNREACHABLE = "unreachable", "Server unreachable"

    team = models.ForeignKey(Team, models.CASCADE, related_name="mailboxes")
    name = models.CharField(max_length=100)
    email = models.EmailField(max_length=320)

    imap_host = models.CharField(max_length=255)
    imap_port = models.PositiveIntegerField(default=993)
    imap_security = models.CharField(max_length=8, choices=Security.choices(), default="ssl")
    imap_username = models.CharField(max_length=320)
    imap_password_encrypted = models.TextField(blank=True)

    smtp_host = models.CharField(max_length=255, blank=True)
    smtp_port = models.PositiveIntegerField(null=True, blank=True)
    smtp_security = models.CharField(max_length=8, choices=Security.choices(), default="ssl")
    smtp_username = models.CharField(max_length=320, blank=True)
    smtp_password_encrypted = models.TextField(blank=True)

    # PEM certificates trusted for this mailbox's servers in addition to the system store.
    ca_certificates = models.TextField(blank=True)

    capabilities = models.JSONField(default=list, blank=True)
    # Where the account's own folders live on the server: "INBOX." on Courier and Cyrus, ""
    # where they sit beside the Inbox; None until a sync has looked (RFC 2342 NAMESPACE).
    folder_prefix = models.CharField(  # noqa: DJ001 — None (not known yet) is not ""
        max_length=255, null=True, blank=True, default=None
    )
    # Assignment and status mirrored to the server as IMAP keywords, for other mail clients.
    mirror_keywords = models.BooleanField(default=True)

    # Answering: how mail from the shared address looks, and what happens after a reply.
    from_name = models.CharField(max_length=200, blank=True)
    # "Ana via Support" instead of "Support" as the display name.
    from_agent_name = models.BooleanField(default=False)
    signature = models.TextField(blank=True)
    # The SMTP server files sent mail in Sent itself (Gmail does): no APPEND then.
    server_saves_sent = models.BooleanField(default=False)
    status_after_reply = models.CharField(
        max_length=10,
        blank=True,
        default="pending",
        choices=[("", "Unchanged"), ("pending", "Pending"), ("closed", "Closed")],
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)

    # Lease of the one watcher (IDLE/NOTIFY connection) for this mailbox across all workers.
    watcher_owner = models.CharField(max_length=100, blank=True)
    watcher_expires_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = MailboxQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "email"], name="unique_mailbox_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def get_absolute_url(self) -> str:
        return reverse("mailbox", args=[self.pk])

    @property
    def imap_password(self) -> str:
        return crypto.decrypt(self.imap_password_encrypted)

    @imap_password.setter
    def imap_password(self, value: str) -> None:
        self.imap_password_encrypted = crypto.encrypt(value)

    @property
    def smtp_password(self) -> str:
        return crypto.decrypt(self.smtp_password_encrypted)

    @smtp_password.setter
    def smtp_password(self, value: str) -> None:
        self.smtp_password_encrypted = crypto.encrypt(value)

    def imap_settings(self) -> ServerSettings:
        return ServerSettings(
            host=self.imap_host,
            port=self.imap_port,
            security=Security(self.imap_security),
            username=self.imap_username,
            password=self.imap_password,
            ca_certificates=self.ca_certificates,
        )

    def role_of(self, user) -> str | None:
        # Asked several times per request (views, templates, actions): one query per instance.
        cache = self.__dict__.setdefault("_roles", {})
        if user.pk not in cache:
            membership = self.memberships.filter(user=user).first()
            cache[user.pk] = membership.role if membership else None
        return cache[user.pk]

    def record_error(self, status: str, message: str) -> None:
        self.status = status
        self.last_error = message
        self.last_error_at = timezone.now()
        self.save(update_fields=["status", "last_error", "last_error_at"])


class TrustedSender(models.Model):
    """A sender whose remote images the team always loads in this mailbox."""

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="trusted_senders")
    address = models.CharField(max_length=320)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "address"], name="unique_trusted_sender")
        ]

    def __str__(self) -> str:
        return self.address


class ConnectionSlot(models.Model):
    """One of the few IMAP connections a mailbox may have open at once, across every process.

    Servers cap connections per user (Dovecot 10 per user and IP, Gmail 15 shared with the
    user's own devices), so Kotak takes a slot, with a conditional UPDATE, before connecting.
    """

    mailbox = models.ForeignKey("Mailbox", models.CASCADE, related_name="connection_slots")
    number = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=100, blank=True)
    # A holder that died frees its slot when this passes; long holders renew it.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "number"], name="unique_connection_slot")
        ]

    def __str__(self) -> str:
        return f"slot {self.number} of mailbox {self.mailbox_id}"


class Membership(models.Model):
    """A user's role on one mailbox. No membership, no access: every view checks it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    # Opening a message marks it read on the server, for everyone (agents and managers only).
    mark_read_on_open = models.BooleanField(default=True)
    # Added below the mailbox's signature in this member's replies.
    signature = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "mailbox"], name="unique_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.role} of {self.mailbox}"


class SpecialUse(models.TextChoices):
    """RFC 6154 special-use roles (plus INBOX)."""

    NONE = "", "—"
    INBOX = "inbox", "Inbox"
    DRAFTS = "drafts", "Drafts"
    SENT = "sent", "Sent"
    ARCHIVE = "archive", "Archive"
    JUNK = "junk", "Junk"
    TRASH = "trash", "Trash"
    ALL = "all", "All mail"
    FLAGGED = "flagged", "Flagged"


class Folder(models.Model):
    """An IMAP mailbox ("folder" here, to avoid two meanings of mailbox) and its sync cursor."""

    class SyncState(models.TextChoices):
        IDLE = "idle", "Idle"
        SYNCING = "syncing", "Syncing"
        ERROR = "error", "Error"
        PARKED = "parked", "Parked"

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="folders")
    # The name exactly as the server spells it (modified UTF-7, RFC 3501 §5.1.3).
    name = models.CharField(max_length=1000)
    # The full name decoded for display, and its last segment.
    display_name = models.CharField(max_length=1000)
    label = models.CharField(max_length=255)
    delimiter = models.CharField(max_length=1, blank=True)
    parent = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="children"
    )
    special_use = models.CharField(
        max_length=10, choices=SpecialUse.choices, default=SpecialUse.NONE, blank=True
    )
    attributes = models.JSONField(default=list, blank=True)
    is_selectable = models.BooleanField(default=True)
    is_subscribed = models.BooleanField(default=True)

    total_count = models.PositiveIntegerField(default=0)
    unread_count = models.PositiveIntegerField(default=0)

    # Sync cursor, advanced in the same transaction as the rows it covers.
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    uidnext = models.BigIntegerField(null=True, blank=True)
    highestmodseq = models.BigIntegerField(null=True, blank=True)
    # Initial sync goes newest to oldest: every UID >= this one (and < uidnext) is stored.
    lowest_synced_uid = models.BigIntegerField(null=True, blank=True)
    last_full_scan_at = models.DateTimeField(null=True, blank=True)

    sync_state = models.CharField(max_length=10, choices=SyncState.choices, default=SyncState.IDLE)
    sync_error = models.TextField(blank=True)
    # A folder whose UIDVALIDITY keeps changing is parked until then instead of resyncing
    # in a loop; resets are counted per day.
    parked_until = models.DateTimeField(null=True, blank=True)
    uidvalidity_resets = models.JSONField(default=list, blank=True)
    # Lease: the worker that syncs this folder now. Taken with a conditional UPDATE.
    sync_lock_owner = models.CharField(max_length=64, blank=True)
    sync_lock_until = models.DateTimeField(null=True, blank=True)
    # Progress of the initial sync, for the UI and `manage.py sync`.
    sync_total = models.PositiveIntegerField(default=0)
    sync_done = models.PositiveIntegerField(default=0)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="unique_folder_name")
        ]
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name

    def get_absolute_url(self) -> str:
        return reverse("folder", args=[self.mailbox_id, self.pk])

    @property
    def depth(self) -> int:
        if not self.delimiter:
            return 0
        return self.display_name.count(self.delimiter)


class ConversationQuerySet(models.QuerySet):
    def open(self) -> ConversationQuerySet:
        return self.filter(status=Conversation.Status.OPEN)

    def assigned_to(self, user) -> ConversationQuerySet:
        return self.filter(assignee=user)


class Conversation(models.Model):
    """The team's unit of work: a thread of messages with an assignee and a status."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        CLOSED = "closed", "Closed"

    # No index of its own on mailbox or assignee: conversation_queue and conversation_activity
    # start with mailbox, conversation_assignee with assignee.
    mailbox = models.ForeignKey(
        Mailbox, models.CASCADE, related_name="conversations", db_index=False
    )
    subject = models.CharField(max_length=998, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        db_index=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # When the status last changed: only mail newer than that reopens a closed conversation.
    status_changed_at = models.DateTimeField(default=timezone.now)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(
                fields=["mailbox", "status", "-last_activity_at"], name="conversation_queue"
            ),
            models.Index(fields=["assignee", "status"], name="conversation_assignee"),
            # The "All" team view: every conversation of a mailbox, newest activity first.
            models.Index(
                fields=["mailbox", "-last_activity_at", "-id"], name="conversation_activity"
            ),
        ]

    def __str__(self) -> str:
        return self.subject or "(no subject)"


class ThreadRef(models.Model):
    """A Message-ID seen in a conversation (its messages' own ids and every id they refer to).

    A message joins the conversation of any id it shares, whichever arrives first: a reply
    synced before the message it answers still finds it, as does a sibling reply.
    """

    # unique_thread_ref starts with mailbox: no index of its own. No database constraint
    # either: the conversation's mailbox is this one, and its key is checked (0008).
    mailbox = models.ForeignKey(
        Mailbox, models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    # blake2b-128 of the lower-cased id: Message-IDs may be up to 998 characters.
    ref_hash = models.CharField(max_length=32)
    conversation = models.ForeignKey(Conversation, models.CASCADE, related_name="refs")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "ref_hash"], name="unique_thread_ref")
        ]

    def __str__(self) -> str:
        return self.ref_hash


class Note(models.Model):
    """An internal note in a conversation's timeline: never sent, seen by the team only."""

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    body = models.TextField()
    # Ids of the users @mentioned (and so notified).
    mentions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["conversation", "created_at"], name="note_timeline")]

    def __str__(self) -> str:
        return self.body[:50]


class Activity(models.Model):
    """The audit trail: who did what to which conversation (or mailbox), and when."""

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="activities")
    conversation = models.ForeignKey(
        Conversation, models.SET_NULL, null=True, blank=True, related_name="activities"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    verb = models.CharField(max_length=30)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["mailbox", "-created_at"], name="activity_mailbox"),
            models.Index(fields=["conversation", "created_at"], name="activity_conversation"),
        ]

    def __str__(self) -> str:
        return f"{self.verb} ({self.created_at:%Y-%m-%d %H:%M})"


class Notification(models.Model):
    """Something a user should know: assigned to them, mentioned in a note."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="notifications")
    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        Conversation, models.CASCADE, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=20)
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return self.text


class MessageQuerySet(models.QuerySet):
    def newest_first(self) -> MessageQuerySet:
        return self.order_by("-internal_date", "-uid")

    def unread(self) -> MessageQuerySet:
        return self.filter(is_seen=False)


class Message(models.Model):
    """One message in one folder, as last seen on the server (headers, flags, structure)."""

    # The sync writes messages by the thousand, and each index costs every insert: mailbox,
    # folder and conversation have none of their own, as the indexes in Meta start with them.
    # No database constraint on mailbox either: it is the folder's, whose key is checked (0008).
    mailbox = models.ForeignKey(
        Mailbox, models.CASCADE, related_name="messages", db_index=False, db_constraint=False
    )
    folder = models.ForeignKey(Folder, models.CASCADE, related_name="messages", db_index=False)
    uid = models.BigIntegerField()
    # Survives UIDVALIDITY resets and moves: EMAILID/X-GM-MSGID, else a header hash.
    stable_id = models.CharField(max_length=64)
    modseq = models.BigIntegerField(null=True, blank=True)

    message_id = models.CharField(max_length=998, blank=True)
    in_reply_to = models.TextField(blank=True)
    references = models.TextField(blank=True)
    subject = models.TextField(blank=True)
    from_name = models.CharField(max_length=998, blank=True)
    from_address = models.CharField(max_length=320, blank=True)
    # Lists of [display name, address].
    to = models.JSONField(default=list, blank=True)
    cc = models.JSONField(default=list, blank=True)
    reply_to = models.JSONField(default=list, blank=True)
    date = models.DateTimeField(null=True, blank=True)
    internal_date = models.DateTimeField()
    size = models.PositiveBigIntegerField(default=0)

    # System flags as columns (indexed where lists need them), anything else as keywords.
    is_seen = models.BooleanField(default=False)
    is_flagged = models.BooleanField(default=False)
    is_answered = models.BooleanField(default=False)
    is_draft = models.BooleanField(default=False)
    is_deleted = models.BooleanField(default=False)
    keywords = models.JSONField(default=list, blank=True)

    # Moved or deleted by a user, not yet confirmed by the server: hidden from lists meanwhile.
    pending_removal = models.BooleanField(default=False)

    has_attachments = models.BooleanField(default=False)
    snippet = models.CharField(max_length=300, blank=True)
    bodystructure = models.JSONField(null=True, blank=True)
    # Non-empty when the headers could not be parsed; raw_headers then keeps what the server sent.
    parse_error = models.TextField(blank=True)
    raw_headers = models.BinaryField(null=True, blank=True)

    conversation = models.ForeignKey(
        Conversation,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
        db_index=False,
    )

    objects = MessageQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["folder", "uid"], name="unique_message_uid")]
        indexes = [
            # The folder list: newest first, keyset-paginated.
            models.Index(fields=["folder", "-internal_date", "-uid"], name="message_list"),
            models.Index(fields=["folder"], condition=Q(is_seen=False), name="message_unread"),
            models.Index(fields=["mailbox", "stable_id"], name="message_stable_id"),
            models.Index(fields=["mailbox", "message_id"], name="message_message_id"),
            models.Index(fields=["conversation", "internal_date"], name="message_conversation"),
        ]

    def __str__(self) -> str:
        return self.subject or "(no subject)"

    def get_absolute_url(self) -> str:
        return reverse("message", args=[self.mailbox_id, self.pk])

    @property
    def sender(self) -> str:
        return self.from_name or self.from_address or "(unknown sender)"


class MessageTombstone(models.Model):
    """A message that left a folder, kept briefly so a copy appearing in another folder is
    recognised as the same message (a move by another client) and keeps its conversation."""

    # tombstone_stable_id starts with mailbox: no index of its own.
    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="+", db_index=False)
    stable_id = models.CharField(max_length=64)
    conversation = models.ForeignKey(Conversation, models.CASCADE, related_name="+")
    removed_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["mailbox", "stable_id"], name="tombstone_stable_id")]

    def __str__(self) -> str:
        return f"removed {self.stable_id}"


class MessageBody(models.Model):
    """The displayable body of a message, fetched on first open (partial fetch) and cached."""

    message = models.OneToOneField(Message, models.CASCADE, primary_key=True, related_name="body")
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)
    # Attachments found in BODYSTRUCTURE: [{"section", "filename", "type", "size"}].
    attachments = models.JSONField(default=list, blank=True)
    fetched_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"body of message {self.message_id}"


class Change(models.Model):
    """The change log: one row per thing that changed, read by the live event stream.

    Its id is the server-sent event id, so a reconnecting browser resumes with Last-Event-ID.
    """

    # change_stream starts with mailbox: no index of its own.
    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="changes", db_index=False)
    kind = models.CharField(max_length=40)
    folder_id = models.BigIntegerField(null=True, blank=True)
    conversation_id = models.BigIntegerField(null=True, blank=True)
    message_ids = models.JSONField(default=list, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["mailbox", "id"], name="change_stream")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class Presence(models.Model):
    """Who has a message open right now ("Ana is viewing"); kept alive by the event stream."""

    class Activity(models.TextChoices):
        VIEWING = "viewing", "is viewing"
        REPLYING = "replying", "is replying"

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="+")
    message_id = models.BigIntegerField()
    activity = models.CharField(max_length=10, choices=Activity.choices, default=Activity.VIEWING)
    # One row per open stream, so two tabs of the same person do not cancel each other.
    stream = models.CharField(max_length=32, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["message_id", "expires_at"], name="presence_message")]

    def __str__(self) -> str:
        return f"{self.user} {self.activity} message {self.message_id}"


class PendingChange(models.Model):
    """A user action not yet applied to the IMAP server (durable intent before the write)."""

    class Action(models.TextChoices):
        ADD_FLAGS = "add_flags", "Add flags"
        REMOVE_FLAGS = "remove_flags", "Remove flags"
        MOVE = "move", "Move"
        EXPUNGE = "expunge", "Delete permanently"
        APPEND = "append", "Append"
        CREATE_FOLDER = "create_folder", "Create folder"
        RENAME_FOLDER = "rename_folder", "Rename folder"
        DELETE_FOLDER = "delete_folder", "Delete folder"
        SUBSCRIBE = "subscribe", "Subscribe"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        FAILED = "failed", "Failed"

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="pending_changes")
    folder = models.ForeignKey(Folder, models.SET_NULL, null=True, blank=True, related_name="+")
    message = models.ForeignKey(
        Message, models.SET_NULL, null=True, blank=True, related_name="pending_changes"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    payload = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # The worker applying it right now (with next_attempt_at as its lease), else "".
    claimed_by = models.CharField(max_length=64, blank=True)
    # The changes of one click (a bulk move, say): undone together.
    batch = models.CharField(max_length=32, blank=True, db_index=True)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="pending_due"),
            models.Index(fields=["mailbox", "state"], name="pending_mailbox"),
        ]

    def __str__(self) -> str:
        return f"{self.action} ({self.state})"


class OutgoingMessage(models.Model):
    """A reply, forward or new message: a draft, then a durable outbox row until it is sent.

    The Message-ID is fixed when the row is made, so the Sent copy, the threading headers of
    later replies and a check after a crash all name the same message.
    """

    class Kind(models.TextChoices):
        NEW = "new", "New message"
        REPLY = "reply", "Reply"
        REPLY_ALL = "reply_all", "Reply all"
        FORWARD = "forward", "Forward"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # A worker died while the SMTP server had it: sending again might send it twice.
        UNCERTAIN = "uncertain", "Unknown"

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="outgoing")
    conversation = models.ForeignKey(
        Conversation, models.SET_NULL, null=True, blank=True, related_name="outgoing"
    )
    # The message answered or forwarded.
    source = models.ForeignKey("Message", models.SET_NULL, null=True, blank=True, related_name="+")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.NEW)
    # Lists of [display name, address].
    to = models.JSONField(default=list, blank=True)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    text = models.TextField(blank=True)
    # Set when composed as rich text (sanitized); the plain text goes along always.
    html = models.TextField(blank=True)
    message_id = models.CharField(max_length=255, unique=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)

    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    send_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # The draft's copy in the Drafts folder, replaced at each save.
    draft_uid = models.BigIntegerField(null=True, blank=True)
    draft_folder = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["state", "send_at"], name="outgoing_due"),
            models.Index(fields=["conversation", "state"], name="outgoing_conversation"),
        ]

    def __str__(self) -> str:
        return self.subject or "(no subject)"


class OutgoingAttachment(models.Model):
    """A file going out with a message: uploaded, or a part of the forwarded original."""

    outgoing = models.ForeignKey(OutgoingMessage, models.CASCADE, related_name="attachments")
    # In the database, not on a disk: any worker on any machine can send it.
    content = models.BinaryField(null=True, blank=True)
    # A part of `outgoing.source` (forward): streamed from IMAP when the message is sent.
    source_section = models.CharField(max_length=100, blank=True)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return self.filename


class SavedReply(models.Model):
    """A canned answer kept by the mailbox's managers, with {customer_name}-style placeholders."""

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="saved_replies")
    name = models.CharField(max_length=100)
    body = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="unique_saved_reply")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
