"""The security gate's last result, as the dashboard shows it.

``scripts/security-checks.sh`` (``scripts/security_gate.py``) writes the result of each full run
to ``MONITORING_SECURITY_GATE_RESULT_FILE`` (default ``VAR_DIR/security/gate-result.json``):
when it finished, the revision it checked, whether it passed, and per check its status and how
many findings are open or accepted, by severity. Counts only: the file holds no finding's text.
In CI the file is an artifact of the run; a deployment copies the one of the revision it ships
to the same path (docs/security-gate.md "The result on the dashboard").

This module reads it and says plainly what it could not trust: no file, a file it cannot read
(too big, not JSON, another layout), or a result older than ``MONITORING_SECURITY_GATE_STALE_DAYS``.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from django.conf import settings

from monitoring import conf

RESULT_FORMAT = 1  # the layout scripts/security_gate.py writes (its RESULT_FORMAT)
MAX_BYTES = 65536  # a result is about 2 kB; a bigger file is not one (bytes)
STATUSES = ("passed", "failed", "skipped")
REVISION = re.compile(r"[0-9a-f]{7,64}|unknown")
CHECK_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
SEVERITY = re.compile(r"[a-z]{1,16}")


class ResultUnreadable(ValueError):
    """The result file exists but is not a result of the gate (the message says why, never its text)."""


def result_path() -> Path:
    chosen = str(conf.get("MONITORING_SECURITY_GATE_RESULT_FILE") or "").strip()
    return Path(chosen) if chosen else Path(settings.VAR_DIR) / "security" / "gate-result.json"


def _count(value, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ResultUnreadable(f"{what} is not a count")
    return value


def _severities(value, what: str) -> dict[str, int]:
    if not isinstance(value, dict) or not all(isinstance(key, str) and SEVERITY.fullmatch(key) for key in value):
        raise ResultUnreadable(f"{what} is not a count per severity")
    return {key: _count(count, what) for key, count in value.items()}


def result_parse(text: str) -> dict:
    """The validated result of ``text``, or ``ResultUnreadable`` naming the first thing wrong."""
    try:
        document = json.loads(text)
    except ValueError:
        raise ResultUnreadable("not JSON") from None
    if not isinstance(document, dict):
        raise ResultUnreadable("not a JSON object")
    if document.get("format") != RESULT_FORMAT:
        raise ResultUnreadable(f"not the result layout {RESULT_FORMAT} (format {str(document.get('format'))[:10]!r})")
    try:
        finished_at = datetime.datetime.fromisoformat(str(document.get("finished_at")))
    except ValueError:
        raise ResultUnreadable("finished_at is not an ISO 8601 time") from None
    if finished_at.tzinfo is None:
        raise ResultUnreadable("finished_at has no time zone")
    revision = document.get("revision")
    if not isinstance(revision, str) or not REVISION.fullmatch(revision):
        raise ResultUnreadable("revision is not a commit hash")
    if type(document.get("passed")) is not bool or type(document.get("revision_modified")) is not bool:
        raise ResultUnreadable("passed or revision_modified is not true or false")
    checks = document.get("checks")
    if not isinstance(checks, dict) or not checks:
        raise ResultUnreadable("no checks")
    parsed_checks = []
    for name, check in checks.items():
        if not isinstance(name, str) or not CHECK_NAME.fullmatch(name) or not isinstance(check, dict):
            raise ResultUnreadable("a check has no valid name")
        if check.get("status") not in STATUSES:
            raise ResultUnreadable(f"check {name} has no status passed, failed or skipped")
        parsed_checks.append(
            {
                "name": name,
                "status": check["status"],
                "open_findings": _count(check.get("open_findings"), f"open_findings of {name}"),
                "open_by_severity": _severities(check.get("open_by_severity", {}), f"open_by_severity of {name}"),
                "accepted_findings": _count(check.get("accepted_findings"), f"accepted_findings of {name}"),
            }
        )
    passed = document["passed"]
    if passed != all(check["status"] != "failed" for check in parsed_checks):
        raise ResultUnreadable("passed disagrees with the checks' statuses")
    not_run = document.get("not_run", [])
    if not isinstance(not_run, list) or not all(isinstance(item, str) and len(item) <= 80 for item in not_run):
        raise ResultUnreadable("not_run is not a list of short names")
    return {
        "finished_at": finished_at.astimezone(datetime.UTC),
        "revision": revision,
        "revision_modified": document["revision_modified"],
        "passed": passed,
        "open_findings": sum(check["open_findings"] for check in parsed_checks),
        "open_by_severity": _severities(document.get("open_by_severity", {}), "open_by_severity"),
        "checks": parsed_checks,
        "failed_checks": [check["name"] for check in parsed_checks if check["status"] == "failed"],
        "not_run": not_run,
    }


def security_gate_result(*, now: datetime.datetime) -> dict:
    """What the dashboard knows of the gate at ``now``: ``state`` is ``missing``, ``unreadable`` or ``present``.

    ``present`` carries the parsed result, its age and ``stale`` (older than the setting's days);
    ``unreadable`` carries ``problem``, what is wrong with the file (never its content). Never raises.
    """
    path = result_path()
    stale_days = conf.get("MONITORING_SECURITY_GATE_STALE_DAYS")
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return {"state": "missing", "stale_days": stale_days}
    except OSError as error:
        problem = f"cannot be opened ({type(error).__name__})"
        return {"state": "unreadable", "problem": problem, "stale_days": stale_days}
    try:
        if len(raw) > MAX_BYTES:
            raise ResultUnreadable(f"larger than {MAX_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ResultUnreadable("not UTF-8 text") from None
        result = result_parse(text)
    except ResultUnreadable as error:
        return {"state": "unreadable", "problem": str(error), "stale_days": stale_days}
    age = now - result["finished_at"]
    return {
        **result,
        "state": "present",
        "age": age,
        "stale": age > datetime.timedelta(days=stale_days),
        "stale_days": stale_days,
    }
