"""Health endpoints for load balancers and orchestrators, and the Prometheus metrics endpoint.

``/healthz`` and ``/readyz`` need no authentication and show no secrets; ``/readyz`` shows
anyone its status and the names of failing parts, and its details (each check, the process
posture: versions, user, file system) only to whom ``/metrics`` answers. ``/metrics`` is for
operators who run Prometheus: it answers only to a bearer token (``MONITORING_METRICS_TOKEN``)
or to clients in ``MONITORING_METRICS_ALLOWED_NETWORKS``, and is 404 when neither is set.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.requests import client_ip_from_meta
from monitoring import conf
from monitoring.health import failing_checks, process_posture, readiness


@never_cache
@require_GET
def healthz(request):
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Readiness: database, cache, broker, worker heartbeat, beat; 503 naming the failing parts.

    Anyone (a load balancer, an orchestrator's probe) gets the status and the names of the failing
    parts; the details — each check and this process's runtime posture (``posture``, which never
    fails readiness) — go only to a caller ``/metrics`` would answer (``MONITORING_METRICS_TOKEN``
    or ``MONITORING_METRICS_ALLOWED_NETWORKS``): they tell an attacker versions, users and paths.
    """
    checks = readiness()
    failing = failing_checks(checks)
    body = {"status": "ok" if not failing else "unavailable"}
    if failing:
        body["failing"] = failing
    if _metrics_allowed(request):
        body["checks"] = checks
        body["posture"] = process_posture()
    return JsonResponse(body, status=503 if failing else 200)


def _metrics_allowed(request) -> bool:
    token = conf.get("MONITORING_METRICS_TOKEN")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    presented = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if token and presented and hmac.compare_digest(presented.encode(), token.encode()):
        return True
    networks = conf.get("MONITORING_METRICS_ALLOWED_NETWORKS")
    if networks:
        client_ip = getattr(request, "client_ip", None) or client_ip_from_meta(request.META)
        if client_ip:
            address = ipaddress.ip_address(client_ip)
            return any(address in ipaddress.ip_network(network, strict=False) for network in networks)
    return False


@never_cache
@require_GET
def metrics(request):
    """Prometheus text exposition of the monitoring figures (``monitoring.metrics``)."""
    token = conf.get("MONITORING_METRICS_TOKEN")
    if not token and not conf.get("MONITORING_METRICS_ALLOWED_NETWORKS"):
        raise Http404("metrics are not enabled")
    if not _metrics_allowed(request):
        if token:
            response = HttpResponse("unauthorized\n", status=401, content_type="text/plain; charset=utf-8")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse("forbidden\n", status=403, content_type="text/plain; charset=utf-8")
    from monitoring.metrics import render_metrics

    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)
