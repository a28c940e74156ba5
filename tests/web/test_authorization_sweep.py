"""Every URL pattern, as anonymous, outsider, viewer, agent and manager: the expected answer.

The table below must name every route (a new one without an entry fails here), so no page,
partial, download or action can ship without its permissions being stated and checked.
Rules, unless a route says otherwise:
  - anonymous: sent to log in (302 to the login page);
  - outsider (no membership): 404 on anything under /mailboxes/<id>/;
  - reads (GET): every member may;
  - writes: POST only (GET answers 405), CSRF token required, viewers get 403.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import get_resolver, reverse

from tests.dovecot import make_message
from webmail import compose, team
from webmail.models import Membership, Note, OutgoingMessage, PendingChange, SavedReply
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

PERSONAS = ("anonymous", "charlie", "vera", "bob", "alice")
MEMBERS = ("vera", "bob", "alice")
OK = "ok"  # any answer that is not a refusal: 2xx, a redirect that is not to login, or 400

# name: (method, {persona: expected}) — expected is OK, 302 (to login), 403, 404 or 405.
# Omitted personas follow the rules above.
MANAGERS_ONLY_WRITE = {"vera": 403, "bob": 403, "alice": OK}
MANAGERS_ONLY_READ = {"vera": 403, "bob": 403, "alice": OK}
ROUTES: dict[str, tuple[str, dict]] = {
    "mailbox": ("GET", {}),
    "mailbox_preferences": ("POST", {"vera": OK}),  # one's own preference, not mail
    "mailbox_status": ("GET", {}),
    "folder": ("GET", {}),
    "message": ("GET", {}),
    "message_body": ("GET", {}),
    "message_attachment": ("GET", {}),
    "attached_message": ("GET", {}),
    "attached_message_body": ("GET", {}),
    "message_source": ("GET", {}),
    "trust_sender": ("POST", {}),
    "folder_tree": ("GET", {}),
    "manage_folders": ("GET", {}),
    "create_folder": ("POST", {}),
    "rename_folder": ("POST", MANAGERS_ONLY_WRITE),
    "move_folder": ("POST", MANAGERS_ONLY_WRITE),
    "delete_folder": ("POST", MANAGERS_ONLY_WRITE),
    "folder_subscription": ("POST", {}),
    "dismiss_folder_refusal": ("POST", {}),
    "message_presence": ("GET", {}),
    "act": ("POST", {}),
    "undo": ("POST", {}),
    "dismiss_failures": ("POST", {}),
    "team_nav": ("GET", {}),
    "team_act": ("POST", {}),
    "workload": ("GET", MANAGERS_ONLY_READ),
    "team_view": ("GET", {}),
    "activity": ("GET", MANAGERS_ONLY_READ),
    "members": ("GET", {}),
    "invite_member": ("POST", MANAGERS_ONLY_WRITE),
    "change_member_role": ("POST", MANAGERS_ONLY_WRITE),
    "remove_member": ("POST", MANAGERS_ONLY_WRITE),
    "mailbox_settings": ("POST", MANAGERS_ONLY_WRITE),
    "conversation": ("GET", {}),
    "conversation_status": ("POST", {}),
    "snooze_conversation": ("POST", {}),
    "assign_conversation": ("POST", MANAGERS_ONLY_WRITE),
    "take_conversation": ("POST", {}),
    "add_note": ("POST", {}),
    # The note is bob's: only its author edits or deletes it.
    "edit_note": ("POST", {"alice": 403}),
    "delete_note": ("POST", {"alice": 403}),
    "split_conversation": ("POST", {}),
    "merge_conversation": ("POST", {}),
    "merge_candidates": ("GET", {}),
    # Answering. The draft is bob's: only he edits, sends or discards it.
    "start_compose": ("POST", {}),
    "new_message": ("POST", {}),
    "compose": ("GET", {"vera": 403, "alice": 403}),
    "drafts": ("GET", {"vera": 403}),
    "save_draft": ("POST", {"alice": 403}),
    "send": ("POST", {"alice": 403}),
    "discard_outgoing": ("POST", {"alice": 403}),
    "upload_attachments": ("POST", {"alice": 403}),
    "remove_attachment": ("POST", {"alice": 403}),
    "edit_failed": ("POST", {"alice": 403}),
    "undo_send": ("POST", {}),  # the author, or a manager
    "retry_send": ("POST", {}),
    "answering_settings": ("GET", MANAGERS_ONLY_READ),
    "saved_replies": ("GET", MANAGERS_ONLY_READ),
    "edit_saved_reply": ("GET", MANAGERS_ONLY_READ),
    "delete_saved_reply": ("POST", MANAGERS_ONLY_WRITE),
    "my_settings": ("GET", {"vera": 403}),
}
# Not under a mailbox, or reached with a token instead of a session: tested where they live.
ELSEWHERE = {
    "home",
    "login",
    "logout",
    "add_mailbox",
    "events",
    "message_inline",
    "password_reset_confirm",
    "password_reset_complete",
    "notifications",
    "notification_bell",
    "read_notifications",
    "search",
    "search_server",
}


def route_names() -> set[str]:
    names = set()

    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                if "admin" not in str(pattern.pattern):
                    walk(pattern.url_patterns)
            elif pattern.name:
                names.add(pattern.name)

    walk(get_resolver().url_patterns)
    return names


def test_every_route_has_its_permissions_stated():
    unlisted = route_names() - set(ROUTES) - ELSEWHERE
    assert not unlisted, f"state the permissions of these routes in ROUTES: {sorted(unlisted)}"


@pytest.fixture
def world(mailbox, alice, bob, vera, charlie):
    """One of everything a route can point at, in the shared mailbox."""
    from email.message import EmailMessage

    original = EmailMessage()
    original["From"] = "Carla <carla@customer.example>"
    original["To"] = mailbox.email
    original["Subject"] = "With attachment"
    original["Message-ID"] = "<sweep@customer.example>"
    original.set_content("Hello")
    original.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="a.pdf")
    inner = EmailMessage()
    inner["From"] = "Dan <dan@customer.example>"
    inner["Subject"] = "Forwarded inside"
    inner.set_content("Inner text")
    original.add_attachment(inner)  # message/rfc822, section 3
    mailbox.account.append(original.as_bytes())
    mailbox.account.append(make_message("Plain one", message_id="<plain@customer.example>"))
    sync_mailbox(mailbox)
    message = mailbox.messages.get(subject="With attachment")
    conversation = message.conversation
    note = team.add_note(bob, conversation, "A note by bob")
    change = PendingChange.objects.create(
        mailbox=mailbox,
        action=PendingChange.Action.CREATE_FOLDER,
        state=PendingChange.State.FAILED,
        payload={"name": "X"},
    )
    folder = mailbox.folders.get(name="Archive")
    draft = compose.start(bob, mailbox, OutgoingMessage.Kind.REPLY, message)
    attachment = draft.attachments.create(filename="n.txt", content=b"x", size=1)
    saved = SavedReply.objects.create(mailbox=mailbox, name="Thanks", body="Thank you!")
    return {
        "mailbox_id": mailbox.pk,
        "folder_id": folder.pk,
        "message_id": message.pk,
        "conversation_id": conversation.pk,
        "note_id": note.pk,
        "membership_id": Membership.objects.get(mailbox=mailbox, user=vera).pk,
        "change_id": change.pk,
        "section": "2",
        "batch": "0" * 32,
        "view": "all",
        "kind": "reply",
        "outgoing_id": draft.pk,
        "attachment_id": attachment.pk,
        "reply_id": saved.pk,
        "users": {"alice": alice, "bob": bob, "vera": vera, "charlie": charlie},
    }


# URL arguments that differ by route (the attached message is part 3 of the test message).
ROUTE_KWARGS = {
    "attached_message": {"section": "3"},
    "attached_message_body": {"section": "3"},
}


def url_for(name: str, world: dict) -> str:
    from django.urls import NoReverseMatch

    route = next(p for p in _patterns() if p.name == name)
    keys = list(route.pattern.converters)
    values = world | ROUTE_KWARGS.get(name, {})
    try:
        return reverse(name, kwargs={key: values[key] for key in keys})
    except (KeyError, NoReverseMatch) as exc:
        raise AssertionError(f"the sweep cannot build a URL for {name}: {exc}") from exc


def _patterns():
    found = []

    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns)
            else:
                found.append(pattern)

    walk(get_resolver().url_patterns)
    return found


def client_for(persona: str, world: dict, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if persona != "anonymous":
        client.force_login(world["users"][persona])
    return client


def outcome(response) -> object:
    if response.status_code in (403, 404, 405):
        return response.status_code
    if response.status_code == 302 and "/accounts/login/" in response.get("Location", ""):
        return 302
    assert response.status_code < 500, f"{response.status_code} {response.content[:300]!r}"
    return OK


def expected(name: str, persona: str):
    method, overrides = ROUTES[name]
    if persona in overrides:
        return overrides[persona]
    if persona == "anonymous":
        return 302
    if persona == "charlie":
        return 404
    if method == "POST" and persona == "vera":
        return 403
    return OK


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_each_route_answers_each_persona_as_stated(name, world):
    method, _ = ROUTES[name]
    url = url_for(name, world)
    answers = {}
    # Those who may go last: an allowed delete must not leave nothing for the others to try.
    for persona in sorted(PERSONAS, key=lambda p: expected(name, p) == OK):
        client = client_for(persona, world)
        response = client.post(url, {}) if method == "POST" else client.get(url)
        answers[persona] = outcome(response)
    wanted = {persona: expected(name, persona) for persona in PERSONAS}
    assert answers == wanted


# Writes whose GET shows a confirmation step instead of 405 (it changes nothing either).
CONFIRMED_BY_GET = {"delete_folder"}


@pytest.mark.parametrize("name", sorted(n for n, (m, _) in ROUTES.items() if m == "POST"))
def test_writes_refuse_get_and_need_the_csrf_token(name, world):
    url = url_for(name, world)
    if name not in CONFIRMED_BY_GET:
        for persona in MEMBERS:
            assert client_for(persona, world).get(url).status_code == 405, persona
    response = client_for("alice", world, csrf=True).post(url, {})
    assert response.status_code == 403
    assert b"CSRF" in response.content


@pytest.mark.parametrize("name", sorted(n for n, (m, _) in ROUTES.items() if m == "GET"))
def test_reads_change_nothing(name, world):
    from webmail.models import Activity, Change, Conversation, Folder, Message

    def state():
        return (
            list(Message.objects.order_by("pk").values_list("pk", "is_seen", "is_flagged")),
            list(Conversation.objects.order_by("pk").values_list("pk", "status", "assignee")),
            list(Folder.objects.order_by("pk").values_list("pk", "name", "is_subscribed")),
            Note.objects.count(),
            Activity.objects.count(),
            PendingChange.objects.count(),
        )

    # Opening a message marks it read for members who choose so: turn it off here.
    Membership.objects.update(mark_read_on_open=False)
    before = state()
    # Presence, and a body fetched into the cache, are logged for live pages; neither is a
    # change to mail or team data.
    quiet = Change.objects.exclude(kind__in=["presence", "message_body"])
    changes_before = quiet.count()
    url = url_for(name, world)
    for persona in PERSONAS:
        client_for(persona, world).get(url)
    assert state() == before
    assert quiet.count() == changes_before
