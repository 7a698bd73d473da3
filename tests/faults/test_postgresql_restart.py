"""PostgreSQL restarted under load: requests fail cleanly meanwhile, the server recovers, nothing is half-written.

Real gunicorn serves the test database through production's connection pool; a load loop creates
memories through the API with a key while the test restarts the PostgreSQL server
(``pg_ctl restart -m fast``, which ends every connection). Each answer is a 201 or a clean 503;
afterwards every memory a 201 named exists, every stored memory has its audit event and no event
names a memory that is not stored, and the audit chain verifies.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections

from api import services as api_services
from audit.actions import Action
from audit.models import AuditEvent
from audit.services import audit_chain_seal
from audit.verification import verify_chain
from memories.models import Memory
from tests.support.servers import PROJECT_DIR, gunicorn_server, served_env

pytestmark = [pytest.mark.postgresql, pytest.mark.server, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def collected_static() -> Path:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=PROJECT_DIR,
        env=served_env(),
        check=True,
        timeout=300,
    )
    return Path(settings.VAR_DIR) / "static-collected"


def _restart_postgresql() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        (data_directory,) = cursor.fetchone()
    connections.close_all()
    bindir = os.environ.get("PG_BINDIR") or "/usr/lib/postgresql/15/bin"
    command = [f"{bindir}/pg_ctl", "-D", data_directory, "-m", "fast", "-w", "-t", "60", "restart"]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, timeout=90, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for alias in connections:  # this process's own pooled connections died with the old server
        connections[alias].close()
        if hasattr(connections[alias], "close_pool"):
            connections[alias].close_pool()


class Load(threading.Thread):
    """Create memories one after another until stopped; keep every answer."""

    def __init__(self, port: int, key: str, context_id: int) -> None:
        super().__init__(daemon=True)
        self.port, self.key, self.context_id = port, key, context_id
        self.answers: list[tuple[int, dict | None]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stopping.is_set() and number < 2000:
            number += 1
            body = json.dumps({"context": self.context_id, "content": f"note {number}"})
            client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                client.request(
                    "POST",
                    "/api/v1/memories/",
                    body=body,
                    headers={
                        "Authorization": f"Bearer {self.key}",
                        "Content-Type": "application/json",
                    },
                )
                response = client.getresponse()
                payload = response.read()
                self.answers.append((response.status, json.loads(payload) if payload else None))
            except (OSError, http.client.HTTPException) as error:
                self.answers.append((0, {"transport": type(error).__name__}))
            finally:
                client.close()
            time.sleep(0.01)


def _wait_for(answers: list, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(answers) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(answers) >= count, answers[-5:]


def test_a_restart_under_load_fails_requests_cleanly_and_loses_or_half_writes_nothing(world, collected_static):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (runs in the PostgreSQL half of make test)")
    issued = api_services.api_key_issue(
        actor=world.owner, owner=world.owner, name="load", scopes=["memories:read", "memories:write"]
    )
    with gunicorn_server(extra_env={"DATABASE_POOL": "true"}) as server:  # production's pool
        load = Load(server.port, issued.key, world.team_context.pk)
        load.start()
        _wait_for(load.answers, 20)
        before = len(load.answers)
        _restart_postgresql()
        _wait_for(load.answers, before + 40)  # and requests keep being answered after it
        load.stopping.set()
        load.join(timeout=60)

    statuses = [status for status, _ in load.answers]
    assert set(statuses) <= {201, 503}, [answer for answer in load.answers if answer[0] not in (201, 503)][:5]
    for status, body in load.answers:
        if status == 503:
            assert body["error"]["code"] == "unavailable" and "Traceback" not in json.dumps(body)
    assert statuses[-20:] == [201] * 20  # recovered: the last requests all succeeded
    created = {body["id"] for status, body in load.answers if status == 201}
    stored = set(Memory.objects.filter(context=world.team_context).values_list("pk", flat=True))
    # Every 201 is stored. A 503 may still have stored its memory, when the connection died just
    # after the COMMIT (the answer says "try again", never "nothing changed"); no more than that.
    assert created <= stored and len(stored - created) <= statuses.count(503)
    # Nothing half-written: each stored memory has its audit event, and no event names a lost memory.
    audited = set(AuditEvent.objects.filter(action=Action.MEMORY_CREATED.value).values_list("target_id", flat=True))
    assert audited == {str(pk) for pk in stored}
    audit_chain_seal()
    report = verify_chain()
    assert report.ok and report.unsealed == 0, report.summary()
    print(
        f"\n{len(statuses)} requests during a PostgreSQL restart: {statuses.count(201)} created, "
        f"{statuses.count(503)} refused with 503"
    )
