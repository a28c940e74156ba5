"""Assertions shared by the sync tests: the database must equal the server."""

from __future__ import annotations

import datetime as dt

from webmail.models import Folder
from webmail.sync.messages import flag_values


def server_state(account, folder_name: str) -> dict[int, dict]:
    """UID → flag columns, as the server has them now."""
    client = account.client()
    try:
        client.select_folder(folder_name, readonly=True)
        response = client.fetch("1:*", ["UID", "FLAGS"]) if client.search("ALL") else {}
    finally:
        client.logout()
    return {uid: flag_values(data[b"FLAGS"]) for uid, data in response.items()}


def database_state(folder: Folder) -> dict[int, dict]:
    fields = ["is_seen", "is_flagged", "is_answered", "is_draft", "is_deleted", "keywords"]
    return {
        row["uid"]: {k: row[k] for k in fields} for row in folder.messages.values("uid", *fields)
    }


def assert_mirrors_server(account, folder: Folder) -> None:
    folder.refresh_from_db()
    on_server = server_state(account, folder.name)
    stored = database_state(folder)
    assert sorted(stored) == sorted(on_server), "UID sets differ"
    different = {uid for uid in on_server if on_server[uid] != stored[uid]}
    assert not different, f"flags differ for UIDs {sorted(different)}"
    assert folder.total_count == len(on_server)
    assert folder.unread_count == sum(1 for f in on_server.values() if not f["is_seen"])


def message_row(folder: Folder, uid: int, subject: str, **fields) -> dict:
    """A message as the sync hands it to the upsert (webmail.sync.store.upsert_messages)."""
    return {
        "mailbox_id": folder.mailbox_id,
        "folder_id": folder.pk,
        "uid": uid,
        "stable_id": f"stable-{uid}",
        "message_id": f"<{uid}@example.com>",
        "subject": subject,
        "from_name": "Anna Schmidt",
        "from_address": "anna@acme-corp.example",
        "to": [["Support", "support@example.com"]],
        "cc": [["Billing Team", "billing@example.com"]],
        "internal_date": dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC) + dt.timedelta(minutes=uid),
        **fields,
    }
