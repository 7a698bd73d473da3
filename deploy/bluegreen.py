#!/usr/bin/env python3
"""Bring up the compose stack, deploy a new version beside the running one, and roll it back.

Standard library only; it drives podman-compose and podman (docs/operations.md, "The compose stack"
and "Blue-green deployment"). The web replicas run in two slots, blue and green (deploy/compose.yaml);
HAProxy routes every request to the slot its map names, and the map changes in one runtime API
command, so a switch is atomic and drops no connection.

    deploy/bluegreen.py up                       the stack in order: PostgreSQL and Redis, the
                                                 migration job (must succeed), web, workers, beat, the sealer,
                                                 then the proxy once the web replicas are ready
    deploy/bluegreen.py deploy --image IMAGE     migrations with IMAGE, the idle slot on IMAGE, wait
                                                 for its /readyz, switch the proxy, drain the old slot
                                                 (kept running for a rollback), record the deployment,
                                                 then workers, beat and the sealer onto IMAGE one at a time
    deploy/bluegreen.py rollback                 switch back to the previous slot, in one command
                                                 (then workers, beat and the sealer back)
    deploy/bluegreen.py status                   the active slot, each slot's image and revision, and
                                                 the image workers, beat and the sealer run
    deploy/bluegreen.py down                     stop and remove the stack and its volumes

The images and secrets come from the environment, as deploy/compose.yaml reads them (APP_IMAGE,
POSTGRES_IMAGE, REDIS_IMAGE, PROXY_IMAGE, SECRETS_DIR, SITE_HOST, ...); ``--env-file FILE`` adds
NAME=VALUE lines (scripts/build-stack-images.sh --env writes them). The migrations of a deploy must
be ones the running version can live with (expand now, contract in a later release).

Each deploy and rollback is recorded in the audit trail with both revisions (the images'
org.opencontainers.image.revision labels) by ``manage.py record_deployment``, run in the new
active slot's container through the image's ``manage`` command. Every failure ends the command with
one line on stderr and a non-zero status; nothing secret is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
SLOTS = ("blue", "green")
SLOT_MAP = "/tmp/slot.map"  # noqa: S108 (in the proxy container, on its tmpfs)
BACKING_SERVICES = ("postgres", "redis")
SHARED_SERVICES = ("worker-1", "worker-2", "beat", "sealer")
REVISION_LABEL = "org.opencontainers.image.revision"


class Failure(Exception):
    """A step that failed: its message is the one line the command prints."""


def slot_services(slot: str) -> list[str]:
    return [f"web-{slot}-1", f"web-{slot}-2"]


def other(slot: str) -> str:
    return "green" if slot == "blue" else "blue"


class Stack:
    def __init__(self, arguments: argparse.Namespace):
        self.podman = shlex.split(arguments.podman)
        files = [item for path in (arguments.file or [DEPLOY_DIR / "compose.yaml"]) for item in ("-f", str(path))]
        self.compose = [*shlex.split(arguments.compose or default_compose()), "-p", arguments.project, *files]
        self.project = arguments.project
        self.timeout = arguments.timeout
        self.verbose = arguments.verbose
        self.started = time.monotonic()
        self.environment = dict(os.environ)
        for path in arguments.env_file or []:
            self.environment.update(read_env_file(path))

    # --- running things ---------------------------------------------------------------------
    def remove_leftovers(self) -> None:
        """Containers of the project that compose down left (one caught restarting), and its network."""
        label = f"label=io.podman.compose.project={self.project}"
        listed = self.run([*self.podman, "ps", "-a", "--format", "{{.Names}}", "--filter", label], check=False)
        names = listed.stdout.split()
        if names:
            self.run([*self.podman, "rm", "--force", *names], check=False)
        self.run([*self.podman, "network", "rm", f"{self.project}_default"], check=False)

    def run(self, command: list[str], *, environment: dict | None = None, timeout: float | None = None,
            check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
        if self.verbose:
            print(f"+ {time.monotonic() - self.started:7.2f} s  " + " ".join(command[:12]), file=sys.stderr)
        try:
            result = subprocess.run(  # noqa: S603 (the operator's own podman and podman-compose commands)
                command, capture_output=True, text=True, env=environment or self.environment, stdin=subprocess.DEVNULL,
                timeout=timeout or self.timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise Failure(f"{' '.join(command[:4])} ... did not finish in {timeout or self.timeout:.0f} s") from None
        except FileNotFoundError:
            raise Failure(f"{command[0]} is not installed") from None
        if check and result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
            raise Failure(f"{' '.join(command[:4])} ... exited {result.returncode}: {last[0][:300]}")
        return result

    def compose_up(self, services: list[str], *, images: dict | None = None, recreate: bool = False) -> None:
        environment = {**self.environment, **(images or {})}
        profiles = ["--profile", "green"] if any("green" in service for service in services) else []
        # podman-compose's --force-recreate fails on a container that does not exist yet.
        recreate = recreate and all(self.container(service) for service in services)
        self.run([*self.compose[:1], *self.compose[1:], *profiles, "up", "-d", "--no-deps",
                  *(["--force-recreate"] if recreate else []), *services], environment=environment)  # fmt: skip

    def container(self, service: str) -> str | None:
        result = self.run([*self.podman, "ps", "-a", "--format", "{{.Names}}",
                           "--filter", f"label=io.podman.compose.project={self.project}",
                           "--filter", f"label=com.docker.compose.service={service}"])  # fmt: skip
        names = result.stdout.split()
        return names[0] if names else None

    def require(self, service: str) -> str:
        name = self.container(service)
        if name is None:
            raise Failure(f"no {service} container in project {self.project}: run 'bluegreen.py up' first")
        return name

    def inspect(self, name: str) -> dict:
        return json.loads(self.run([*self.podman, "inspect", name]).stdout)[0]

    def image_of(self, service: str) -> tuple[str, str] | None:
        """The image a service's container runs, and that image's revision label."""
        name = self.container(service)
        if name is None:
            return None
        image = self.inspect(name)["ImageName"]
        labels = json.loads(self.run([*self.podman, "image", "inspect", image]).stdout)[0].get("Labels") or {}
        return image, labels.get(REVISION_LABEL, "unknown")

    def healthy(self, service: str) -> bool:
        """Whether the service's health check passes; a Failure when its container keeps exiting."""
        name = self.container(service)
        if name is None:
            return False
        if self.run([*self.podman, "healthcheck", "run", name], check=False).returncode == 0:
            return True
        state = self.inspect(name)["State"]
        if state.get("Status") == "exited" or int(state.get("RestartCount") or 0) >= 3:
            logs = self.run([*self.podman, "logs", "--tail", "1", name], check=False)
            last = logs.stderr.strip().splitlines() or [""]
            raise Failure(f"{service} exited ({state.get('ExitCode')}): {last[-1][:300]}")
        return False

    def wait(self, condition, what: str, seconds: float | None = None) -> None:
        deadline = time.monotonic() + (seconds or self.timeout)
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(2)
        raise Failure(f"gave up waiting {seconds or self.timeout:.0f} s for {what}")

    # --- the proxy's runtime API --------------------------------------------------------------
    def runtime(self, command: str) -> str:
        return self.run([*self.podman, "exec", self.require("proxy"), "haproxy-runtime", command]).stdout

    def active_slot(self) -> str:
        for line in self.runtime(f"show map {SLOT_MAP}").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "active" and parts[2] in SLOTS:
                return parts[2]
        raise Failure("the proxy's map names no active slot")

    def servers_up(self, slot: str) -> list[str]:
        """The servers of a slot's backend that the proxy's health checks find UP."""
        rows = self.runtime("show stat").splitlines()
        header = rows[0].lstrip("# ").split(",") if rows else []
        up = []
        for row in rows[1:]:
            fields = dict(zip(header, row.split(","), strict=False))
            status = fields.get("status", "")
            if fields.get("pxname") == slot and fields.get("svname") not in ("FRONTEND", "BACKEND") and (
                status.startswith("UP") or status == "DRAIN"
            ):
                up.append(fields["svname"])
        return up

    def set_slot_state(self, slot: str, state: str) -> None:
        for server in slot_services(slot):
            self.runtime(f"set server {slot}/{server} state {state}")

    # --- the steps ----------------------------------------------------------------------------
    def migrate(self, image: str) -> None:
        """The migration job as a one-off container (``compose run --rm --no-deps migrate``).

        Never ``up --force-recreate migrate``: podman-compose recreates a service's running
        dependents with it, and every app container and the proxy depend on the migration job,
        so that would stop and recreate the serving slot and the proxy (whose map then starts
        over at ACTIVE_SLOT) in the middle of a deployment.
        """
        environment = {**self.environment, "APP_IMAGE": image}
        result = self.run([*self.compose, "run", "--rm", "--no-deps", "migrate"], environment=environment,
                          check=False)  # fmt: skip
        if result.returncode != 0:
            lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
            last = lines[-1][:300] if lines else ""
            raise Failure(f"the migration job with {image} exited {result.returncode}: {last}")

    def slot_images(self) -> dict[str, str]:
        """BLUE_IMAGE and GREEN_IMAGE as the running slots have them, so recreating one keeps the other."""
        images = {}
        for slot in SLOTS:
            running = self.image_of(slot_services(slot)[0])
            if running:
                images[f"{slot.upper()}_IMAGE"] = running[0]
        return images

    def start_slot(self, slot: str, image: str) -> None:
        images = {**self.slot_images(), f"{slot.upper()}_IMAGE": image}
        self.compose_up(slot_services(slot), images=images, recreate=True)
        for service in slot_services(slot):
            self.wait(lambda service=service: self.healthy(service), f"{service}'s /readyz")

    def move_shared(self, image: str) -> None:
        """Workers, beat and the sealer onto ``image`` (the active slot's), one at a time, once the proxy has switched.

        Each is recreated alone (``up --no-deps --force-recreate``: nothing depends on them, so
        compose touches nothing else) and must be running before the next one stops, so a worker
        is always there; the web replicas' /readyz checks the workers' shared heartbeat, which a
        restart does not make stale.
        """
        images = {**self.slot_images(), "APP_IMAGE": image}
        for service in SHARED_SERVICES:
            running = self.image_of(service)
            if running and running[0] == image:
                continue
            self.compose_up([service], images=images, recreate=True)
            self.wait(lambda service=service: self.healthy(service), f"{service} to run on {image}", 120)

    def record(self, kind: str, slot: str, from_revision: str, to_revision: str) -> None:
        """Record the deploy or rollback through the image's manage command in the new active slot."""
        result = self.run(
            [*self.podman, "exec", self.require(slot_services(slot)[0]), "/app/deploy/container/entrypoint.sh",
             "manage", "record_deployment", "--kind", kind, "--from-revision", from_revision,
             "--to-revision", to_revision, "--tool", "bluegreen"],
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or [""])[-1][:300]
            raise Failure(f"the {kind} was done but not recorded in the audit trail (record_deployment: {last})")
        print(f"recorded: {kind} from {from_revision} to {to_revision}")

    def switch(self, to_slot: str) -> float:
        """Route every new request to ``to_slot`` (one runtime API command); return how long it took."""
        self.set_slot_state(to_slot, "ready")
        self.wait(lambda: len(self.servers_up(to_slot)) == 2, f"the proxy to see both {to_slot} replicas up", 60)
        started = time.monotonic()
        self.runtime(f"set map {SLOT_MAP} active {to_slot}")
        seconds = time.monotonic() - started
        if self.active_slot() != to_slot:
            raise Failure(f"the proxy did not switch to {to_slot}")
        # Requests already on the old slot finish; it receives no new ones and stays running.
        self.set_slot_state(other(to_slot), "drain")
        return seconds


def default_compose() -> str:
    """podman-compose on the PATH, else the one installed beside this interpreter (make venv's)."""
    if shutil.which("podman-compose") is None and importlib.util.find_spec("podman_compose") is not None:
        return f"{shlex.quote(sys.executable)} -m podman_compose"
    return "podman-compose"


def read_env_file(path: str) -> dict[str, str]:
    values = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise Failure(f"cannot read the env file {path}: {error.strerror}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        if not separator or not name.isidentifier():
            raise Failure(f"{path}:{number} is not NAME=VALUE")
        values[name] = value
    return values


def command_up(stack: Stack, arguments) -> None:
    stack.environment.setdefault("BLUE_IMAGE", stack.environment.get("APP_IMAGE", ""))
    stack.compose_up(list(BACKING_SERVICES))
    for service in BACKING_SERVICES:
        stack.wait(lambda service=service: stack.healthy(service), f"{service} to be healthy")
    stack.migrate(stack.environment.get("APP_IMAGE", ""))
    print("migrations applied")
    stack.compose_up([*slot_services("blue"), *SHARED_SERVICES])
    for service in slot_services("blue"):
        stack.wait(lambda service=service: stack.healthy(service), f"{service}'s /readyz")
    stack.compose_up(["proxy"], images={"ACTIVE_SLOT": "blue"})
    stack.wait(lambda: len(stack.servers_up("blue")) == 2, "the proxy to see both web replicas up", 120)
    print("the stack is up: the proxy routes to blue (web-blue-1, web-blue-2)")


def command_deploy(stack: Stack, arguments) -> None:
    active = stack.active_slot()
    idle = other(active)
    running = stack.image_of(slot_services(active)[0])
    if running is None:
        raise Failure(f"the active slot {active} has no container")
    new = json.loads(stack.run([*stack.podman, "image", "inspect", arguments.image]).stdout)[0]
    new_revision = (new.get("Labels") or {}).get(REVISION_LABEL, "unknown")
    print(f"deploying {arguments.image} ({new_revision}) to {idle}; {active} runs {running[0]} ({running[1]})")
    stack.migrate(arguments.image)
    print("migrations applied")
    stack.start_slot(idle, arguments.image)
    print(f"{idle} is ready")
    seconds = stack.switch(idle)
    print(f"switched the proxy from {active} to {idle} in {seconds * 1000:.1f} ms; {active} drained, kept for rollback")
    stack.record("deploy", idle, running[1], new_revision)
    stack.move_shared(arguments.image)
    print(f"workers, beat and the sealer run {arguments.image}")


def command_rollback(stack: Stack, arguments) -> None:
    active = stack.active_slot()
    previous = other(active)
    current, earlier = stack.image_of(slot_services(active)[0]), stack.image_of(slot_services(previous)[0])
    if earlier is None:
        raise Failure(f"there is nothing to roll back to: the {previous} slot has no container")
    for service in slot_services(previous):
        if not stack.healthy(service):
            raise Failure(f"cannot roll back: {service} is not ready")
    seconds = stack.switch(previous)
    print(f"rolled back: switched the proxy from {active} to {previous} in {seconds * 1000:.1f} ms")
    stack.record("rollback", previous, current[1] if current else "unknown", earlier[1])
    stack.move_shared(earlier[0])
    print(f"workers, beat and the sealer run {earlier[0]}")


def command_status(stack: Stack, arguments) -> None:
    active = stack.active_slot()
    for slot in SLOTS:
        running = stack.image_of(slot_services(slot)[0])
        state = "active" if slot == active else "idle"
        image = f"{running[0]} ({running[1]})" if running else "not running"
        print(f"{slot}: {state}, {image}, up behind the proxy: {', '.join(stack.servers_up(slot)) or 'none'}")
    for service in SHARED_SERVICES:
        running = stack.image_of(service)
        print(f"{service}: {f'{running[0]} ({running[1]})' if running else 'not running'}")


def command_down(stack: Stack, arguments) -> None:
    stack.environment.setdefault("BLUE_IMAGE", stack.environment.get("APP_IMAGE", ""))
    stack.run([*stack.compose, "--profile", "green", "down", "-v", "-t", "10"], check=False)
    stack.remove_leftovers()
    print(f"project {stack.project} is down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, action="append",
                        help="a compose file; repeat to add overrides (default deploy/compose.yaml)")
    parser.add_argument("--project", default="ninaivalaigal", help="the compose project (default ninaivalaigal)")
    parser.add_argument("--env-file", action="append", help="NAME=VALUE lines added to the environment")
    parser.add_argument("--podman", default="podman", help="the podman command (default podman)")
    parser.add_argument("--compose", help="the compose command (default podman-compose, from the PATH or else "
                        "the one installed for this Python)")
    parser.add_argument("--timeout", type=float, default=300, help="longest wait of one step (s, default 300)")
    parser.add_argument("--verbose", action="store_true", help="print each command run")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="bring the stack up in order")
    deploy = commands.add_parser("deploy", help="deploy IMAGE to the idle slot and switch to it")
    deploy.add_argument("--image", required=True, help="the new application image")
    commands.add_parser("rollback", help="switch back to the previous slot")
    commands.add_parser("status", help="the active slot and the slots' images")
    commands.add_parser("down", help="remove the stack and its volumes")
    arguments = parser.parse_args(argv)
    handlers = {"up": command_up, "deploy": command_deploy, "rollback": command_rollback,
                "status": command_status, "down": command_down}  # fmt: skip
    try:
        handlers[arguments.command](Stack(arguments), arguments)
    except Failure as failure:
        print(f"bluegreen: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
