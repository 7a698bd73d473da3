"""Health endpoints for load balancers and orchestrators (no authentication, no secrets)."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring.health import readiness


@never_cache
@require_GET
def healthz(request):
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Readiness: database and broker reachable; 503 naming the failing part otherwise."""
    checks = readiness()
    failing = sorted(name for name, result in checks.items() if not result["ok"])
    body = {"status": "ok" if not failing else "unavailable", "checks": checks}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
