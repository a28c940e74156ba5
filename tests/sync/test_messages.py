"""Folder sync against the suite's real Dovecot: each case ends with a database == server check."""

import imaplib

import pytest

from tests.conftest import SERVER_KINDS, server_account
from tests.dovecot import make_message
from tests.helpers import assert_mirrors_server
from webmail.models import Change, Folder, Message
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


def advertises(server, extension: str) -> bool:
    """Whether the test server offers the extension (all of Dovecot's own unless told)."""
    return server.capabilities is None or extension in server.capabilities.split()


def inbox(mailbox) -> Folder:
    return mailbox.folders.get(special_use="inbox")


@pytest.fixture(params=SERVER_KINDS)
def any_server_mailbox(request, db, alice):
    """A mailbox on a Dovecot with CONDSTORE/QRESYNC/LIST-STATUS, on one with CONDSTORE only
    (as Gmail), and on one with none of them."""
    from tests.conftest import connect_mailbox

    account = server_account(request)
    mailbox = connect_mailbox(account, manager=alice)
    mailbox.account = account
    return mailbox


def test_it_copies_folders_with_their_special_use_roles(mailbox):
    mailbox.account.deliver("hello", folder="Projects/Acme")
    sync_mailbox(mailbox)
    roles = dict(mailbox.folders.values_list("name", "special_use"))
    assert roles == {
        "INBOX": "inbox",
        "Sent": "sent",
        "Drafts": "drafts",
        "Trash": "trash",
        "Junk": "junk",
        "Archive": "archive",
        "Projects": "",
        "Projects/Acme": "",
    }
    acme = mailbox.folders.get(name="Projects/Acme")
    assert acme.parent.name == "Projects"
    assert acme.label == "Acme"
    assert acme.total_count == 1


def test_it_decodes_modified_utf7_folder_names_for_display(mailbox):
    client = mailbox.account.client()
    client.create_folder("Kunden & Aufträge/日本")  # imapclient encodes to modified UTF-7
    client.logout()
    sync_mailbox(mailbox)
    folder = mailbox.folders.get(display_name="Kunden & Aufträge/日本")
    assert folder.name == "Kunden &- Auftr&AOQ-ge/&ZeVnLA-"
    assert folder.label == "日本"
    assert folder.parent.label == "Kunden & Aufträge"


def test_initial_sync_stores_every_message_with_its_headers(mailbox):
    account = mailbox.account
    account.deliver("First", sender="Ana Lima <ana@example.org>", flags=[r"\Seen"])
    account.deliver("Second", sender="=?utf-8?q?Bj=C3=B6rn?= <bjorn@example.org>")
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    first, second = folder.messages.order_by("uid")
    assert (first.subject, first.from_name, first.from_address) == (
        "First",
        "Ana Lima",
        "ana@example.org",
    )
    assert first.is_seen and not second.is_seen
    assert second.from_name == "Björn"
    assert first.to == [["", "support@example.com"]]
    assert first.message_id.startswith("<") and first.internal_date is not None
    assert folder.unread_count == 1
    assert_mirrors_server(account, folder)


def test_it_syncs_a_big_folder_newest_first_in_windows_with_progress(mailbox, settings):
    settings.SYNC_WINDOW = 40
    account = mailbox.account
    account.server.write_maildir(
        account.username, "INBOX", [make_message(f"bulk {n}") for n in range(150)]
    )
    seen_progress = []

    def progress(folder):
        stored = set(folder.messages.values_list("uid", flat=True))
        seen_progress.append((folder.sync_done, folder.sync_total, min(stored), max(stored)))

    sync_mailbox(mailbox, progress=progress, folder_names=["INBOX"])
    folder = inbox(mailbox)
    # Newest first: the first window already holds the highest UIDs.
    assert seen_progress[0] == (40, 150, 111, 150)
    assert [done for done, *_ in seen_progress] == [40, 80, 120, 150]
    assert folder.sync_done == folder.sync_total == 150
    assert_mirrors_server(account, folder)


def test_an_interrupted_initial_sync_resumes_without_loss_or_duplicates(mailbox, settings):
    settings.SYNC_WINDOW = 25
    account = mailbox.account
    account.server.write_maildir(
        account.username, "INBOX", [make_message(f"m{n}") for n in range(100)]
    )

    class Crash(Exception):
        pass

    def crash_after_two_windows(folder):
        if folder.sync_done >= 50:
            raise Crash

    with pytest.raises(Crash):
        sync_mailbox(mailbox, progress=crash_after_two_windows, folder_names=["INBOX"])
    folder = inbox(mailbox)
    assert folder.messages.count() == 50
    assert folder.lowest_synced_uid == 51

    account.deliver("arrived during the crash")
    sync_mailbox(mailbox, folder_names=["INBOX"])
    assert folder.messages.count() == 101
    assert_mirrors_server(account, folder)


def test_new_mail_is_fetched_incrementally(mailbox):
    account = mailbox.account
    account.deliver("one")
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    uid = account.deliver("two")
    result = sync_mailbox(mailbox, folder_names=["INBOX"])
    assert result.folders["INBOX"].added == 1
    folder.refresh_from_db()
    assert folder.uidnext == uid + 1
    assert Change.objects.filter(
        mailbox=mailbox, kind="messages_added", folder_id=folder.pk
    ).exists()
    assert_mirrors_server(account, folder)


def test_flag_changes_made_by_another_client_show_up(any_server_mailbox):
    mailbox = any_server_mailbox
    account = mailbox.account
    uids = [account.deliver(f"m{n}") for n in range(4)]
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    for extension in ("CONDSTORE", "QRESYNC"):
        assert (extension in mailbox.capabilities) == advertises(account.server, extension)

    other = account.client()
    other.select_folder("INBOX")
    other.add_flags([uids[0]], [r"\Seen"])
    other.add_flags([uids[1]], [r"\Flagged", "$Important"])
    other.add_flags([uids[2]], [r"\Seen"])
    other.logout()
    result = sync_mailbox(mailbox, folder_names=["INBOX"])
    assert result.folders["INBOX"].flag_changes == 3
    important = folder.messages.get(uid=uids[1])
    assert important.is_flagged and important.keywords == ["$Important"]
    assert_mirrors_server(account, folder)

    other = account.client()
    other.select_folder("INBOX")
    other.remove_flags([uids[0]], [r"\Seen"])
    other.logout()
    sync_mailbox(mailbox, folder_names=["INBOX"])
    assert not folder.messages.get(uid=uids[0]).is_seen
    assert_mirrors_server(account, folder)


def test_the_folder_counts_follow_another_clients_reads_flags_and_deletes(any_server_mailbox):
    mailbox = any_server_mailbox
    account = mailbox.account
    uids = [account.deliver(f"m{n}") for n in range(5)]
    sync_mailbox(mailbox)

    def counts():
        folder = inbox(mailbox)
        return folder.total_count, folder.unread_count

    def other_client(action):
        other = account.client()
        other.select_folder("INBOX")
        action(other)
        other.logout()
        sync_mailbox(mailbox, folder_names=["INBOX"])

    assert counts() == (5, 5)
    other_client(lambda c: c.add_flags(uids[:2], [r"\Seen"]))
    assert counts() == (5, 3)
    other_client(lambda c: c.add_flags(uids[2:3], [r"\Flagged"]))
    assert counts() == (5, 3)
    other_client(lambda c: (c.delete_messages(uids[3:4]), c.expunge()))
    assert counts() == (4, 2)
    other_client(lambda c: c.remove_flags(uids[:1], [r"\Seen"]))
    assert counts() == (4, 3)
    assert_mirrors_server(account, inbox(mailbox))


def test_messages_deleted_by_another_client_disappear(any_server_mailbox):
    mailbox = any_server_mailbox
    account = mailbox.account
    uids = [account.deliver(f"m{n}") for n in range(5)]
    sync_mailbox(mailbox)
    folder = inbox(mailbox)

    other = account.client()
    other.select_folder("INBOX")
    other.delete_messages([uids[1], uids[3]])
    other.expunge()
    other.logout()
    # Same count as before (two gone, two new) must still be noticed.
    account.deliver("new a")
    account.deliver("new b")
    result = sync_mailbox(mailbox, folder_names=["INBOX"])
    assert result.folders["INBOX"].removed == 2
    assert not folder.messages.filter(uid__in=[uids[1], uids[3]]).exists()
    assert Change.objects.filter(mailbox=mailbox, kind="messages_removed").exists()
    assert_mirrors_server(account, folder)


def test_mail_deleted_while_a_first_sync_fetches_ahead_is_neither_kept_nor_lost(
    any_server_mailbox, settings
):
    """While one window is written the next is fetched: messages expunged by another client
    mid-sync, some already stored, some in windows fetched ahead, some not fetched yet, end
    up gone, and nothing else is missing."""
    settings.SYNC_WINDOW = 10
    mailbox = any_server_mailbox
    account = mailbox.account
    account.server.write_maildir(
        account.username, "INBOX", [make_message(f"m{n}") for n in range(60)]
    )
    windows = []

    def delete_during_first_window(folder):
        windows.append(folder.sync_done)
        if len(windows) == 1:
            other = account.client()
            other.select_folder("INBOX")
            # 55 was stored in the first window (51-60); 45 and 35 are in windows that may
            # be fetched ahead already; 5 in the last.
            other.delete_messages([55, 45, 35, 5])
            other.expunge()
            other.logout()

    sync_mailbox(mailbox, progress=delete_during_first_window, folder_names=["INBOX"])
    folder = inbox(mailbox)

    assert len(windows) > 2  # the deletion happened with windows still to come
    assert not folder.messages.filter(uid__in=[55, 45, 35, 5]).exists()
    assert folder.messages.count() == 56
    assert_mirrors_server(account, folder)
    assert sync_mailbox(mailbox, folder_names=["INBOX"]).folders["INBOX"].removed == 0


def test_a_resync_with_no_changes_changes_nothing(mailbox):
    account = mailbox.account
    for n in range(3):
        account.deliver(f"m{n}")
    sync_mailbox(mailbox)
    changes = Change.objects.count()
    result = sync_mailbox(mailbox)
    assert result.added == 0
    assert all(r.flag_changes == 0 and r.removed == 0 for r in result.folders.values())
    assert Change.objects.count() == changes


def test_a_uidvalidity_change_resyncs_the_folder(mailbox):
    account = mailbox.account
    for n in range(3):
        account.deliver(f"m{n}")
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    old = folder.uidvalidity
    new = account.server.reset_uidvalidity(account.username, "INBOX")
    result = sync_mailbox(mailbox, folder_names=["INBOX"])
    folder.refresh_from_db()
    assert result.folders["INBOX"].uidvalidity_reset
    assert folder.uidvalidity == new != old
    assert_mirrors_server(account, folder)


def test_folders_deleted_or_created_by_another_client_follow(mailbox):
    account = mailbox.account
    account.deliver("x", folder="Old")
    sync_mailbox(mailbox)
    other = account.client()
    other.delete_folder("Old")
    other.create_folder("New")
    other.logout()
    result = sync_mailbox(mailbox)
    names = set(mailbox.folders.values_list("name", flat=True))
    assert "Old" not in names and "New" in names
    assert not result.errors  # "Old" was gone, not broken
    assert not Message.objects.filter(mailbox=mailbox, folder__name="Old").exists()


def test_a_message_with_broken_headers_is_stored_and_does_not_block_the_folder(mailbox):
    account = mailbox.account
    account.append(
        b"From: =?x-unknown?B?!!!?= <>\r\nSubject: =?utf-8?B?broken\r\nDate: yesterday-ish\r\n"
        b"Content-Type: multipart/mixed; boundary=\r\n\r\nno body structure at all\r\n"
    )
    account.append(b"\xff\xfe garbage that is not a header\r\n\r\n")
    account.deliver("fine")
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    assert folder.messages.count() == 3
    assert folder.messages.filter(subject="fine").exists()
    broken = folder.messages.order_by("uid").first()
    assert broken.date is None
    assert_mirrors_server(account, folder)


def test_huge_header_blocks_are_stored_whole_where_it_matters(mailbox):
    """The window's FETCH takes 64 KB of each header block; longer ones are fetched again."""
    from tests.corpus import huge_subject, many_recipients
    from webmail.sync.messages import REFERENCES_KEPT, SUBJECT_LIMIT

    account = mailbox.account
    account.deliver("Parent", message_id="<parent@example.com>")
    account.append(huge_subject())
    account.append(many_recipients())
    # Its Message-ID and In-Reply-To come after 120 KB of recipients.
    crowd = ",\r\n ".join(f"Person {n} <p{n}@example.org>" for n in range(3000))
    account.append(
        b"From: Anna <anna@example.com>\r\nTo: " + crowd.encode() + b"\r\n"
        b"Subject: Re: Parent\r\nMessage-ID: <late@example.com>\r\n"
        b"In-Reply-To: <parent@example.com>\r\n\r\nbody\r\n"
    )
    chain = " ".join(f"<r{n}@example.com>" for n in range(500))
    account.append(
        f"From: b@example.com\r\nSubject: Long chain\r\nReferences: {chain}\r\n"
        "Message-ID: <chain@example.com>\r\n\r\nbody\r\n".encode()
    )
    sync_mailbox(mailbox)

    folder = inbox(mailbox)
    big = folder.messages.get(subject__startswith="xxxx")
    assert len(big.subject) == SUBJECT_LIMIT
    assert len(folder.messages.get(subject="5000 recipients").to) == 5000
    late = folder.messages.get(message_id="<late@example.com>")
    assert len(late.to) == 3000
    assert late.conversation_id == folder.messages.get(subject="Parent").conversation_id
    references = folder.messages.get(subject="Long chain").references.split()
    assert len(references) == REFERENCES_KEPT
    assert references[0] == "<r0@example.com>" and references[-1] == "<r499@example.com>"
    assert_mirrors_server(account, folder)


def test_a_uidvalidity_reset_keeps_message_rows_and_their_conversation(mailbox):
    from webmail.models import Conversation

    account = mailbox.account
    for n in range(3):
        account.deliver(f"m{n}")
    account.append(b"Subject: no message-id at all\r\n\r\nstill the same message\r\n")
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    conversation = Conversation.objects.create(mailbox=mailbox, subject="m1")
    kept = folder.messages.get(subject="m1")
    kept.conversation = conversation
    kept.save()
    before = set(folder.messages.values_list("pk", flat=True))

    account.server.reset_uidvalidity(account.username, "INBOX")
    result = sync_mailbox(mailbox, folder_names=["INBOX"])
    assert result.folders["INBOX"].remapped == 4
    assert set(folder.messages.values_list("pk", flat=True)) == before
    assert folder.messages.get(pk=kept.pk).conversation == conversation
    assert_mirrors_server(account, folder)


def test_an_interrupted_remap_finishes_on_the_next_run(mailbox, settings):
    settings.SYNC_WINDOW = 10
    account = mailbox.account
    account.server.write_maildir(
        account.username, "INBOX", [make_message(f"m{n}") for n in range(30)]
    )
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    before = set(folder.messages.values_list("pk", flat=True))
    account.server.reset_uidvalidity(account.username, "INBOX")

    def crash(folder):
        if folder.sync_done >= 10:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        sync_mailbox(mailbox, progress=crash, folder_names=["INBOX"])
    # Mid-remap nothing is lost: old rows wait (negative UIDs) to be matched.
    assert set(folder.messages.values_list("pk", flat=True)) == before
    sync_mailbox(mailbox, folder_names=["INBOX"])
    assert set(folder.messages.values_list("pk", flat=True)) == before
    assert not folder.messages.filter(uid__lt=0).exists()
    assert_mirrors_server(account, folder)


def test_a_folder_whose_uidvalidity_keeps_changing_is_parked_with_a_visible_error(mailbox):
    account = mailbox.account
    account.deliver("m")
    sync_mailbox(mailbox)
    for _ in range(2):
        account.server.reset_uidvalidity(account.username, "INBOX")
        assert not sync_mailbox(mailbox, folder_names=["INBOX"]).errors
    account.server.reset_uidvalidity(account.username, "INBOX")
    result = sync_mailbox(mailbox, folder_names=["INBOX"])
    folder = inbox(mailbox)
    assert "renumbered this folder 3 times" in result.errors["INBOX"]
    assert folder.sync_state == Folder.SyncState.PARKED
    assert folder.messages.count() == 1  # nothing thrown away
    # Parked: the next run leaves it alone instead of looping.
    assert sync_mailbox(mailbox, folder_names=["INBOX"]).folders["INBOX"].skipped == "parked"


def test_two_workers_never_sync_the_same_folder_at_once(mailbox):
    from webmail.sync.messages import FolderSync

    account = mailbox.account
    account.deliver("m")
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    first = FolderSync(folder, account.client())
    assert first._lock()
    account.deliver("m2")
    assert sync_mailbox(mailbox, folder_names=["INBOX"]).folders["INBOX"].skipped == "busy"
    first._unlock()
    assert sync_mailbox(mailbox, folder_names=["INBOX"]).folders["INBOX"].added == 1


def test_an_unchanged_folder_is_not_even_selected(mailbox):
    account = mailbox.account
    account.deliver("m")
    sync_mailbox(mailbox)
    result = sync_mailbox(mailbox)
    assert {r.skipped for r in result.folders.values()} == {"unchanged"}
    account.deliver("m2")
    result = sync_mailbox(mailbox)
    assert result.folders["INBOX"].added == 1
    assert result.folders["Sent"].skipped == "unchanged"


def test_known_folders_are_opened_before_the_folder_list_is_read(mailbox, monkeypatch):
    """On Dovecot with a mailbox list index (the suite's has one), a session that has sent LIST,
    or touched another folder, waits in proportion to INBOX's size to open it or ask its
    STATUS, every time. So a resync asks STATUS of INBOX and opens it first, then the other
    folders it knows, and reads the folder list last: and still finds a new folder."""
    account = mailbox.account
    account.deliver("first")
    sync_mailbox(mailbox)
    account.deliver("second")
    account.deliver("escalated", folder="Escalations")
    sent = []
    command = imaplib.IMAP4._command

    def recording(imap, name, *args):
        sent.append(name)
        return command(imap, name, *args)

    monkeypatch.setattr(imaplib.IMAP4, "_command", recording)
    result = sync_mailbox(mailbox)
    assert result.folders["INBOX"].added == 1
    assert result.folders["Escalations"].added == 1
    assert not result.errors
    assert sent[sent.index("STATUS") :][:2] == ["STATUS", "EXAMINE"]  # INBOX's
    assert sent.count("STATUS") > 1  # then the other folders'
    assert sent.index("EXAMINE") < sent.index("LIST")
    assert_mirrors_server(account, inbox(mailbox))
    assert_mirrors_server(account, mailbox.folders.get(name="Escalations"))


def test_a_message_moved_by_another_client_keeps_its_conversation(mailbox):
    from webmail.models import Conversation

    account = mailbox.account
    uid = account.deliver("Where is my parcel?")
    sync_mailbox(mailbox)
    message = inbox(mailbox).messages.get()
    conversation = Conversation.objects.create(mailbox=mailbox, subject=message.subject)
    message.conversation = conversation
    message.save()

    other = account.client()
    other.select_folder("INBOX")
    other.move([uid], "Archive")
    other.logout()
    sync_mailbox(mailbox)
    moved = mailbox.folders.get(special_use="archive").messages.get()
    assert moved.conversation == conversation
    assert not inbox(mailbox).messages.exists()


def test_a_move_is_recognised_whichever_folder_is_synced_first(mailbox):
    from webmail.models import Conversation

    account = mailbox.account
    uid = account.deliver("Invoice question")
    sync_mailbox(mailbox)
    message = inbox(mailbox).messages.get()
    conversation = Conversation.objects.create(mailbox=mailbox, subject=message.subject)
    Message.objects.filter(pk=message.pk).update(conversation=conversation)

    other = account.client()
    other.select_folder("INBOX")
    other.move([uid], "Archive")
    other.logout()
    sync_mailbox(mailbox, folder_names=["Archive"])  # destination first
    sync_mailbox(mailbox, folder_names=["INBOX"])
    assert mailbox.folders.get(special_use="archive").messages.get().conversation == conversation
    assert not inbox(mailbox).messages.exists()


def test_a_folder_renamed_by_another_client_keeps_its_messages(mailbox):
    account = mailbox.account
    account.deliver("kept", folder="Clients")
    sync_mailbox(mailbox)
    folder = mailbox.folders.get(name="Clients")
    message_ids = set(folder.messages.values_list("pk", flat=True))
    other = account.client()
    other.create_folder("Customers")
    other.rename_folder("Clients", "Customers/Current")
    other.logout()
    result = sync_mailbox(mailbox)
    folder.refresh_from_db()
    assert folder.name == "Customers/Current"
    assert folder.parent.name == "Customers"
    assert folder.label == "Current"
    assert set(folder.messages.values_list("pk", flat=True)) == message_ids
    assert result.folders["Customers/Current"].added == 0
    assert_mirrors_server(account, folder)


def test_a_window_that_dies_half_written_leaves_no_trace(mailbox, settings, monkeypatch):
    """A worker killed inside a window's transaction: the database rolls the window back, the
    cursor with it, and the next run fetches exactly those messages again."""
    settings.SYNC_WINDOW = 20
    account = mailbox.account
    account.server.write_maildir(
        account.username, "INBOX", [make_message(f"m{n}") for n in range(50)]
    )
    real_create = Change.objects.create
    calls = {"n": 0}

    def dies_on_second_window(**kwargs):
        if kwargs.get("kind") == "messages_added":
            calls["n"] += 1
            if calls["n"] == 2:  # rows and cursor of window 2 are written, not committed
                raise KeyboardInterrupt("SIGKILL stand-in")
        return real_create(**kwargs)

    monkeypatch.setattr(Change.objects, "create", dies_on_second_window)
    with pytest.raises(KeyboardInterrupt):
        sync_mailbox(mailbox, folder_names=["INBOX"])
    folder = inbox(mailbox)
    assert folder.messages.count() == 20
    assert folder.lowest_synced_uid == 31  # window 1 (UIDs 31-50) only
    monkeypatch.undo()
    sync_mailbox(mailbox, folder_names=["INBOX"])
    assert folder.messages.count() == 50
    assert_mirrors_server(account, folder)


def test_the_whole_cycle_works_with_and_without_extensions(any_server_mailbox, settings):
    """Initial sync in windows, new mail, flags, expunge, rename, UIDVALIDITY reset — against
    a Dovecot with CONDSTORE/QRESYNC/LIST-STATUS and one that hides them."""
    settings.SYNC_WINDOW = 7
    mailbox = any_server_mailbox
    account = mailbox.account
    uids = [account.deliver(f"m{n}", flags=[r"\Seen"] if n % 2 else []) for n in range(20)]
    account.deliver("elsewhere", folder="Projects")
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    assert_mirrors_server(account, folder)

    other = account.client()
    other.select_folder("INBOX")
    other.add_flags(uids[:3], [r"\Flagged"])
    other.remove_flags([uids[1]], [r"\Seen"])
    other.delete_messages(uids[5:8])
    other.expunge()
    other.rename_folder("Projects", "Archive/Projects")
    other.logout()
    account.deliver("late arrival")
    sync_mailbox(mailbox)
    assert_mirrors_server(account, folder)
    assert mailbox.folders.get(name="Archive/Projects").messages.count() == 1

    account.server.reset_uidvalidity(account.username, "INBOX")
    sync_mailbox(mailbox)
    assert_mirrors_server(account, folder)


def test_the_periodic_full_scan_repairs_a_database_that_drifted(mailbox, settings):
    """CONDSTORE says nothing changed, yet the database disagrees with the server (a lost
    notification, a server bug): the daily full comparison puts it right."""
    account = mailbox.account
    for n in range(3):
        account.deliver(f"m{n}")
    sync_mailbox(mailbox)
    folder = inbox(mailbox)
    assert folder.last_full_scan_at is not None
    Message.objects.filter(folder=folder, subject="m1").update(is_flagged=True)
    Message.objects.filter(folder=folder, subject="m2").delete()
    Folder.objects.filter(pk=folder.pk).update(total_count=3)
    assert sync_mailbox(mailbox).folders["INBOX"].skipped == "unchanged"

    settings.SYNC_FULL_SCAN_INTERVAL = 0
    result = sync_mailbox(mailbox).folders["INBOX"]
    assert result.flag_changes == 1
    assert result.added == 1  # m2, which the database had lost
    assert_mirrors_server(account, folder)


@pytest.mark.django_db(transaction=True)
def test_a_crash_between_a_windows_conversations_and_its_rows_leaves_no_empty_conversation(
    mailbox, settings, monkeypatch
):
    """On PostgreSQL a window's conversations commit on a second connection just ahead of its
    rows. A worker dying in between leaves conversations with no messages until the next run,
    whose messages must find those conversations (a message without a Message-ID too), not
    make new ones beside them."""
    import re

    from webmail.models import Conversation
    from webmail.sync import messages as sync_messages

    settings.SYNC_WINDOW = 10
    account = mailbox.account
    mails = []
    for n in range(30):
        reply = n in (5, 15, 25)  # answers to the first message, one in each window
        raw = make_message(
            "Re: order 1" if reply else f"question {n}",
            message_id=f"<m{n}@example.org>",
            in_reply_to="<m0@example.org>" if reply else None,
        )
        if n in (7, 17):
            raw = re.sub(rb"Message-ID: [^\r\n]*\r\n", b"", raw)
        mails.append(raw)
    account.server.write_maildir(account.username, "INBOX", mails)

    ahead = []
    real_assign_ahead = sync_messages.FolderSync._assign_ahead
    monkeypatch.setattr(
        sync_messages.FolderSync,
        "_assign_ahead",
        lambda self, fetched: ahead.append(fetched) or real_assign_ahead(self, fetched),
    )
    real_upsert = sync_messages.upsert_messages
    calls = []

    def dies_writing_the_second_window(rows):
        calls.append(rows)
        if len(calls) == 2:
            raise KeyboardInterrupt("SIGKILL stand-in")
        return real_upsert(rows)

    monkeypatch.setattr(sync_messages, "upsert_messages", dies_writing_the_second_window)
    with pytest.raises(KeyboardInterrupt):
        sync_mailbox(mailbox, folder_names=["INBOX"])
    folder = inbox(mailbox)
    assert folder.messages.count() == 10
    from django.db import connection

    if connection.vendor == "postgresql":
        assert len(ahead) >= 2  # the second window's conversations were committed already
        assert Conversation.objects.filter(messages__isnull=True).exists()

    monkeypatch.undo()
    sync_mailbox(mailbox, folder_names=["INBOX"])

    assert folder.messages.count() == 30
    assert not Conversation.objects.filter(messages__isnull=True).exists()
    # 26 questions of their own, and the first one with its three answers.
    assert Conversation.objects.count() == 27
    thread = Message.objects.get(message_id="<m0@example.org>").conversation
    assert thread.messages.count() == 4
    assert_mirrors_server(account, folder)
