"""STATUS pipelining, VANISHED and UID sets — the parts imapclient lacks."""

import pytest

from webmail.imap.extensions import folder_statuses, parse_uid_set

pytestmark = pytest.mark.imap


def test_statuses_of_many_folders_come_back_in_one_go(imap_account):
    for n in range(3):
        imap_account.deliver(f"m{n}")
    imap_account.deliver("x", folder="Kunden & Aufträge")
    client = imap_account.client()
    client.folder_encode = False
    try:
        names = ["INBOX", "Kunden &- Auftr&AOQ-ge", "Sent", "Does not exist"]
        statuses = folder_statuses(client, names, condstore=True)
    finally:
        client.logout()
    assert set(statuses) == {"INBOX", "Kunden &- Auftr&AOQ-ge", "Sent"}
    assert statuses["INBOX"].messages == 3 and statuses["INBOX"].uidnext == 4
    assert statuses["Kunden &- Auftr&AOQ-ge"].messages == 1
    assert statuses["Sent"].messages == 0 and statuses["Sent"].highestmodseq is not None


def test_uid_sets_are_clamped_so_a_server_cannot_make_us_build_billions():
    assert parse_uid_set("1:3,7,10:9") == {1, 2, 3, 7, 9, 10}
    assert len(parse_uid_set("1:4294967295", 1, 1000)) == 1000
    assert parse_uid_set("5:*", 1, 7) == {5, 6, 7}
