"""The search screen: local results at once, the servers' answer for unfetched bodies after."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from webmail.access import get_mailbox_for_user
from webmail.models import Change, Folder, Mailbox
from webmail.search import messages, server
from webmail.search.query import parse

# A results list listens for changes in at most this many folders by name; beyond that, only
# for new and removed mail (the `conversations` event).
MAX_FOLDER_EVENTS = 60


def _scope(request: HttpRequest) -> Mailbox | None:
    """The mailbox named by ?mailbox= if the user is a member; 404 otherwise."""
    value = request.GET.get("mailbox", "")
    if not value:
        return None
    if not value.isdigit():
        raise Http404("no such mailbox")
    return get_mailbox_for_user(request.user, int(value))


def _context(request: HttpRequest) -> dict:
    query = parse(request.GET.get("q", ""))
    mailbox = _scope(request)
    page = request.GET.get("page", "")
    number = int(page) if page.isdigit() and 0 < int(page) < 10_000 else 1
    params = {"q": query.text, **({"mailbox": mailbox.pk} if mailbox else {})}
    # Read before the results: a change committed in between still reaches the page.
    since = _latest_change_id()
    mailboxes = list(Mailbox.objects.for_user(request.user).distinct().order_by("name"))
    scope_ids = [mailbox.pk] if mailbox else [box.pk for box in mailboxes]
    folder_ids = list(
        Folder.objects.filter(mailbox_id__in=scope_ids, is_selectable=True).values_list(
            "pk", flat=True
        )[: MAX_FOLDER_EVENTS + 1]
    )
    return {
        "query": query,
        "search_q": query.text,
        # base.html keeps the scope in the top bar's search box.
        "mailbox": mailbox,
        "mailboxes": mailboxes,
        "results": messages.search(request.user, query, mailbox, number),
        "params": urlencode(params),
        "all_mailboxes_params": urlencode({"q": query.text}),
        "server_url": reverse("search_server") + "?" + urlencode(params),
        "events_url": reverse("events")
        + "?"
        + urlencode([("mailbox", pk) for pk in scope_ids] + [("since", since)]),
        "refresh_events": ", ".join(
            ["sse:conversations"]
            + (
                [f"sse:folder-{pk}" for pk in folder_ids]
                if len(folder_ids) <= MAX_FOLDER_EVENTS
                else []
            )
        ),
        "can_search_server": bool(query.text_terms),
    }


def _latest_change_id() -> int:
    """Where the page's event stream starts, so nothing between render and connect is lost."""
    return Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    context = _context(request)
    template = "webmail/search.html"
    if request.htmx and request.htmx.target in {"search-results", "search-main"}:
        template += "#" + request.htmx.target
    return render(request, template, context)


@login_required
@require_GET
def search_server(request: HttpRequest) -> HttpResponse:
    """What the servers find in bodies Kotak has not fetched: the partial for htmx, or the
    whole page with it (without JavaScript)."""
    query = parse(request.GET.get("q", ""))
    mailbox = _scope(request)
    found = server.search(request.user, query, mailbox)
    if request.htmx:
        return render(
            request,
            "webmail/search.html#server-results",
            {"server": found, "query": query, "mailbox": mailbox},
        )
    context = _context(request) | {"server": found}
    return render(request, "webmail/search.html", context)
