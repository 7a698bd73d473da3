"""Project-wide error handlers (the JSON envelope under /api/, a plain page elsewhere) and the
API's documentation pages: the migration notes and Swagger UI under a strict CSP.

No handler ever shows an exception's text or a stack trace (outside ``local`` settings with DEBUG).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerView

import audit
from api.errors import error_body


def _handler(status_code: int, template: str):
    def view(request, exception=None):
        if request.path.startswith("/api/"):
            return JsonResponse(error_body(status_code), status=status_code)
        return render(request, template, {"request_id": getattr(request, "request_id", None)}, status=status_code)

    view.__name__ = f"handler{status_code}"
    return view


bad_request = _handler(400, "errors/400.html")
_forbidden = _handler(403, "errors/403.html")


def permission_denied(request, exception=None):
    """403 handler; a refusal in the security console is recorded (OWASP ASVS 4.0.3 V7.2.2).

    The API records its own refusals (``api.errors``); in the console a ``PermissionDenied``
    raised by the admin (a change form, add form or delete view without the permission, a
    forged bulk action, the key rotation POST) reaches only this handler.
    """
    if request.path.startswith(_console_prefix()) and getattr(request, "user", None) is not None:
        audit.record(
            action=audit.Action.PERMISSION_DENIED,
            outcome=audit.Outcome.DENIED,
            actor=request.user if request.user.is_authenticated else None,
            context={"reason": "console_permission", "path": request.path[:500]},
        )
    return _forbidden(request, exception)


def _console_prefix() -> str:
    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return "/admin/"


page_not_found = _handler(404, "errors/404.html")


def server_error(request):
    """500 handler: takes no exception argument (Django's contract for handler500)."""
    return _handler(500, "errors/500.html")(request)


# ---------------------------------------------------------------------------------------------
# Documentation: the migration notes and Swagger UI under a strict CSP
# ---------------------------------------------------------------------------------------------
CHANGES_FILE = Path(settings.BASE_DIR) / "docs" / "API_CHANGES.md"


def api_changes(request):
    """docs/API_CHANGES.md as served text: where ``Link: rel="deprecation"`` points."""
    try:
        text = CHANGES_FILE.read_text(encoding="utf-8")
    except OSError:
        return JsonResponse(error_body(404), status=404)
    return HttpResponse(text, content_type="text/markdown; charset=utf-8")


class SwaggerView(SpectacularSwaggerView):
    """Swagger UI whose one inline script and style carry the request's CSP nonce.

    drf-spectacular's template inlines its init script and a few styles; under our CSP
    (``script-src 'self' 'nonce-…'``, no ``'unsafe-inline'``) they would be blocked, so
    ``templates/api/swagger_ui.html`` puts the nonce on both. It also keeps
    ``Cross-Origin-Opener-Policy: same-origin`` (the stock view relaxes it for OAuth pop-ups,
    which this API does not use).
    """

    template_name = "api/swagger_ui.html"

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Cross-Origin-Opener-Policy"] = settings.SECURE_CROSS_ORIGIN_OPENER_POLICY or "same-origin"
        return response
