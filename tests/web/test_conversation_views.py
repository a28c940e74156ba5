"""The conversation page and its actions, per persona: alice manages, bob is an agent, vera
views, charlie is an outsider. Mail comes from the suite's Dovecot through the real sync."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.dovecot import make_message
from webmail import team
from webmail.models import Activity, Conversation, Message, Note, Notification
from webmail.sync.mailbox import sync_mailbox

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

HTMX = {"HTTP_HX_REQUEST": "true"}


def at(day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, 0, tzinfo=dt.UTC)


def deliver(mailbox, subject: str, when: dt.datetime, folder: str = "INBOX", **kwargs) -> None:
    mailbox.account.append(make_message(subject, date=when, **kwargs), folder, internal_date=when)


@pytest.fixture
def thread(mailbox) -> Conversation:
    """A question, our answer (kept in Sent) and the customer's follow-up: one conversation."""
    deliver(mailbox, "Printer on fire", at(1), message_id="<q@customer>", body="It smokes.\n")
    deliver(
        mailbox,
        "Re: Printer on fire",
        at(2),
        folder="Sent",
        sender="Support <support@example.com>",
        message_id="<a@support>",
        in_reply_to="<q@customer>",
    )
    deliver(
        mailbox,
        "Re: Printer on fire",
        at(3),
        message_id="<q2@customer>",
        extra_headers={"In-Reply-To": "<a@support>", "References": "<q@customer> <a@support>"},
        body="Still smoking.\n",
    )
    sync_mailbox(mailbox)
    conversation = Conversation.objects.get(subject="Printer on fire")
    assert conversation.messages.count() == 3
    return conversation


def url(conversation: Conversation, action: str = "") -> str:
    name = {
        "": "conversation",
        "status": "conversation_status",
        "snooze": "snooze_conversation",
        "assign": "assign_conversation",
        "take": "take_conversation",
        "note": "add_note",
        "split": "split_conversation",
        "merge": "merge_conversation",
    }[action]
    return reverse(name, args=[conversation.mailbox_id, conversation.pk])


def note_url(note: Note, action: str) -> str:
    return reverse(f"{action}_note", args=[note.mailbox_id, note.conversation_id, note.pk])


def toast(response) -> dict:
    return json.loads(response["HX-Trigger"])["kotak:toast"]


def fresh(conversation: Conversation) -> Conversation:
    return Conversation.objects.select_related("assignee").get(pk=conversation.pk)


def state(conversation: Conversation) -> tuple:
    c = fresh(conversation)
    return (
        c.status,
        c.assignee_id,
        c.snoozed_until,
        Note.objects.count(),
        Activity.objects.count(),
        Conversation.objects.count(),
        list(Message.objects.order_by("pk").values_list("conversation_id", flat=True)),
    )


# -- reading ----------------------------------------------------------------------------------


def test_the_timeline_interleaves_messages_across_folders_notes_and_history(
    client, thread, alice, bob
):
    note = team.add_note(alice, thread, "Customer is on the premium plan.")
    Note.objects.filter(pk=note.pk).update(created_at=at(2, 12))
    team.assign(alice, [thread], bob)
    client.force_login(bob)

    html = client.get(url(thread)).content.decode()

    question = html.index("It smokes.") if "It smokes." in html else None
    assert question is None  # bodies load in their sandboxed frames, not in the page
    first, answer, follow_up = thread.messages.order_by("internal_date")
    positions = [
        html.index(f'id="message-{first.pk}"'),
        html.index(f'id="message-{answer.pk}"'),
        html.index("Customer is on the premium plan."),
        html.index(f'id="message-{follow_up.pk}"'),
        html.index("alice assigned it to bob"),
    ]
    assert positions == sorted(positions)
    assert "Internal note — not sent" in html
    assert re.search(r'class="badge folder-badge" data-role="sent">Sent<', html)
    assert re.search(r'class="badge folder-badge" data-role="inbox">Inbox<', html)
    # The newest message is open with its body frame; older ones wait for a click.
    body = reverse("message_body", args=[thread.mailbox_id, follow_up.pk])
    assert f'src="{body}"' in html
    older = reverse("message_body", args=[thread.mailbox_id, first.pk])
    assert f'data-src="{older}"' in html
    assert "Assigned to bob" in html
    # The page's stream says "viewing" the newest message, so message and conversation
    # readers see each other.
    assert f"viewing={follow_up.pk}" in html


def test_the_live_refresh_returns_the_timeline_with_header_and_controls(client, thread, bob):
    client.force_login(bob)
    response = client.get(url(thread), HTTP_HX_TARGET="timeline", **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="timeline"')
    assert 'id="conversation-header" class="conversation-header" hx-swap-oob="true"' in html
    assert 'id="conversation-controls" class="side-block" hx-swap-oob="true"' in html
    assert "<html" not in html


def test_the_reader_links_to_its_conversation(client, thread, alice, bob):
    team.assign(alice, [thread], bob)
    client.force_login(alice)
    message = thread.messages.order_by("internal_date").first()
    html = client.get(message.get_absolute_url()).content.decode()
    assert f'href="{url(thread)}">Conversation · 3 messages · assigned to bob · open</a>' in html


def test_a_merged_conversation_leads_to_the_one_it_went_into(client, thread, mailbox, bob):
    deliver(mailbox, "Printer again", at(4), message_id="<other@customer>")
    sync_mailbox(mailbox)
    other = Conversation.objects.get(subject="Printer again")
    team.merge(bob, thread, [other])
    client.force_login(bob)
    assert client.get(url(other)).url == url(thread)
    assert client.get(url(other), **HTMX)["HX-Redirect"] == url(thread)


# -- who may do what --------------------------------------------------------------------------


def all_posts(conversation: Conversation, note: Note, bob) -> list[tuple[str, dict]]:
    message = conversation.messages.first()
    return [
        (url(conversation, "status"), {"status": "closed"}),
        (url(conversation, "snooze"), {"preset": "tomorrow"}),
        (url(conversation, "assign"), {"assignee": bob.pk}),
        (url(conversation, "take"), {}),
        (url(conversation, "note"), {"body": "hello"}),
        (note_url(note, "edit"), {"body": "changed"}),
        (note_url(note, "delete"), {}),
        (url(conversation, "split"), {"message": [message.pk]}),
        (url(conversation, "merge"), {"into": str(conversation.pk)}),
    ]


def test_an_outsider_gets_404_everywhere(client, thread, alice, bob, charlie):
    note = team.add_note(alice, thread, "Internal")
    client.force_login(charlie)
    before = state(thread)
    assert client.get(url(thread)).status_code == 404
    merge = reverse("merge_candidates", args=[thread.mailbox_id, thread.pk])
    assert client.get(merge).status_code == 404
    for path, data in all_posts(thread, note, bob):
        assert client.post(path, data).status_code == 404, path
    assert state(thread) == before


def test_a_viewer_reads_the_conversation_but_every_post_is_403(client, thread, alice, bob, vera):
    note = team.add_note(alice, thread, "Internal, but vera may read it")
    client.force_login(vera)
    before = state(thread)

    html = client.get(url(thread)).content.decode()

    assert "Internal, but vera may read it" in html
    assert "Take it" not in html and 'id="note-form"' not in html
    assert 'id="split-form"' not in html and "Merge into" not in html
    assert 'name="status"' not in html
    for path, data in all_posts(thread, note, bob):
        assert client.post(path, data, **HTMX).status_code == 403, path
    assert state(thread) == before


def test_an_agent_takes_sets_status_snoozes_and_notes(client, thread, bob):
    client.force_login(bob)
    html = client.get(url(thread)).content.decode()
    assert "Take it" in html and 'name="assignee"' not in html

    response = client.post(url(thread, "take"), **HTMX)
    assert response.status_code == 204 and toast(response)["text"] == "It is yours."
    assert fresh(thread).assignee == bob

    response = client.post(url(thread, "status"), {"status": "closed"}, **HTMX)
    assert toast(response)["text"] == "Marked closed."
    assert fresh(thread).status == "closed"

    response = client.post(url(thread, "snooze"), {"preset": "monday"}, **HTMX)
    snoozed = fresh(thread)
    assert snoozed.status == "pending"
    local = timezone.localtime(snoozed.snoozed_until)
    assert local.weekday() == 0 and (local.hour, local.minute) == (9, 0)
    assert local.date() > timezone.localdate()
    assert toast(response)["text"].startswith("Snoozed until Monday")

    response = client.post(url(thread, "note"), {"body": "Called them back."}, **HTMX)
    assert toast(response)["text"] == "Note added (the customer does not see it)."
    assert Note.objects.get().author == bob

    verbs = list(thread.activities.order_by("pk").values_list("verb", flat=True))
    assert verbs == ["assigned", "status", "snoozed", "noted"]


def test_an_agent_cannot_assign_or_unassign(client, thread, alice, bob):
    client.force_login(bob)
    assert client.post(url(thread, "assign"), {"assignee": alice.pk}).status_code == 403
    assert client.post(url(thread, "assign"), {"assignee": bob.pk}).status_code == 403
    team.take(bob, thread)
    assert client.post(url(thread, "assign"), {"assignee": ""}).status_code == 403
    assert fresh(thread).assignee == bob


def test_taking_an_assigned_conversation_says_whose_it_is(client, thread, alice, bob):
    team.assign(alice, [thread], alice)
    client.force_login(bob)
    html = client.get(url(thread)).content.decode()
    assert "Take it" not in html
    response = client.post(url(thread, "take"), **HTMX)
    assert toast(response) == {"text": "Already assigned to alice.", "level": "warning"}
    assert fresh(thread).assignee == alice


def test_a_manager_assigns_reassigns_and_unassigns(client, thread, alice, bob):
    client.force_login(alice)
    html = client.get(url(thread)).content.decode()
    assert f'<option value="{bob.pk}">bob</option>' in html

    response = client.post(url(thread, "assign"), {"assignee": bob.pk}, **HTMX)
    assert toast(response)["text"] == "Assigned to bob."
    assert fresh(thread).assignee == bob
    assert Notification.objects.get(user=bob).kind == "assigned"

    client.post(url(thread, "assign"), {"assignee": alice.pk}, **HTMX)
    assert fresh(thread).assignee == alice
    response = client.post(url(thread, "assign"), {"assignee": ""}, **HTMX)
    assert toast(response)["text"] == "Unassigned."
    assert fresh(thread).assignee is None
    html = client.get(url(thread)).content.decode()
    assert "alice unassigned alice" in html and "alice took it (was bob)" in html


def test_a_manager_cannot_assign_a_viewer(client, thread, alice, vera):
    client.force_login(alice)
    response = client.post(url(thread, "assign"), {"assignee": vera.pk}, **HTMX)
    assert toast(response)["level"] == "error"
    assert fresh(thread).assignee is None


def test_csrf_is_enforced(thread, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    before = state(thread)
    assert client.post(url(thread, "status"), {"status": "closed"}).status_code == 403
    assert client.post(url(thread, "note"), {"body": "x"}).status_code == 403
    assert state(thread) == before


def test_get_changes_nothing(client, thread, alice, bob):
    note = team.add_note(alice, thread, "Hi @bob")
    client.force_login(bob)
    before = state(thread)
    for path, _ in all_posts(thread, note, bob):
        assert client.get(path).status_code == 405, path
    client.get(url(thread))
    client.get(url(thread), HTTP_HX_TARGET="timeline", **HTMX)
    assert state(thread) == before


def test_a_plain_form_post_redirects_back_with_a_flash_message(client, thread, bob):
    client.force_login(bob)
    response = client.post(url(thread, "status"), {"status": "pending"}, follow=True)
    assert response.redirect_chain[-1][0] == url(thread)
    assert "Marked pending." in response.content.decode()


def test_snoozing_needs_a_future_time(client, thread, bob):
    client.force_login(bob)
    response = client.post(url(thread, "snooze"), {"until": "2020-01-01T09:00"}, **HTMX)
    assert toast(response) == {"text": "Snooze until a time in the future.", "level": "error"}
    response = client.post(url(thread, "snooze"), {"until": "soon"}, **HTMX)
    assert toast(response)["level"] == "warning"
    later = (timezone.localtime() + dt.timedelta(days=3)).replace(second=0, microsecond=0)
    client.post(url(thread, "snooze"), {"until": later.strftime("%Y-%m-%dT%H:%M")}, **HTMX)
    assert fresh(thread).snoozed_until == later
    assert "Snoozed until" in client.get(url(thread)).content.decode()


# -- notes ------------------------------------------------------------------------------------


def test_only_the_author_edits_and_deletes_a_note(client, thread, alice, bob):
    note = team.add_note(alice, thread, "Refund approved.")
    client.force_login(bob)
    html = client.get(url(thread)).content.decode()
    assert "Refund approved." in html and note_url(note, "edit") not in html
    assert client.post(note_url(note, "edit"), {"body": "Refund denied."}).status_code == 403
    assert client.post(note_url(note, "delete")).status_code == 403
    assert Note.objects.get().body == "Refund approved."

    client.force_login(alice)
    assert note_url(note, "edit") in client.get(url(thread)).content.decode()
    client.post(note_url(note, "edit"), {"body": "Refund approved (50%)."}, **HTMX)
    edited = Note.objects.get()
    assert edited.body == "Refund approved (50%)." and edited.edited_at is not None
    assert "(edited)" in client.get(url(thread)).content.decode()

    response = client.post(note_url(note, "delete"), **HTMX)
    assert toast(response)["text"] == "Note deleted."
    assert not Note.objects.exists()
    assert "alice deleted a note" in client.get(url(thread)).content.decode()


def test_an_empty_note_is_refused(client, thread, bob):
    client.force_login(bob)
    response = client.post(url(thread, "note"), {"body": "   "}, **HTMX)
    assert toast(response) == {"text": "A note needs some text.", "level": "warning"}
    assert not Note.objects.exists()


def test_a_mention_notifies_without_email_unless_configured(
    client, thread, alice, bob, django_capture_on_commit_callbacks
):
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url(thread, "note"), {"body": "@alice can you approve?"}, **HTMX)
    notification = Notification.objects.get(user=alice)
    assert notification.kind == "mention"
    assert notification.text == "bob mentioned you on “Printer on fire”"
    assert mail.outbox == []


def test_mentions_and_assignments_are_emailed_when_configured(
    client, thread, alice, bob, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_BY_EMAIL = True
    settings.DEFAULT_FROM_EMAIL = "kotak@example.com"
    settings.SITE_URL = "https://kotak.example.com"
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url(thread, "note"), {"body": "@alice can you approve?"}, **HTMX)
    (mention,) = mail.outbox
    assert mention.to == ["alice@example.com"]
    assert mention.from_email == "kotak@example.com"
    assert mention.subject == "bob mentioned you on “Printer on fire”"
    assert f"https://kotak.example.com{url(thread)}" in mention.body

    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url(thread, "assign"), {"assignee": bob.pk}, **HTMX)
        # Assigning yourself notifies nobody.
        client.post(url(thread, "assign"), {"assignee": alice.pk}, **HTMX)
    assert [m.to for m in mail.outbox] == [["alice@example.com"], ["bob@example.com"]]
    assert mail.outbox[1].subject == "alice assigned you “Printer on fire”"


# -- split and merge --------------------------------------------------------------------------


def test_split_moves_the_chosen_messages_into_a_new_conversation(client, thread, bob):
    first, answer, follow_up = thread.messages.order_by("internal_date")
    client.force_login(bob)
    response = client.post(url(thread, "split"), {"message": [follow_up.pk]}, **HTMX)
    assert toast(response)["text"] == (
        "Split 1 message into a new conversation, “Printer on fire”."
    )
    new = Conversation.objects.exclude(pk=thread.pk).get()
    assert list(new.messages.all()) == [follow_up]
    assert set(thread.messages.all()) == {first, answer}
    html = client.get(url(thread)).content.decode()
    assert "bob split 1 message into another conversation" in html
    assert url(new) in html
    assert "bob split this off another conversation" in client.get(url(new)).content.decode()


def test_split_refuses_the_whole_conversation_or_nothing(client, thread, bob):
    client.force_login(bob)
    everything = list(thread.messages.values_list("pk", flat=True))
    response = client.post(url(thread, "split"), {"message": everything}, **HTMX)
    assert toast(response)["text"] == "That is the whole conversation; nothing to split from."
    response = client.post(url(thread, "split"), {}, **HTMX)
    assert toast(response)["text"] == "Select the messages to split off."
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize("how", ["number", "address", "search"])
def test_merge_folds_this_conversation_into_another(client, thread, mailbox, alice, bob, how):
    deliver(mailbox, "Toner order", at(5), message_id="<toner@customer>")
    sync_mailbox(mailbox)
    other = Conversation.objects.get(subject="Toner order")
    team.add_note(alice, other, "Ordered twice?")
    client.force_login(bob)
    into = {
        "number": {"into": f"#{thread.pk}"},
        "address": {"into": f"https://kotak.example.com{url(thread)}"},
        "search": {"into": "", "into_id": str(thread.pk)},
    }[how]

    response = client.post(url(other, "merge"), into, **HTMX)

    assert response["HX-Redirect"] == url(thread)
    assert toast(response)["text"] == "Merged into “Printer on fire”."
    assert not Conversation.objects.filter(pk=other.pk).exists()
    assert thread.messages.count() == 4
    html = client.get(url(thread)).content.decode()
    assert "Ordered twice?" in html and "bob merged 1 conversation into this one" in html


def test_merge_candidates_are_found_by_subject_or_number(client, thread, mailbox, bob):
    deliver(mailbox, "Toner order", at(5), message_id="<toner@customer>")
    deliver(mailbox, "Invoice 12", at(6), message_id="<invoice@customer>")
    sync_mailbox(mailbox)
    toner = Conversation.objects.get(subject="Toner order")
    client.force_login(bob)
    candidates = reverse("merge_candidates", args=[mailbox.pk, toner.pk])

    html = client.get(candidates, {"into": "printer"}, **HTMX).content.decode()
    assert f'value="{thread.pk}"' in html and "Invoice 12" not in html
    html = client.get(candidates, {"into": str(thread.pk)}, **HTMX).content.decode()
    assert "Printer on fire" in html and "Invoice 12" not in html
    html = client.get(candidates, {"into": ""}, **HTMX).content.decode()
    assert "Printer on fire" in html and "Invoice 12" in html and "Toner order" not in html
    html = client.get(candidates, {"into": "nothing like it"}, **HTMX).content.decode()
    assert "No other conversation matches" in html


def test_merge_needs_another_conversation_of_this_mailbox(client, thread, bob):
    client.force_login(bob)
    for into in ("", str(thread.pk), "999999", "no idea"):
        response = client.post(url(thread, "merge"), {"into": into}, **HTMX)
        assert toast(response)["level"] == "warning", into
    assert Conversation.objects.filter(pk=thread.pk).exists()


# -- what changed since the page was opened ---------------------------------------------------


def refresh(client, conversation, html: str) -> str:
    seen = re.search(r'hx-get="[^"]*\?seen=([\d-]+)"', html)[1]
    return client.get(
        url(conversation), {"seen": seen}, HTTP_HX_TARGET="timeline", **HTMX
    ).content.decode()


def test_the_timeline_says_what_arrived_since_the_page_was_opened(
    client, thread, mailbox, alice, bob
):
    client.force_login(bob)
    page = client.get(url(thread)).content.decode()
    assert "since you opened this page" not in refresh(client, thread, page)

    team.add_note(bob, thread, "My own note does not count")
    assert "since you opened this page" not in refresh(client, thread, page)

    deliver(
        mailbox,
        "Re: Printer on fire",
        timezone.now(),
        message_id="<q3@customer>",
        in_reply_to="<q2@customer>",
    )
    sync_mailbox(mailbox)
    html = refresh(client, thread, page)
    assert "New message since you opened this page" in html

    team.add_note(alice, thread, "I am on it")
    html = refresh(client, thread, page)
    assert "New message and new note since you opened this page" in html
    newest = thread.messages.order_by("-internal_date").first()
    assert f'id="message-{newest.pk}" class="entry entry-message is-new"' in html

    # "show" moves the page's baseline to now: nothing is new any more.
    show = re.search(r'hx-get="([^"]*\?seen=[\d-]+)" hx-target="#timeline"', html)[1]
    html = client.get(show, HTTP_HX_TARGET="timeline", **HTMX).content.decode()
    assert "since you opened this page" not in html
    assert "since you opened this page" not in refresh(client, thread, html)


def test_a_message_moved_by_another_client_is_not_new(client, thread, mailbox, bob):
    client.force_login(bob)
    page = client.get(url(thread)).content.decode()
    imap = mailbox.account.client()
    imap.select_folder("INBOX")
    imap.move(imap.search(["SUBJECT", "Re: Printer"]), "Archive")
    imap.logout()
    sync_mailbox(mailbox)
    html = refresh(client, thread, page)
    assert thread.messages.filter(folder__name="Archive").count() == 1
    assert "since you opened this page" not in html


# -- notifications ----------------------------------------------------------------------------


def test_the_bell_counts_unread_and_opening_the_conversation_reads_them(client, thread, alice, bob):
    team.assign(alice, [thread], bob)
    team.add_note(alice, thread, "@bob see above")
    client.force_login(bob)
    bell = client.get(reverse("notification_bell"), **HTMX).content.decode()
    assert '<span class="bell-count">2</span>' in bell

    page = client.get(reverse("notifications")).content.decode()
    assert "alice assigned you “Printer on fire”" in page
    assert "alice mentioned you on “Printer on fire”" in page
    assert f'href="{url(thread)}"' in page

    client.get(url(thread))
    assert not Notification.objects.filter(user=bob, read_at__isnull=True).exists()
    bell = client.get(reverse("notification_bell"), **HTMX).content.decode()
    assert "bell-count" not in bell


def test_mark_all_read(client, thread, alice, bob):
    team.assign(alice, [thread], bob)
    client.force_login(bob)
    assert client.get(reverse("read_notifications")).status_code == 405
    response = client.post(reverse("read_notifications"), follow=True)
    assert "All notifications marked read." in response.content.decode()
    assert not Notification.objects.filter(read_at__isnull=True).exists()


def test_notifications_are_each_persons_own(client, thread, alice, bob, charlie):
    team.assign(alice, [thread], bob)
    client.force_login(charlie)
    assert "Printer on fire" not in client.get(reverse("notifications")).content.decode()
    client.post(reverse("read_notifications"))
    assert Notification.objects.get().read_at is None


def test_the_bell_is_in_every_mailbox_page(client, thread, bob):
    client.force_login(bob)
    inbox = thread.mailbox.folders.get(special_use="inbox")
    html = client.get(inbox.get_absolute_url()).content.decode()
    assert 'id="notification-bell"' in html and reverse("notification_bell") in html
