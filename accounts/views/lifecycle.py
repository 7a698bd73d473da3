"""Sign-up, email verification and password reset pages."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import conf, links
from accounts.decorators import csrf_protect_audited
from accounts.forms import EmailForm, SetPasswordForm, SignUpForm
from accounts.services import lifecycle
from core.requests import base_url

RESET_SESSION_TOKEN_KEY = "_accounts_password_reset_token"  # noqa: S105 - a session key name
RESET_URL_TOKEN = "set-password"  # noqa: S105 - the placeholder Django's own reset view uses too


@sensitive_post_parameters("password1", "password2")
@never_cache
@csrf_protect_audited
def signup_view(request):
    if not conf.get("ACCOUNTS_SIGNUP_ENABLED"):
        raise Http404("Sign-up is closed.")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            lifecycle.user_sign_up(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                base_url=base_url(request),
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, errors in error.error_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error("password1", error)
        else:
            return redirect("accounts:signup_done")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


def signup_done_view(request):
    return render(request, "accounts/signup_done.html")


@never_cache
@csrf_protect_audited
def verify_email_view(request, token: str):
    """GET shows a button; POST verifies (link scanners that prefetch GETs cannot use the link up)."""
    if request.method == "POST":
        try:
            lifecycle.email_verify(token=token)
        except links.LinkInvalid:
            return render(request, "accounts/link_invalid.html", {"what": "email confirmation"}, status=400)
        messages.success(request, "Your email address is confirmed. You can sign in now.")
        return redirect("accounts:login")
    return render(request, "accounts/verify_email.html", {"token": token})


@never_cache
@csrf_protect_audited
def password_reset_view(request):
    form = EmailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        lifecycle.password_reset_request(email=form.cleaned_data["email"], base_url=base_url(request))
        return redirect("accounts:password_reset_done")
    return render(request, "accounts/password_reset.html", {"form": form}, status=400 if form.errors else 200)


def password_reset_done_view(request):
    return render(request, "accounts/password_reset_done.html")


@sensitive_post_parameters("new_password1", "new_password2")
@never_cache
@csrf_protect_audited
def password_reset_confirm_view(request, uidb64: str, token: str):
    """As Django's own view: the token moves from the URL into the session at once (no Referer leak)."""
    if token != RESET_URL_TOKEN:
        if lifecycle.password_reset_user(uidb64=uidb64, token=token) is None:
            return render(request, "accounts/link_invalid.html", {"what": "password reset"}, status=400)
        request.session[RESET_SESSION_TOKEN_KEY] = token
        return redirect(reverse("accounts:password_reset_confirm", args=[uidb64, RESET_URL_TOKEN]))
    session_token = request.session.get(RESET_SESSION_TOKEN_KEY, "")
    user = lifecycle.password_reset_user(uidb64=uidb64, token=session_token) if session_token else None
    if user is None:
        return render(request, "accounts/link_invalid.html", {"what": "password reset"}, status=400)
    form = SetPasswordForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        try:
            lifecycle.password_reset_complete(
                user=user,
                token=session_token,
                new_password=form.cleaned_data["new_password1"],
                base_url=base_url(request),
            )
        except lifecycle.AccountError:
            return render(request, "accounts/link_invalid.html", {"what": "password reset"}, status=400)
        except ValidationError as error:
            form.add_error("new_password1", error)
        else:
            request.session.pop(RESET_SESSION_TOKEN_KEY, None)
            messages.success(request, "Your password was reset. Sign in with the new one.")
            return redirect("accounts:login")
    return render(request, "accounts/password_reset_confirm.html", {"form": form}, status=400 if form.errors else 200)
