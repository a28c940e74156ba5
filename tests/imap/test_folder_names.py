"""Folder names as the server spells them and as people read them: modified UTF-7, any
delimiter, and the personal namespace's prefix ("INBOX." on Courier and Cyrus)."""

from __future__ import annotations

import pytest

from webmail.imap.folders import decode_name, encode_name, parent_name, renamed, shown_name


@pytest.mark.parametrize(
    ("name", "delimiter", "prefix", "shown"),
    [
        ("Caf&AOk-/&ANw-berweisung &- Co", "/", "", ("Café/Überweisung & Co", "Überweisung & Co")),
        ("INBOX.Projects.Acme", ".", "INBOX.", ("Projects.Acme", "Acme")),
        ("INBOX.Sent", ".", "INBOX.", ("Sent", "Sent")),
        # A folder outside the prefix (another namespace, or INBOX itself) keeps its name.
        ("Shared.Support", ".", "INBOX.", ("Shared.Support", "Support")),
        ("INBOX", ".", "INBOX.", ("INBOX", "INBOX")),
        ("Mail/Caf&AOk-", "/", "Mail/", ("Café", "Café")),
        ("Flat", "", "", ("Flat", "Flat")),
        # Not valid modified UTF-7: shown as the server sent it rather than failing.
        ("Bad&-broken&ZZZ", "/", "", ("Bad&-broken&ZZZ", "Bad&-broken&ZZZ")),
    ],
)
def test_names_are_shown_decoded_and_without_the_namespace_prefix(name, delimiter, prefix, shown):
    assert shown_name(name, delimiter, prefix) == shown


@pytest.mark.parametrize(
    ("name", "delimiter", "prefix", "parent"),
    [
        ("INBOX.Sent", ".", "INBOX.", None),  # beside the Inbox, not inside it
        ("INBOX.Projects.Acme", ".", "INBOX.", "INBOX.Projects"),
        ("INBOX.Sent", ".", "", "INBOX"),  # no namespace there: a real subfolder of INBOX
        ("Projects/Acme", "/", "", "Projects"),
        ("Projects", "/", "", None),
        ("a.b", "", "", None),  # no hierarchy at all
    ],
)
def test_the_parent_is_the_name_one_level_up_inside_the_namespace(name, delimiter, prefix, parent):
    assert parent_name(name, delimiter, prefix) == parent


def test_encoding_round_trips_and_renames_carry_subfolders():
    for text in ("Café", "日本語", "a & b", "~tilde", "plain"):
        assert decode_name(encode_name(text)) == text
    assert renamed("INBOX.Old.Sub", "INBOX.Old", "INBOX.New", ".") == "INBOX.New.Sub"
    assert renamed("INBOX.Older", "INBOX.Old", "INBOX.New", ".") is None
