"""The fast FETCH reader must give exactly what imapclient's own parser gives."""

import datetime as dt

import pytest

from tests.dovecot import make_message
from webmail.imap.fetch import fetch_headers
from webmail.sync.messages import NEW_MESSAGE_ITEMS

pytestmark = pytest.mark.imap


@pytest.fixture
def client(imap_account):
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
    account.append(b"X-Nothing: at all\r\n\r\n")  # none of the fetched fields: an empty block
    account.append(b'Subject: (parens) and "quotes" {5}\r\n\r\nbody')
    c = account.client()
    c.normalise_times = False
    c.enable("QRESYNC")
    c.select_folder("INBOX")
    yield c
    c.logout()


def test_it_reads_what_imapclient_reads(client, monkeypatch):
    expected = client.fetch("1:*", NEW_MESSAGE_ITEMS + ["MODSEQ"])

    def no_fallback(*args, **kwargs):
        raise AssertionError("these responses should not need the general parser")

    monkeypatch.setattr("webmail.imap.fetch.parse_fetch_response", no_fallback)
    actual = fetch_headers(client, "1:*", NEW_MESSAGE_ITEMS + ["MODSEQ"])
    assert actual == expected
    assert len(actual) == 5


def test_an_unusual_shape_falls_back_to_imapclient(client):
    items = ["UID", "FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "BODY.PEEK[TEXT]"]
    assert fetch_headers(client, "1:*", items) == client.fetch("1:*", items)


def test_flag_only_fetches_with_modifiers_work(client):
    modseq = client.select_folder("INBOX")[b"HIGHESTMODSEQ"]
    client.add_flags([2], [r"\Answered"])
    changed = fetch_headers(client, "1:*", ["UID", "FLAGS"], f"CHANGEDSINCE {modseq}")
    assert list(changed) == [2]
    assert b"\\Answered" in changed[2][b"FLAGS"]
