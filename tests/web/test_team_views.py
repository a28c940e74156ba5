"""The team's screens through the web: queues and their counts, bulk assign / take / status,
workload, the audit trail, members and settings — with the personas' permissions."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.dovecot import make_message
from webmail.models import Activity, Change, Conversation, Membership, Role
from webmail.sync.bodies import prefetch_bodies
from webmail.sync.mailbox import sync_mailbox
from webmail.web.team_views import VIEWS, team_counts

pytestmark = [pytest.mark.django_db, pytest.mark.imap]

HTMX = {"HTTP_HX_REQUEST": "true"}
Status = Conversation.Status


def conversation(mailbox, subject: str, minutes_ago: int = 0, **fields) -> Conversation:
    when = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return Conversation.objects.create(
        mailbox=mailbox, subject=subject, last_message_at=when, last_activity_at=when, **fields
    )


def listed(client, mailbox, view: str, **params) -> list[str]:
    response = client.get(reverse("team_view", args=[mailbox.pk, view]), params)
    assert response.status_code == 200
    return [c.subject for c in response.context["rows"]]


def act(client, mailbox, action: str, *conversations, htmx=True, follow=False, **extra):
    data = {"action": action, "conversation": [c.pk for c in conversations], **extra}
    return client.post(
        reverse("team_act", args=[mailbox.pk]), data, follow=follow, **(HTMX if htmx else {})
    )


def toast(response) -> dict:
    return json.loads(response["HX-Trigger"])["kotak:toast"]


@pytest.fixture
def queue(mailbox, alice, bob):
    """One conversation of each kind, as bob's Mine and the others see them."""
    later = timezone.now() + dt.timedelta(hours=3)
    return {
        "waiting": conversation(mailbox, "Waiting", 10),
        "bob open": conversation(mailbox, "Bob open", 9, assignee=bob),
        "bob pending": conversation(mailbox, "Bob pending", 8, assignee=bob, status=Status.PENDING),
        "bob snoozed": conversation(
            mailbox, "Bob snoozed", 7, assignee=bob, status=Status.PENDING, snoozed_until=later
        ),
        "alice open": conversation(mailbox, "Alice open", 6, assignee=alice),
        "pending nobody": conversation(mailbox, "Pending nobody", 5, status=Status.PENDING),
        "bob closed": conversation(mailbox, "Bob closed", 4, assignee=bob, status=Status.CLOSED),
    }


# -- what each view lists -----------------------------------------------------------------------


def test_each_view_lists_what_its_name_promises_newest_activity_first(client, mailbox, bob, queue):
    client.force_login(bob)
    assert listed(client, mailbox, "unassigned") == ["Waiting"]
    assert listed(client, mailbox, "mine") == ["Bob pending", "Bob open"]
    assert listed(client, mailbox, "others") == ["Alice open"]
    assert listed(client, mailbox, "pending") == ["Pending nobody", "Bob pending"]
    assert listed(client, mailbox, "snoozed") == ["Bob snoozed"]
    assert listed(client, mailbox, "closed") == ["Bob closed"]
    assert len(listed(client, mailbox, "all")) == 7


def test_mine_and_others_depend_on_who_looks(client, mailbox, alice, queue):
    client.force_login(alice)
    assert listed(client, mailbox, "mine") == ["Alice open"]
    assert listed(client, mailbox, "others") == ["Bob snoozed", "Bob pending", "Bob open"]


def test_the_counts_take_two_queries_and_match_the_lists(client, mailbox, bob, queue):
    with CaptureQueriesContext(connection) as queries:
        counts = team_counts(mailbox, bob)
    assert len(queries) == 2
    assert counts == {
        "unassigned": 1,
        "mine": 2,
        "others": 1,
        "pending": 2,
        "snoozed": 1,
        "closed": 1,
        "all": 7,
    }
    client.force_login(bob)
    for view in VIEWS:
        assert len(listed(client, mailbox, view)) == counts[view], view


def test_the_sidebar_section_shows_each_view_with_its_count(client, mailbox, bob, queue):
    client.force_login(bob)
    nav = client.get(
        reverse("team_nav", args=[mailbox.pk]) + "?current=mine", **HTMX
    ).content.decode()
    assert 'id="team-nav"' in nav and 'hx-trigger="sse:conversations' in nav
    mine = re.search(r'data-view="mine".*?class="count attention"[^>]*>(\d+)<', nav, re.S)
    assert mine and mine.group(1) == "2"
    assert 'aria-current="page"' in nav
    # Agents get no manager pages in the section.
    assert reverse("workload", args=[mailbox.pk]) not in nav
    assert reverse("members", args=[mailbox.pk]) in nav


def test_folder_pages_load_the_team_section_by_themselves(client, mailbox, bob):
    mailbox.account.deliver("Hello")
    sync_mailbox(mailbox)
    client.force_login(bob)
    inbox = mailbox.folders.get(special_use="inbox")
    page = client.get(inbox.get_absolute_url()).content.decode()
    assert 'id="team-nav"' in page and 'hx-trigger="load, sse:conversations' in page
    assert page.index('id="team-nav"') < page.index('id="folders"')


def test_a_row_shows_the_newest_sender_snippet_and_count_with_two_queries(client, mailbox, bob):
    account = mailbox.account
    account.append(make_message("Broken order", message_id="<q@c.example>", body="It broke."))
    account.append(
        make_message(
            "Re: Broken order",
            sender="Dana Customer <dana@c.example>",
            message_id="<q2@c.example>",
            in_reply_to="<q@c.example>",
            body="Still broken, please help.",
        ),
        internal_date=timezone.now() + dt.timedelta(minutes=1),
    )
    account.append(make_message("Other question", body="Another one."))
    sync_mailbox(mailbox)
    prefetch_bodies(mailbox)  # snippets come with the bodies
    client.force_login(bob)
    url = reverse("team_view", args=[mailbox.pk, "unassigned"])
    response = client.get(url, HTTP_HX_TARGET="conversation-list", **HTMX)
    html = response.content.decode()
    row = html[html.index("Broken order") - 600 : html.index("Still broken")]
    assert "Dana Customer" in row
    assert 'class="thread-count" title="messages">2<' in row
    assert "Still broken, please help." in html and "Another one." in html

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            client.get(url, HTTP_HX_TARGET="conversation-list", **HTMX)
        return len(queries)

    before = queries_for_list()
    for n in range(5):
        conversation(mailbox, f"More {n}")
    assert queries_for_list() == before  # no query per row


def test_pages_follow_each_other_without_gaps_or_repeats(client, mailbox, bob, settings):
    settings.MESSAGES_PER_PAGE = 2
    made = [conversation(mailbox, f"Question {n}", minutes_ago=n) for n in range(5)]
    # Two with the same activity time: the id breaks the tie.
    Conversation.objects.filter(pk=made[3].pk).update(last_activity_at=made[2].last_activity_at)
    client.force_login(bob)
    url = reverse("team_view", args=[mailbox.pk, "unassigned"])
    seen = []
    while url:
        response = client.get(url)
        seen += [c.subject for c in response.context["rows"]]
        older = re.search(r'href="([^"]+)" rel="next"', response.content.decode())
        url = older.group(1).replace("&amp;", "&") if older else None
    assert seen == ["Question 0", "Question 1", "Question 3", "Question 2", "Question 4"]


# -- bulk actions -------------------------------------------------------------------------------


def test_a_manager_assigns_several_at_once_with_a_toast_audit_and_live_event(
    client, mailbox, alice, bob
):
    first, second = conversation(mailbox, "First"), conversation(mailbox, "Second")
    client.force_login(alice)
    since = Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    response = act(client, mailbox, "assign", first, second, assignee=bob.pk)

    assert response.status_code == 204
    assert toast(response) == {"text": "Assigned 2 conversations to bob", "level": "success"}
    assert json.loads(response["HX-Trigger"])["kotak:refresh"] == {}
    assert set(Conversation.objects.values_list("assignee", flat=True)) == {bob.pk}
    assert Activity.objects.filter(verb="assigned", actor=alice).count() == 2
    assert Change.objects.filter(pk__gt=since, kind="conversation").count() == 2
    assert listed(client, mailbox, "unassigned") == []

    response = act(client, mailbox, "assign", first, assignee="none")
    assert toast(response)["text"] == "Unassigned 1 conversation"
    assert Conversation.objects.get(pk=first.pk).assignee is None


def test_assigning_to_a_viewer_or_stranger_is_refused_with_a_reason(
    client, mailbox, alice, vera, charlie
):
    first = conversation(mailbox, "First")
    client.force_login(alice)
    for person in (vera, charlie):
        response = act(client, mailbox, "assign", first, assignee=person.pk)
        assert toast(response)["level"] == "error"
        assert "not an agent or manager" in toast(response)["text"]
    assert Conversation.objects.get(pk=first.pk).assignee is None


def test_a_plain_form_post_redirects_back_with_a_flash_message(client, mailbox, alice, bob):
    first = conversation(mailbox, "No JS here")
    client.force_login(alice)
    back = reverse("team_view", args=[mailbox.pk, "unassigned"])
    response = act(
        client, mailbox, "assign", first, htmx=False, assignee=bob.pk, next=back, follow=True
    )
    assert response.redirect_chain[-1][0] == back
    assert "Assigned 1 conversation to bob" in response.content.decode()


def test_an_agent_takes_what_is_free_and_is_told_what_was_not(client, mailbox, alice, bob):
    free = conversation(mailbox, "Free")
    held = conversation(mailbox, "Held", assignee=alice)
    client.force_login(bob)
    response = act(client, mailbox, "take", free, held)
    assert toast(response) == {
        "text": "You took 1 conversation; 1 already had an owner (alice)",
        "level": "warning",
    }
    assert Conversation.objects.get(pk=free.pk).assignee == bob
    assert Conversation.objects.get(pk=held.pk).assignee == alice


def test_an_agent_cannot_assign_to_others(client, mailbox, bob, alice):
    first = conversation(mailbox, "First")
    client.force_login(bob)
    response = act(client, mailbox, "assign", first, assignee=alice.pk)
    assert response.status_code == 403
    assert toast(response)["level"] == "error"
    assert act(client, mailbox, "assign", first, htmx=False, assignee=bob.pk).status_code == 403
    assert Conversation.objects.get(pk=first.pk).assignee is None
    assert not Activity.objects.exists()


def test_agents_and_managers_change_status_in_bulk(client, mailbox, alice, bob):
    first, second = conversation(mailbox, "First"), conversation(mailbox, "Second")
    client.force_login(bob)
    response = act(client, mailbox, "status-closed", first, second)
    assert toast(response)["text"] == "Closed 2 conversations"
    assert set(Conversation.objects.values_list("status", flat=True)) == {Status.CLOSED}
    assert Activity.objects.filter(verb="status", data__to="closed").count() == 2
    client.force_login(alice)
    response = act(client, mailbox, "status-pending", first)
    assert toast(response)["text"] == "Marked 1 conversation pending"
    assert Conversation.objects.get(pk=first.pk).status == Status.PENDING


def test_a_viewer_reads_the_queues_but_cannot_act(client, mailbox, vera):
    first = conversation(mailbox, "First")
    client.force_login(vera)
    page = client.get(reverse("team_view", args=[mailbox.pk, "unassigned"])).content.decode()
    assert "First" in page and 'class="pick"' not in page and "team-bulk-form" not in page
    for action in ("take", "status-closed", "assign"):
        assert act(client, mailbox, action, first).status_code == 403
        assert act(client, mailbox, action, htmx=False).status_code == 403
    assert Conversation.objects.get(pk=first.pk).status == Status.OPEN


def test_an_outsider_gets_404_everywhere(client, mailbox, charlie):
    first = conversation(mailbox, "First")
    client.force_login(charlie)
    box = mailbox.pk
    for url in [
        reverse("team_view", args=[box, "unassigned"]),
        reverse("team_nav", args=[box]),
        reverse("workload", args=[box]),
        reverse("activity", args=[box]),
        reverse("members", args=[box]),
    ]:
        assert client.get(url).status_code == 404, url
    assert act(client, mailbox, "take", first).status_code == 404
    for name, args in [
        ("invite_member", [box]),
        ("mailbox_settings", [box]),
        ("remove_member", [box, Membership.objects.first().pk]),
    ]:
        assert client.post(reverse(name, args=args), {"who": "charlie"}).status_code == 404
    assert Conversation.objects.get(pk=first.pk).assignee is None


def test_anonymous_visitors_are_sent_to_log_in(client, mailbox):
    first = conversation(mailbox, "First")
    for response in (
        client.get(reverse("team_view", args=[mailbox.pk, "all"])),
        client.get(reverse("workload", args=[mailbox.pk])),
        act(client, mailbox, "take", first, htmx=False),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_bulk_actions_need_the_csrf_token(mailbox, alice, bob):
    first = conversation(mailbox, "First")
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert act(client, mailbox, "assign", first, assignee=bob.pk).status_code == 403
    response = client.post(reverse("invite_member", args=[mailbox.pk]), {"who": "charlie"})
    assert response.status_code == 403
    assert Conversation.objects.get(pk=first.pk).assignee is None


def test_looking_changes_nothing(client, mailbox, alice, queue):
    client.force_login(alice)
    before = (Activity.objects.count(), Change.objects.count())
    for view in VIEWS:
        client.get(reverse("team_view", args=[mailbox.pk, view]))
    for name in ("workload", "activity", "members", "team_nav"):
        client.get(reverse(name, args=[mailbox.pk]))
    assert client.get(reverse("team_act", args=[mailbox.pk])).status_code == 405
    assert client.get(reverse("mailbox_settings", args=[mailbox.pk])).status_code == 405
    assert (Activity.objects.count(), Change.objects.count()) == before


# -- workload -----------------------------------------------------------------------------------


def test_the_workload_shows_each_owner_and_what_nobody_holds(client, mailbox, alice, bob):
    conversation(mailbox, "Bob old", 3 * 60, assignee=bob)
    conversation(mailbox, "Bob new", 5, assignee=bob)
    conversation(mailbox, "Bob pending", 1, assignee=bob, status=Status.PENDING)
    conversation(mailbox, "Bob closed", 2 * 24 * 60, assignee=bob, status=Status.CLOSED)
    conversation(mailbox, "Nobody 1", 2 * 24 * 60)
    conversation(mailbox, "Nobody 2", 30)
    client.force_login(alice)
    response = client.get(reverse("workload", args=[mailbox.pk]))
    loads = {load.name: load for load in response.context["loads"]}
    assert (loads["bob"].open, loads["bob"].pending, loads["bob"].snoozed) == (2, 1, 0)
    assert (loads["alice"].open, loads["alice"].pending, loads["alice"].oldest) == (0, 0, None)
    assert abs(timezone.now() - loads["bob"].oldest - dt.timedelta(hours=3)).seconds < 60
    assert not loads["bob"].is_late
    unassigned = response.context["unassigned"]
    assert unassigned.open == 2 and unassigned.is_late
    html = response.content.decode()
    assert re.search(r'id="workload-unassigned".*?class="late">2\xa0days<', html, re.S)
    assert re.search(rf'id="workload-user-{bob.pk}".*?>3\xa0hours<', html, re.S)
    assert "vera" not in html  # viewers hold nothing


def test_only_managers_see_workload_and_activity(client, mailbox, bob, vera):
    for person in (bob, vera):
        client.force_login(person)
        assert client.get(reverse("workload", args=[mailbox.pk])).status_code == 403
        assert client.get(reverse("activity", args=[mailbox.pk])).status_code == 403


# -- activity -----------------------------------------------------------------------------------


def test_the_activity_page_tells_who_did_what_and_filters(client, mailbox, alice, bob):
    first, second = conversation(mailbox, "Refund please"), conversation(mailbox, "Login help")
    client.force_login(alice)
    act(client, mailbox, "assign", first, assignee=bob.pk)
    client.force_login(bob)
    act(client, mailbox, "take", second)
    act(client, mailbox, "status-closed", second)
    client.force_login(alice)

    page = client.get(reverse("activity", args=[mailbox.pk]))
    lines = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()
        for html in re.findall(r"<li data-verb[^>]*>(.*?)</li>", page.content.decode(), re.S)
    ]
    assert lines[0].startswith("bob closed “Login help” · ")
    assert lines[1].startswith("bob took “Login help” · ")
    assert lines[2].startswith("alice assigned “Refund please” to bob · ")
    assert lines[2].endswith("ago")

    by_alice = client.get(reverse("activity", args=[mailbox.pk]), {"person": alice.pk})
    assert [line.activity.actor for line in by_alice.context["lines"]] == [alice]
    closes = client.get(reverse("activity", args=[mailbox.pk]), {"verb": "status"})
    assert [line.lead for line in closes.context["lines"]] == ["closed"]


def test_the_activity_page_pages_back_through_history(client, mailbox, alice):
    from webmail.web import team_views

    made = conversation(mailbox, "Busy")
    for _ in range(team_views.ACTIVITY_PER_PAGE + 3):
        Activity.objects.create(mailbox=mailbox, conversation=made, actor=alice, verb="noted")
    client.force_login(alice)
    first = client.get(reverse("activity", args=[mailbox.pk]), {"verb": "noted"})
    assert len(first.context["lines"]) == team_views.ACTIVITY_PER_PAGE
    older = first.context["older_url"]
    assert "verb=noted" in older
    second = client.get(reverse("activity", args=[mailbox.pk]) + older)
    assert len(second.context["lines"]) == 3
    assert not second.context["older_url"]


# -- members ------------------------------------------------------------------------------------


def invite(client, mailbox, who: str, role: str = "agent"):
    return client.post(
        reverse("invite_member", args=[mailbox.pk]), {"who": who, "role": role}, follow=True
    )


def test_everyone_on_the_mailbox_sees_its_members_and_only_managers_change_them(
    client, mailbox, bob, vera, charlie
):
    for person in (bob, vera):
        client.force_login(person)
        page = client.get(reverse("members", args=[mailbox.pk])).content.decode()
        assert "alice" in page and "vera" in page and "Viewer" in page
        assert "Invite someone" not in page and "Remove" not in page
        assert invite(client, mailbox, "charlie").status_code == 403
        bobs = Membership.objects.get(user=bob, mailbox=mailbox)
        url = reverse("change_member_role", args=[mailbox.pk, bobs.pk])
        assert client.post(url, {"role": "manager"}).status_code == 403
        url = reverse("remove_member", args=[mailbox.pk, bobs.pk])
        assert client.post(url).status_code == 403
        assert client.post(reverse("mailbox_settings", args=[mailbox.pk])).status_code == 403
    assert not Membership.objects.filter(user=charlie).exists()
    assert Membership.objects.get(user=bob, mailbox=mailbox).role == Role.AGENT


def test_a_manager_invites_an_existing_user_by_username_or_email(client, mailbox, alice, charlie):
    client.force_login(alice)
    response = invite(client, mailbox, "CHARLIE@example.com", "viewer")
    assert "charlie is now viewer of Support." in response.content.decode()
    assert "invite-link-url" not in response.content.decode()
    assert Membership.objects.get(user=charlie, mailbox=mailbox).role == Role.VIEWER
    added = Activity.objects.get(verb="member_added")
    assert (added.actor, added.conversation, added.data["name"]) == (alice, None, "charlie")

    again = invite(client, mailbox, "charlie")
    assert "charlie is already a member of Support." in again.content.decode()
    unknown = invite(client, mailbox, "nobody-here")
    assert "There is no Kotak user called “nobody-here”" in unknown.content.decode()


def test_inviting_a_new_address_gives_a_one_time_link_to_choose_a_password(client, mailbox, alice):
    client.force_login(alice)
    response = invite(client, mailbox, "ana@customer-care.example")
    page = response.content.decode()
    ana = get_user_model().objects.get(email="ana@customer-care.example")
    assert ana.username == "ana" and not ana.is_active and not ana.has_usable_password()
    assert Membership.objects.get(user=ana, mailbox=mailbox).role == Role.AGENT
    link = re.search(r'id="invite-link-url" type="text" readonly value="([^"]+)"', page).group(1)
    assert link.startswith("http://testserver/accounts/reset/")
    members_page = client.get(reverse("members", args=[mailbox.pk])).content.decode()
    assert link not in members_page  # shown once
    assert "invited" in members_page

    # Asked again before ana came: a fresh link, no second membership.
    again = invite(client, mailbox, "ana@customer-care.example").content.decode()
    assert 'id="invite-link-url"' in again and "ana was invited before" in again
    assert Activity.objects.filter(verb="member_added").count() == 1

    visitor = Client()
    form = visitor.get(link, follow=True)
    assert "Choose your password" in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    done = visitor.post(
        set_url,
        {"new_password1": "a-long-secret-9", "new_password2": "a-long-secret-9"},
        follow=True,
    )
    assert "Your password is set" in done.content.decode()
    ana.refresh_from_db()
    assert ana.is_active and ana.check_password("a-long-secret-9")
    assert visitor.login(username="ana", password="a-long-secret-9")
    assert "used already or is too old" in Client().get(link, follow=True).content.decode()


def test_roles_change_with_an_audit_line_but_the_last_manager_stays(client, mailbox, alice, bob):
    client.force_login(alice)
    mine = Membership.objects.get(user=alice, mailbox=mailbox)
    bobs = Membership.objects.get(user=bob, mailbox=mailbox)
    url = reverse("change_member_role", args=[mailbox.pk, mine.pk])
    refused = client.post(url, {"role": "agent"}, follow=True).content.decode()
    assert "alice is the last manager of this mailbox" in refused
    assert Membership.objects.get(pk=mine.pk).role == Role.MANAGER

    url = reverse("change_member_role", args=[mailbox.pk, bobs.pk])
    assert (
        "bob is now manager." in client.post(url, {"role": "manager"}, follow=True).content.decode()
    )
    changed = Activity.objects.get(verb="role_changed")
    assert changed.data == {"user": bob.pk, "name": "bob", "role": "manager", "from": "agent"}

    # Now that there are two, alice may step down.
    url = reverse("change_member_role", args=[mailbox.pk, mine.pk])
    client.post(url, {"role": "agent"})
    assert Membership.objects.get(pk=mine.pk).role == Role.AGENT


def test_a_member_demoted_to_viewer_gives_back_their_conversations(client, mailbox, alice, bob):
    held = conversation(mailbox, "Held", assignee=bob)
    client.force_login(alice)
    bobs = Membership.objects.get(user=bob, mailbox=mailbox)
    client.post(reverse("change_member_role", args=[mailbox.pk, bobs.pk]), {"role": "viewer"})
    assert Conversation.objects.get(pk=held.pk).assignee is None


def test_removing_a_member_unassigns_their_open_work_with_audit_lines(client, mailbox, alice, bob):
    open_one = conversation(mailbox, "Open one", assignee=bob)
    pending = conversation(mailbox, "Pending one", assignee=bob, status=Status.PENDING)
    closed = conversation(mailbox, "Closed one", assignee=bob, status=Status.CLOSED)
    client.force_login(alice)
    bobs = Membership.objects.get(user=bob, mailbox=mailbox)
    page = client.post(
        reverse("remove_member", args=[mailbox.pk, bobs.pk]), follow=True
    ).content.decode()
    assert "bob is no longer a member of Support; 2 conversations are unassigned again." in page
    assert not Membership.objects.filter(pk=bobs.pk).exists()
    assert Conversation.objects.get(pk=open_one.pk).assignee is None
    assert Conversation.objects.get(pk=pending.pk).assignee is None
    assert Conversation.objects.get(pk=closed.pk).assignee == bob
    assert Activity.objects.filter(verb="unassigned", actor=alice).count() == 2
    removed = Activity.objects.get(verb="member_removed")
    assert removed.data["unassigned"] == 2 and removed.conversation is None
    lines = client.get(reverse("activity", args=[mailbox.pk])).context["lines"]
    assert lines[0].lead == "removed bob and unassigned their 2 conversations"


def test_the_last_manager_cannot_be_removed(client, mailbox, alice):
    client.force_login(alice)
    mine = Membership.objects.get(user=alice, mailbox=mailbox)
    page = client.post(
        reverse("remove_member", args=[mailbox.pk, mine.pk]), follow=True
    ).content.decode()
    assert "alice is the last manager of this mailbox" in page
    assert Membership.objects.filter(pk=mine.pk).exists()
    assert not Activity.objects.exists()


def test_a_manager_turns_keyword_mirroring_off_and_on(client, mailbox, alice):
    client.force_login(alice)
    url = reverse("mailbox_settings", args=[mailbox.pk])
    client.post(url, {})
    mailbox.refresh_from_db()
    assert not mailbox.mirror_keywords
    client.post(url, {"mirror_keywords": "on"})
    mailbox.refresh_from_db()
    assert mailbox.mirror_keywords
    assert [a.data for a in Activity.objects.order_by("pk")] == [
        {"mirror_keywords": False},
        {"mirror_keywords": True},
    ]
