"""Console pages of the accounts app, behind the admin's MFA check.

``account_unlock_view`` (mounted by ``config/urls.py``): the security dashboard's "Unlock"
button. A POST only, after a fresh re-authentication (OWASP ASVS 4.0.3 V3.7.1), by staff holding
the permission that the lockout counters' own admin action requires; it calls
``account_unlock``, which records ``auth.account_unlocked`` with the acting administrator.

The user's security page and its actions (mounted by ``accounts.admin.UserAdmin.get_urls``, URL
name ``admin:accounts_user_security``, one argument: the user's id) are below.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import conf
from accounts.decorators import step_up_redirect
from accounts.models import TOTPDevice, TrackedSession
from accounts.normalisation import normalise_username
from accounts.roles import REVOKE_SESSION_PERMISSION, ROLES, UNLOCK_PERMISSION
from accounts.selectors import (
    backup_code_set,
    current_tracked_session_id,
    failure_counter_list,
    mfa_required_for,
    step_up_is_fresh,
    totp_device_list,
    tracked_session_list,
    user_password_changed,
    user_privilege_grants,
    user_recent_events,
)
from accounts.services.lifecycle import (
    DEACTIVATE_PERMISSION,
    DELETE_PERMISSION,
    AccountError,
    account_deactivate,
    account_delete,
    account_reactivate,
    account_unlock,
)
from accounts.services.sessions import session_revoke, session_revoke_all
from audit.actions import Action

MAX_USERNAME_LENGTH = 150


@require_POST
def account_unlock_view(request):
    """Unlock the account named in the form's ``username``, then go back to the dashboard."""
    if not request.user.has_perm(UNLOCK_PERMISSION):
        raise PermissionDenied
    dashboard = reverse("admin:index")
    if not step_up_is_fresh(request):
        # Back to the dashboard as a GET after re-authenticating: the POST is never replayed.
        return step_up_redirect(request, next_url=dashboard)
    username = request.POST.get("username", "")
    if not isinstance(username, str) or not username.strip() or len(username) > MAX_USERNAME_LENGTH:
        messages.error(request, "Name the account to unlock (at most 150 characters).")
        return redirect(dashboard)
    username = normalise_username(username)
    cleared = account_unlock(actor=request.user, username=username)
    messages.success(request, f"Unlocked {username}: {cleared} active lock(s) cleared.")
    return redirect(dashboard)


# =============================================================================================
# One security page per user: /admin/accounts/user/<id>/security/
# =============================================================================================
#
# Reading needs ``accounts.view_user`` and, per section, the view permission of what the section
# shows. Every action is a POST that calls one existing service (which records its audit event),
# checked in this order: the method (else 405); the page's and the action's permission (else
# ``PermissionDenied``: 403, recorded as ``authz.permission_denied`` by the console's 403
# handler); the user (else 404); a fresh step-up (else a redirect to re-authenticate that comes
# back to the page as a GET, so a POST is never replayed: ASVS V3.7.1); the form (else 400 or
# 404, nothing changed); and, when the action would end the acting administrator's own session,
# a confirmation page. Then it redirects back to the page with a message.

SECURITY_PAGE = "admin:accounts_user_security"
# What a form may name an item by: a session's public id, an API key's prefix (never a row id
# of a session, never a session key: ASVS 3.3.4, the django-user-sessions mistake).
ITEM_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
SESSIONS_SHOWN = 50  # active sessions listed; the heading gives the total (sessions)
USER_ID_MAX_DIGITS = 19  # a BigAutoField's largest value has 19 digits
DEVICE_TYPES = {TOTPDevice: "authenticator app (TOTP, RFC 6238)"}


class SectionItemNotFound(LookupError):
    """The item a section action names does not exist or is not this user's."""


@dataclasses.dataclass(frozen=True)
class UserSecuritySection:
    """A part of the user's security page supplied by a room that ``accounts`` may not import.

    ``accounts`` is below ``api`` (docs/architecture.md), so the top floor hands the page its
    API keys section (``config/user_security.py``; ``config/urls.py`` sets it on the user admin's
    ``security_sections``), as it hands the dashboard its sections.

    * ``read(user=, now=)`` returns ``{"columns": [...], "rows": [...], "note": str, "link": str}``;
      each row is ``{"item": str, "cells": [str, ...], "actionable": bool}``; ``item`` matches
      ``ITEM_PATTERN``.
    * ``act(actor=, user=, item=)`` runs the section's one action through its own service and
      returns the message to show; it raises ``SectionItemNotFound`` for an item that is not
      ``user``'s. Whoever holds one of ``action_permissions`` may run it.
    """

    title: str
    view_permission: str
    read: Callable[..., dict]
    action_label: str = ""
    action_permissions: tuple[str, ...] = ()
    act: Callable[..., str] | None = None

    def may_view(self, user) -> bool:
        return user.has_perm(self.view_permission)

    def may_act(self, user) -> bool:
        return self.act is not None and self.may_view(user) and any(user.has_perm(p) for p in self.action_permissions)


def user_security_url(user_id) -> str:
    """The address of a user's security page (what events, alerts and sessions link to)."""
    return reverse(SECURITY_PAGE, args=[user_id])


def _link(name: str, *args, query: dict | None = None) -> str:
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return ""
    return f"{url}?{urlencode(query)}" if query else url


def _base_context(request, model_admin, *, user=None, title: str) -> dict:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "subject_user": user,
        "page_link": user_security_url(user.pk) if user is not None else "",
    }


def _refusal(request, model_admin, *, status: int, message: str, user=None, allow: str = "") -> TemplateResponse:
    """A clear 4xx page: what was wrong, and the way back. Nothing was changed."""
    context = {**_base_context(request, model_admin, user=user, title="Nothing was changed"), "message": message}
    response = TemplateResponse(request, "admin/accounts/user_security_refused.html", context, status=status)
    if allow:
        response["Allow"] = allow
    return response


def _user_or_none(object_id: str):
    text = str(object_id)
    if not text.isascii() or not text.isdigit() or len(text) > USER_ID_MAX_DIGITS:
        return None
    return get_user_model()._default_manager.filter(pk=int(text)).first()


def _one_item(request, name: str) -> str | None:
    """The one well-formed value of the form field ``name``, or ``None``."""
    values = request.POST.getlist(name)
    if len(values) != 1 or not ITEM_PATTERN.fullmatch(values[0]):
        return None
    return values[0]


def _action_guard(request, model_admin, object_id, *, may_act: bool):
    """The checks every action shares, in order; returns ``(user, None)`` or ``(None, response)``."""
    if request.method != "POST":
        return None, _refusal(
            request, model_admin, status=405, allow="POST",
            message="This address only takes the buttons of a user's security page (a POST); nothing was changed.",
        )
    if not (model_admin.has_view_permission(request) and may_act):
        raise PermissionDenied
    user = _user_or_none(object_id)
    if user is None:
        return None, _refusal(request, model_admin, status=404, message="There is no user with that id.")
    if not step_up_is_fresh(request):
        messages.warning(
            request, "Confirm your identity first, then repeat the action (it needs a recent sign-in)."
        )
        return None, step_up_redirect(request, next_url=user_security_url(user.pk))
    return user, None


def _confirm(
    request,
    model_admin,
    *,
    user,
    question: str,
    fields: dict,
    title: str = "Confirm: this ends your own session",
    answer: str = "Yes, end it and sign me out",
) -> TemplateResponse:
    """Ask before an action that cannot be taken back (ending one's own session, deleting an
    account): the same POST again, confirmed."""
    context = {
        **_base_context(request, model_admin, user=user, title=title),
        "question": question,
        "fields": fields,
        "action_url": request.path,
        "answer": answer,
    }
    return TemplateResponse(request, "admin/accounts/user_security_confirm.html", context)


def _confirmed(request) -> bool:
    return request.POST.get("confirm") == "yes"


def _signed_out(request, user, message: str) -> HttpResponseRedirect:
    """After ending the request's own session: drop it here (the service recorded why) and sign in again.

    Flushing now, rather than letting the next request find the ended session, keeps the trail
    to the one event that happened (the revocation), not a refused request after it.
    """
    next_url = user_security_url(user.pk)
    request.session.flush()
    messages.info(request, message)
    return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")


def user_security_unlock_view(request, object_id, *, model_admin):
    """Clear every lockout and throttle counter of the user (``account_unlock``)."""
    user, refusal = _action_guard(request, model_admin, object_id, may_act=request.user.has_perm(UNLOCK_PERMISSION))
    if refusal is not None:
        return refusal
    cleared = account_unlock(actor=request.user, username=user.username)
    messages.success(request, f"Unlocked {user.username}: {cleared} active lock(s) cleared, every counter reset.")
    return redirect(user_security_url(user.pk))


def user_security_deactivate_view(request, object_id, *, model_admin):
    """Deactivate the account: sign-ins refused, sessions ended, API keys revoked (``account_deactivate``)."""
    user, refusal = _action_guard(request, model_admin, object_id, may_act=request.user.has_perm(DEACTIVATE_PERMISSION))
    if refusal is not None:
        return refusal
    try:
        ended = account_deactivate(actor=request.user, user=user)
    except AccountError as error:
        return _refusal(request, model_admin, status=409, user=user, message=str(error))
    messages.success(
        request,
        f"Deactivated {user.username}: {ended['ended']} session(s) ended, "
        f"{ended['api_keys_revoked']} API key(s) revoked.",
    )
    return redirect(user_security_url(user.pk))


def user_security_reactivate_view(request, object_id, *, model_admin):
    """Let a deactivated account sign in again (``account_reactivate``)."""
    user, refusal = _action_guard(request, model_admin, object_id, may_act=request.user.has_perm(DEACTIVATE_PERMISSION))
    if refusal is not None:
        return refusal
    try:
        account_reactivate(actor=request.user, user=user)
    except AccountError as error:
        return _refusal(request, model_admin, status=409, user=user, message=str(error))
    messages.success(request, f"Reactivated {user.username}: they can sign in again.")
    return redirect(user_security_url(user.pk))


def user_security_delete_view(request, object_id, *, model_admin):
    """Delete the account after ending its sessions and API keys (``account_delete``), once confirmed."""
    user, refusal = _action_guard(request, model_admin, object_id, may_act=request.user.has_perm(DELETE_PERMISSION))
    if refusal is not None:
        return refusal
    if not _confirmed(request):
        return _confirm(
            request, model_admin, user=user,
            question=f"Delete the account {user.username}? Its sessions end, its API keys are revoked and "
            "the account is gone for good (its audit events stay).",
            fields={}, title=f"Confirm: delete {user.username}", answer="Yes, delete the account",
        )
    try:
        account_delete(actor=request.user, user=user)
    except AccountError as error:
        return _refusal(request, model_admin, status=409, user=user, message=str(error))
    messages.success(request, f"Deleted the account {user.username}.")
    return redirect(reverse("admin:accounts_user_changelist"))


def user_security_session_revoke_view(request, object_id, *, model_admin):
    """End one session of the user, named by its public id (``session_revoke``)."""
    user, refusal = _action_guard(
        request, model_admin, object_id, may_act=request.user.has_perm(REVOKE_SESSION_PERMISSION)
    )
    if refusal is not None:
        return refusal
    public_id = _one_item(request, "session")
    if public_id is None:
        return _refusal(
            request, model_admin, status=400, user=user,
            message="Name one session, by the id the page shows; nothing was changed.",
        )
    tracked = TrackedSession.objects.filter(public_id=public_id, user=user).select_related("user").first()
    if tracked is None:
        return _refusal(
            request, model_admin, status=404, user=user,
            message=f"{user.username} has no session with that id; nothing was changed.",
        )
    own = tracked.pk == current_tracked_session_id(request)
    if own and not _confirmed(request):
        return _confirm(
            request, model_admin, user=user,
            question=f"This is the session you are using now ({tracked.device_label or 'this browser'}). "
            "Ending it signs you out of the console.",
            fields={"session": public_id},
        )
    if not session_revoke(actor=request.user, tracked=tracked):
        messages.info(request, "That session had already ended.")
        return redirect(user_security_url(user.pk))
    if own:
        return _signed_out(request, user, "You ended your own session. Sign in again to go on.")
    messages.success(request, f"Ended the session of {user.username} on {tracked.device_label or 'an unknown device'}.")
    return redirect(user_security_url(user.pk))


def user_security_sessions_revoke_all_view(request, object_id, *, model_admin):
    """End every session of the user (``session_revoke_all``); on your own page, yours too, once confirmed."""
    user, refusal = _action_guard(
        request, model_admin, object_id, may_act=request.user.has_perm(REVOKE_SESSION_PERMISSION)
    )
    if refusal is not None:
        return refusal
    own = user.pk == request.user.pk
    if own and not _confirmed(request):
        return _confirm(
            request, model_admin, user=user,
            question="These are your own sessions: ending them all ends the one you are using now and "
            "signs you out of the console.",
            fields={},
        )
    ended = session_revoke_all(actor=request.user, user=user)
    if own:
        return _signed_out(request, user, f"You ended all {ended} of your sessions, this one included. Sign in again.")
    messages.success(request, f"Ended {ended} session(s) of {user.username}.")
    return redirect(user_security_url(user.pk))


def user_security_section_action_view(request, object_id, section, *, model_admin):
    """The action of a section supplied from above (the API keys' revoke)."""
    supplied = model_admin.security_sections.get(section)
    if supplied is None:
        return _refusal(request, model_admin, status=404, message="This page has no such section.")
    user, refusal = _action_guard(request, model_admin, object_id, may_act=supplied.may_act(request.user))
    if refusal is not None:
        return refusal
    item = _one_item(request, "item")
    if item is None:
        return _refusal(
            request, model_admin, status=400, user=user,
            message=f"Name one of the {supplied.title.lower()}, by the id the page shows; nothing was changed.",
        )
    try:
        message = supplied.act(actor=request.user, user=user, item=item)
    except SectionItemNotFound:
        return _refusal(
            request, model_admin, status=404, user=user,
            message=f"{user.username} has no such item among the {supplied.title.lower()}; nothing was changed.",
        )
    messages.success(request, message)
    return redirect(user_security_url(user.pk))


# --- the page --------------------------------------------------------------------------------
def _action_label(value: str) -> str:
    try:
        return Action(value).label
    except ValueError:
        return value


def _user_link(identifier: str, username: str) -> dict:
    link = ""
    if identifier and identifier.isdigit() and len(identifier) <= USER_ID_MAX_DIGITS:
        link = _link(SECURITY_PAGE, identifier)
    return {"name": username or (f"user {identifier}" if identifier else ""), "link": link}


def _event_rows(rows: list[dict], *, other: str) -> list[dict]:
    """Events as the page shows them; ``other`` is the party to name: ``subject`` or ``actor``."""
    shown = []
    for row in rows:
        party = _user_link(row[f"{other}_id"], row[f"{other}_username"])
        shown.append(
            {
                **row,
                "label": _action_label(row["action"]),
                "link": _link("admin:audit_auditevent_change", row["id"]),
                "party": party,
                "request_link": _link("admin:audit_auditevent_changelist", query={"request_id": row["request_id"]})
                if row["request_id"]
                else "",
            }
        )
    return shown


def _grant_text(grant: dict | None) -> dict:
    if grant is None:
        return {"recorded": False}
    return {
        "recorded": True,
        "at": grant["at"],
        "by": _user_link(grant["by_id"], grant["by"]) if grant["by_id"] else None,
        "link": _link("admin:audit_auditevent_change", grant["event_id"]),
    }


def _locks(user, now: datetime.datetime) -> dict:
    counters = failure_counter_list(username=user.username)
    rows = [
        {
            "kind": counter.get_kind_display(),
            "scope": f"from {counter.address}" if counter.address else "account (every address)",
            "failures": counter.failure_count,
            "locks": counter.lock_count,
            "locked": counter.locked_until is not None and counter.locked_until > now,
            "until": counter.locked_until,
            "last_failure": counter.last_failure_at,
        }
        for counter in counters
    ]
    locked = [row for row in rows if row["locked"]]
    return {
        "rows": rows,
        "locked": bool(locked),
        "until": max((row["until"] for row in locked), default=None),
        "counters_link": _link("admin:accounts_failurecounter_changelist", query={"q": user.username}),
    }


def user_security_context(request, user, *, sections: Mapping[str, UserSecuritySection], now) -> dict:
    """Every figure of the page, each part only for whoever may see it."""
    viewer = request.user
    may = {
        "sessions": viewer.has_perm("accounts.view_trackedsession"),
        "locks": viewer.has_perm("accounts.view_failurecounter"),
        "devices": viewer.has_perm("accounts.view_totpdevice"),
        "events": viewer.has_perm("audit.view_auditevent"),
    }
    privileges = user_privilege_grants(user=user)
    password = user_password_changed(user=user)
    context = {
        "user_id": user.pk,
        "may": may,
        "can_unlock": viewer.has_perm(UNLOCK_PERMISSION),
        "can_revoke_sessions": viewer.has_perm(REVOKE_SESSION_PERMISSION),
        "can_deactivate": viewer.has_perm(DEACTIVATE_PERMISSION) and user.pk != viewer.pk,
        "can_delete": viewer.has_perm(DELETE_PERMISSION) and user.pk != viewer.pk,
        "is_self": user.pk == viewer.pk,
        "identity": {
            "staff": _grant_text(privileges["staff"]) if user.is_staff else None,
            "superuser": _grant_text(privileges["superuser"]) if user.is_superuser else None,
            "groups": [
                {"name": row["name"], "role": row["name"] in ROLES, "grant": _grant_text(row["grant"])}
                for row in privileges["groups"]
            ],
            "permissions": [
                {"name": row["name"], "grant": _grant_text(row["grant"])} for row in privileges["permissions"]
            ],
            "password": {**_grant_text(password), "action": _action_label(password["action"])} if password else None,
            "mfa_required": mfa_required_for(user),
            "change_link": _link("admin:accounts_user_change", user.pk),
        },
        "sections": [],
    }
    if may["devices"]:
        devices = list(totp_device_list(user=user))
        context["devices"] = [
            {
                "name": device.name,
                "type": DEVICE_TYPES.get(type(device), device._meta.verbose_name),
                "added": device.created_at,
                "last_used": device.last_used_at,
            }
            for device in devices
        ]
        context["backup_codes"] = backup_code_set(user=user)
        context["devices_link"] = _link("admin:accounts_totpdevice_changelist", query={"user__id__exact": user.pk})
    if may["locks"]:
        context["locks"] = _locks(user, now)
    if may["sessions"]:
        active = tracked_session_list(user=user, active_only=True)
        current = current_tracked_session_id(request)
        context["sessions"] = {
            "rows": [
                {"session": tracked, "current": tracked.pk == current}
                for tracked in active.only(
                    "id", "public_id", "device_label", "ip_address", "method", "created_at", "last_seen_at",
                    "mfa_verified",
                )[:SESSIONS_SHOWN]
            ],
            "total": active.count(),
            "shown": SESSIONS_SHOWN,
            "all_link": _link("admin:accounts_trackedsession_changelist", query={"q": user.username}),
        }
    for name, section in sections.items():
        if section.may_view(viewer):
            context["sections"].append(
                {
                    "name": name,
                    "section": section,
                    "data": section.read(user=user, now=now),
                    "can_act": section.may_act(viewer),
                    "action_link": _link("admin:accounts_user_security_section", user.pk, name),
                }
            )
    if may["events"]:
        recent = user_recent_events(user=user)
        context["events"] = {
            "shown": conf.get("ACCOUNTS_CONSOLE_USER_EVENTS_SHOWN"),
            "as_actor": _event_rows(recent["as_actor"], other="subject"),
            "as_subject": _event_rows(recent["as_subject"], other="actor"),
            "actor_link": _link("admin:audit_auditevent_changelist", query={"actor_id": user.pk}),
            "subject_link": _link("admin:audit_auditevent_changelist", query={"subject_id": user.pk}),
        }
    return context


def user_security_view(request, object_id, *, model_admin):
    """The page (GET). Needs ``accounts.view_user``; each section needs its own view permission."""
    if request.method not in ("GET", "HEAD"):
        return _refusal(
            request, model_admin, status=405, allow="GET, HEAD",
            message="This page is only read (GET); its buttons post to their own addresses. Nothing was changed.",
        )
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    user = _user_or_none(object_id)
    if user is None:
        return _refusal(request, model_admin, status=404, message="There is no user with that id.")
    now = timezone.now()
    context = {
        **_base_context(request, model_admin, user=user, title=f"Security of {user.username}"),
        "now": now,
        "page": user_security_context(request, user, sections=model_admin.security_sections, now=now),
    }
    return TemplateResponse(request, "admin/accounts/user_security.html", context)
