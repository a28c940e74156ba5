from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from webmail.web import (
    accounts,
    actions,
    answering,
    compose,
    content,
    conversations,
    events,
    folders,
    mail,
    mailboxes,
    search,
    team_views,
)

urlpatterns = [
    path("", mail.home, name="home"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("mailboxes/add/", mailboxes.add_mailbox, name="add_mailbox"),
    path("mailboxes/<int:mailbox_id>/", mail.mailbox, name="mailbox"),
    path(
        "mailboxes/<int:mailbox_id>/preferences/",
        mailboxes.preferences,
        name="mailbox_preferences",
    ),
    path("mailboxes/<int:mailbox_id>/status/", mail.mailbox_status, name="mailbox_status"),
    path("mailboxes/<int:mailbox_id>/folders/<int:folder_id>/", mail.folder, name="folder"),
    path("mailboxes/<int:mailbox_id>/messages/<int:message_id>/", mail.message, name="message"),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/body/",
        content.message_body,
        name="message_body",
    ),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/inline/<str:token>/",
        content.inline_image,
        name="message_inline",
    ),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/attachments/<str:section>/",
        content.attachment,
        name="message_attachment",
    ),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/attachments/<str:section>/open/",
        content.attached_message,
        name="attached_message",
    ),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/attachments/<str:section>/body/",
        content.attached_message_body,
        name="attached_message_body",
    ),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/source/",
        content.message_source,
        name="message_source",
    ),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/trust-sender/",
        content.trust_sender,
        name="trust_sender",
    ),
    path("mailboxes/<int:mailbox_id>/folders/", mail.folder_tree, name="folder_tree"),
    path(
        "mailboxes/<int:mailbox_id>/folders/manage/",
        folders.manage_folders,
        name="manage_folders",
    ),
    path(
        "mailboxes/<int:mailbox_id>/folders/manage/create/",
        folders.create_folder,
        name="create_folder",
    ),
    path(
        "mailboxes/<int:mailbox_id>/folders/<int:folder_id>/rename/",
        folders.rename_folder,
        name="rename_folder",
    ),
    path(
        "mailboxes/<int:mailbox_id>/folders/<int:folder_id>/move/",
        folders.move_folder,
        name="move_folder",
    ),
    path(
        "mailboxes/<int:mailbox_id>/folders/<int:folder_id>/delete/",
        folders.delete_folder,
        name="delete_folder",
    ),
    path(
        "mailboxes/<int:mailbox_id>/folders/<int:folder_id>/subscription/",
        folders.folder_subscription,
        name="folder_subscription",
    ),
    path(
        "mailboxes/<int:mailbox_id>/folders/manage/refusals/<int:change_id>/dismiss/",
        folders.dismiss_folder_refusal,
        name="dismiss_folder_refusal",
    ),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/presence/",
        mail.message_presence,
        name="message_presence",
    ),
    path("mailboxes/<int:mailbox_id>/actions/", actions.act, name="act"),
    path("mailboxes/<int:mailbox_id>/undo/<str:batch>/", actions.undo, name="undo"),
    path(
        "mailboxes/<int:mailbox_id>/failures/dismiss/",
        actions.dismiss_failures,
        name="dismiss_failures",
    ),
    path("mailboxes/<int:mailbox_id>/team/", team_views.team_nav, name="team_nav"),
    path("mailboxes/<int:mailbox_id>/team/act/", team_views.team_act, name="team_act"),
    path("mailboxes/<int:mailbox_id>/team/workload/", team_views.workload, name="workload"),
    path("mailboxes/<int:mailbox_id>/team/<slug:view>/", team_views.team_view, name="team_view"),
    path("mailboxes/<int:mailbox_id>/activity/", team_views.activity, name="activity"),
    path("mailboxes/<int:mailbox_id>/members/", team_views.members, name="members"),
    path(
        "mailboxes/<int:mailbox_id>/members/invite/",
        team_views.invite_member,
        name="invite_member",
    ),
    path(
        "mailboxes/<int:mailbox_id>/members/<int:membership_id>/role/",
        team_views.change_member_role,
        name="change_member_role",
    ),
    path(
        "mailboxes/<int:mailbox_id>/members/<int:membership_id>/remove/",
        team_views.remove_member,
        name="remove_member",
    ),
    path(
        "mailboxes/<int:mailbox_id>/settings/",
        team_views.mailbox_settings,
        name="mailbox_settings",
    ),
    # An invited person chooses their password here (Django's reset-confirm, token in the URL).
    path(
        "accounts/reset/<uidb64>/<token>/",
        team_views.SetPasswordView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/",
        conversations.conversation_detail,
        name="conversation",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/status/",
        conversations.set_conversation_status,
        name="conversation_status",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/snooze/",
        conversations.snooze_conversation,
        name="snooze_conversation",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/assign/",
        conversations.assign_conversation,
        name="assign_conversation",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/take/",
        conversations.take_conversation,
        name="take_conversation",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/notes/",
        conversations.add_note,
        name="add_note",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/notes/<int:note_id>/edit/",
        conversations.edit_note,
        name="edit_note",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/notes/<int:note_id>/delete/",
        conversations.delete_note,
        name="delete_note",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/split/",
        conversations.split_conversation,
        name="split_conversation",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/merge/",
        conversations.merge_conversation,
        name="merge_conversation",
    ),
    path(
        "mailboxes/<int:mailbox_id>/conversations/<int:conversation_id>/merge/candidates/",
        conversations.merge_candidates,
        name="merge_candidates",
    ),
    path(
        "mailboxes/<int:mailbox_id>/messages/<int:message_id>/compose/<slug:kind>/",
        compose.start_compose,
        name="start_compose",
    ),
    path("mailboxes/<int:mailbox_id>/compose/new/", compose.new_message, name="new_message"),
    path(
        "mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/",
        compose.compose_page,
        name="compose",
    ),
    path(
        "mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/save/",
        compose.save_draft,
        name="save_draft",
    ),
    path("mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/send/", compose.send, name="send"),
    path(
        "mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/discard/",
        compose.discard,
        name="discard_outgoing",
    ),
    path(
        "mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/undo/",
        compose.undo_send,
        name="undo_send",
    ),
    path(
        "mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/retry/",
        compose.retry_send,
        name="retry_send",
    ),
    path(
        "mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/edit/",
        compose.edit_failed,
        name="edit_failed",
    ),
    path(
        "mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/attachments/",
        compose.upload_attachments,
        name="upload_attachments",
    ),
    path(
        "mailboxes/<int:mailbox_id>/compose/<int:outgoing_id>/attachments/<int:attachment_id>/remove/",
        compose.remove_attachment,
        name="remove_attachment",
    ),
    path("mailboxes/<int:mailbox_id>/drafts/", compose.drafts, name="drafts"),
    path(
        "mailboxes/<int:mailbox_id>/settings/answering/",
        answering.answering_settings,
        name="answering_settings",
    ),
    path(
        "mailboxes/<int:mailbox_id>/settings/me/",
        answering.my_settings,
        name="my_settings",
    ),
    path(
        "mailboxes/<int:mailbox_id>/saved-replies/",
        answering.saved_replies,
        name="saved_replies",
    ),
    path(
        "mailboxes/<int:mailbox_id>/saved-replies/<int:reply_id>/",
        answering.edit_saved_reply,
        name="edit_saved_reply",
    ),
    path(
        "mailboxes/<int:mailbox_id>/saved-replies/<int:reply_id>/delete/",
        answering.delete_saved_reply,
        name="delete_saved_reply",
    ),
    path("notifications/", conversations.notifications, name="notifications"),
    path("notifications/bell/", conversations.notification_bell, name="notification_bell"),
    path("notifications/read/", conversations.read_notifications, name="read_notifications"),
    path("search/", search.search, name="search"),
    path("search/server/", search.search_server, name="search_server"),
    path("events/", events.events, name="events"),
    path("admin/", admin.site.urls),
]
