"""Login (password, then code), logout and step-up re-authentication pages."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts.decorators import csrf_protect_audited
from accounts.forms import CodeForm, LoginForm, ReauthenticateForm
from accounts.selectors import mfa_enabled, mfa_grace_deadline, mfa_required_for
from accounts.services import authentication
from accounts.services.authentication import Result
from accounts.services.mfa import Outcome
from accounts.services.sessions import session_logout
from accounts.views.common import retry_text, safe_next

CODE_MESSAGES = {
    Outcome.REJECTED: "That code is not right. Check that your phone's clock is correct and try the current code.",
    Outcome.REPLAYED: "That code has already been used. Wait for your app to show the next code.",
    Outcome.MALFORMED: "Enter the 6 digits from your authenticator app, or a backup code (12 letters and digits).",
}


def _code_error(verification) -> str:
    if verification.outcome is Outcome.THROTTLED:
        return f"Too many wrong codes. You can try again at {retry_text(verification.retry_at)}."
    if verification.outcome is Outcome.LOCKED:
        return f"Too many wrong codes: sign-in is locked until {retry_text(verification.retry_at)}."
    message = CODE_MESSAGES[verification.outcome]
    if verification.retry_at is not None:
        message += f" You can try again at {retry_text(verification.retry_at)}."
    return message


def _after_login(request, next_url: str):
    user = request.user
    deadline = mfa_grace_deadline(user)
    if deadline is not None and not mfa_enabled(user):
        messages.warning(
            request,
            f"Multi-factor authentication becomes required for your account on {deadline:%Y-%m-%d %H:%M} UTC. "
            "Set up an authenticator now.",
        )
    if mfa_required_for(user) and not user.is_verified():
        # Staff without a device: enrollment first (the middleware enforces it everywhere).
        return redirect(f"{reverse('accounts:mfa_setup')}?{urlencode({'next': next_url})}")
    return HttpResponseRedirect(next_url)


@sensitive_post_parameters("password")
@never_cache
@csrf_protect_audited
def login_view(request):
    next_url = safe_next(request)
    if request.user.is_authenticated:
        if request.user.is_verified() or not mfa_required_for(request.user):
            if next_url.startswith(reverse("admin:index")) and not request.user.is_staff:
                return render(request, "accounts/no_access.html", {"next": next_url}, status=403)
            return HttpResponseRedirect(next_url)
        return _after_login(request, next_url)
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            check = authentication.login_password_step(
                request=request, username=form.cleaned_data["username"], password=form.cleaned_data["password"]
            )
            if check.result is Result.OK:
                return _after_login(request, next_url)
            if check.result is Result.MFA_REQUIRED:
                return redirect(f"{reverse('accounts:login_verify')}?{urlencode({'next': next_url})}")
            if check.result is Result.LOCKED:
                status = 429
                form.add_error(None, f"Too many failed sign-in attempts. Try again at {retry_text(check.retry_at)}.")
            elif check.result is Result.EMAIL_UNVERIFIED:
                form.add_error(
                    None,
                    "Confirm your email address first: follow the link we emailed you. "
                    "If it has expired, we have just sent a new one (at most one every few minutes).",
                )
            else:
                form.add_error(None, "The username or password is not right.")
        else:
            if "username" in form.errors and request.POST.get("username"):
                authentication.login_input_refused(username=request.POST.get("username", ""))
            status = 400
    return render(request, "accounts/login.html", {"form": form, "next": next_url}, status=status)


@never_cache
@csrf_protect_audited
def login_verify_view(request):
    next_url = safe_next(request)
    user = authentication.pending_login_user(request)
    if user is None:
        messages.info(request, "Your sign-in took too long or was not started. Please enter your password again.")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        verification = authentication.login_mfa_step(request=request, code=form.cleaned_data["code"])
        if verification is None:
            return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")
        if verification.accepted:
            if verification.method == "backup_code":
                remaining = verification.remaining_backup_codes
                messages.warning(
                    request,
                    f"You signed in with a backup code. {remaining} backup code{'s' if remaining != 1 else ''} left"
                    + (": generate new ones soon." if remaining <= 3 else "."),
                )
            return _after_login(request, next_url)
        form.add_error("code", _code_error(verification))
        status = 429 if verification.outcome in (Outcome.THROTTLED, Outcome.LOCKED) else 400
    elif request.method == "POST":
        status = 400
    return render(request, "accounts/login_verify.html", {"form": form, "next": next_url}, status=status)


@never_cache
@csrf_protect_audited
def logout_view(request):
    if request.method == "POST":
        if request.user.is_authenticated:
            session_logout(request=request)
        messages.info(request, "You are signed out.")
        return redirect("accounts:login")
    return render(request, "accounts/logout.html")


@sensitive_post_parameters("password")
@never_cache
@login_required
@csrf_protect_audited
def reauthenticate_view(request):
    next_url = safe_next(request)
    with_code = mfa_enabled(request.user)
    form = ReauthenticateForm(request.POST or None, with_code=with_code)
    status = 200
    if request.method == "POST" and form.is_valid():
        check, verification = authentication.reauthenticate(
            request=request, password=form.cleaned_data["password"], code=form.cleaned_data.get("code", "")
        )
        if check.result is Result.LOCKED:
            status = 429
            form.add_error(None, f"Too many failed attempts. Try again at {retry_text(check.retry_at)}.")
        elif check.result is not Result.OK:
            status = 400
            form.add_error("password", "That password is not right.")
        elif verification is not None and not verification.accepted:
            status = 429 if verification.outcome in (Outcome.THROTTLED, Outcome.LOCKED) else 400
            form.add_error("code", _code_error(verification))
        else:
            return HttpResponseRedirect(next_url)
    elif request.method == "POST":
        status = 400
    return render(
        request, "accounts/reauthenticate.html", {"form": form, "next": next_url, "with_code": with_code}, status=status
    )
