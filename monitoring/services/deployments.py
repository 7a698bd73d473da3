"""Deployments and rollbacks, recorded in the audit trail with the two revisions.

The deploy tool (or an operator by hand) runs ``manage.py record_deployment`` once the proxy has
switched: ``system.deployed`` for a new release, ``system.rolled_back`` for a switch back. Each
event names the revision that served before and the one that serves after, the environment,
what ran it (the tool's name), the operating-system user and the host. The dashboard lists the
newest ones (``monitoring.dashboard``); docs/operations.md "Deployments" says when to record.
"""

from __future__ import annotations

import getpass
import os
import re
import socket

from django.db import transaction

import audit
from audit.actions import Action
from audit.models import AuditEvent
from audit.services import Target
from monitoring import conf

KINDS = {"deploy": Action.DEPLOYED, "rollback": Action.ROLLED_BACK}
REVISION_MAX_LENGTH = 64  # characters: a SHA-256 object name, or a tag of that length at most
NOTE_MAX_LENGTH = 200  # characters of the operator's note
# A git object name, abbreviated (7 hex digits, git's default) or full (40 SHA-1, 64 SHA-256),
# with "-dirty" when the image was built from a working tree with changes (scripts/build-image.sh),
GIT_HASH = re.compile(r"(?:[0-9a-f]{7,40}|[0-9a-f]{64})(?:-dirty)?")
# or a version tag: an optional v, numbers separated by dots, an optional pre-release or build
# suffix (v1.4.0, 2026.12.1, v2.0.0-rc.1, 1.4.0+build.7).
VERSION_TAG = re.compile(r"v?\d+(?:\.\d+){0,3}(?:[-+][0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*)?")
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")  # environment and tool names


class DeploymentInvalid(ValueError):
    """Bad input to ``deployment_record``: the message says which value and why (no value echoed
    beyond what the caller passed as a revision, which is never a secret)."""


def revision_normalise(value: str, *, label: str) -> str:
    """``value`` as a revision (git hashes in lower case), or ``DeploymentInvalid`` saying why not."""
    text = (value or "").strip()
    if not text:
        raise DeploymentInvalid(f"{label} is empty: give a git commit hash or a version tag")
    if len(text) > REVISION_MAX_LENGTH:
        raise DeploymentInvalid(f"{label} is {len(text)} characters long; at most {REVISION_MAX_LENGTH}")
    if GIT_HASH.fullmatch(text.lower()):
        return text.lower()
    if VERSION_TAG.fullmatch(text):
        return text
    raise DeploymentInvalid(
        f"{label} is neither a git commit hash (7 to 40 or 64 hex digits) nor a version tag (such as v1.4.0)"
    )


def _name(value: str, *, label: str) -> str:
    text = (value or "").strip()
    if not NAME.fullmatch(text):
        raise DeploymentInvalid(
            f"{label} must be 1 to 32 lower-case letters, digits, dots, dashes or underscores, starting with a "
            "letter or digit"
        )
    return text


def _note(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > NOTE_MAX_LENGTH:
        raise DeploymentInvalid(f"the note is {len(text)} characters long; at most {NOTE_MAX_LENGTH}")
    if any(not character.isprintable() for character in text):
        raise DeploymentInvalid("the note holds a control character (a line break, a tab, an escape); one line only")
    return text


def _short(revision: str) -> str:
    return revision[:12] if GIT_HASH.fullmatch(revision) else revision


def deployment_environment() -> str:
    """The environment a deployment is recorded for when none is given (``MONITORING_DEPLOYMENT_ENVIRONMENT``)."""
    return conf.get("MONITORING_DEPLOYMENT_ENVIRONMENT")


def _operating_system_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else ""


def deployment_record(
    *,
    kind: str,
    from_revision: str,
    to_revision: str,
    environment: str | None = None,
    tool: str = "manual",
    note: str | None = None,
) -> AuditEvent:
    """Record one deploy or rollback (``kind``: ``deploy`` or ``rollback``) and return its event.

    No permission is checked here: whoever may run ``manage.py`` on the host may record a
    deployment (the command is the only caller). The actor is the system; the operating-system
    user and the host are in the context. Every value is validated first: bad input raises
    ``DeploymentInvalid`` and records nothing. The two revisions must differ (a restart of one
    revision is not a deployment).
    """
    if kind not in KINDS:
        raise DeploymentInvalid(f"the kind must be deploy or rollback, not {kind[:20]!r}")
    before = revision_normalise(from_revision, label="--from-revision")
    after = revision_normalise(to_revision, label="--to-revision")
    if before == after:
        raise DeploymentInvalid("--from-revision and --to-revision are the same revision: nothing was deployed")
    where = _name(environment if environment is not None else deployment_environment(), label="the environment")
    what = _name(tool, label="the tool")
    context = {
        "from_revision": before,
        "to_revision": after,
        "environment": where,
        "tool": what,
        "os_user": _operating_system_user(),
        "host": socket.gethostname(),
    }
    text = _note(note)
    if text:
        context["note"] = text
    verb = "deployed" if kind == "deploy" else "rolled back"
    # The label names hashes by their first 12 digits: the sanitiser masks long hex runs in text.
    with transaction.atomic():
        return audit.record(
            action=KINDS[kind],
            target=Target(type="system.release", id=after, repr=f"{where}: {verb} {_short(before)} -> {_short(after)}"),
            context=context,
        )
