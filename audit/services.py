"""Writes of the audit app: recording events, sealing, verifying, publishing the head.

``record()`` is the one entry point every other app uses. The other services run the chain's
maintenance; commands and Celery tasks are thin wrappers around them. Archiving events past
retention records through ``record()`` too, so its service sits above this module, in
``audit.retention.services``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Max
from django.db.models.base import ModelState
from django.utils import timezone

from audit import pending
from audit.actions import Action, Outcome
from audit.chain import CONTENT_FIELDS, content_mac
from audit.heads import last_published_head, publish_head
from audit.models import (
    OBJECT_ID_MAX_LENGTH,
    REQUEST_ID_MAX_LENGTH,
    TARGET_REPR_MAX_LENGTH,
    TARGET_TYPE_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    AuditEvent,
)
from audit.schema import check_context_keys
from audit.sealing import SealResult, schedule_seal_after_commit, seal_pending
from audit.signals import event_recorded
from audit.verification import VerificationReport, verify_chain
from core import context as request_context
from core.requests import valid_ip
from core.sanitiser import clean_text, sanitise_context

logger = logging.getLogger("audit.events")
chain_logger = logging.getLogger("audit.chain")


@dataclasses.dataclass(frozen=True)
class Target:
    """The object an event is about, named without holding a reference to it.

    ``type`` is ``"app_label.model"``, ``id`` the primary key as text, ``repr`` a short label
    that must not contain protected data (never a memory's content).
    """

    type: str
    id: str
    repr: str = ""


@functools.lru_cache(maxsize=2048)
def _clean_name(value: str, max_length: int, identifier: bool) -> str:
    """``clean_text`` for the short names that recur on every event (ids, usernames, types).

    Cached because they repeat — the same actor, target type and request id for each event of a
    request — and the hot path is worth it. Only short strings are cached (see ``_name``). An
    attempted username is *not* passed through here: people type passwords into that field, and
    the cache would keep the raw text in memory.
    """
    return clean_text(value, max_length, identifier=identifier)


def _name(value: Any, max_length: int, *, identifier: bool = False) -> str:
    if type(value) is not str:
        value = str(value)
    if len(value) <= 200:
        return _clean_name(value, max_length, identifier)
    return clean_text(value, max_length, identifier=identifier)


def _snapshot_user(user: Any) -> tuple[str, str, bool | None]:
    """Return (id, username, is_staff) of a user as it is now; a string is a bare username."""
    if user is None:
        return "", "", None
    if isinstance(user, str):  # an attempted username: never cached (see _clean_name)
        return "", clean_text(user, USERNAME_MAX_LENGTH), None
    if getattr(user, "is_anonymous", False):
        return "", "", None
    primary_key = getattr(user, "pk", None)
    username = user.get_username() if hasattr(user, "get_username") else getattr(user, "username", "")
    return (
        _name(primary_key, OBJECT_ID_MAX_LENGTH, identifier=True) if primary_key is not None else "",
        _name(username or "", USERNAME_MAX_LENGTH),
        bool(getattr(user, "is_staff", False)),
    )


_model_labels: dict[str, str] = {}


def _model_label(meta) -> str:
    """The untranslated verbose name of a model: the same in every language, resolved once."""
    label = _model_labels.get(meta.label_lower)
    if label is None:
        label = _model_labels[meta.label_lower] = str(meta.verbose_name_raw)
    return label


def _resolve_target(target: Any) -> tuple[str, str, str]:
    """Return (type, id, repr) of a target: a ``Target``, a model instance or a 2/3-tuple."""
    if target is None:
        return "", "", ""
    if isinstance(target, Target):
        target_type, target_id, label = target.type, target.id, target.repr
    elif isinstance(target, tuple) and len(target) in (2, 3):
        target_type, target_id, label = target[0], target[1], target[2] if len(target) == 3 else ""
    elif getattr(target, "_meta", None) is not None:
        meta = target._meta
        target_type, target_id = meta.label_lower, target.pk
        # Never str(instance) by default: a model's __str__ may show protected content. A model
        # opts in with ``audit_repr()``; users are named by their username.
        if hasattr(target, "audit_repr"):
            label = target.audit_repr()
        elif hasattr(target, "get_username"):
            label = target.get_username()
        else:
            label = f"{_model_label(meta)} {target.pk}"
    else:
        raise TypeError(f"audit target must be a model instance, audit.Target or tuple, not {type(target).__name__}")
    return (
        _name(target_type or "", TARGET_TYPE_MAX_LENGTH),
        _name("" if target_id is None else target_id, OBJECT_ID_MAX_LENGTH, identifier=True),
        _name(label or "", TARGET_REPR_MAX_LENGTH),
    )


def _request_fields(bound: request_context.RequestContext | None) -> tuple[str, str | None, str]:
    """(request id, client IP, user agent) of the bound request context, cleaned."""
    if bound is None:
        return "", None, ""
    return (
        _name(bound.request_id, REQUEST_ID_MAX_LENGTH, identifier=True),
        valid_ip(bound.client_ip),
        clean_text(bound.user_agent, USER_AGENT_MAX_LENGTH) if bound.user_agent else "",
    )


_event_template: dict[str, Any] = {}


def _new_event(**values: Any) -> AuditEvent:
    """An unsaved ``AuditEvent`` holding ``values``, built without ``Model.__init__``.

    ``__init__`` walks every field's descriptor and default, which cost as much as the rest of
    ``build_event``; here every field starts from its constant default (or ``None``) and
    ``values`` fill the rest — the state ``Model.__init__`` would leave, for a fifth of the time.
    """
    if not _event_template:
        _event_template.update(
            {
                field.attname: field.default if field.has_default() and not callable(field.default) else None
                for field in AuditEvent._meta.concrete_fields
            }
        )
    event = AuditEvent.__new__(AuditEvent)
    event._state = ModelState()
    event.__dict__.update(_event_template)
    event.__dict__.update(values)
    return event


def build_event(
    *,
    action: Action | str,
    outcome: Outcome | str = Outcome.SUCCESS,
    actor: Any = None,
    subject: Any = None,
    target: Any = None,
    context: Mapping | None = None,
    api_key_id: str | None = None,
) -> AuditEvent:
    """Return an unsaved, MAC'd ``AuditEvent`` for the arguments of ``record()`` (no database access)."""
    action_value = Action(action).value  # ValueError for an action that is not in the one list
    outcome_value = Outcome(outcome).value
    actor_id, actor_username, actor_is_staff = _snapshot_user(actor)
    subject_id, subject_username, subject_is_staff = _snapshot_user(subject)
    target_type, target_id, target_repr = _resolve_target(target)
    request_id, client_ip, user_agent = _request_fields(request_context.current())
    clean_context = sanitise_context(context)
    if clean_context:
        check_context_keys(action_value, clean_context)
    event = _new_event(
        uuid=uuid.uuid4(),
        timestamp=timezone.now(),
        action=action_value,
        outcome=outcome_value,
        actor_id=actor_id,
        actor_username=actor_username,
        actor_is_staff=actor_is_staff,
        subject_id=subject_id,
        subject_username=subject_username,
        subject_is_staff=subject_is_staff,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        request_id=request_id,
        client_ip=client_ip,
        user_agent=user_agent,
        api_key_id=_name(api_key_id, OBJECT_ID_MAX_LENGTH, identifier=True) if api_key_id else None,
        context=clean_context,
    )
    content = {name: getattr(event, name) for name in CONTENT_FIELDS}
    event.content_mac, event.content_key_id = content_mac(content, with_key_id=True)
    return event


def record(
    *,
    action: Action | str,
    outcome: Outcome | str = Outcome.SUCCESS,
    actor: Any = None,
    subject: Any = None,
    target: Any = None,
    context: Mapping | None = None,
    api_key_id: str | None = None,
) -> AuditEvent:
    """Record one audit event in the caller's transaction and return it (unsealed).

    Contract, for every app that records events:

    * ``action``: an ``audit.Action`` member (or its value). Anything else raises ``ValueError``:
      add new actions to the one enum in ``audit/actions.py``.
    * ``outcome``: ``Outcome.SUCCESS`` (default), ``FAILURE`` (the attempt failed: wrong password,
      bad code), ``DENIED`` (refused by policy: permission, lockout, rate limit) or ``ERROR``.
    * ``actor``: the user who acted, or ``None`` for the system (tasks, commands, anonymous
      requests). ``AnonymousUser`` counts as ``None``. Stored as a snapshot: id, username,
      ``is_staff`` at this moment.
    * ``subject``: the user the action is about (whose password was reset, whose staff flag
      changed), or a plain string for an attempted username that matched no account —
      normalise it first (``accounts.normalisation.normalise_username``).
    * ``target``: the object acted on: a model instance (named ``app_label.model`` + pk; its
      label comes from ``audit_repr()`` if the model defines one, the username for users, else
      ``"<verbose name> <pk>"`` — ``__str__`` is never used because it may show content), an
      ``audit.Target(type, id, repr)``, or a ``(type, id[, repr])`` tuple.
    * ``context``: a JSON-like mapping of facts worth keeping (changed field *names*, counts,
      reasons) under the keys ``audit/schema.py`` declares for the action (an undeclared key
      raises under ``AUDIT_STRICT_CONTEXT``, else is kept and logged once). It is sanitised:
      values under secret-looking keys and secret-looking values are masked, strings escaped
      and truncated, depth and size bounded. Never put memory content, passwords, tokens,
      codes or keys here on purpose — the sanitiser is the safety net, not the plan.
    * ``api_key_id``: the id (never the secret) of the API key that authenticated the request.

    Request id, client IP and user agent come from ``core.context.current()``, bound by the
    request middleware (or by a task/command with ``core.context.bound(...)``); callers never
    pass the request.

    Transactions: the event belongs to the caller's current transaction, so it commits or
    rolls back with the change it describes. Inside an atomic block it is written when that
    transaction commits, together with the transaction's other events and (on PostgreSQL) in
    the same message as the ``COMMIT``, so auditing adds no round trip (``audit.pending``);
    a query on the audit table inside the transaction still sees it. Outside an atomic block
    it is written at once. **To record a failure or a denial, call ``record()`` outside the
    atomic block that is being rolled back** (after catching the exception), or the event is
    rolled back with it. Database errors propagate: a transaction whose events cannot be
    written does not commit (fail closed).

    After commit, and only then: the event is sealed into the chain (per ``AUDIT_SEAL_MODE``),
    written to the ``audit.events`` log, and ``audit.signals.event_recorded`` is sent. The
    returned instance gets its primary key when it is written; ``sequence``/``hash`` stay
    ``None`` (the sealer sets them in the database). For many objects changed at once
    (``QuerySet.update``, bulk admin actions), use ``record_many()``: same contract.
    """
    event = build_event(
        action=action,
        outcome=outcome,
        actor=actor,
        subject=subject,
        target=target,
        context=context,
        api_key_id=api_key_id,
    )
    _store([event])
    return event


def _store(events: list[AuditEvent]) -> None:
    """Hold ``events`` for the current transaction's commit, or write them now in autocommit."""
    if not pending.hold(events, _announce):
        pending.write_now(events)
        for event in events:
            transaction.on_commit(partial(_announce, event))  # autocommit: runs at once
    schedule_seal_after_commit()


def write_held_events() -> None:
    """Write now the events the current transaction holds for its commit (to know their ids)."""
    pending.write_held(connections[DEFAULT_DB_ALIAS])


def record_many(entries: Iterable[Mapping[str, Any]]) -> list[AuditEvent]:
    """Record several events at once; each entry holds ``record()``'s arguments.

    For bulk operations (a ``QuerySet.update`` that changes many rows, an export) that must
    audit every object: same contract as ``record()``. Inside a transaction the events are
    written with the commit like any others (one multi-row INSERT per thousand).
    """
    events = [build_event(**entry) for entry in entries]
    if events:
        _store(events)
    return events


def event_log_fields(event: AuditEvent) -> dict[str, Any]:
    """The fields of an event as written to the log (already sanitised when recorded)."""
    return {
        "event_uuid": str(event.uuid),
        "action": event.action,
        "outcome": event.outcome,
        "timestamp": event.timestamp.isoformat(),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "subject_id": event.subject_id,
        "subject_username": event.subject_username,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "request_id": event.request_id,
        "client_ip": event.client_ip,
        "api_key_id": event.api_key_id,
        "context": event.context,
    }


def _announce(event: AuditEvent) -> None:
    """After commit: write the event to the log and tell subscribers (monitoring)."""
    if logger.isEnabledFor(logging.INFO):
        # The fields were sanitised when the event was recorded; the flag spares the log filter
        # doing it again on every event.
        logger.info(
            "audit event %s %s",
            event.action,
            event.outcome,
            extra={"audit": event_log_fields(event), "_audit_sanitised": True},
        )
    for receiver, response in event_recorded.send_robust(sender=AuditEvent, event=event):
        if isinstance(response, Exception):
            logger.error(
                "event_recorded receiver %s failed",
                getattr(receiver, "__qualname__", repr(receiver)),
                exc_info=(type(response), response, response.__traceback__),
            )


def audit_chain_seal() -> SealResult:
    """Seal every committed unsealed event now (the periodic task and ``manage.py audit_seal``)."""
    return seal_pending()


def audit_chain_verify(
    *,
    from_sequence: int | None = None,
    to_sequence: int | None = None,
    publish: bool = True,
    progress: Callable[[int], None] | None = None,
    actor: Any = None,
) -> VerificationReport:
    """Verify the chain (or a range), publish the head when the whole chain holds, record the run.

    The head is published only after a successful *full* verification: publishing the head of
    a chain that failed, or of a range, would bless what was not checked. The run itself is
    recorded as ``AUDIT_VERIFIED`` (outcome success or failure, with the first bad sequence).
    """
    report = verify_chain(from_sequence=from_sequence, to_sequence=to_sequence, progress=progress)
    summary = report.summary()
    if publish and report.ok and report.full and report.last_sequence > 0:
        publish_head(sequence=report.last_sequence, hash_value=report.last_hash, source="verify")
        summary["published_sequence"] = report.last_sequence
    if not report.ok:
        chain_logger.error(
            "audit chain verification failed: %d problem(s), first bad sequence %s: %s",
            report.problem_count,
            report.first_bad_sequence,
            report.problems[0] if report.problems else "",
        )
    record(
        action=Action.AUDIT_VERIFIED,
        outcome=Outcome.SUCCESS if report.ok else Outcome.FAILURE,
        actor=actor,
        context=summary,
    )
    return report


def audit_head_publish() -> VerificationReport:
    """Seal, verify from the last published head to the end, and publish the new head.

    The scheduled publication (``audit.tasks.audit_publish_head``). It verifies incrementally —
    from the last published head, which must still be in the chain with the same hash — so a
    truncated or rewritten tail is never published over. Recorded as ``AUDIT_HEAD_PUBLISHED``.
    """
    from audit.models import ChainHead

    seal_pending()
    anchor_sequence = ChainHead.objects.filter(pk=1).values_list("anchor_sequence", flat=True).first() or 0
    published = last_published_head()
    start = None
    if published is not None and published.mac_valid and published.sequence > anchor_sequence:
        start = published.sequence
    report = verify_chain(from_sequence=start)
    summary = report.summary()
    if report.ok and report.last_sequence > 0:
        publish_head(sequence=report.last_sequence, hash_value=report.last_hash, source="schedule")
        summary["published_sequence"] = report.last_sequence
    else:
        chain_logger.error(
            "audit chain head NOT published: %d problem(s), first bad sequence %s",
            report.problem_count,
            report.first_bad_sequence,
        )
    record(
        action=Action.AUDIT_HEAD_PUBLISHED,
        outcome=Outcome.SUCCESS if report.ok else Outcome.FAILURE,
        context=summary,
    )
    return report


class ReconcileRefused(Exception):
    """The chain cannot be reconciled (it does not verify on its own, or the heads file is not ours)."""


@dataclasses.dataclass
class ReconcileResult:
    """What ``audit_chain_reconcile_after_restore`` found and did."""

    reconciled: bool
    restored_head: int
    published_sequence: int | None = None
    published_at: str = ""
    lost_from: int = 0
    lost_to: int = 0
    epoch: int = 0
    tree_base: int = 0
    # The last checkpoint published of the abandoned tree: (epoch, size, root) and where it was seen.
    unmatched_checkpoint: tuple[int, int, bytes] | None = None
    unmatched_source: str = ""


def _last_published_checkpoint(*, epoch: int):
    """The last checkpoint of ``epoch`` published off the database: ((epoch, size, root), source) or (None, "").

    The witness's, when the witness sink is on (it is the one that must accept the next epoch);
    else the last line of ``checkpoints.log``; else the last one recorded in the database.
    """
    from audit import conf as audit_conf
    from audit.checkpoints import read_checkpoints_file, witness_latest
    from audit.models import AuditCheckpoint

    if "witness" in (audit_conf.get("AUDIT_CHECKPOINT_SINKS") or []):
        checkpoint, reason = witness_latest()
        if checkpoint is not None and checkpoint.epoch == epoch:
            return (checkpoint.epoch, checkpoint.size, checkpoint.root), "the witness"
        if checkpoint is None and "no checkpoint" not in reason:
            raise ReconcileRefused(f"the witness must accept the new epoch, but: {reason}; nothing was changed.")
    lines = read_checkpoints_file() or []
    valid = [line for line in lines if not line.problem and line.epoch == epoch]
    if valid:
        last = max(valid, key=lambda line: line.tree_size)
        return (epoch, last.tree_size, last.root), "checkpoints.log"
    stored = AuditCheckpoint.objects.filter(epoch=epoch).order_by("-tree_size").first()
    if stored is not None:
        return (epoch, stored.tree_size, bytes.fromhex(stored.root_hash)), "the database"
    return None, ""


def audit_chain_reconcile_after_restore(*, actor: Any = None) -> ReconcileResult:
    """After a restore, name the lost tail, start a new Merkle tree epoch and re-anchor the published head.

    A restored database ends its chain where the backup was taken, while ``heads.log`` and the
    published checkpoints (outside the database) remember later events. The sealer never gives
    those numbers again (``audit.sealing``), so the chain has a gap from the first sequence after
    the restore point to the last published one, and verification reports truncation until this
    runs. It checks the restored chain on its own (everything but that gap must verify, else
    ``ReconcileRefused``), then, under the chain head's lock: starts tree epoch *n + 1* whose
    leaves are the events after the gap, signs that epoch's empty checkpoint naming the last
    checkpoint published of epoch *n* (which the restored tree cannot extend), and records
    ``AUDIT_RECONCILED`` with the lost range and both trees. After the commit it publishes the head
    (source ``reconcile-after-restore``) and the checkpoints, so the witness accepts the new epoch
    with the abandoned tree on its record. Nothing happens when nothing published is missing.

    Permission: the caller has checked it (an operator at the shell, after a restore).
    """
    from audit.checkpoints import checkpoint_publish, epoch_start_checkpoint, publish_checkpoint
    from audit.merkle import format_frontier, leaf_hashes
    from audit.models import AuditSkippedSequence, AuditTombstone, ChainHead
    from audit.offline_verifier import frontier_append
    from audit.published import published_high_water

    seal_pending()
    published = last_published_head()
    if published is not None and (published.key_problem or not published.mac_valid):
        raise ReconcileRefused(
            "The last line of the published-heads file is not authentic (or its key is not held): it was not "
            "written by this platform's keys; nothing was changed."
        )
    head = ChainHead.objects.filter(pk=1).first() or ChainHead(pk=1)
    high, _where = published_high_water(tree_base=head.tree_base, tree_epoch=head.tree_epoch)
    below = [
        model.objects.filter(sequence__lte=high).aggregate(highest=Max("sequence"))["highest"]
        for model in (AuditEvent, AuditTombstone, AuditSkippedSequence)
    ]
    surviving = max([value for value in below if value is not None] + [head.anchor_sequence])
    lost_from, lost_to = (surviving + 1, high) if surviving < high else (0, 0)
    accepted = {lost_from: lost_to} if lost_from else {}
    report = verify_chain(check_published=False, accepted_lost=accepted)
    if not report.ok:
        raise ReconcileRefused(
            f"The restored chain does not verify on its own ({report.problem_count} problems, first bad sequence "
            f"{report.first_bad_sequence}): run audit_verify and investigate; nothing was changed."
        )
    result = ReconcileResult(reconciled=False, restored_head=surviving if lost_from else report.last_sequence)
    unmatched, source = _last_published_checkpoint(epoch=head.tree_epoch)
    tree_end = head.tree_base + head.tree_size
    checkpoint_lost = unmatched is not None and head.tree_base + unmatched[1] > min(tree_end, surviving)
    if not lost_from and not checkpoint_lost:
        return result  # the chain reaches everything published: nothing lost
    result.lost_from, result.lost_to = lost_from, lost_to
    result.published_sequence = published.sequence if published is not None else high
    result.published_at = published.published_at if published is not None else ""
    with transaction.atomic():
        head = ChainHead.objects.select_for_update().get(pk=1)
        epoch, base = head.tree_epoch + 1, lost_to or head.sequence
        frontier: list[bytes] = []
        leaves = leaf_hashes(base + 1, head.sequence) if head.sequence > base else []
        for index, leaf in enumerate(leaves):
            frontier_append(frontier, index, leaf)
        previous = unmatched or (head.tree_epoch, 0, _empty_root())
        start = epoch_start_checkpoint(epoch=epoch, tree_base=base, previous=previous)
        context = {
            "restored_head": result.restored_head,
            "restored_head_hmac_sha256": report.last_hash,
            "published_sequence": result.published_sequence,
            "published_at": result.published_at,
            "lost_from": lost_from,
            "lost_to": lost_to,
            "epoch": epoch,
            "tree_base": base,
            "previous_epoch": head.tree_epoch,
            "previous_tree_base": head.tree_base,
            "unmatched_checkpoint_size": previous[1] if unmatched else 0,
            "unmatched_checkpoint_root_sha256": previous[2].hex() if unmatched else "",
            "unmatched_checkpoint_source": source,
        }
        ChainHead.objects.filter(pk=1).update(
            tree_epoch=epoch, tree_base=base, tree_size=len(leaves), tree_frontier=format_frontier(frontier)
        )
        record(action=Action.AUDIT_RECONCILED, outcome=Outcome.SUCCESS, actor=actor, context=context)
    seal_pending()
    publish_head_report = verify_chain(check_published=False)
    publish_head(
        sequence=publish_head_report.last_sequence,
        hash_value=publish_head_report.last_hash,
        source="reconcile-after-restore",
    )
    publish_checkpoint(start, fresh=True)
    checkpoint_publish()
    chain_logger.warning(
        "audit chain reconciled after a restore: sequences %s to %s were lost; tree epoch %s begins after #%s",
        lost_from,
        lost_to,
        epoch,
        base,
    )
    result.reconciled = True
    result.epoch, result.tree_base = epoch, base
    result.unmatched_checkpoint, result.unmatched_source = unmatched, source
    return result


def audit_sealer_run(
    *,
    interval: float,
    should_stop: Callable[[], bool],
    sleep: Callable[[float], None],
    max_backoff: float = 30.0,
) -> int:
    """Seal continuously until ``should_stop()``: the sealer process (``manage.py audit_sealer``).

    Seals whatever is committed (``seal_pending`` drains a backlog batch after batch), then waits
    ``interval`` seconds and looks again. A database that refuses work is
    logged in one line and retried after a back-off doubling from one second to ``max_backoff``;
    it never ends the loop. Web processes then run with ``AUDIT_SEAL_MODE=periodic``, so no
    request process chains events. Returns the number of events sealed.
    """
    from django.db import DatabaseError, close_old_connections

    total, backoff = 0, 0.0
    while not should_stop():
        try:
            result = seal_pending()
        except DatabaseError as error:
            backoff = min(max_backoff, backoff * 2 or 1.0)
            logger.warning(
                "audit sealer: the database refused work (%s); retrying in %.0f s", type(error).__name__, backoff
            )
            close_old_connections()
            sleep(backoff)
            continue
        backoff = 0.0
        total += result.sealed
        sleep(interval)
    return total


def _empty_root() -> bytes:
    from audit.offline_verifier import EMPTY_ROOT

    return EMPTY_ROOT
