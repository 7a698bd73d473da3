"""The account's own pages: security overview, sessions, password and email change."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST, require_safe

from accounts import links
from accounts.decorators import csrf_protect_audited, step_up_required
from accounts.forms import EmailForm, PasswordChangeForm
from accounts.models import TrackedSession
from accounts.selectors import (
    backup_codes_remaining,
    current_tracked_session_id,
    mfa_enabled,
    mfa_grace_deadline,
    mfa_required_for,
    security_events_list,
    totp_device_list,
    tracked_session_list,
)
from accounts.services import lifecycle
from accounts.services.sessions import session_revoke, session_revoke_all
from core.requests import base_url


@never_cache
@require_safe
def home_view(request):
    """``/``: staff to the console, everyone else to their account page, a visitor to the login first.

    The login comes back to ``/``, which then sends the user on by role.
    """
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return redirect("admin:index" if request.user.is_staff else "accounts:security")


@never_cache
@login_required
def security_view(request):
    user = request.user
    return render(
        request,
        "accounts/security.html",
        {
            "devices": totp_device_list(user=user),
            "mfa_on": mfa_enabled(user),
            "mfa_required": mfa_required_for(user),
            "grace_deadline": mfa_grace_deadline(user),
            "backup_codes_remaining": backup_codes_remaining(user),
            "sessions": tracked_session_list(user=user),
            "current_session_id": current_tracked_session_id(request),
            "events": security_events_list(user=user),
        },
    )


@never_cache
@login_required
def sessions_view(request):
    return render(
        request,
        "accounts/sessions.html",
        {
            "sessions": tracked_session_list(user=request.user),
            "current_session_id": current_tracked_session_id(request),
        },
    )


@never_cache
@login_required
@require_POST
@csrf_protect_audited
def session_revoke_view(request, public_id: str):
    tracked = TrackedSession.objects.filter(public_id=public_id[:32], user=request.user).first()
    if tracked is None:
        raise Http404("No such session.")
    if tracked.pk == current_tracked_session_id(request):
        messages.error(request, "To end this session, sign out.")
    elif session_revoke(actor=request.user, tracked=tracked):
        messages.success(request, f"The session on {tracked.device_label} was ended.")
    else:
        messages.info(request, "That session had already ended.")
    return redirect("accounts:sessions")


@never_cache
@login_required
@csrf_protect_audited
@step_up_required
def sessions_revoke_others_view(request):
    if request.method != "POST":
        return redirect("accounts:sessions")
    current = TrackedSession.objects.filter(pk=current_tracked_session_id(request)).first()
    ended = session_revoke_all(actor=request.user, user=request.user, keep=current)
    messages.success(request, f"Signed out of {ended} other session{'s' if ended != 1 else ''}.")
    return redirect("accounts:sessions")


@sensitive_post_parameters("new_password1", "new_password2")
@never_cache
@login_required
@csrf_protect_audited
@step_up_required
def password_change_view(request):
    form = PasswordChangeForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            ended = lifecycle.password_change(
                request=request,
                new_password=form.cleaned_data["new_password1"],
                revoke_api_keys=form.cleaned_data["revoke_api_keys"],
            )
        except ValidationError as error:
            form.add_error("new_password1", error)
        else:
            messages.success(
                request,
                f"Your password was changed. {ended} other session{'s were' if ended != 1 else ' was'} signed out.",
            )
            return redirect("accounts:security")
    return render(request, "accounts/password_change.html", {"form": form}, status=400 if form.errors else 200)


@never_cache
@login_required
@csrf_protect_audited
@step_up_required
def email_change_view(request):
    form = EmailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            lifecycle.email_change_request(
                actor=request.user, new_email=form.cleaned_data["email"], base_url=base_url(request)
            )
        except lifecycle.AccountError as error:
            form.add_error("email", str(error))
        else:
            messages.success(request, "We sent a confirmation link to the new address. Follow it to finish the change.")
            return redirect("accounts:security")
    return render(request, "accounts/email_change.html", {"form": form}, status=400 if form.errors else 200)


@never_cache
@csrf_protect_audited
def email_change_confirm_view(request, token: str):
    if request.method == "POST":
        try:
            lifecycle.email_change_confirm(token=token)
        except links.LinkInvalid:
            return render(request, "accounts/link_invalid.html", {"what": "email change"}, status=400)
        messages.success(request, "Your email address was changed.")
        return redirect("accounts:security" if request.user.is_authenticated else "accounts:login")
    return render(request, "accounts/email_change_confirm.html", {"token": token})
