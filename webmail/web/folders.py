"""The folder management screen: the tree with its counts, and forms to create, rename, move,
delete and (un)subscribe folders.

Every form works as a plain POST (then redirect, with a flash message); with htmx the form
swaps the manager region in place instead. Managers rename, move and delete; agents create
and subscribe; viewers see the tree only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webmail import folder_actions
from webmail.access import get_folder_for_user, get_mailbox_for_user
from webmail.folder_actions import FolderRefused
from webmail.imap.folders import decode_name
from webmail.models import Change, Folder, Mailbox, PendingChange

Action = PendingChange.Action
TEMPLATE = "webmail/folders_manage.html"
TARGET = "folder-manager"

ROLE_ORDER = {
    role: rank
    for rank, role in enumerate(["inbox", "drafts", "sent", "archive", "junk", "trash", "flagged"])
}
REFUSALS_SHOWN = 10


@dataclass
class Row:
    """One folder of the tree as the screen shows it."""

    folder: Folder
    depth: int
    # Holds a folder mail programs rely on (or is one): no rename, move or delete.
    is_locked: bool = False
    is_pending: bool = False


def folder_rows(mailbox: Mailbox) -> list[Row]:
    """The mailbox's folders depth-first: INBOX and special folders first, then by name."""
    folders = list(mailbox.folders.all())
    by_pk = {f.pk: f for f in folders}
    children: dict[int | None, list[Folder]] = {}
    for folder in folders:
        parent = folder.parent_id if folder.parent_id in by_pk else None
        children.setdefault(parent, []).append(folder)

    def key(folder: Folder) -> tuple:
        return (ROLE_ORDER.get(folder.special_use, len(ROLE_ORDER)), folder.label.casefold())

    rows: list[Row] = []

    def walk(parent: int | None, depth: int) -> bool:
        locked_here = False
        for folder in sorted(children.get(parent, []), key=key):
            row = Row(folder, depth)
            rows.append(row)
            below = walk(folder.pk, depth + 1)
            row.is_locked = below or folder_actions.is_protected(folder)
            locked_here = locked_here or row.is_locked
        return locked_here

    walk(None, 0)
    return rows


class CreateFolderForm(forms.Form):
    name = forms.CharField(label="Name", max_length=folder_actions.MAX_NAME_LENGTH)
    parent = forms.ChoiceField(
        label="Inside",
        required=False,
        error_messages={"invalid_choice": "That folder is no longer there; choose another."},
    )

    def __init__(self, *args, rows: list[Row], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parent"].choices = [("", "— top level —")] + [
            (str(row.folder.pk), row.folder.display_name)
            for row in rows
            if folder_actions.can_hold_subfolders(row.folder)
        ]


class RenameFolderForm(forms.Form):
    name = forms.CharField(label="New name", max_length=folder_actions.MAX_NAME_LENGTH)


class MoveFolderForm(forms.Form):
    parent = forms.ChoiceField(
        label="Move into",
        required=False,
        error_messages={"invalid_choice": "That folder is no longer there; choose another."},
    )

    def __init__(self, *args, folder: Folder, **kwargs):
        super().__init__(*args, **kwargs)
        parents = sorted(folder_actions.possible_parents(folder), key=lambda f: f.display_name)
        self.fields["parent"].choices = [("", "— top level —")] + [
            (str(f.pk), f.display_name) for f in parents
        ]
        self.fields["parent"].initial = str(folder.parent_id or "")


@login_required
@require_GET
def manage_folders(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    box = get_mailbox_for_user(request.user, mailbox_id)
    editing = None
    edit = request.GET.get("edit", "")
    if edit.isdigit() and folder_actions.can_manage_folders(request.user, box):
        editing = box.folders.filter(pk=int(edit)).first()
    return _render(request, box, editing=editing)


@login_required
@require_POST
def create_folder(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    box = get_mailbox_for_user(request.user, mailbox_id)
    if not folder_actions.can_organise_folders(request.user, box):
        raise PermissionDenied("Viewers cannot create folders.")
    form = CreateFolderForm(request.POST, rows=folder_rows(box), prefix="create")
    if form.is_valid():
        parent_id = form.cleaned_data["parent"]
        parent = box.folders.filter(pk=int(parent_id)).first() if parent_id else None
        try:
            folder = folder_actions.create(request.user, box, parent, form.cleaned_data["name"])
        except FolderRefused as exc:
            form.add_error(exc.field, str(exc))
        else:
            return _done(request, box, f"Created “{folder.display_name}”.")
    return _render(request, box, create_form=form)


@login_required
@require_POST
def rename_folder(request: HttpRequest, mailbox_id: int, folder_id: int) -> HttpResponse:
    folder = get_folder_for_user(request.user, mailbox_id, folder_id)
    _require_manager(request, folder.mailbox)
    form = RenameFolderForm(request.POST, prefix="rename")
    if form.is_valid():
        try:
            words = folder_actions.rename(request.user, folder, form.cleaned_data["name"])
        except FolderRefused as exc:
            if exc.field is None:  # about the folder, not the name: no form to show it in
                return _render(request, folder.mailbox, problem=str(exc))
            form.add_error("name", str(exc))
        else:
            return _done(request, folder.mailbox, words)
    return _render(request, folder.mailbox, editing=folder, rename_form=form)


@login_required
@require_POST
def move_folder(request: HttpRequest, mailbox_id: int, folder_id: int) -> HttpResponse:
    folder = get_folder_for_user(request.user, mailbox_id, folder_id)
    box = folder.mailbox
    _require_manager(request, box)
    form = MoveFolderForm(request.POST, folder=folder, prefix="move")
    if form.is_valid():
        parent_id = form.cleaned_data["parent"]
        parent = box.folders.filter(pk=int(parent_id)).first() if parent_id else None
        try:
            words = folder_actions.move(request.user, folder, parent)
        except FolderRefused as exc:
            if exc.field is None:
                return _render(request, box, problem=str(exc))
            form.add_error("parent", str(exc))
        else:
            return _done(request, box, words)
    return _render(request, box, editing=folder, move_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def delete_folder(request: HttpRequest, mailbox_id: int, folder_id: int) -> HttpResponse:
    """GET asks for confirmation, saying what goes with the folder; POST deletes."""
    folder = get_folder_for_user(request.user, mailbox_id, folder_id)
    box = folder.mailbox
    _require_manager(request, box)
    error = folder_actions.protection(folder, "deleted")
    if request.method == "POST" and not error and request.POST.get("confirm") == "yes":
        try:
            words = folder_actions.delete(request.user, folder)
        except FolderRefused as exc:
            error = str(exc)
        else:
            messages.success(request, words)
            return redirect("manage_folders", box.pk)
    rows = folder_rows(box)
    return render(
        request,
        "webmail/folders_delete.html",
        {
            **_page_context(box, rows),
            "deletion": folder_actions.deletion(folder),
            "error": error,
        },
    )


@login_required
@require_POST
def folder_subscription(request: HttpRequest, mailbox_id: int, folder_id: int) -> HttpResponse:
    folder = get_folder_for_user(request.user, mailbox_id, folder_id)
    box = folder.mailbox
    if not folder_actions.can_organise_folders(request.user, box):
        raise PermissionDenied("Viewers cannot change subscriptions.")
    subscribed = request.POST.get("subscribed") == "1"
    try:
        words = folder_actions.subscribe(request.user, folder, subscribed)
    except FolderRefused as exc:
        return _render(request, box, problem=str(exc))
    return _done(request, box, words)


@login_required
@require_POST
def dismiss_folder_refusal(request: HttpRequest, mailbox_id: int, change_id: int) -> HttpResponse:
    """Clear a refused folder change from the screen once it has been read."""
    box = get_mailbox_for_user(request.user, mailbox_id)
    if not folder_actions.can_organise_folders(request.user, box):
        raise PermissionDenied("Viewers cannot clear problems.")
    box.pending_changes.filter(
        pk=change_id, state=PendingChange.State.FAILED, action__in=folder_actions.FOLDER_ACTIONS
    ).delete()
    return _done(request, box, "")


# -- helpers ----------------------------------------------------------------------------------


def _require_manager(request: HttpRequest, box: Mailbox) -> None:
    if not folder_actions.can_manage_folders(request.user, box):
        raise PermissionDenied("Only managers may rename, move or delete folders.")


def _done(request: HttpRequest, box: Mailbox, words: str) -> HttpResponse:
    """After a change: the manager region and a toast (htmx), else POST/redirect/GET."""
    if _is_region_request(request):
        response = _render(request, box)
        if words:
            response["HX-Trigger"] = json.dumps({"kotak:toast": {"text": words}})
        return response
    if words:
        messages.success(request, words)
    return redirect("manage_folders", box.pk)


def _is_region_request(request: HttpRequest) -> bool:
    return bool(request.htmx) and request.htmx.target == TARGET


def _render(
    request: HttpRequest,
    box: Mailbox,
    *,
    editing: Folder | None = None,
    problem: str = "",
    create_form: CreateFolderForm | None = None,
    rename_form: RenameFolderForm | None = None,
    move_form: MoveFolderForm | None = None,
) -> HttpResponse:
    user = request.user
    rows = folder_rows(box)
    pending = set(
        box.pending_changes.filter(
            state=PendingChange.State.PENDING,
            action__in=folder_actions.FOLDER_ACTIONS,
            folder__isnull=False,
        ).values_list("folder_id", flat=True)
    )
    for row in rows:
        row.is_pending = row.folder.pk in pending
    if editing is not None and folder_actions.protection(editing):
        editing = None
    context = {
        **_page_context(box, rows),
        "rows": rows,
        "can_organise": folder_actions.can_organise_folders(user, box),
        "can_manage": folder_actions.can_manage_folders(user, box),
        "create_form": create_form or CreateFolderForm(rows=rows, prefix="create"),
        "editing": editing,
        "rename_form": rename_form
        or (
            RenameFolderForm(initial={"name": editing.label}, prefix="rename") if editing else None
        ),
        "move_form": move_form
        or (MoveFolderForm(folder=editing, prefix="move") if editing else None),
        "problem": problem,
        "refusals": _refusals(box),
    }
    template = TEMPLATE + "#" + TARGET if _is_region_request(request) else TEMPLATE
    return render(request, template, context)


def _page_context(box: Mailbox, rows: list[Row]) -> dict:
    """What the mailbox frame (folder list, live updates) needs."""
    return {
        "mailbox": box,
        "folders": [row.folder for row in rows],
        "folder": None,
        "last_change_id": Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
    }


def _refusals(box: Mailbox) -> list[tuple[PendingChange, str]]:
    """Folder changes the server refused, newest first, each with what it was."""
    changes = box.pending_changes.filter(
        state=PendingChange.State.FAILED, action__in=folder_actions.FOLDER_ACTIONS
    ).order_by("-pk")[:REFUSALS_SHOWN]
    return [(change, _describe(change)) for change in changes]


def _describe(change: PendingChange) -> str:
    payload = change.payload
    name = decode_name(payload.get("name", ""))
    match change.action:
        case Action.CREATE_FOLDER:
            return f"Creating “{name}”"
        case Action.RENAME_FOLDER:
            old, new = decode_name(payload["old"]), decode_name(payload["new"])
            delimiter = payload.get("delimiter") or "\0"
            if old.rsplit(delimiter, 1)[-1] == new.rsplit(delimiter, 1)[-1]:
                return f"Moving “{old}” to “{new}”"
            return f"Renaming “{old}” to “{new}”"
        case Action.DELETE_FOLDER:
            return f"Deleting “{name}”"
        case Action.SUBSCRIBE:
            return f"Subscribing to “{name}”"
        case _:
            return f"Unsubscribing from “{name}”"
