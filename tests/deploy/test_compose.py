"""The two-replica compose stack (deploy/compose.yaml), then blue-green deployment and rollback.

The module builds the stack's images (``scripts/build-stack-images.sh``: the cached base, wheels
and service images reused), generates a fresh secrets folder (``deploy/make-secrets.py``), and
brings the stack up with ``deploy/bluegreen.py up`` under podman-compose, in a project of its own,
with the two web replicas also published on loopback so each can be addressed directly as well as
through the proxy. It proves across both replicas that everything two replicas must share is
shared: a login and API smoke test, the lockout counted on both, a throttle shared, a signed
request's nonce refused on the other replica, a session revoked on one refused on the other, and
the audit chain verified (``manage audit_verify`` in a container) after traffic on both. Then it
deploys a green image of the same code with another revision label, and rolls it back, while two
threads send requests through the proxy, and asserts none failed. Everything is torn down, even on
failure.

One test needs no container: it reads the compose file with podman-compose's own dependency code
and checks that nothing the tool recreates has a dependent (which compose would recreate with it).

The stack runs once per ``make test``: in the PostgreSQL half only (the stack has its own PostgreSQL; the
SQLite half would only run it a second time). Skipped, with the reason, where podman cannot run.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.db import connection

from api.client import signature_headers
from tests.deploy.test_image import podman, podman_unavailable
from tests.support.servers import PROJECT_DIR, free_port

# The services that follow the active slot's image (deploy/bluegreen.py's SHARED_SERVICES).
SHARED = ("worker-1", "worker-2", "beat", "sealer")

pytestmark = pytest.mark.container

HOST = "console.example.org"
COMPOSE = f"{sys.executable} -m podman_compose --podman-path {PROJECT_DIR / 'scripts' / 'podman.sh'}"
ACCOUNT_FAILURE_LIMIT = 4
API_KEY_RATE = 10  # requests a minute per API key, in this stack
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Stack:
    project: str
    environment: dict
    proxy_port: int
    replica_ports: dict
    secrets_dir: Path
    fixtures: dict = field(default_factory=dict)

    def tool(self, *arguments: str, timeout: float = 900) -> subprocess.CompletedProcess:
        command = [
            sys.executable, str(PROJECT_DIR / "deploy" / "bluegreen.py"), "--project", self.project,
            "--file", str(PROJECT_DIR / "deploy" / "compose.yaml"), "--file", str(self.override),
            "--podman", str(PROJECT_DIR / "scripts" / "podman.sh"), "--compose", COMPOSE, "--timeout", "240",
            *arguments,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, env=self.environment, timeout=timeout)

    @property
    def override(self) -> Path:
        return self.secrets_dir.parent / "compose.test.yaml"

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def manage(self, service: str, *arguments: str, environment: dict | None = None) -> subprocess.CompletedProcess:
        options = [item for name, value in (environment or {}).items() for item in ("--env", f"{name}={value}")]
        return podman("exec", *options, self.container(service), "/app/deploy/container/entrypoint.sh", "manage",
                      *arguments, timeout=300, check=False)  # fmt: skip


class Client:
    """HTTP to one replica (plain, with the proxy's X-Forwarded-Proto) or HTTPS through the proxy; keeps cookies."""

    def __init__(self, port: int, *, through_proxy: bool):
        self.port, self.through_proxy, self.cookies = port, through_proxy, {}

    def request(self, method: str, path: str, *, body: bytes = b"", headers: dict | None = None):
        if self.through_proxy:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the stack's self-signed certificate
            client = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=context)
        else:
            client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Host": HOST, "Referer": f"https://{HOST}/", **(headers or {})}
        if not self.through_proxy:
            sent["X-Forwarded-Proto"] = "https"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            client.request(method, path, body=body or None, headers=sent)
            response = client.getresponse()
            content = response.read()
        finally:
            client.close()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response, content

    def login(self, username: str, password: str) -> http.client.HTTPResponse:
        _, page = self.request("GET", "/accounts/login/")
        token = CSRF_FIELD.search(page.decode()).group(1)
        form = urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password}).encode()
        response, _ = self.request(
            "POST", "/accounts/login/", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        return response


SETUP = """
import json, os
from django.contrib.auth import get_user_model
from api import services
from api.scopes import SCOPES
from memories.models import Context, Membership, Memory, Organization, Role, Team
User = get_user_model()
alice = User.objects.create_user(username="alice", email="alice@example.org", password=os.environ["ALICE_PASSWORD"])
User.objects.create_user(username="bob", email="bob@example.org", password=os.environ["BOB_PASSWORD"])
organization = Organization.objects.create(name="Acme", slug="acme")
team = Team.objects.create(organization=organization, name="Platform", slug="platform")
Membership.objects.create(user=alice, organization=organization, role=Role.OWNER)
Membership.objects.create(user=alice, team=team, role=Role.OWNER)
context = Context.objects.create(name="Runbooks", scope="team", owner_team=team, created_by=alice)
memories = [Memory.objects.create(context=context, content=f"runbook {n}", author=alice).pk for n in range(2)]
keys = {}
for name in ("smoke", "throttle"):
    issued = services.api_key_issue(actor=alice, owner=alice, name=name, scopes=list(SCOPES))
    keys[name] = {"key": issued.key, "signing_secret": issued.signing_secret}
print(json.dumps({"memories": memories, "keys": keys}))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if connection.vendor != "postgresql":
        pytest.skip("the compose stack runs once per make test, in the PostgreSQL half (it brings its own PostgreSQL)")
    reason = podman_unavailable()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("compose")
    started = time.monotonic()
    built = subprocess.run(
        ["bash", "scripts/build-stack-images.sh", "--env"], cwd=PROJECT_DIR, capture_output=True, text=True,
        env={**os.environ, "PYTHON": sys.executable}, timeout=1800,
    )  # fmt: skip
    assert built.returncode == 0, f"scripts/build-stack-images.sh failed:\n{built.stderr[-4000:]}"
    images = dict(line.split("=", 1) for line in built.stdout.split())
    sys.stderr.write(f"\nstack images ready in {time.monotonic() - started:.0f} s: {images}\n")
    secrets_dir = folder / "secrets"
    made = subprocess.run([sys.executable, "deploy/make-secrets.py", str(secrets_dir), "--site-host", HOST],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    ports = {"web-blue-1": free_port(), "web-blue-2": free_port()}
    throttle = json.dumps({"api_key": f"{API_KEY_RATE}/min", "user": "600/min", "ip": "1800/min"})
    test_environment = {
        "API_THROTTLE_RATES": throttle,
        "ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT": str(ACCOUNT_FAILURE_LIMIT),
        "ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT": "50",
    }
    # Each replica also published on loopback, so the test can address it directly; the test's own
    # limits (a low API-key rate, a low account lockout limit) for every web replica.
    override = {"services": {}}
    for service in ("web-blue-1", "web-blue-2", "web-green-1", "web-green-2"):
        override["services"][service] = {"environment": test_environment}
    for service, port in ports.items():
        override["services"][service]["ports"] = [f"127.0.0.1:{port}:8000"]
    (folder / "compose.test.yaml").write_text(json.dumps(override))
    running = Stack(
        project=f"nvtest{secrets.token_hex(3)}",
        environment={**os.environ, **images, "BLUE_IMAGE": images["APP_IMAGE"], "SECRETS_DIR": str(secrets_dir),
                     "SITE_HOST": HOST, "PROXY_PORT": str(free_port())},  # fmt: skip
        proxy_port=0,
        replica_ports=ports,
        secrets_dir=secrets_dir,
    )
    running.proxy_port = int(running.environment["PROXY_PORT"])
    try:
        started = time.monotonic()
        up = running.tool("up")
        assert up.returncode == 0, f"bluegreen.py up failed:\n{up.stdout}\n{up.stderr[-3000:]}"
        sys.stderr.write(f"stack up in {time.monotonic() - started:.0f} s\n")
        passwords = {"ALICE_PASSWORD": secrets.token_urlsafe(18), "BOB_PASSWORD": secrets.token_urlsafe(18)}
        setup = running.manage("web-blue-1", "shell", "-c", SETUP, environment=passwords)
        assert setup.returncode == 0, setup.stderr[-3000:]
        running.fixtures = {**json.loads(setup.stdout.strip().splitlines()[-1]), **passwords}
        yield running
    finally:
        down = running.tool("down", timeout=300)
        if down.returncode != 0:
            sys.stderr.write(f"bluegreen.py down: {down.stderr[-2000:]}\n")


def replicas(stack: Stack) -> list[Client]:
    return [Client(stack.replica_ports[name], through_proxy=False) for name in ("web-blue-1", "web-blue-2")]


def proxy(stack: Stack) -> Client:
    return Client(stack.proxy_port, through_proxy=True)


def bearer(stack: Stack, name: str) -> dict:
    return {"Authorization": f"Bearer {stack.fixtures['keys'][name]['key']}"}


# --- the stack -----------------------------------------------------------------------------------
def test_login_and_the_api_work_on_each_replica_and_through_the_proxy(stack):
    served = set()
    for client in [*replicas(stack), proxy(stack)]:
        login = client.login("alice", stack.fixtures["ALICE_PASSWORD"])
        assert login.status == 302, login.status
        assert "__Host-sessionid" in client.cookies
        page, _ = client.request("GET", "/accounts/sessions/")
        assert page.status == 200
        response, body = client.request("GET", "/api/v2/memories/", headers=bearer(stack, "smoke"))
        assert response.status == 200, body[:300]
        assert {item["id"] for item in json.loads(body)["results"]} >= set(stack.fixtures["memories"])
        served.add(response.getheader("X-Served-By"))
    # Through the proxy HAProxy names the replica; directly, nothing does.
    assert served - {None} <= {"web-blue-1", "web-blue-2"} and served - {None}


def test_the_proxy_balances_over_both_replicas_and_health_checks_them_on_readyz(stack):
    served = {proxy(stack).request("GET", "/healthz")[0].getheader("X-Served-By") for _ in range(10)}
    assert served == {"web-blue-1", "web-blue-2"}
    status = podman("exec", stack.container("proxy"), "haproxy-runtime", "show stat").stdout
    rows = [row.split(",") for row in status.splitlines() if row.startswith("blue,web-blue-")]
    assert len(rows) == 2 and all(row[17] == "UP" for row in rows), status
    configuration = podman("exec", stack.container("proxy"), "cat", "/etc/haproxy/haproxy.cfg").stdout
    assert "http-check send meth GET uri /readyz" in configuration


def test_failures_on_both_replicas_lock_the_account_on_both(stack):
    first, second = replicas(stack)
    for attempt in range(ACCOUNT_FAILURE_LIMIT):
        client = (first, second)[attempt % 2]
        assert client.login("bob", "wrong-" + secrets.token_hex(4)).status in (200, 400, 429)
    # The right password is refused now, on either replica: the counter is the database's.
    for client in (Client(first.port, through_proxy=False), Client(second.port, through_proxy=False)):
        refused = client.login("bob", stack.fixtures["BOB_PASSWORD"])
        assert refused.status == 429
        assert "__Host-sessionid" not in client.cookies


def test_the_api_throttle_is_shared_by_the_replicas(stack):
    first, second = replicas(stack)
    statuses = {first.port: [], second.port: []}
    for number in range(2 * API_KEY_RATE):
        client = (first, second)[number % 2]
        response, _ = client.request("GET", "/api/v2/memories/", headers=bearer(stack, "throttle"))
        statuses[client.port].append(response.status)
    allowed = sum(status == 200 for values in statuses.values() for status in values)
    # Each replica alone would allow API_KEY_RATE; together they allow it once.
    assert allowed <= API_KEY_RATE, statuses
    assert all(429 in values for values in statuses.values()), statuses


def test_a_signed_request_replayed_on_the_other_replica_is_refused(stack):
    first, second = replicas(stack)
    path = f"/api/v2/memories/{stack.fixtures['memories'][0]}/"
    key = stack.fixtures["keys"]["smoke"]
    headers = {**bearer(stack, "smoke"), **signature_headers(key=key["key"], signing_secret=key["signing_secret"],
                                                             method="DELETE", path=path)}  # fmt: skip
    deleted, _ = first.request("DELETE", path, headers=headers)
    assert deleted.status == 204
    replay, body = second.request("DELETE", path, headers=headers)
    assert replay.status == 401
    assert json.loads(body)["error"]["code"] == "signature_invalid"


def test_a_session_revoked_on_one_replica_is_refused_on_the_other(stack):
    first, second = replicas(stack)
    assert first.login("alice", stack.fixtures["ALICE_PASSWORD"]).status == 302
    assert second.login("alice", stack.fixtures["ALICE_PASSWORD"]).status == 302
    assert first.request("GET", "/accounts/sessions/")[0].status == 200
    _, page = second.request("GET", "/accounts/sessions/")
    token = CSRF_FIELD.search(page.decode()).group(1)
    form = urlencode({"csrfmiddlewaretoken": token}).encode()
    revoked, _ = second.request("POST", "/accounts/sessions/revoke-others/", body=form,
                                headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert revoked.status == 302 and revoked.getheader("Location").endswith("/accounts/sessions/")
    refused, _ = first.request("GET", "/accounts/sessions/")
    assert refused.status == 302 and "/accounts/login/" in refused.getheader("Location")
    assert second.request("GET", "/accounts/sessions/")[0].status == 200


def test_the_audit_chain_verifies_after_traffic_on_both_replicas(stack):
    result = stack.manage("web-blue-2", "audit_verify")
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    # The web replicas run AUDIT_SEAL_MODE=periodic: only the sealer service chained their events
    # (the minute's audit_seal task would leave them waiting far longer than this test's traffic).
    assert "not sealed yet" not in result.stdout + result.stderr, result.stdout[-2000:]


def test_no_secret_is_in_the_compose_file_or_the_environment_of_a_container(stack):
    values = [path.read_text().strip() for path in stack.secrets_dir.rglob("*") if path.is_file()]
    compose = (PROJECT_DIR / "deploy" / "compose.yaml").read_text()
    [state] = json.loads(podman("inspect", stack.container("web-blue-1")).stdout)
    environment = "\n".join(state["Config"]["Env"])
    for value in values:
        for line in value.splitlines():
            if len(line) >= 16 and "-----" not in line:
                assert line not in compose and line not in environment
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert state["HostConfig"]["CapDrop"] and state["Config"]["User"] == "10001:10001"


def test_recreating_a_web_slot_the_proxy_a_worker_or_beat_recreates_nothing_else():
    """podman-compose recreates a service's running dependents (transitively) with it: no service
    the tool recreates may have one, or a deploy would restart what serves. Read by podman-compose's
    own dependency code; no container needed. The migration job has dependents, which is why the
    tool runs it as a one-off container (``compose run --rm``) and never recreates it."""
    import podman_compose
    import yaml

    services = yaml.safe_load((PROJECT_DIR / "deploy" / "compose.yaml").read_text())["services"]
    services = {name: podman_compose.normalize_service(dict(service)) for name, service in services.items()}
    podman_compose.flat_deps(services)

    def dependents(name: str) -> set[str]:
        return {dependency.name for dependency in services[name].get(podman_compose.DependField.DEPENDENTS, ())}

    for name in ("web-blue-1", "web-blue-2", "web-green-1", "web-green-2", "proxy", *SHARED):
        assert dependents(name) == set(), name
    assert {"web-blue-1", "worker-1", "beat", "sealer"} <= dependents("migrate")


# --- blue-green deployment and rollback ----------------------------------------------------------
LOAD_THREADS = 2
LOAD_MAX_REQUESTS = 20_000  # per thread
LOAD_MAX_SECONDS = 600


class LoadLoop:
    """Threads sending GET /accounts/login/ through the proxy, each on a kept-alive HTTPS connection,
    until stopped or bounded by count and time; every non-200 answer or broken connection is a failure."""

    def __init__(self, port: int):
        self.port, self.stopping = port, threading.Event()
        self.started = time.monotonic()
        self.sent = self.failed = 0
        self.served: dict[str, int] = {}
        # (seconds since the loop started, what failed): which requests fail, and when.
        self.failures: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(LOAD_THREADS)]

    def connect(self) -> http.client.HTTPSConnection:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=context)

    def run(self) -> None:
        client, deadline = self.connect(), time.monotonic() + LOAD_MAX_SECONDS
        for _ in range(LOAD_MAX_REQUESTS):
            if self.stopping.is_set() or time.monotonic() > deadline:
                break
            outcome, server = None, None
            try:
                client.request("GET", "/accounts/login/", headers={"Host": HOST})
                response = client.getresponse()
                response.read()
                server = response.getheader("X-Served-By")
                if response.status != 200:
                    outcome = f"status {response.status}"
                if (response.getheader("Connection") or "").lower() == "close":
                    client.close()
                    client = self.connect()
            except (OSError, http.client.HTTPException) as error:
                outcome = type(error).__name__
                client.close()
                client = self.connect()
            with self.lock:
                self.sent += 1
                if outcome:
                    self.failed += 1
                    self.failures.append((round(time.monotonic() - self.started, 2), f"{outcome} from {server}"))
                if server:
                    self.served[server] = self.served.get(server, 0) + 1
            time.sleep(0.01)
        client.close()

    def __enter__(self) -> LoadLoop:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exception) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)


@pytest.fixture(scope="module")
def green_image(stack):
    """The same code under another revision label (and IMAGE_REVISION): the new version to deploy."""
    reference = f"localhost/ninaivalaigal:{stack.project}-green"
    revision = secrets.token_hex(20)  # a commit hash of its own: record_deployment accepts only revisions
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "Containerfile").write_text(
            f"FROM {stack.environment['APP_IMAGE']}\n"
            f"LABEL org.opencontainers.image.revision={revision}\nENV IMAGE_REVISION={revision}\n"
        )
        podman("build", "--quiet", "--format", "docker", "--network", "none", "--tag", reference, folder, timeout=300)
    yield reference, revision
    podman("rmi", "--force", reference, check=False)


def _revision(image: str) -> str:
    [inspect] = json.loads(podman("image", "inspect", image).stdout)
    return inspect["Labels"]["org.opencontainers.image.revision"]


def _under_load(stack: Stack, *arguments: str) -> tuple[subprocess.CompletedProcess, LoadLoop, float]:
    """Run one bluegreen.py step while the load loop runs; also return when the step started (s into the loop)."""
    with LoadLoop(stack.proxy_port) as load:
        time.sleep(2)  # traffic before the step starts
        step_started = time.monotonic() - load.started
        result = stack.tool("--verbose", *arguments)
        time.sleep(2)  # and after the switch
    return result, load, step_started


def _assert_done_and_recorded(result: subprocess.CompletedProcess, kind: str) -> None:
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    assert f"recorded: {kind} from " in result.stdout


def _no_failure(step: str, load: LoadLoop, step_started: float, result: subprocess.CompletedProcess) -> None:
    """None failed; else the first failures with their times beside the step's timed commands (--verbose)."""
    assert load.failed == 0, (
        f"{step}: {load.failed} of {load.sent} requests failed; the step started {step_started:.2f} s into the "
        f"load; first failures (s into the load, what): {load.failures[:10]}, last: {load.failures[-3:]}\n"
        f"the step's commands (s into the step):\n{result.stderr[-4000:]}"
    )


def _switch_ms(output: str) -> float:
    return float(re.search(r"in ([0-9.]+) ms", output).group(1))


def test_blue_green_deploy_and_rollback_under_load_fail_no_request(stack, green_image):
    image, green_revision = green_image
    blue_revision = _revision(stack.environment["APP_IMAGE"])
    blue_containers = {service: _container_id(stack, service) for service in ("web-blue-1", "web-blue-2", "proxy")}

    deployed, deploy_load, deploy_started = _under_load(stack, "deploy", "--image", image)
    _assert_done_and_recorded(deployed, "deploy")
    assert "switched the proxy from blue to green" in deployed.stdout
    _no_failure("deploy", deploy_load, deploy_started, deployed)
    assert {proxy(stack).request("GET", "/healthz")[0].getheader("X-Served-By") for _ in range(6)} <= {
        "web-green-1", "web-green-2"
    }  # fmt: skip
    status = stack.tool("status").stdout
    assert f"green: active, {image} ({green_revision})" in status
    assert f"blue: idle, {stack.environment['APP_IMAGE']} ({blue_revision})" in status
    # The workers and beat moved to the new version after the switch (under the same load loop).
    for service in SHARED:
        assert f"{service}: {image} ({green_revision})" in status, status
    # The deploy started green beside blue: the blue replicas and the proxy are the very
    # containers that ran before it (none stopped or recreated), and no migration container is left.
    assert {service: _container_id(stack, service) for service in blue_containers} == blue_containers
    assert not _containers(stack, "migrate")

    rolled, rollback_load, rollback_started = _under_load(stack, "rollback")
    _assert_done_and_recorded(rolled, "rollback")
    assert "rolled back: switched the proxy from green to blue" in rolled.stdout
    _no_failure("rollback", rollback_load, rollback_started, rolled)
    assert {proxy(stack).request("GET", "/healthz")[0].getheader("X-Served-By") for _ in range(6)} <= {
        "web-blue-1", "web-blue-2"
    }  # fmt: skip
    status = stack.tool("status").stdout
    assert f"blue: active, {stack.environment['APP_IMAGE']} ({blue_revision})" in status
    for service in SHARED:
        assert f"{service}: {stack.environment['APP_IMAGE']} ({blue_revision})" in status, status
    assert {service: _container_id(stack, service) for service in blue_containers} == blue_containers

    for step, load, result in (("deploy", deploy_load, deployed), ("rollback", rollback_load, rolled)):
        sys.stderr.write(
            f"\nblue-green {step}: {load.sent} requests sent through the proxy, {load.failed} failed, "
            f"switch {_switch_ms(result.stdout):.1f} ms, served by {load.served}\n"
        )
    # The loop ran across the switch: both slots answered it.
    assert any(name.startswith("web-blue") for name in deploy_load.served)
    assert any(name.startswith("web-green") for name in deploy_load.served)
    assert any(name.startswith("web-green") for name in rollback_load.served)
    assert any(name.startswith("web-blue") for name in rollback_load.served)

    # Both steps are in the audit trail with both revisions, recorded by the tool.
    code = (
        "import json; from audit.models import AuditEvent; "
        "print(json.dumps([[e.action, e.context.get('from_revision'), e.context.get('to_revision'), "
        "e.context.get('tool')] for e in AuditEvent.objects.filter("
        "action__in=['system.deployed', 'system.rolled_back']).order_by('pk')]))"
    )
    events = stack.manage("web-blue-1", "shell", "-c", code)
    assert events.returncode == 0, events.stderr[-2000:]
    assert json.loads(events.stdout.strip().splitlines()[-1]) == [
        ["system.deployed", blue_revision, green_revision, "bluegreen"],
        ["system.rolled_back", green_revision, blue_revision, "bluegreen"],
    ]


def _containers(stack: Stack, service: str) -> list[str]:
    return podman("ps", "-a", "--format", "{{.ID}}", "--filter", f"label=io.podman.compose.project={stack.project}",
                  "--filter", f"label=com.docker.compose.service={service}").stdout.split()  # fmt: skip


def _container_id(stack: Stack, service: str) -> str:
    [identifier] = _containers(stack, service)
    return identifier


def test_a_rollback_with_nothing_to_roll_back_to_says_so(stack, tmp_path):
    """Against a project with no stack, the tool ends with one clear line and a non-zero status."""
    empty = Stack(project=f"nvnone{secrets.token_hex(3)}", environment=stack.environment, proxy_port=0,
                  replica_ports={}, secrets_dir=stack.secrets_dir)  # fmt: skip
    result = empty.tool("rollback", timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"bluegreen: no proxy container in project {empty.project}: run 'bluegreen.py up' first"
    ]
