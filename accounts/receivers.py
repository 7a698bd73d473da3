"""Signal receivers of the accounts app. Each one only hands off to a service."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models.signals import m2m_changed, post_save

from accounts.services import privileges, sessions


def _session_begin(sender, request, user, **kwargs):
    if request is None or not hasattr(request, "session"):
        return
    sessions.session_begin(request=request, user=user, method=getattr(user, "authentication_method", "other"))


def _session_end(sender, request, user, **kwargs):
    if request is None or not hasattr(request, "session"):
        return
    sessions.session_logged_out(request=request, user=user)


def _user_saved(sender, instance, created, update_fields=None, raw=False, **kwargs):
    if raw:  # fixtures
        return
    privileges.user_privileges_saved(user=instance, created=created, update_fields=update_fields)


def _m2m_handler(relation: str):
    def handler(sender, instance, action, reverse, model, pk_set, **kwargs):
        privileges.m2m_changed_record(
            relation=relation, instance=instance, action=action, reverse=reverse, model=model, pk_set=pk_set
        )

    return handler


_groups_changed = _m2m_handler("groups")
_user_permissions_changed = _m2m_handler("user_permissions")
_group_permissions_changed = _m2m_handler("group_permissions")


def connect() -> None:
    user_model = get_user_model()
    user_logged_in.connect(_session_begin, dispatch_uid="accounts.session_begin")
    user_logged_out.connect(_session_end, dispatch_uid="accounts.session_end")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="accounts.user_privileges_saved")
    m2m_changed.connect(_groups_changed, sender=user_model.groups.through, dispatch_uid="accounts.groups")
    m2m_changed.connect(
        _user_permissions_changed, sender=user_model.user_permissions.through, dispatch_uid="accounts.user_permissions"
    )
    m2m_changed.connect(
        _group_permissions_changed, sender=Group.permissions.through, dispatch_uid="accounts.group_permissions"
    )
