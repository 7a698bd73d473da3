"""A release's smoke path, run by tests/deploy/test_expand_contract.py in a tree of its own.

Its text is run as ``python -c`` from the root of the release under test, so that tree's own code
is imported, against the database in ``DATABASE_URL``. It
uses only what outlives a release: Django's user model, the login page and API v2 (versioned,
docs/API_CHANGES.md; v1 is deprecated), so the current copy of this script drives the previous
release's code.

Reads one JSON object from standard input: ``username`` and ``password`` (made up by the test;
never on the command line), ``read`` (memory ids to read back, each with the content expected) and
``write`` (content of a memory to create, or null). Prints one JSON object: the code's folder,
the ids written. Any step that fails exits non-zero with one line saying which.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def fail(step: str, response=None) -> None:
    detail = f" (HTTP {response.status_code}: {response.content[:300]!r})" if response is not None else ""
    print(f"smoke failed: {step}{detail}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    order = json.load(sys.stdin)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    import memories

    # System checks with the database ones; then: does this code know of a migration the schema lacks?
    call_command("check", databases=["default"], verbosity=0)
    try:
        call_command("migrate", check=True, verbosity=0)
    except SystemExit:
        fail("this code has migrations the database has not applied")

    users = get_user_model().objects
    if not users.filter(username=order["username"]).exists():
        users.create_user(username=order["username"], email=f"{order['username']}@example.org",
                          password=order["password"])
    client = Client()
    response = client.post("/accounts/login/", {"username": order["username"], "password": order["password"]})
    if response.status_code != 302:
        fail("login", response)
    written = []
    if order.get("write"):
        response = client.post("/api/v2/contexts/", {"name": "Release smoke", "scope": "personal"},
                               content_type="application/json")
        if response.status_code != 201:
            fail("create a context", response)
        context_id = response.json()["id"]
        response = client.post("/api/v2/memories/", {"context_id": context_id, "content": order["write"]},
                               content_type="application/json")
        if response.status_code != 201:
            fail("create a memory", response)
        written.append(response.json()["id"])
        order.setdefault("read", []).append([written[-1], order["write"]])
    for memory_id, content in order.get("read", []):
        response = client.get(f"/api/v2/memories/{memory_id}/")
        if response.status_code != 200 or response.json().get("content") != content:
            fail(f"read memory {memory_id}", response)
    print(json.dumps({"code": str(Path(memories.__file__).resolve().parent.parent), "written": written}))


if __name__ == "__main__":
    main()
