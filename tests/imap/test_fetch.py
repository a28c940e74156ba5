"""The fast FETCH reader must give exactly what imapclient gives, leave imaplib's state as
imaplib would, and fail loudly when the connection breaks."""

import datetime as dt
import imaplib
import selectors
import socket
import threading

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.response_parser import parse_fetch_response

from tests.dovecot import make_message
from webmail.imap.extensions import pop_vanished
from webmail.imap.fetch import fetch_headers, parse_fetch_data
from webmail.sync.messages import FULL_HEADER_ITEM, HEADER_LIMIT, NEW_MESSAGE_ITEMS

pytestmark = pytest.mark.imap

ITEMS = NEW_MESSAGE_ITEMS + ["MODSEQ"]
# The whole header block, as the sync fetches again one that the window's FETCH cut short.
WHOLE = [item for item in ITEMS if not item.startswith("BODY")] + [FULL_HEADER_ITEM]

# More than imaplib's longest line (_MAXLINE): a literal is read by its size, never as a line.
HUGE_SUBJECT = b"Subject: " + b"\r\n ".join([b"word" * 19] * 14000)

VARIED_MESSAGES = [
    b'Subject: (parens) and "quotes" {5}\r\n\r\nbody',
    # Looks like a literal announcement at the end of a header line, and escaped quotes.
    b'Subject: ends like a literal {12}\r\nFrom: "Doe \\"JD\\" Jane" <jd@example.org>\r\n\r\nx',
    "Subject: Grüße aus Köln – ✓\r\nFrom: Jörg <j@example.org>\r\n\r\nbody".encode(),
    b'Subject: caf\xe9 latin-1\r\nTo: {}"\\ <x@example.org>\r\n\r\nbody',
    b"X-Nothing: at all\r\n\r\n",  # none of the fetched fields: an empty header block
    HUGE_SUBJECT + b"\r\nFrom: a@example.org\r\n\r\nbody",
]


def connect(account, *, tls: bool = False, port: int | None = None) -> IMAPClient:
    server = account.server
    client = IMAPClient(
        server.host,
        port=port or (server.imaps_port if tls else server.imap_port),
        ssl=tls,
        ssl_context=server.ssl_context() if tls else None,
        timeout=10,
    )
    client.login(account.username, account.password)
    client.normalise_times = False
    return client


def no_fallback(*args, **kwargs):
    raise AssertionError("these responses should not need the general parser")


@pytest.fixture(params=["plain", "tls"])
def client(request, imap_account):
    account = imap_account
    account.append(make_message("plain"), flags=[r"\Seen"])
    account.append(
        make_message("flagged", sender='"Doe, Jane" <jane@example.org>'),
        flags=[r"\Flagged", "$Label1", "Customer_Important"],
        internal_date=dt.datetime(
            2024, 2, 29, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-7))
        ),
    )
    account.append(b"Subject: no other headers\r\n\r\nbody")
    for raw in VARIED_MESSAGES:
        account.append(raw)
    c = connect(account, tls=request.param == "tls")
    c.enable("QRESYNC")
    c.select_folder("INBOX")
    yield c
    c.logout()


@pytest.fixture
def sessions(imap_account):
    """sessions(n): n plain connections to imap_account, logged out when the test ends."""
    opened: list[IMAPClient] = []

    def open_sessions(count: int) -> list[IMAPClient]:
        opened.extend(connect(imap_account) for _ in range(count))
        return opened[-count:]

    yield open_sessions
    for c in opened:
        c.logout()


def test_it_reads_what_imapclient_reads(client, monkeypatch):
    expected = client.fetch("1:*", ITEMS)
    monkeypatch.setattr("webmail.imap.fetch.parse_fetch_response", no_fallback)
    actual = fetch_headers(client, "1:*", ITEMS)
    assert actual == expected
    assert len(actual) == 3 + len(VARIED_MESSAGES)
    # The window's FETCH takes at most HEADER_LIMIT bytes of a header block ("<0>" answers).
    cut = FULL_HEADER_ITEM.replace(".PEEK", "").encode() + b"<0>"
    assert max(len(fields[cut]) for fields in actual.values()) == HEADER_LIMIT
    # Whole, a block longer than imaplib's longest line is read as a literal.
    whole = fetch_headers(client, "1:*", WHOLE)
    assert whole == client.fetch("1:*", WHOLE)
    assert max(len(fields[FULL_HEADER_ITEM.replace(".PEEK", "").encode()])
               for fields in whole.values()) > imaplib._MAXLINE  # fmt: skip
    # The connection is left in step: the next commands on it work.
    assert client.fetch("1", ["UID"]) == {1: {b"SEQ": 1}}
    assert client._imap.tagged_commands == {}


def test_an_unusual_shape_falls_back_to_imapclient(client):
    items = ["UID", "FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "BODY.PEEK[TEXT]"]
    assert fetch_headers(client, "1:*", items) == client.fetch("1:*", items)


def test_several_literals_in_one_response_fall_back_to_imapclient(client):
    # Dovecot answers UID FLAGS BODY[…] {n} / BODY[…] {m} / ")": two literals.
    items = ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "FLAGS", "BODY.PEEK[HEADER.FIELDS (FROM)]"]
    assert fetch_headers(client, "1:*", items) == client.fetch("1:*", items)


def test_flags_imapclient_converts_fall_back_to_imapclient(imap_account, sessions):
    # imapclient turns the keyword 2024 into an int and NIL into None; 0123 stays bytes.
    for flags in (["2024"], ["NIL", r"\Seen"], ["0123"], ["a}b"]):
        imap_account.append(b"Subject: x\r\n\r\n", flags=flags)
    (client,) = sessions(1)
    client.select_folder("INBOX")
    expected = client.fetch("1:*", ITEMS)
    assert 2024 in expected[1][b"FLAGS"] and None in expected[2][b"FLAGS"]
    assert fetch_headers(client, "1:*", ITEMS) == expected
    for uid in expected:  # each on its own, not only as part of a batch that falls back
        assert fetch_headers(client, str(uid), ITEMS) == client.fetch(str(uid), ITEMS)


def test_flag_only_fetches_with_modifiers_work(client):
    modseq = client.select_folder("INBOX")[b"HIGHESTMODSEQ"]
    client.add_flags([2], [r"\Answered"])
    changed = fetch_headers(client, "1:*", ["UID", "FLAGS"], f"CHANGEDSINCE {modseq}")
    assert list(changed) == [2]
    assert b"\\Answered" in changed[2][b"FLAGS"]


def seed_bulk(account, count: int) -> None:
    """`count` messages with sizeable header blocks, written straight into the Maildir."""
    references = " ".join(f"<ref-{k}@example.org>" for k in range(40))
    account.server.write_maildir(
        account.username,
        "INBOX",
        [make_message(f"bulk {n}", extra_headers={"References": references}) for n in range(count)],
    )


def test_unsolicited_responses_in_a_big_fetch_are_recorded_as_imaplib_records_them(
    imap_account, sessions
):
    seed_bulk(imap_account, 1500)
    fast, reference, other = sessions(3)
    other.select_folder("INBOX")  # first: it takes the \Recent flags
    for c in (fast, reference):
        c.enable("QRESYNC")
        c.select_folder("INBOX")
    # Another session changes the folder; both sessions are told in the middle of the
    # answer to their next command, between the FETCH data and the tagged OK.
    other.add_flags([3, 1200, 1450], [r"\Flagged"])  # 1450: outside the fetched set
    other.delete_messages([1, 2, 1500])
    other.expunge()
    other.append("INBOX", make_message("arrived meanwhile"))
    other.noop()  # \Recent for the new message goes to this session too

    result = fetch_headers(fast, "3:1400", ITEMS)
    assert result == reference.fetch("3:1400", ITEMS)
    assert len(result) == 1400 - 3 + 1 + 1  # and the unasked flag change of 1450
    assert rb"\Flagged" in result[1200][b"FLAGS"]

    assert fast._imap.untagged_responses == reference._imap.untagged_responses
    assert fast._imap.untagged_responses["EXISTS"][-1] == b"1498"
    assert "HIGHESTMODSEQ" in fast._imap.untagged_responses  # from the tagged OK's code
    assert pop_vanished(fast) == pop_vanished(reference) == {1, 2, 1500}

    # The connection is still in step: another fetch, then IDLE hearing of new mail.
    assert fetch_headers(fast, "1501", ["UID"]) == {1501: {b"SEQ": 1498}}
    fast.idle()
    other.append("INBOX", make_message("during idle"))
    heard = fast.idle_check(timeout=10)
    fast.idle_done()
    assert (1499, b"EXISTS") in heard
    assert fast._imap.tagged_commands == {}


def test_fetch_data_an_earlier_command_left_is_handed_over_as_imapclient_does(
    imap_account, sessions
):
    for n in range(3):
        imap_account.deliver(f"m{n}")
    fast, reference, other = sessions(3)
    other.select_folder("INBOX")
    for c in (fast, reference):
        c.enable("QRESYNC")
        c.select_folder("INBOX")
    other.add_flags([1, 3], [r"\Flagged"])
    for c in (fast, reference):
        c.noop()  # imaplib keeps the "* 1 FETCH (UID 1 … FLAGS …)" it is told here
    assert "FETCH" in fast._imap.untagged_responses
    other.remove_flags([1], [r"\Flagged"])  # older news than the answer to come
    result = fetch_headers(fast, "1", ITEMS)
    assert result == reference.fetch("1", ITEMS)
    assert set(result) == {1, 3}
    assert result[1][b"FLAGS"] == ()
    assert "FETCH" not in fast._imap.untagged_responses


def test_unsolicited_fetches_without_uid_do_not_land_on_asked_uids(imap_account, sessions):
    for n in range(6):
        imap_account.deliver(f"m{n}")
    fast, other = sessions(2)
    other.select_folder("INBOX")
    other.delete_messages([1, 2])
    other.expunge()
    fast.select_folder("INBOX")  # no QRESYNC: UIDs 3-6 are sequence numbers 1-4
    other.add_flags([6], [r"\Flagged"])  # told as "* 4 FETCH (FLAGS (\Flagged))"
    other.delete_messages([5])
    other.expunge()  # told as "* 3 EXPUNGE"

    result = fetch_headers(fast, "4", ["UID", "FLAGS"])
    # imapclient would key the flag change of sequence number 4 (UID 6) as UID 4.
    assert result == {4: {b"SEQ": 2, b"FLAGS": ()}}
    assert fast._imap.untagged_responses["EXPUNGE"] == [b"3"]
    assert fast.fetch("4", ["UID", "FLAGS"]) == result
    assert fast.get_flags([6]) == {6: (rb"\Flagged",)}


def test_a_bad_command_raises_and_leaves_the_connection_usable(client):
    with pytest.raises(IMAPClientError, match="FETCH command error: BAD") as caught:
        fetch_headers(client, "1:*", ["NO-SUCH-ITEM"])
    assert not isinstance(caught.value, imaplib.IMAP4.abort)
    assert client._imap.tagged_commands == {}
    assert fetch_headers(client, "1", ["UID"]) == {1: {b"SEQ": 1}}


def test_a_bye_from_the_server_aborts(imap_account):
    imap_account.deliver("one")
    client = connect(imap_account)
    try:
        client.select_folder("INBOX")
        # Dovecot answers the next command with "* BYE IMAP session state is inconsistent".
        imap_account.server.reset_uidvalidity(imap_account.username, "INBOX")
        with pytest.raises(imaplib.IMAP4.abort, match="inconsistent"):
            fetch_headers(client, "1:*", ITEMS)
        assert "BYE" in client._imap.untagged_responses
    finally:
        client.shutdown()


# -- a connection that breaks in the middle of the answer -----------------------------------


class BreakingRelay:
    """A TCP relay in front of Dovecot that can break the server's side of the conversation.

    Once armed with `cut`, it holds back what the server sends and asks cut(bytes so far) how
    much of it to pass on: at an answer, it passes that much and closes the connection. A cut
    that never answers leaves the client waiting for bytes that never come.
    """

    def __init__(self, port: int):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = port
        self.cut = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target))
        held = b""
        with selectors.DefaultSelector() as selector, client, server:
            selector.register(client, selectors.EVENT_READ, server)
            selector.register(server, selectors.EVENT_READ, client)
            while True:
                for key, _ in selector.select():
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if key.fileobj is server and self.cut is not None:
                        held += data
                        where = self.cut(held)
                        if where is None:
                            continue
                        client.sendall(held[:where])
                        client.shutdown(socket.SHUT_RDWR)
                        return
                    key.data.sendall(data)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


def at(marker: bytes, offset: int):
    """A cut `offset` bytes from where `marker` first appears in the answer."""

    def cut(held: bytes) -> int | None:
        found = held.find(marker)
        return None if found < 0 else found + offset

    return cut


@pytest.mark.parametrize(
    ("tls", "cut", "reason"),
    [
        (False, at(b"* 1 FETCH", 9), "unterminated line"),  # in a line
        (False, at(b"}\r\n", 3 + 20), "EOF"),  # in a literal
        (False, at(b")\r\n", 3), "EOF"),  # between two responses
        (False, at(b"* 30 FETCH", 0), "EOF"),  # between two later responses
        (True, lambda held: 3000 if len(held) >= 3000 else None, "socket error"),
    ],
    ids=["in-line", "in-literal", "between-responses", "later", "tls"],
)
def test_a_connection_closed_mid_answer_raises(imap_account, tls, cut, reason):
    seed_bulk(imap_account, 40)
    relay = BreakingRelay(imap_account.server.imaps_port if tls else imap_account.server.imap_port)
    client = connect(imap_account, tls=tls, port=relay.port)
    try:
        client.select_folder("INBOX")
        relay.cut = cut
        with pytest.raises(imaplib.IMAP4.abort, match=reason):
            fetch_headers(client, "1:*", ITEMS)
        assert client._imap.tagged_commands == {}
    finally:
        client.shutdown()
        relay.close()


def test_a_server_that_stops_answering_times_out(imap_account):
    seed_bulk(imap_account, 5)
    relay = BreakingRelay(imap_account.server.imap_port)
    client = connect(imap_account, port=relay.port)
    try:
        client.select_folder("INBOX")
        client.socket().settimeout(0.5)
        relay.cut = lambda held: None
        with pytest.raises(imaplib.IMAP4.abort, match="timed out"):
            fetch_headers(client, "1:*", ITEMS)
    finally:
        client.shutdown()
        relay.close()


# -- shapes Dovecot does not send, read from imaplib's form of the data ---------------------

SECTION = b"BODY[HEADER.FIELDS (SUBJECT)]"
DATE = b'INTERNALDATE "02-Mar-2026 10:00:00 -0700"'


@pytest.mark.parametrize(
    "data",
    [
        # Items after the literal, in another order.
        [(b"1 (UID 7 " + SECTION + b" {10}", b"Subject: x"), b" " + DATE + b" RFC822.SIZE 99)"],
        [b"2 (UID 8 " + SECTION + b" NIL FLAGS ())"],
        [b"3 (FLAGS (\\Seen $Junk) UID 9 RFC822.SIZE 0 " + SECTION + b' "")'],
        [b"4 (X-GM-MSGID 1278455344230334865 UID 10 MODSEQ (12) EMAILID (M6d99ac3275bb4e))"],
        [b'5 (UID 11 INTERNALDATE " 2-Mar-2026 10:00:00 +0530")'],
        # The same message twice (an unasked flag change after the answer): merged.
        [b"6 (UID 12 FLAGS ())", b"6 (UID 12 MODSEQ (40) FLAGS (\\Deleted))"],
    ],
)
def test_other_shapes_are_read_without_imapclient(data, monkeypatch):
    expected = parse_fetch_response(data, normalise_times=False)
    monkeypatch.setattr("webmail.imap.fetch.parse_fetch_response", no_fallback)
    assert parse_fetch_data(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        [b"1 (UID 7 " + SECTION + b' "say \\"hi\\"")'],  # escapes in a quoted string
        [b"2 (UID 8 FLAGS (\\Seen NIL))"],  # imapclient reads NIL as None
        [b"3 (UID 9 FLAGS (\\Seen 42))"],  # and digits as an int
        [b"4 (uid 10 flags (\\Seen))"],  # imapclient upper-cases names
        [b"5 (UID 11 BODY[HEADER.FIELDS (Subject)] NIL)"],
        [(b"6 (UID 12 " + SECTION + b" ~{3}", b"abc"), b")"],  # a literal8
        [(b"7 (UID 13 BODY[HEADER.FIELDS (TO)] NIL " + SECTION + b" {3}", b"abc"), b")"],
        [b"8 (UID 14 X-UNKNOWN (1 2))"],
    ],
)
def test_anything_else_is_read_by_imapclient(data):
    assert parse_fetch_data(data) == parse_fetch_response(data, normalise_times=False)


def test_responses_without_uid_are_left_out_on_both_paths():
    answer = [(b"2 (UID 4 " + SECTION + b" {3}", b"abc"), b")", b"4 (FLAGS (\\Flagged))"]
    assert parse_fetch_data(answer) == {4: {b"SEQ": 2, SECTION: b"abc"}}
    odd = [b"2 (UID 4 X-UNKNOWN 1)", b"4 (FLAGS (\\Flagged))"]
    assert parse_fetch_data(odd) == {4: {b"SEQ": 2, b"X-UNKNOWN": 1}}
