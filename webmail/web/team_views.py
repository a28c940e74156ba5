"""The team's screens: conversation queues (Unassigned, Mine …) with bulk actions, their live
counts in the sidebar, the managers' workload and audit trail, members and mailbox settings.

Reads check membership (non-members get 404); writes are POSTs that check the role here and
again in webmail.team / webmail.members, so no door skips it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST

from webmail import members as membership_ops
from webmail import team
from webmail.access import get_mailbox_for_user
from webmail.models import Activity, Conversation, Mailbox, Membership, Message, Role
from webmail.team import TeamError
from webmail.web.mail import _folder_tree, _latest_change_id

Status = Conversation.Status
WORKING = [Status.OPEN, Status.PENDING]
MAX_SELECTION = 500
ACTIVITY_PER_PAGE = 50
# A conversation waiting longer than this is shown as late on the workload page.
LATE_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class TeamView:
    slug: str
    label: str
    empty: str

    def filter(self, user) -> Q:
        """Which conversations of the mailbox this view lists, for this user."""
        working = Q(status__in=WORKING)
        return {
            "unassigned": Q(status=Status.OPEN, assignee__isnull=True),
            "mine": working & Q(assignee=user, snoozed_until__isnull=True),
            "others": working & Q(assignee__isnull=False) & ~Q(assignee=user),
            "pending": Q(status=Status.PENDING, snoozed_until__isnull=True),
            # Snoozing makes a conversation pending and closing it ends the snooze; saying so
            # lets the count use the (mailbox, status) index like the others.
            "snoozed": working & Q(snoozed_until__isnull=False),
            "closed": Q(status=Status.CLOSED),
            "all": Q(),
        }[self.slug]


VIEWS = {
    view.slug: view
    for view in [
        TeamView("unassigned", "Unassigned", "Nothing waits for an owner."),
        TeamView("mine", "Mine", "Nothing assigned to you is open."),
        TeamView("others", "Assigned to others", "Nobody else holds an open conversation."),
        TeamView("pending", "Pending", "Nothing is pending."),
        TeamView("snoozed", "Snoozed", "Nothing is snoozed."),
        TeamView("closed", "Closed", "Nothing is closed yet."),
        TeamView("all", "All", "No conversations yet."),
    ]
}

# The other screens the sidebar's Team section links to.
PAGES = ("workload", "activity", "members")

STATUS_ACTIONS = {
    "status-open": (Status.OPEN, "Reopened {}"),
    "status-pending": (Status.PENDING, "Marked {} pending"),
    "status-closed": (Status.CLOSED, "Closed {}"),
}


def team_counts(box: Mailbox, user) -> dict[str, int]:
    """How many conversations each view lists, in two queries: one aggregate over the open and
    pending ones (an index range, however much is closed), one count of them all."""
    working = [slug for slug in VIEWS if slug not in ("closed", "all")]
    counts = Conversation.objects.filter(mailbox=box, status__in=WORKING).aggregate(
        working=Count("pk"),
        **{slug: Count("pk", filter=VIEWS[slug].filter(user)) for slug in working},
    )
    counts["all"] = Conversation.objects.filter(mailbox=box).count()
    counts["closed"] = counts["all"] - counts.pop("working")
    return counts


def _nav_context(box: Mailbox, user, current: str = "") -> dict:
    counts = team_counts(box, user)
    return {
        "mailbox": box,
        "team_views": [(view, counts[slug]) for slug, view in VIEWS.items()],
        "team_current": current,
        "team_role": box.role_of(user),
    }


def _page_context(request: HttpRequest, box: Mailbox, current: str = "") -> dict:
    """What mailbox_base.html needs around a team screen: sidebar, event stream."""
    return {
        "folders": _folder_tree(box),
        "last_change_id": _latest_change_id(),
        **_nav_context(box, request.user, current),
    }


@login_required
@require_GET
def team_nav(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """The sidebar's Team section with its counts, re-fetched when conversations change."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    current = request.GET.get("current", "")
    if current not in {*VIEWS, *PAGES}:
        current = ""
    return render(
        request, "webmail/mailbox_base.html#team-nav", _nav_context(box, request.user, current)
    )


# -- conversation lists -------------------------------------------------------------------------


def _cursor(when: datetime, pk: int) -> str:
    """A keyset position as text: microseconds since the epoch and the id."""
    micros = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return f"{micros}_{pk}"


def _parse_cursor(value: str) -> tuple[datetime, int] | None:
    micros, _, pk = value.partition("_")
    if not (micros.lstrip("-").isdigit() and pk.isdigit()):
        return None
    try:
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
    except OverflowError:
        return None
    return when, int(pk)


def _after(rows, field: str, cursor: str):
    """Rows after the cursor in (field, pk) descending order."""
    position = _parse_cursor(cursor)
    if position is None:
        return rows
    when, pk = position
    # The "<=" alone lets the index scan start at the cursor; the OR alone is only a filter.
    return rows.filter(Q(**{f"{field}__lte": when}), Q(**{f"{field}__lt": when}) | Q(pk__lt=pk))


def conversation_url(box: Mailbox, conversation: Conversation, newest: Message | None) -> str:
    """The conversation's page; its newest message until that page exists."""
    try:
        return reverse("conversation", args=[box.pk, conversation.pk])
    except NoReverseMatch:
        return newest.get_absolute_url() if newest else ""


def _newest_messages(conversation_ids: list[int]) -> dict[int, Message]:
    """The newest message of each conversation, with the conversation's message count: one
    query, one index probe per conversation."""
    if not conversation_ids:
        return {}
    visible = Message.objects.filter(pending_removal=False)
    newest = (
        visible.filter(conversation=OuterRef("pk")).order_by("-internal_date", "-pk").values("pk")
    )
    count = (
        visible.filter(conversation=OuterRef("conversation_id"))
        .order_by()
        .values("conversation_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rows = (
        Message.objects.filter(
            pk__in=Conversation.objects.filter(pk__in=conversation_ids).values(
                newest=Subquery(newest[:1])
            )
        )
        .annotate(thread_count=Subquery(count))
        .only(
            "pk",
            "mailbox_id",
            "conversation_id",
            "subject",
            "from_name",
            "from_address",
            "snippet",
            "internal_date",
        )
    )
    return {m.conversation_id: m for m in rows}


def _list_context(request: HttpRequest, box: Mailbox, view: TeamView) -> dict:
    rows_query = (
        Conversation.objects.filter(mailbox=box)
        .filter(view.filter(request.user))
        .select_related("assignee")
        .order_by("-last_activity_at", "-pk")
    )
    before = request.GET.get("before", "")
    rows_query = _after(rows_query, "last_activity_at", before)
    page_size = settings.MESSAGES_PER_PAGE
    rows = list(rows_query[: page_size + 1])
    has_older = len(rows) > page_size
    rows = rows[:page_size]
    newest = _newest_messages([c.pk for c in rows])
    for c in rows:
        c.newest = newest.get(c.pk)
        c.message_count = c.newest.thread_count if c.newest else 0
        c.url = conversation_url(box, c, c.newest)
        c.assignee_name = team.display_name(c.assignee) if c.assignee else ""
    list_url = reverse("team_view", args=[box.pk, view.slug])
    role = box.role_of(request.user)
    return {
        "mailbox": box,
        "view": view,
        "rows": rows,
        "has_older": has_older,
        "older_cursor": _cursor(rows[-1].last_activity_at, rows[-1].pk) if has_older else "",
        "is_first_page": not before,
        "list_url": list_url + (f"?before={before}" if before else ""),
        "first_page_url": list_url,
        "role": role,
        "can_work": role in (Role.MANAGER, Role.AGENT),
        "can_assign": role == Role.MANAGER,
        "assignees": list(team.members(box)) if role == Role.MANAGER else [],
    }


@login_required
@require_GET
def team_view(request: HttpRequest, mailbox_id: int, view: str) -> HttpResponse:
    box = get_mailbox_for_user(request.user, mailbox_id)
    if view not in VIEWS:
        raise Http404("no such view")
    context = _list_context(request, box, VIEWS[view])
    if request.htmx and request.htmx.target == "conversation-list":
        return render(request, "webmail/team_view.html#conversation-list", context)
    return render(request, "webmail/team_view.html", context | _page_context(request, box, view))


@login_required
@require_POST
def team_act(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """Assign, take or change the status of the selected conversations."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    role = box.role_of(request.user)
    action = request.POST.get("action", "")
    try:
        if role not in (Role.MANAGER, Role.AGENT):
            raise PermissionDenied("Viewers can read this mailbox but not change it.")
        if action == "assign" and role != Role.MANAGER:
            raise PermissionDenied("Only the mailbox's managers assign conversations.")
        if action not in {"assign", "take", *STATUS_ACTIONS}:
            return HttpResponseBadRequest("Unknown action.")
        ids = [int(v) for v in request.POST.getlist("conversation") if v.isdigit()]
        selected = list(
            Conversation.objects.filter(mailbox=box, pk__in=ids[:MAX_SELECTION]).select_related(
                "mailbox", "assignee"
            )
        )
        if not selected:
            return _answer(request, box, "Select one or more conversations first.", "warning")
        if action == "assign":
            text, level = _assign(request, box, selected)
        elif action == "take":
            text, level = _take(request.user, selected)
        else:
            status, verb = STATUS_ACTIONS[action]
            changed = team.set_status(request.user, selected, status)
            text, level = verb.format(_conversations(changed)), "success"
            if not changed:
                text = "Nothing to change: they already were."
    except TeamError as exc:
        return _answer(request, box, str(exc), "error")
    except PermissionDenied as exc:
        if not request.htmx:
            raise
        return _answer(request, box, str(exc) or "Not allowed.", "error", status=403)
    return _answer(request, box, text, level)


def _assign(request: HttpRequest, box: Mailbox, selected: list[Conversation]) -> tuple[str, str]:
    choice = request.POST.get("assignee", "")
    if choice == "none":
        assignee = None
    elif choice.isdigit():
        assignee = get_user_model().objects.filter(pk=int(choice)).first()
        if assignee is None:
            raise TeamError("That person is not a member of this mailbox.")
    else:
        raise TeamError("Choose whom to assign them to.")
    changed = team.assign(request.user, selected, assignee)
    if not changed:
        return "Nothing to change: they already were.", "success"
    if assignee is None:
        return f"Unassigned {_conversations(changed)}", "success"
    return f"Assigned {_conversations(changed)} to {team.display_name(assignee)}", "success"


def _take(user, selected: list[Conversation]) -> tuple[str, str]:
    taken, held = 0, []
    for conversation in selected:
        if conversation.assignee_id == user.pk:
            continue
        try:
            team.take(user, conversation)
            taken += 1
        except TeamError:
            held.append(conversation)
    if not held:
        return f"You took {_conversations(taken)}", "success"
    others = ", ".join(sorted({team.display_name(c.assignee) for c in held}))
    return (
        f"You took {_conversations(taken)}; {len(held)} already had an owner ({others})",
        "warning",
    )


def _conversations(n: int) -> str:
    return f"{n} conversation{'' if n == 1 else 's'}"


def _answer(
    request: HttpRequest, box: Mailbox, text: str, level: str = "success", status: int = 204
) -> HttpResponse:
    """A toast for htmx (and a refresh of what lists conversations); a flash and a redirect
    back for a plain form."""
    if request.htmx:
        response = HttpResponse(status=status)
        response["HX-Trigger"] = json.dumps(
            {"kotak:toast": {"text": text, "level": level}, "kotak:refresh": {}}
        )
        return response
    getattr(flash, level)(request, text)
    return redirect(_safe_next(request, reverse("team_view", args=[box.pk, "unassigned"])))


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


# -- workload -----------------------------------------------------------------------------------


def _require_manager(request: HttpRequest, mailbox_id: int) -> Mailbox:
    box = get_mailbox_for_user(request.user, mailbox_id)
    if box.role_of(request.user) != Role.MANAGER:
        raise PermissionDenied("Only the mailbox's managers see this page.")
    return box


@dataclass
class Load:
    name: str
    user_id: int | None
    role: str = ""
    open: int = 0
    pending: int = 0
    snoozed: int = 0
    oldest: datetime | None = None

    @property
    def is_late(self) -> bool:
        return self.oldest is not None and self.oldest < timezone.now() - LATE_AFTER


@login_required
@require_GET
def workload(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """Who holds what, and how long the oldest of it has waited: nothing falls through."""
    box = _require_manager(request, mailbox_id)
    working = Conversation.objects.filter(mailbox=box, status__in=WORKING).order_by()
    held = (
        working.filter(assignee__isnull=False)
        .values("assignee")
        .annotate(
            open=Count("pk", filter=Q(status=Status.OPEN)),
            pending=Count("pk", filter=Q(status=Status.PENDING, snoozed_until__isnull=True)),
            snoozed=Count("pk", filter=Q(snoozed_until__isnull=False)),
            oldest=Min("last_message_at", filter=Q(status=Status.OPEN)),
        )
    )
    by_user = {row.pop("assignee"): row for row in held}
    people = {
        m.user_id: Load(team.display_name(m.user), m.user_id, m.role)
        for m in Membership.objects.filter(mailbox=box, role__in=[Role.MANAGER, Role.AGENT])
        .select_related("user")
        .order_by("user__first_name", "user__username")
    }
    # Someone who left the mailbox while holding conversations still shows, so they are seen.
    for user in get_user_model().objects.filter(pk__in=set(by_user) - set(people)):
        people[user.pk] = Load(team.display_name(user), user.pk, "not a member")
    for user_id, load in people.items():
        for key, value in by_user.get(user_id, {}).items():
            setattr(load, key, value)
    waiting = working.filter(status=Status.OPEN, assignee__isnull=True).aggregate(
        count=Count("pk"), oldest=Min("last_message_at")
    )
    unassigned = Load("Unassigned", None, "", waiting["count"], oldest=waiting["oldest"])
    return render(
        request,
        "webmail/team_workload.html",
        {
            "mailbox": box,
            "loads": list(people.values()),
            "unassigned": unassigned,
            **_page_context(request, box, "workload"),
        },
    )


# -- the audit trail ------------------------------------------------------------------------------

VERBS = {
    "assigned": "Assigned",
    "unassigned": "Unassigned",
    "status": "Status changed",
    "snoozed": "Snoozed",
    "woke": "Woke from snooze",
    "reopened": "Reopened by new mail",
    "noted": "Note added",
    "note_edited": "Note edited",
    "note_deleted": "Note deleted",
    "split": "Split",
    "split_from": "Split off",
    "merged": "Merged",
    "member_added": "Member added",
    "member_removed": "Member removed",
    "role_changed": "Role changed",
    "settings_changed": "Settings changed",
}
STATUS_WORDS = {Status.OPEN: "reopened", Status.PENDING: "marked pending", Status.CLOSED: "closed"}


@dataclass
class Line:
    """One audit line: “{actor} {lead} “{subject}” {tail}”, the subject linking onwards."""

    activity: Activity
    actor: str
    lead: str
    tail: str = ""
    subject: str | None = None
    url: str = ""


def describe(activity: Activity, box: Mailbox) -> Line:
    """The audit row as a sentence."""
    data = activity.data or {}
    actor = team.display_name(activity.actor) if activity.actor_id else "Kotak"
    verb = activity.verb
    role = data.get("role", "")
    if verb == "assigned":
        taken = activity.actor_id and data.get("to") == activity.actor_id
        line = Line(activity, actor, "took" if taken else "assigned")
        if not taken:
            line.tail = f"to {data.get('name', 'someone')}"
    elif verb == "unassigned":
        who = data.get("from")
        line = Line(activity, actor, "unassigned", f"from {who}" if who else "")
    elif verb == "status":
        line = Line(activity, actor, STATUS_WORDS.get(data.get("to"), "changed the status of"))
    elif verb == "snoozed":
        until = data.get("until", "")
        when = ""
        with contextlib.suppress(TypeError, ValueError):
            when = format_date(timezone.localtime(datetime.fromisoformat(until)), "j M H:i")
        line = Line(activity, actor, "snoozed", f"until {when}" if when else "")
    elif verb == "woke":
        line = Line(activity, actor, "woke", "from its snooze")
    elif verb == "reopened":
        line = Line(activity, actor, "reopened", "as new mail came in")
    elif verb == "noted":
        line = Line(activity, actor, "added a note to")
    elif verb == "note_edited":
        line = Line(activity, actor, "edited a note on")
    elif verb == "note_deleted":
        line = Line(activity, actor, "deleted a note on")
    elif verb == "split":
        n = len(data.get("messages", []))
        line = Line(activity, actor, f"split {n} message{'' if n == 1 else 's'} off")
    elif verb == "split_from":
        line = Line(activity, actor, "made", "from messages split off another conversation")
    elif verb == "merged":
        n = len(data.get("from", []))
        line = Line(activity, actor, f"merged {_conversations(n)} into")
    elif verb == "member_added":
        return Line(activity, actor, f"added {data.get('name', 'someone')} as {role}")
    elif verb == "member_removed":
        n = data.get("unassigned", 0)
        gave_back = f" and unassigned their {_conversations(n)}" if n else ""
        return Line(activity, actor, f"removed {data.get('name', 'someone')}{gave_back}")
    elif verb == "role_changed":
        before = data.get("from", "")
        was = f" (was {before})" if before else ""
        return Line(activity, actor, f"made {data.get('name', 'someone')} {role}{was}")
    elif verb == "settings_changed":
        state = "on" if data.get("mirror_keywords") else "off"
        return Line(activity, actor, f"turned mirroring to IMAP keywords {state}")
    else:
        line = Line(activity, actor, verb.replace("_", " "))
    conversation = activity.conversation
    if conversation is None:
        line.subject = "a conversation that no longer exists"
        return line
    line.subject = str(conversation)
    line.url = conversation_url(box, conversation, None)
    return line


@login_required
@require_GET
def activity(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """The mailbox's audit trail, newest first, by person and by kind."""
    box = _require_manager(request, mailbox_id)
    rows_query = (
        Activity.objects.filter(mailbox=box)
        .select_related("actor", "conversation")
        .order_by("-created_at", "-pk")
    )
    person = request.GET.get("person", "")
    if person == "kotak":
        rows_query = rows_query.filter(actor__isnull=True)
    elif person.isdigit():
        rows_query = rows_query.filter(actor_id=int(person))
    verb = request.GET.get("verb", "")
    if verb in VERBS:
        rows_query = rows_query.filter(verb=verb)
    before = request.GET.get("before", "")
    rows = list(_after(rows_query, "created_at", before)[: ACTIVITY_PER_PAGE + 1])
    has_older = len(rows) > ACTIVITY_PER_PAGE
    rows = rows[:ACTIVITY_PER_PAGE]
    people = (
        get_user_model()
        .objects.filter(memberships__mailbox=box)
        .distinct()
        .order_by("first_name", "username")
    )
    filters = {k: v for k, v in (("person", person), ("verb", verb)) if v}
    older = {"before": _cursor(rows[-1].created_at, rows[-1].pk)} if has_older else {}
    return render(
        request,
        "webmail/team_activity.html",
        {
            "mailbox": box,
            "lines": [describe(a, box) for a in rows],
            "people": [(str(u.pk), team.display_name(u)) for u in people],
            "verbs": VERBS.items(),
            "person": person,
            "verb": verb,
            "is_first_page": not before,
            "older_url": "?" + urlencode(filters | older) if older else "",
            "newest_url": "?" + urlencode(filters),
            **_page_context(request, box, "activity"),
        },
    )


# -- members and settings -------------------------------------------------------------------------

INVITE_LINK_KEY = "kotak:invite-link"


@login_required
@require_GET
def members(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """Everyone on the mailbox and their role. All members see it; managers change it."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    rank = {role: n for n, role in enumerate(Role.values)}  # managers first, viewers last
    rows = sorted(
        Membership.objects.filter(mailbox=box).select_related("user"),
        key=lambda m: (rank.get(m.role, len(rank)), team.display_name(m.user).lower()),
    )
    for m in rows:
        m.name = team.display_name(m.user)
        m.is_pending = membership_ops.is_pending_invite(m.user)
    invite_link = request.session.pop(INVITE_LINK_KEY, None)
    if invite_link and invite_link.get("mailbox") != box.pk:
        invite_link = None
    return render(
        request,
        "webmail/team_members.html",
        {
            "mailbox": box,
            "rows": rows,
            "roles": Role.choices,
            "can_manage": box.role_of(request.user) == Role.MANAGER,
            "invite_link": invite_link,
            "link_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
            **_page_context(request, box, "members"),
        },
    )


def _membership(box: Mailbox, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user", "mailbox"), pk=membership_id, mailbox=box
    )


def _members_page(box: Mailbox) -> HttpResponse:
    return redirect("members", box.pk)


@login_required
@require_POST
def invite_member(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    box = _require_manager(request, mailbox_id)
    who = request.POST.get("who", "")
    try:
        invitation = membership_ops.invite(
            request.user, box, who, request.POST.get("role", Role.AGENT)
        )
    except TeamError as exc:
        flash.error(request, str(exc))
        return _members_page(box)
    user = invitation.membership.user
    if invitation.is_repeat:
        flash.success(request, f"{team.display_name(user)} was invited before: here is a new link.")
    else:
        role = invitation.membership.get_role_display().lower()
        flash.success(request, f"{team.display_name(user)} is now {role} of {box.name}.")
    if invitation.set_password_path:
        request.session[INVITE_LINK_KEY] = {
            "mailbox": box.pk,
            "name": user.email or team.display_name(user),
            "url": request.build_absolute_uri(invitation.set_password_path),
        }
    return _members_page(box)


@login_required
@require_POST
def change_member_role(request: HttpRequest, mailbox_id: int, membership_id: int) -> HttpResponse:
    box = _require_manager(request, mailbox_id)
    membership = _membership(box, membership_id)
    role = request.POST.get("role", "")
    try:
        if membership_ops.change_role(request.user, membership, role):
            flash.success(
                request,
                f"{team.display_name(membership.user)} is now "
                f"{membership.get_role_display().lower()}.",
            )
    except TeamError as exc:
        flash.error(request, str(exc))
    if membership.user_id == request.user.pk and membership.role != Role.MANAGER:
        return redirect("team_view", box.pk, "all")
    return _members_page(box)


@login_required
@require_POST
def remove_member(request: HttpRequest, mailbox_id: int, membership_id: int) -> HttpResponse:
    box = _require_manager(request, mailbox_id)
    membership = _membership(box, membership_id)
    name = team.display_name(membership.user)
    try:
        unassigned = membership_ops.remove(request.user, membership)
    except TeamError as exc:
        flash.error(request, str(exc))
        return _members_page(box)
    gave_back = f"; {_conversations(unassigned)} are unassigned again" if unassigned else ""
    flash.success(request, f"{name} is no longer a member of {box.name}{gave_back}.")
    if membership.user_id == request.user.pk:
        return redirect("home")
    return _members_page(box)


@login_required
@require_POST
def mailbox_settings(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """The mailbox's team-wide switches (for now: mirroring to IMAP keywords)."""
    box = _require_manager(request, mailbox_id)
    on = request.POST.get("mirror_keywords") == "on"
    if membership_ops.set_mirror_keywords(request.user, box, on):
        flash.success(
            request,
            "Assignment and status now show in other mail programs as keywords."
            if on
            else "Assignment and status stay in Kotak; no more keywords are written.",
        )
    return _members_page(box)


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """Django's set-a-new-password page, which also opens an invited account for use."""

    def form_valid(self, form):
        if membership_ops.is_pending_invite(form.user):
            form.user.is_active = True
        return super().form_valid(form)
