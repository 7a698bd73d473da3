"""The API key page under /accounts/api-keys/: list, issue, rotate and revoke your own keys.

Thin views over ``api.services``. Every view needs a login and a fresh step-up
re-authentication (``accounts.decorators.step_up_required``, OWASP ASVS 4.0.3 V3.7.1): issuing
a key creates a credential, so a borrowed session alone must not be enough. A stale session is
sent to re-authenticate and comes back to the list (GET), never replaying a POST. CSRF refusals
are recorded (``csrf_protect_audited``). Secrets appear once, in the response to the POST that
created them, which is ``no-store`` like every authenticated response.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import csrf_protect_audited, step_up_required
from api import selectors, services
from api.forms import ApiKeyIssueForm, ApiKeyRevokeForm, ApiKeyRotateForm
from api.scopes import SCOPES


def _add_service_errors(form, error: ValidationError) -> None:
    for field, messages_ in error.message_dict.items():
        target = field if field in form.fields else None
        for message in messages_:
            form.add_error(target, message)


def _list_context(request, *, issue_form=None) -> dict:
    keys = list(selectors.api_key_list(owner=request.user))
    usage = selectors.deprecated_usage_for_keys(api_keys=keys)
    return {
        "api_keys": [(key, key.status(), usage.get(key.pk)) for key in keys],
        "issue_form": issue_form or ApiKeyIssueForm(),
        "rotate_form": ApiKeyRotateForm(),
        "revoke_form": ApiKeyRevokeForm(),
        "scopes": SCOPES,
        "session_deprecated_usage": selectors.deprecated_usage_for_user(user=request.user),
    }


@never_cache
@login_required
@step_up_required
@require_GET
def api_key_list_view(request):
    return render(request, "api/api_keys.html", _list_context(request))


@never_cache
@login_required
@step_up_required
@require_POST
@csrf_protect_audited
def api_key_issue_view(request):
    form = ApiKeyIssueForm(request.POST)
    if form.is_valid():
        try:
            issued = services.api_key_issue(
                actor=request.user,
                owner=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(),
                allowed_networks=form.cleaned_data["allowed_networks"],
            )
        except ValidationError as error:
            _add_service_errors(form, error)
        except PermissionDenied:
            raise Http404("No such page.") from None
        else:
            return render(request, "api/api_key_issued.html", {"issued": issued, "rotated": False})
    return render(request, "api/api_keys.html", _list_context(request, issue_form=form), status=400)


def _own_key(request, prefix: str):
    key = selectors.api_key_get(owner=request.user, prefix=prefix)
    if key is None:
        raise Http404("No such key.")
    return key


@never_cache
@login_required
@step_up_required
@require_POST
@csrf_protect_audited
def api_key_rotate_view(request, prefix: str):
    key = _own_key(request, prefix)
    form = ApiKeyRotateForm(request.POST)
    if form.is_valid():
        try:
            issued = services.api_key_rotate(
                actor=request.user, api_key=key, overlap_seconds=form.cleaned_data["overlap_hours"] * 3600
            )
        except ValidationError as error:
            messages.error(request, " ".join(message for values in error.message_dict.values() for message in values))
            return redirect("api-keys:list")
        return render(request, "api/api_key_issued.html", {"issued": issued, "rotated": True, "old_key": key})
    messages.error(request, "Give the overlap as a whole number of hours within the allowed range.")
    return redirect("api-keys:list")


@never_cache
@login_required
@step_up_required
@require_POST
@csrf_protect_audited
def api_key_revoke_view(request, prefix: str):
    key = _own_key(request, prefix)
    form = ApiKeyRevokeForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    services.api_key_revoke(actor=request.user, api_key=key, reason=reason)
    messages.success(request, f"The key {key.display_prefix} ({key.name}) is revoked.")
    return redirect("api-keys:list")
