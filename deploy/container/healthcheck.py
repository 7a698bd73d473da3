"""The image's HEALTHCHECK: ``/readyz`` of the web server in this container (standard library only).

Exit 0 when it answers 200, 1 otherwise, with one line saying why (the failing checks named by
``/readyz``, never more). The request goes to the first address of ``WEB_BIND`` over loopback
with the first host of ``ALLOWED_HOSTS`` as its ``Host``, so production's host validation
accepts it; production does not redirect ``/healthz`` and ``/readyz`` to HTTPS
(``SECURE_REDIRECT_EXEMPT``), since a probe inside the pod or container speaks plain HTTP.

The worker, beat and migration containers run the same image but serve no HTTP: for them this
probe reports healthy while their process runs (tini ends the container when it exits); their
health shows in the web server's ``/readyz``, which fails on a stale worker heartbeat or beat.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from pathlib import Path

TIMEOUT_SECONDS = 4.0


def container_command() -> str:
    """The entrypoint's first argument (web, worker, beat, migrate), read from PID 1's command line."""
    try:
        arguments = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "web"
    arguments = [argument.decode(errors="replace") for argument in arguments if argument]
    for index, argument in enumerate(arguments):
        if argument.endswith("entrypoint.sh"):
            return arguments[index + 1] if index + 1 < len(arguments) else "web"
    return "web"


def probe_address() -> tuple[str, int]:
    """Loopback and the port of the first ``WEB_BIND`` address (default 127.0.0.1:8000)."""
    first = os.environ.get("WEB_BIND", "127.0.0.1:8000").split(",")[0].strip()
    if first.startswith(("unix:", "fd://")):
        raise ValueError(f"WEB_BIND {first!r} is not a TCP address")
    port = first.rsplit(":", 1)[1] if ":" in first else "8000"
    return "127.0.0.1", int(port)


def probe_host() -> str:
    """The first host production accepts (``.example.org`` means example.org and its subdomains)."""
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and "*" not in host:
            return host
    return "localhost"


def main() -> int:
    role = container_command()
    if role != "web":
        print(f"healthy: the {role} process runs (no HTTP probe for it; the web server's /readyz reports it)")
        return 0
    try:
        host, port = probe_address()
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
        connection.request("GET", "/readyz", headers={"Host": probe_host(), "Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
    except (OSError, ValueError, http.client.HTTPException) as error:
        print(f"unhealthy: /readyz did not answer ({type(error).__name__})")
        return 1
    if response.status == 200:
        print("healthy: /readyz answered 200")
        return 0
    try:
        failing = json.loads(body).get("failing", [])
    except (ValueError, AttributeError):
        failing = []
    print(f"unhealthy: /readyz answered {response.status}" + (f", failing: {', '.join(failing)}" if failing else ""))
    return 1


if __name__ == "__main__":
    sys.exit(main())
