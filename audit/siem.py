"""Export of the audit trail to a SIEM: OCSF 1.x and Elastic Common Schema, as JSON lines.

One record per sealed event, in sequence order, streamed (a bounded batch in memory, whatever
the size of the trail), each carrying the event's ``sequence``, chain hash and the first signed
checkpoint covering it (origin, size, epoch; null until one does) so a SIEM can tell a gap and a
later check can tie a record to the chain and to a proof. The cursor is the last sequence exported:
``audit_siem_export --cursor FILE`` resumes after it, and writes it only once the records before
it are written and flushed, so a run that stops part-way repeats nothing it had confirmed and
skips nothing (a record written after the last saved cursor is written again on resume: at least
once, never lost). Unsealed events have no sequence yet and wait for the sealer.

The mapping is documented in ``docs/siem.md``: OCSF classes Authentication (3002), Account Change
(3001), API Activity (6003), Detection Finding (2004) for alerts, Base Event (0) for the rest; ECS
``event.kind/category/type/action/outcome``. Only what an event holds is exported: its context
passed the sanitiser when recorded, so no password, token, key or memory content is in it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from audit.actions import Action, Outcome
from audit.models import AuditEvent

FORMATS = ("ocsf", "ecs")
OCSF_VERSION = "1.3.0"
ECS_VERSION = "8.11.0"
PRODUCT = {"name": "Ninaivalaigal", "vendor_name": "Ninaivalaigal", "feature": {"name": "audit"}}
BATCH_SIZE = 2000  # events read per query (iterator chunk)

# --- OCSF classes (schema.ocsf.io, 1.x) --------------------------------------------------------
BASE_EVENT = (0, 0)  # (class_uid, category_uid): Base Event, Uncategorized
AUTHENTICATION = (3002, 3)  # Identity & Access Management
ACCOUNT_CHANGE = (3001, 3)
API_ACTIVITY = (6003, 6)  # Application Activity
DETECTION_FINDING = (2004, 2)  # Findings

A = Action
# Authentication activity_id: 1 Logon, 2 Logoff, 99 Other.
_AUTHENTICATION = {
    A.LOGIN_SUCCEEDED: 1, A.LOGIN_FAILED: 1, A.MFA_VERIFY_SUCCEEDED: 1, A.MFA_VERIFY_FAILED: 1,
    A.MFA_CODE_REPLAYED: 1, A.BACKUP_CODE_USED: 1, A.REAUTHENTICATED: 1, A.SESSION_CREATED: 1,
    A.LOGOUT: 2, A.SESSION_REVOKED: 2, A.SESSION_REVOKED_ALL: 2, A.SESSION_EXPIRED: 2,
}
# Account Change activity_id: 1 Create, 2 Enable, 3 Password Change, 4 Password Reset, 5 Disable,
# 6 Delete, 7 Attach Policy, 8 Detach Policy, 9 Lock, 10 MFA Factor Enable, 11 MFA Factor Disable,
# 12 Unlock, 99 Other.
_ACCOUNT_CHANGE = {
    A.SIGNUP: 1, A.ACCOUNT_REACTIVATED: 2, A.EMAIL_VERIFIED: 2, A.PASSWORD_CHANGED: 3,
    A.PASSWORD_RESET_REQUESTED: 4, A.PASSWORD_RESET_COMPLETED: 4, A.ACCOUNT_DEACTIVATED: 5, A.ACCOUNT_DELETED: 6,
    A.STAFF_GRANTED: 7, A.SUPERUSER_GRANTED: 7, A.STAFF_REVOKED: 8, A.SUPERUSER_REVOKED: 8,
    A.GROUP_MEMBERSHIP_CHANGED: 99, A.USER_PERMISSIONS_CHANGED: 99, A.GROUP_PERMISSIONS_CHANGED: 99,
    A.MEMBERSHIP_ADDED: 7, A.MEMBERSHIP_REMOVED: 8, A.MEMBERSHIP_ROLE_SET: 99,
    A.ACCOUNT_LOCKED: 9, A.MFA_DEVICE_ADDED: 10, A.MFA_DEVICE_CONFIRMED: 10, A.MFA_DEVICE_REMOVED: 11,
    A.BACKUP_CODES_GENERATED: 10, A.ACCOUNT_UNLOCKED: 12, A.EMAIL_CHANGED: 99, A.EMAIL_VERIFICATION_SENT: 99,
    A.SECURITY_NOTIFICATION_SENT: 99, A.EMAIL_RATE_LIMITED: 99,
}
# API Activity activity_id: 1 Create, 2 Read, 3 Update, 4 Delete, 99 Other.
_API_ACTIVITY = {
    A.API_KEY_ISSUED: 1, A.API_KEY_USED: 2, A.API_KEY_ROTATED: 3, A.API_KEY_REVOKED: 4, A.API_KEY_REFUSED: 99,
    A.REQUEST_SIGNATURE_FAILED: 99, A.DEPRECATED_ENDPOINT_CALLED: 99, A.RATE_LIMITED: 99, A.REQUEST_REJECTED: 99,
    A.PERMISSION_DENIED: 99,
    A.MEMORY_CREATED: 1, A.MEMORY_READ: 2, A.MEMORY_LIST: 2, A.MEMORY_UPDATED: 3, A.MEMORY_DELETED: 4,
    A.CONTEXT_CREATED: 1, A.CONTEXT_READ: 2, A.CONTEXT_LIST: 2, A.CONTEXT_EXPORTED: 2, A.CONTEXT_UPDATED: 3,
    A.CONTEXT_SHARED: 3, A.CONTEXT_UNSHARED: 3, A.CONTEXT_TRANSFERRED: 3, A.CONTEXT_DELETED: 4,
    A.CONTEXT_TRANSFER_OFFERED: 1, A.CONTEXT_TRANSFER_WITHDRAWN: 3, A.CONTEXT_TRANSFER_DECLINED: 3,
    A.CONTEXT_TRANSFER_ACCEPTED: 3, A.CONTEXT_TRANSFER_EXPIRED: 3,
}
# Detection Finding activity_id: 1 Create, 2 Update, 3 Close.
_DETECTION_FINDING = {
    A.ALERT_RAISED: 1, A.ALERT_ACKNOWLEDGED: 2, A.ALERT_ASSIGNED: 2, A.ALERT_RESOLVED: 3, A.ALERT_DISMISSED: 3,
}
OCSF_CLASSES: dict[str, tuple[tuple[int, int], int]] = {
    **{action.value: (AUTHENTICATION, activity) for action, activity in _AUTHENTICATION.items()},
    **{action.value: (ACCOUNT_CHANGE, activity) for action, activity in _ACCOUNT_CHANGE.items()},
    **{action.value: (API_ACTIVITY, activity) for action, activity in _API_ACTIVITY.items()},
    **{action.value: (DETECTION_FINDING, activity) for action, activity in _DETECTION_FINDING.items()},
}
OCSF_CLASS_NAMES = {0: "Base Event", 3002: "Authentication", 3001: "Account Change", 6003: "API Activity",
                    2004: "Detection Finding"}
OCSF_CATEGORY_NAMES = {0: "Uncategorized", 2: "Findings", 3: "Identity & Access Management",
                       6: "Application Activity"}
# status_id: 1 Success, 2 Failure (OCSF has no "denied": the outcome goes in status_detail).
OCSF_STATUS = {Outcome.SUCCESS: (1, "Success"), Outcome.FAILURE: (2, "Failure"), Outcome.DENIED: (2, "Failure"),
               Outcome.ERROR: (2, "Failure")}
# severity_id: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical.
ALERT_SEVERITY = {"low": 2, "medium": 3, "high": 4, "critical": 5}

# --- ECS (elastic.co/guide/en/ecs) -------------------------------------------------------------
ECS_OUTCOME = {Outcome.SUCCESS: "success", Outcome.FAILURE: "failure", Outcome.DENIED: "failure",
               Outcome.ERROR: "failure"}
ECS_CATEGORY = {AUTHENTICATION: ["authentication", "session"], ACCOUNT_CHANGE: ["iam"], API_ACTIVITY: ["api"],
                DETECTION_FINDING: ["intrusion_detection"], BASE_EVENT: ["configuration"]}
ECS_TYPE_BY_ACTIVITY = {
    AUTHENTICATION: {1: ["start"], 2: ["end"]},
    ACCOUNT_CHANGE: {1: ["user", "creation"], 6: ["user", "deletion"], 7: ["user", "change"], 8: ["user", "change"]},
    API_ACTIVITY: {1: ["creation"], 2: ["access"], 3: ["change"], 4: ["deletion"]},
    DETECTION_FINDING: {1: ["indicator"], 2: ["change"], 3: ["change"]},
}


def ocsf_class(action: str) -> tuple[int, int, int]:
    """``(class_uid, category_uid, activity_id)`` of an action (Base Event, activity 99, if unmapped)."""
    (class_uid, category_uid), activity_id = OCSF_CLASSES.get(action, (BASE_EVENT, 99))
    return class_uid, category_uid, activity_id


def _user(identifier: str, name: str, is_staff: bool | None) -> dict | None:
    if not identifier and not name:
        return None
    user: dict[str, Any] = {"name": name}
    if identifier:
        user["uid"] = identifier
    if is_staff is not None:
        user["type"] = "Admin" if is_staff else "User"
    return user


def _millis(event: AuditEvent) -> int:
    return int(event.timestamp.timestamp() * 1000)


def to_ocsf(event: AuditEvent, checkpoint: dict | None = None) -> dict[str, Any]:
    """One event as an OCSF 1.x record of its class (``checkpoint``: the first covering it, or None)."""
    class_uid, category_uid, activity_id = ocsf_class(event.action)
    status_id, status = OCSF_STATUS.get(event.outcome, (0, "Unknown"))
    severity_id = 1
    if class_uid == DETECTION_FINDING[0]:
        severity_id = ALERT_SEVERITY.get(str(event.context.get("severity", "")).lower(), 1)
    record: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": OCSF_CLASS_NAMES[class_uid],
        "category_uid": category_uid,
        "category_name": OCSF_CATEGORY_NAMES[category_uid],
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "time": _millis(event),
        "status_id": status_id,
        "status": status,
        "status_detail": event.outcome,
        "severity_id": severity_id,
        "message": Action(event.action).label if event.action in Action.values else event.action,
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": str(event.uuid),
            "sequence": event.sequence,
            "correlation_uid": event.request_id or None,
            "log_name": "audit",
            "event_code": event.action,
        },
        "unmapped": {
            "action": event.action,
            "chain_hash": event.hash,
            "checkpoint": checkpoint,
            "context": event.context,
            "target": {"type": event.target_type, "uid": event.target_id, "name": event.target_repr},
        },
    }
    actor = _user(event.actor_id, event.actor_username, event.actor_is_staff)
    if actor is not None:
        record["actor"] = {"user": actor}
    subject = _user(event.subject_id, event.subject_username, event.subject_is_staff)
    if subject is not None:
        record["user"] = subject
    if event.client_ip:
        record["src_endpoint"] = {"ip": event.client_ip}
    if event.user_agent:
        record["http_request"] = {"user_agent": event.user_agent}
    if event.api_key_id:
        record["unmapped"]["api_key_id"] = event.api_key_id
    if class_uid == API_ACTIVITY[0]:
        record["api"] = {"operation": event.action}
    if class_uid == DETECTION_FINDING[0]:
        record["finding_info"] = {
            "uid": event.target_id or str(event.uuid),
            "title": str(event.context.get("detector", "")) or record["message"],
            "types": [str(event.context.get("detector", ""))],
        }
    return {key: value for key, value in record.items() if value is not None}


def to_ecs(event: AuditEvent, checkpoint: dict | None = None) -> dict[str, Any]:
    """One event as an Elastic Common Schema document (``checkpoint``: the first covering it, or None)."""
    class_uid, category_uid, activity_id = ocsf_class(event.action)
    klass = (class_uid, category_uid)
    document: dict[str, Any] = {
        "@timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "alert" if event.action == Action.ALERT_RAISED else "event",
            "category": ECS_CATEGORY[klass],
            "type": ECS_TYPE_BY_ACTIVITY.get(klass, {}).get(activity_id, ["info"]),
            "action": event.action,
            "outcome": ECS_OUTCOME.get(event.outcome, "unknown"),
            "sequence": event.sequence,
            "id": str(event.uuid),
            "dataset": "ninaivalaigal.audit",
            "module": "ninaivalaigal",
            "provider": "audit",
            "reason": event.outcome if event.outcome != Outcome.SUCCESS else None,
            "hash": event.hash,
        },
        "message": Action(event.action).label if event.action in Action.values else event.action,
        "labels": {"target_type": event.target_type, "target_id": event.target_id},
        "ninaivalaigal": {
            "audit": {"context": event.context, "target_label": event.target_repr, "checkpoint": checkpoint}
        },
    }
    document["event"] = {key: value for key, value in document["event"].items() if value is not None}
    if event.actor_id or event.actor_username:
        document["user"] = {"id": event.actor_id, "name": event.actor_username}
    if event.subject_id or event.subject_username:
        document.setdefault("user", {})["target"] = {"id": event.subject_id, "name": event.subject_username}
    related_users = sorted({name for name in (event.actor_username, event.subject_username) if name})
    document["related"] = {"user": related_users}
    if event.client_ip:
        document["source"] = {"ip": event.client_ip}
        document["related"]["ip"] = [event.client_ip]
    if event.user_agent:
        document["user_agent"] = {"original": event.user_agent}
    if event.request_id:
        document["http"] = {"request": {"id": event.request_id}}
    if event.api_key_id:
        document["labels"]["api_key_id"] = event.api_key_id
    return document


MAPPERS = {"ocsf": to_ocsf, "ecs": to_ecs}


def mapping_table() -> str:
    """The per-action mapping as the Markdown table of ``docs/siem.md`` (a test keeps the page current)."""
    lines = [
        "| Action | OCSF class (class_uid) | category_uid | activity_id | ECS event.category | ECS event.type |",
        "|---|---|---|---|---|---|",
    ]
    for action in Action:
        class_uid, category_uid, activity_id = ocsf_class(action.value)
        klass = (class_uid, category_uid)
        types = ECS_TYPE_BY_ACTIVITY.get(klass, {}).get(activity_id, ["info"])
        lines.append(
            f"| `{action.value}` | {OCSF_CLASS_NAMES[class_uid]} ({class_uid}) | {category_uid} | {activity_id} "
            f"| {', '.join(ECS_CATEGORY[klass])} | {', '.join(types)} |"
        )
    return "\n".join(lines) + "\n"


def sealed_events_after(sequence: int, *, limit: int | None = None) -> Iterator[AuditEvent]:
    """Sealed events with a sequence above ``sequence``, in order, read in batches (streaming)."""
    events = AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence")
    if limit is not None:
        events = events[:limit]
    return events.iterator(chunk_size=BATCH_SIZE)


class CoveringCheckpoints:
    """The first signed checkpoint covering each sequence, for events asked in increasing sequence order.

    A checkpoint of epoch *e* covers the events ``tree_base + 1 .. tree_base + tree_size``; in the order
    (epoch, size) their ends never go back, so one pass over the checkpoints after the cursor serves a
    whole export (streamed, like the events). ``None`` for an event no checkpoint covers yet: it is
    covered by a later one, which a later export or ``audit_proof`` names.
    """

    def __init__(self, after_sequence: int) -> None:
        from django.db.models import F

        from audit.models import AuditCheckpoint

        self._rows = iter(
            AuditCheckpoint.objects.annotate(end=F("tree_base") + F("tree_size"))
            .filter(end__gt=after_sequence, tree_size__gt=0)
            .order_by("epoch", "tree_size")
            .values_list("epoch", "tree_base", "tree_size", "note")
            .iterator(chunk_size=BATCH_SIZE)
        )
        self._current = next(self._rows, None)

    def covering(self, sequence: int) -> dict | None:
        while self._current is not None and self._current[1] + self._current[2] < sequence:
            self._current = next(self._rows, None)
        if self._current is None or self._current[1] >= sequence:
            return None
        epoch, _base, size, note = self._current
        return {"origin": note.split("\n", 1)[0], "size": size, "epoch": epoch}


@dataclass
class ExportResult:
    exported: int
    first_sequence: int | None
    last_sequence: int  # the cursor after the run (the one given if nothing was exported)


def siem_export(
    *, output: IO[str], schema: str, after_sequence: int = 0, limit: int | None = None, on_flush=None
) -> ExportResult:
    """Write the sealed events after ``after_sequence`` to ``output`` as JSON lines in ``schema``.

    ``on_flush(last_sequence)`` is called after each batch is written and flushed: where the caller
    saves its cursor. Permission: the caller (an operator's management command).
    """
    if schema not in MAPPERS:
        raise ValueError(f"unknown schema {schema!r}: choose one of {', '.join(FORMATS)}")
    mapper = MAPPERS[schema]
    exported, first, last = 0, None, after_sequence
    checkpoints = CoveringCheckpoints(after_sequence)
    for event in sealed_events_after(after_sequence, limit=limit):
        record = mapper(event, checkpoints.covering(event.sequence))
        output.write(json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
        exported += 1
        first = event.sequence if first is None else first
        last = event.sequence
        if exported % BATCH_SIZE == 0:
            output.flush()
            if on_flush is not None:
                on_flush(last)
    output.flush()
    if on_flush is not None and exported:
        on_flush(last)
    return ExportResult(exported=exported, first_sequence=first, last_sequence=last)


# --- syslog over TCP with TLS (RFC 5424 messages, RFC 5425 transport) ---------------------------
SYSLOG_FACILITY = 13  # log audit (RFC 5424 §6.2.1)
# RFC 5424 §7.2.2's example enterprise number, used until the project registers its own.
SYSLOG_SD_ID = "ninaivalaigal@32473"
SYSLOG_SEVERITY = {Outcome.SUCCESS: 6, Outcome.FAILURE: 4, Outcome.DENIED: 4, Outcome.ERROR: 3}  # info, warning, error


def _sd_value(value: object) -> str:
    """An SD-PARAM value with ``"``, ``\\`` and ``]`` escaped (RFC 5424 §6.3.3)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(record: dict, *, schema: str, hostname: str, procid: str) -> bytes:
    """One exported record as an RFC 5424 message: the JSON record is the MSG, after a UTF-8 BOM."""
    if schema == "ocsf":
        sequence, action, millis = record["metadata"]["sequence"], record["metadata"]["event_code"], record["time"]
        outcome = {1: Outcome.SUCCESS}.get(record["status_id"], Outcome.FAILURE)
        stamp = datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.UTC).isoformat(timespec="milliseconds")
    else:
        sequence, action = record["event"]["sequence"], record["event"]["action"]
        outcome = Outcome.SUCCESS if record["event"]["outcome"] == "success" else Outcome.FAILURE
        stamp = record["@timestamp"]
    priority = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY[outcome]
    header = (
        f"<{priority}>1 {stamp.replace('+00:00', 'Z')} {hostname[:255] or '-'} ninaivalaigal {procid[:128] or '-'} "
        f"{action[:32]} [{SYSLOG_SD_ID} sequence=\"{_sd_value(sequence)}\" schema=\"{schema}\"] "
    )
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    return header.encode("ascii", "replace") + b"\xef\xbb\xbf" + body.encode("utf-8")


class SyslogTlsOutput:
    """A text output for ``siem_export`` that sends each line as one RFC 5425 frame over TLS.

    The server's certificate is verified against ``cafile`` (or the system's store) and its host
    name: an audit trail is never sent to a server that cannot prove who it is.
    """

    def __init__(self, *, host: str, port: int, schema: str, cafile: str | None = None, timeout: float = 10.0):
        import os
        import socket
        import ssl

        self.schema = schema
        self.hostname = socket.gethostname()
        self.procid = str(os.getpid())
        context = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.connection = context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self._pending = ""

    def write(self, text: str) -> None:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line:
                message = syslog_message(json.loads(line), schema=self.schema, hostname=self.hostname,
                                         procid=self.procid)
                # RFC 5425 §4.3: octet counting, MSG-LEN SP SYSLOG-MSG.
                self.connection.sendall(str(len(message)).encode("ascii") + b" " + message)

    def flush(self) -> None:
        """Everything written has been handed to TLS (``sendall`` returns once it is)."""

    def close(self) -> None:
        """End the TLS session cleanly (close_notify), so the server knows the stream is complete."""
        try:
            self.connection.unwrap().close()
        except OSError:
            self.connection.close()
