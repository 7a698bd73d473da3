"""The security record: audit events, the chain head, and tombstones of purged events.

An ``AuditEvent`` is written once by ``audit.record()`` and never changed, except that the sealer
fills in ``sequence``, ``previous_hash``, ``hash`` and ``chain_key_id`` exactly once (see
``audit.sealing``). Every MAC is stored with the id of the key that made it (``audit.chain``).
The model refuses every other change (``save()`` of an existing row, ``delete()``,
``QuerySet.update()``/``delete()``/``bulk_update()``), and on PostgreSQL a trigger installed by
migration 0002 (widened to ``chain_key_id`` by 0003) refuses them in the database too, except for
the retention purge.
"""

from __future__ import annotations

import uuid

from django.db import models

from audit.actions import Action, Outcome

__all__ = [
    "Action",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditEventImmutable",
    "AuditSkippedSequence",
    "AuditTombstone",
    "ChainHead",
    "Outcome",
]

# Field sizes (characters). Values are truncated with a marker by the sanitiser to fit.
ACTION_MAX_LENGTH = 64
USERNAME_MAX_LENGTH = 150
OBJECT_ID_MAX_LENGTH = 64
TARGET_TYPE_MAX_LENGTH = 100
TARGET_REPR_MAX_LENGTH = 200
REQUEST_ID_MAX_LENGTH = 64
USER_AGENT_MAX_LENGTH = 256
HASH_LENGTH = 64
# A key id of the encryption key ring (encryption.keyring.KEY_ID_PATTERN: 1 to 64 characters).
KEY_ID_MAX_LENGTH = 64


class AuditEventImmutable(Exception):
    """Raised on any attempt to change or delete an audit event through the ORM."""


class AuditEventQuerySet(models.QuerySet):
    """A query set that reads and inserts, and refuses to change or delete."""

    def update(self, **kwargs):
        raise AuditEventImmutable("Audit events are append-only: QuerySet.update() is refused.")

    def delete(self):
        raise AuditEventImmutable("Audit events are append-only: QuerySet.delete() is refused.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AuditEventImmutable("Audit events are append-only: bulk_update() is refused.")

    def update_or_create(self, *args, **kwargs):
        raise AuditEventImmutable("Audit events are append-only: update_or_create() is refused.")

    def sealed(self):
        """Events already in the chain."""
        return self.filter(sequence__isnull=False)

    def unsealed(self):
        """Events recorded and committed but not yet chained by the sealer."""
        return self.filter(sequence__isnull=True)


class AuditEvent(models.Model):
    """One security-relevant event, as it was at that moment.

    Actor and subject are snapshots (id, username, staff flag) because the user row may later be
    renamed or deleted; the target is named by ``app_label.model`` and primary key for the same
    reason. ``context`` has passed through ``core.sanitiser``.
    """

    # Insert order. Not the chain order: see ``sequence``.
    id = models.BigAutoField(primary_key=True)
    # A random id bound into ``content_mac``: a copied row is a duplicate, not a second event.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The position in the chain, 1, 2, 3..., given by the sealer in commit order and never twice (it
    # steps over a number a forged row holds, and over numbers published before a cut tail).
    # NULL until sealed (normally within milliseconds of the commit).
    sequence = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    timestamp = models.DateTimeField(db_index=True, help_text="When record() was called (UTC).")
    action = models.CharField(max_length=ACTION_MAX_LENGTH, choices=Action.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)

    actor_id = models.CharField(max_length=OBJECT_ID_MAX_LENGTH, blank=True, default="")
    actor_username = models.CharField(max_length=USERNAME_MAX_LENGTH, blank=True, default="")
    actor_is_staff = models.BooleanField(null=True, blank=True)
    subject_id = models.CharField(max_length=OBJECT_ID_MAX_LENGTH, blank=True, default="")
    subject_username = models.CharField(max_length=USERNAME_MAX_LENGTH, blank=True, default="")
    subject_is_staff = models.BooleanField(null=True, blank=True)

    target_type = models.CharField(
        max_length=TARGET_TYPE_MAX_LENGTH, blank=True, default="", help_text="app_label.model"
    )
    target_id = models.CharField(max_length=OBJECT_ID_MAX_LENGTH, blank=True, default="")
    target_repr = models.CharField(max_length=TARGET_REPR_MAX_LENGTH, blank=True, default="")

    request_id = models.CharField(max_length=REQUEST_ID_MAX_LENGTH, blank=True, default="")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True, default="")
    api_key_id = models.CharField(max_length=OBJECT_ID_MAX_LENGTH, null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)

    content_mac = models.CharField(max_length=HASH_LENGTH, editable=False)
    # The audit_chain key that made content_mac (set by record()); NULL: the legacy key.
    content_key_id = models.CharField(max_length=KEY_ID_MAX_LENGTH, null=True, blank=True, editable=False)
    previous_hash = models.CharField(max_length=HASH_LENGTH, null=True, blank=True, editable=False)
    hash = models.CharField(max_length=HASH_LENGTH, null=True, blank=True, editable=False)
    # The audit_chain key that made hash (set by the sealer, which may run after a rotation, so
    # it can differ from content_key_id); NULL on an unsealed event or a legacy one.
    chain_key_id = models.CharField(max_length=KEY_ID_MAX_LENGTH, null=True, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "audit event"
        # Checked by every export of events from the console (the audit explorer's CSV and JSON Lines).
        permissions = [("export_auditevent", "Can export audit events")]
        # Every index costs each insert, so each one here is used by the admin or a selector.
        indexes = [
            models.Index(fields=["request_id"], name="audit_event_request"),
            # Username search is exact or by prefix; on PostgreSQL one varchar_pattern_ops index
            # serves both (Django's db_index would add a second, plain one).
            models.Index(fields=["actor_username"], name="audit_event_actor_name", opclasses=["varchar_pattern_ops"]),
            models.Index(
                fields=["subject_username"], name="audit_event_subject_name", opclasses=["varchar_pattern_ops"]
            ),
            # Incident queries filter by who/where/what and a time window.
            models.Index(fields=["action", "timestamp"], name="audit_event_action_ts"),
            models.Index(fields=["actor_id", "timestamp"], name="audit_event_actor_ts"),
            models.Index(fields=["subject_id", "timestamp"], name="audit_event_subject_ts"),
            models.Index(fields=["client_ip", "timestamp"], name="audit_event_ip_ts"),
            # The explorer's API key filter. Partial: most events carry no key, so they cost it nothing.
            models.Index(
                fields=["api_key_id", "timestamp"], name="audit_event_api_key_ts",
                condition=models.Q(api_key_id__isnull=False),
            ),
            # The sealer's work queue: tiny, because events are sealed within moments.
            models.Index(fields=["id"], name="audit_event_unsealed", condition=models.Q(sequence__isnull=True)),
        ]

    def __str__(self) -> str:
        position = f"#{self.sequence}" if self.sequence is not None else f"(unsealed id {self.id})"
        return f"{position} {self.action} {self.outcome}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditEventImmutable("Audit events are append-only: an existing event cannot be saved again.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEventImmutable("Audit events are append-only: an event cannot be deleted.")

    @property
    def is_sealed(self) -> bool:
        return self.sequence is not None


class ChainHead(models.Model):
    """The one row that serialises the sealer and remembers where the chain stands.

    ``sequence``/``hash``: the last sealed event. ``anchor_*``: where verification starts after
    the retention purge removed the oldest events (sequence 0 and the genesis hash before any
    purge), authenticated by ``anchor_mac`` so it cannot be moved without the key.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sequence = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=HASH_LENGTH, default="0" * HASH_LENGTH)
    anchor_sequence = models.BigIntegerField(default=0)
    anchor_hash = models.CharField(max_length=HASH_LENGTH, default="0" * HASH_LENGTH)
    anchor_mac = models.CharField(max_length=HASH_LENGTH, blank=True, default="")
    # The audit_chain key that made anchor_mac; NULL: the legacy key.
    anchor_key_id = models.CharField(max_length=KEY_ID_MAX_LENGTH, null=True, blank=True)
    # The RFC 6962 Merkle tree over sealed events (audit/merkle.py): leaf i is the event with
    # sequence tree_base + 1 + i; tree_base is the chain's length when the tree began (0 on a new
    # installation, the head at the upgrade that added the tree). The frontier (one hex hash per
    # set bit of tree_size, largest subtree first) is all the sealer keeps to grow it.
    tree_base = models.BigIntegerField(default=0)
    tree_size = models.BigIntegerField(default=0)
    tree_frontier = models.TextField(blank=True, default="")
    # The tree's epoch: 1, until ``audit_reconcile --after-restore`` starts a new tree after the lost
    # tail of a restore (each reconcile event names its epoch, base and the checkpoint it could not extend).
    tree_epoch = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "audit chain head"

    def __str__(self) -> str:
        return f"chain head #{self.sequence}"


class AuditTombstone(models.Model):
    """What remains of a purged event that sits between kept ones (per-action retention).

    When the purge removes an event whose neighbours are kept, its sequence, previous hash and
    hash stay here (authenticated by ``mac``) so the chain still verifies across the hole. Once
    every event up to a tombstone is purged, tombstones fold into ``ChainHead.anchor_*``.
    """

    sequence = models.BigIntegerField(primary_key=True)
    previous_hash = models.CharField(max_length=HASH_LENGTH)
    hash = models.CharField(max_length=HASH_LENGTH)
    archive = models.CharField(max_length=200, help_text="The archive file that holds the event.")
    mac = models.CharField(max_length=HASH_LENGTH)
    # The audit_chain key that made mac; NULL: the legacy key.
    key_id = models.CharField(max_length=KEY_ID_MAX_LENGTH, null=True, blank=True)

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"tombstone #{self.sequence}"


class AuditSkippedSequence(models.Model):
    """A sequence number the sealer stepped over because a row it did not allocate already held it.

    Only the sealer allocates sequence numbers; a row that already carries the next number was
    written outside ``audit.record()`` (a forged INSERT). The sealer does not stop and does not
    adopt it: it records the skip here, with ``hash = skip_hash(sequence, previous_hash)`` under
    the ``audit_chain`` key ``key_id``, links the next event to that hash and gives the number a
    "skipped" leaf in the Merkle tree (``audit.sealing``). ``audit_verify`` reports the forged row
    while it is there (``forged_skipped``) and walks the skip as an authenticated link.
    """

    sequence = models.BigIntegerField(primary_key=True)
    previous_hash = models.CharField(max_length=HASH_LENGTH)
    hash = models.CharField(max_length=HASH_LENGTH)
    key_id = models.CharField(max_length=KEY_ID_MAX_LENGTH)
    # The id of the forged row that held the number (it may be removed later by the owner).
    forged_event_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["sequence"]
        verbose_name = "audit skipped sequence"

    def __str__(self) -> str:
        return f"skipped #{self.sequence}"


class AuditCheckpoint(models.Model):
    """A signed checkpoint of the Merkle tree (audit/checkpoints.py), kept with its frontier.

    ``note`` is the C2SP signed note exactly as published; ``frontier`` the tree's frontier at
    ``tree_size``, so a consistency proof from this checkpoint to a later one needs only the
    events sealed since (never the whole table). Append-only: the runtime role may only insert.
    """

    tree_size = models.BigIntegerField()
    tree_base = models.BigIntegerField(default=0)
    # The tree's epoch (``ChainHead.tree_epoch``): sizes start again from 0 in each new epoch.
    epoch = models.PositiveIntegerField(default=1)
    root_hash = models.CharField(max_length=HASH_LENGTH)
    frontier = models.TextField(blank=True, default="")
    note = models.TextField()
    # The audit_checkpoint key that signed the note.
    key_id = models.CharField(max_length=KEY_ID_MAX_LENGTH)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-epoch", "-tree_size"]
        verbose_name = "audit checkpoint"
        constraints = [models.UniqueConstraint(fields=["epoch", "tree_size"], name="audit_checkpoint_epoch_size")]

    def __str__(self) -> str:
        return f"checkpoint at {self.tree_size}"
