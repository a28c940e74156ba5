"""The folder management screen, as each persona sees and uses it, checked on the server."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from webmail.models import Change, Folder, Message, PendingChange
from webmail.sync.mailbox import sync_mailbox
from webmail.sync.writeback import apply_pending

pytestmark = [pytest.mark.django_db, pytest.mark.imap]


@pytest.fixture
def synced(mailbox):
    """Projects (two messages, one unread) with a subfolder Acme (one message), synced."""
    account = mailbox.account
    account.deliver("Kick-off", folder="Projects", flags=[r"\Seen"])
    account.deliver("Budget", folder="Projects")
    account.deliver("Acme contract", folder="Projects/Acme", flags=[r"\Seen"])
    sync_mailbox(mailbox)
    return mailbox


def apply_now(mailbox):
    PendingChange.objects.filter(mailbox=mailbox).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    return apply_pending(mailbox)


def server_folders(account) -> dict[str, bool]:
    """Folder name → subscribed, from LIST and LSUB."""
    client = account.client()
    try:
        listed = [name for _, _, name in client.list_folders()]
        subscribed = {name for _, _, name in client.list_sub_folders()}
    finally:
        client.logout()
    return {name: name in subscribed for name in listed}


def manage_url(box) -> str:
    return reverse("manage_folders", args=[box.pk])


def folder_urls(box, folder) -> dict[str, str]:
    """Every POST url of the screen, for one folder."""
    return {
        "create": reverse("create_folder", args=[box.pk]),
        "rename": reverse("rename_folder", args=[box.pk, folder.pk]),
        "move": reverse("move_folder", args=[box.pk, folder.pk]),
        "delete": reverse("delete_folder", args=[box.pk, folder.pk]),
        "subscription": reverse("folder_subscription", args=[box.pk, folder.pk]),
    }


POSTS = {
    "create": {"create-name": "Leads", "create-parent": ""},
    "rename": {"rename-name": "Clients"},
    "move": {"move-parent": ""},
    "delete": {"confirm": "yes"},
    "subscription": {"subscribed": "0"},
}


def state(box) -> tuple:
    return (
        sorted(box.folders.values_list("pk", "name", "is_subscribed")),
        PendingChange.objects.count(),
        Message.objects.count(),
    )


def test_the_tree_shows_nesting_counts_and_subscriptions(client, synced, alice):
    client.force_login(alice)
    response = client.get(manage_url(synced))

    html = response.content.decode()
    projects = synced.folders.get(name="Projects")
    acme = synced.folders.get(name="Projects/Acme")
    assert f'id="folder-row-{projects.pk}"' in html
    row = html.split(f'id="folder-row-{acme.pk}"', 1)[1].split("</li>", 1)[0]
    assert 'style="--depth: 1"' in row.split(">", 1)[0]
    assert "1 message" in row and "unread" not in row
    projects_row = html.split(f'id="folder-row-{projects.pk}"', 1)[1].split("</li>", 1)[0]
    assert 'style="--depth: 0"' in projects_row.split(">", 1)[0]
    assert "1 unread" in projects_row and "2 messages" in projects_row
    assert html.index(f'id="folder-row-{projects.pk}"') < html.index(f'id="folder-row-{acme.pk}"')
    assert "Subscribed<span" in projects_row and "unsubscribe from Projects" in projects_row
    # Protected folders offer no rename or delete.
    sent = synced.folders.get(special_use="sent")
    sent_row = html.split(f'id="folder-row-{sent.pk}"', 1)[1].split("</li>", 1)[0]
    assert "Delete…" not in sent_row and "Delete…" in projects_row
    assert 'name="create-name"' in html


def test_every_mailbox_page_links_to_the_manager(client, synced, bob):
    client.force_login(bob)
    inbox = synced.folders.get(special_use="inbox")
    html = client.get(inbox.get_absolute_url()).content.decode()
    assert f'href="{manage_url(synced)}"' in html and "Manage folders" in html


def test_an_outsider_gets_404_everywhere_and_changes_nothing(client, synced, charlie):
    client.force_login(charlie)
    projects = synced.folders.get(name="Projects")
    before = state(synced)
    assert client.get(manage_url(synced)).status_code == 404
    assert client.get(folder_urls(synced, projects)["delete"]).status_code == 404
    for action, url in folder_urls(synced, projects).items():
        response = client.post(url, POSTS[action])
        assert response.status_code == 404, action
        assert b"Projects" not in response.content
    assert state(synced) == before


def test_a_viewer_sees_the_tree_but_may_change_nothing(client, synced, vera):
    client.force_login(vera)
    projects = synced.folders.get(name="Projects")
    before = state(synced)
    html = client.get(manage_url(synced)).content.decode()
    assert "Projects" in html and "only its agents and managers can change them" in html
    assert "<form" not in html.split('id="folder-manager"', 1)[1].split("</section>", 1)[0]
    assert client.get(folder_urls(synced, projects)["delete"]).status_code == 403
    for action, url in folder_urls(synced, projects).items():
        assert client.post(url, POSTS[action]).status_code == 403, action
    assert state(synced) == before


def test_an_agent_may_create_and_subscribe_but_not_rename_move_or_delete(client, synced, bob):
    client.force_login(bob)
    projects = synced.folders.get(name="Projects")
    urls = folder_urls(synced, projects)
    html = client.get(manage_url(synced)).content.decode()
    assert "Rename or move" not in html and "Delete…" not in html
    assert "up to the mailbox’s managers" in html
    for action in ("rename", "move", "delete"):
        assert client.post(urls[action], POSTS[action]).status_code == 403, action
    assert client.get(urls["delete"]).status_code == 403

    response = client.post(urls["create"], {"create-name": "Leads", "create-parent": projects.pk})
    assert response.status_code == 302 and response["Location"] == manage_url(synced)
    assert client.post(urls["subscription"], {"subscribed": "0"}).status_code == 302
    apply_now(synced)
    server = server_folders(synced.account)
    assert server["Projects/Leads"] is True and server["Projects"] is False
    page = client.get(manage_url(synced)).content.decode()
    assert "Created “Projects/Leads”." in page and "Unsubscribed from “Projects”." in page


def test_a_manager_renames_moves_and_deletes(client, synced, alice):
    client.force_login(alice)
    projects = synced.folders.get(name="Projects")
    acme = synced.folders.get(name="Projects/Acme")

    response = client.post(folder_urls(synced, projects)["rename"], {"rename-name": "Clients"})
    assert response.status_code == 302
    apply_now(synced)
    assert {"Clients", "Clients/Acme"} <= set(server_folders(synced.account))

    response = client.post(folder_urls(synced, acme)["move"], {"move-parent": ""})
    assert response.status_code == 302
    apply_now(synced)
    assert "Acme" in server_folders(synced.account)
    acme.refresh_from_db()
    assert (acme.name, acme.parent_id) == ("Acme", None)

    response = client.post(folder_urls(synced, acme)["delete"], {"confirm": "yes"})
    assert response.status_code == 302
    assert not synced.folders.filter(pk=acme.pk).exists()
    apply_now(synced)
    assert "Acme" not in server_folders(synced.account)
    page = client.get(manage_url(synced)).content.decode()
    assert "Deleted “Acme”." in page


def test_delete_asks_first_and_says_what_goes(client, synced, alice):
    client.force_login(alice)
    projects = synced.folders.get(name="Projects")
    url = folder_urls(synced, projects)["delete"]
    before = state(synced)

    html = client.get(url).content.decode()
    assert "Delete “Projects”?" in html
    assert "1 subfolder" in html and "3 messages" in html and "cannot be undone" in html
    # A POST without the confirmation shows the question again and deletes nothing.
    response = client.post(url, {})
    assert response.status_code == 200 and "Delete “Projects”?" in response.content.decode()
    assert state(synced) == before

    response = client.post(url, {"confirm": "yes"}, follow=True)
    assert "Deleted “Projects” and 1 subfolder." in response.content.decode()
    assert not synced.folders.filter(name__startswith="Projects").exists()
    apply_now(synced)
    assert not [n for n in server_folders(synced.account) if n.startswith("Projects")]


def test_protected_folders_explain_themselves_instead_of_deleting(client, synced, alice):
    client.force_login(alice)
    trash = synced.folders.get(special_use="trash")
    before = state(synced)
    response = client.post(folder_urls(synced, trash)["delete"], {"confirm": "yes"})
    assert response.status_code == 200
    assert "is the trash folder, which mail programs rely on" in response.content.decode()
    response = client.post(folder_urls(synced, trash)["rename"], {"rename-name": "Bin"})
    assert "cannot be renamed" in response.content.decode()
    assert state(synced) == before
    assert "Trash" in server_folders(synced.account)


def test_invalid_names_are_shown_in_the_form_not_as_errors(client, synced, alice):
    client.force_login(alice)
    projects = synced.folders.get(name="Projects")
    before = state(synced)
    cases = [
        (folder_urls(synced, projects)["create"], {"create-name": "A/B"}, "cannot contain “/”"),
        (folder_urls(synced, projects)["create"], {"create-name": ""}, "This field is required"),
        (folder_urls(synced, projects)["create"], {"create-name": "Sent"}, "already a folder"),
        (
            folder_urls(synced, projects)["create"],
            {"create-name": "X", "create-parent": "999999"},
            "no longer there",
        ),
        (folder_urls(synced, projects)["rename"], {"rename-name": "Trash"}, "already a folder"),
        (
            folder_urls(synced, projects)["move"],
            {"move-parent": synced.folders.get(name="Projects/Acme").pk},
            "no longer there",  # not offered: a folder cannot go into its own subfolder
        ),
    ]
    for url, data, words in cases:
        response = client.post(url, data)
        assert response.status_code == 200, data
        html = response.content.decode()
        assert words in html, data
        assert 'class="field has-error"' in html or 'class="error"' in html
    assert state(synced) == before


def test_htmx_forms_swap_the_manager_and_raise_a_toast(client, synced, bob):
    client.force_login(bob)
    headers = {"HX-Request": "true", "HX-Target": "folder-manager"}
    response = client.post(
        reverse("create_folder", args=[synced.pk]),
        {"create-name": "Leads", "create-parent": ""},
        headers=headers,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="folder-manager"') and "<html" not in html
    leads = synced.folders.get(name="Leads")
    assert f'id="folder-row-{leads.pk}"' in html and "saving to the server" in html
    assert json.loads(response["HX-Trigger"]) == {"kotak:toast": {"text": "Created “Leads”."}}

    response = client.post(
        reverse("create_folder", args=[synced.pk]), {"create-name": "Leads"}, headers=headers
    )
    assert "already a folder called “Leads”" in response.content.decode()
    assert "HX-Trigger" not in response
    apply_now(synced)
    page = client.get(manage_url(synced), headers=headers).content.decode()
    assert "saving to the server" not in page


def test_the_edit_forms_open_for_one_folder(client, synced, alice):
    client.force_login(alice)
    acme = synced.folders.get(name="Projects/Acme")
    html = client.get(manage_url(synced), {"edit": acme.pk}).content.decode()
    assert 'name="rename-name" value="Acme"' in html
    move_form = html.split('name="move-parent"', 1)[1].split("</select>", 1)[0]
    assert ">Projects</option>" in move_form and ">Inbox</option>" in move_form
    assert ">Projects/Acme</option>" not in move_form  # not into itself


def test_a_refused_change_is_listed_with_the_reason_and_can_be_dismissed(client, synced, alice):
    client.force_login(alice)
    projects = synced.folders.get(name="Projects")
    client.post(folder_urls(synced, projects)["rename"], {"rename-name": "Clients"})
    other = synced.account.client()
    other.create_folder("Clients")  # another mail program takes the name first
    other.logout()
    assert apply_now(synced).failed == 1

    html = client.get(manage_url(synced)).content.decode()
    assert "The server refused 1 folder change" in html
    assert "Renaming “Projects” to “Clients”" in html and "exists" in html
    projects.refresh_from_db()
    assert projects.name == "Projects"
    failed = PendingChange.objects.get(state=PendingChange.State.FAILED)
    response = client.post(reverse("dismiss_folder_refusal", args=[synced.pk, failed.pk]))
    assert response.status_code == 302
    assert not PendingChange.objects.exists()
    assert "refused" not in client.get(manage_url(synced)).content.decode()


def test_get_never_changes_anything(client, synced, alice):
    client.force_login(alice)
    projects = synced.folders.get(name="Projects")
    before = state(synced)
    changes = Change.objects.count()
    urls = folder_urls(synced, projects)
    assert client.get(manage_url(synced), {"edit": projects.pk}).status_code == 200
    assert client.get(urls["delete"], {"confirm": "yes"}).status_code == 200
    for action in ("create", "rename", "move", "subscription"):
        assert client.get(urls[action], POSTS[action]).status_code == 405, action
    assert client.get(reverse("dismiss_folder_refusal", args=[synced.pk, 1])).status_code == 405
    assert state(synced) == before and Change.objects.count() == changes
    assert Folder.objects.get(pk=projects.pk).name == "Projects"


def test_anonymous_visitors_are_sent_to_log_in(client, synced):
    projects = synced.folders.get(name="Projects")
    before = state(synced)
    urls = [manage_url(synced), *folder_urls(synced, projects).values()]
    for url in urls:
        response = client.post(url, {"confirm": "yes"})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    assert state(synced) == before


def test_posts_need_the_csrf_token(synced, alice):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    projects = synced.folders.get(name="Projects")
    before = state(synced)
    for action, url in folder_urls(synced, projects).items():
        assert browser.post(url, POSTS[action]).status_code == 403, action
    assert state(synced) == before
