"""Upgrades never strand plaintext: memories stored before ``memories.0002`` are encrypted in place.

Before, such rows failed to read ("not an encrypted value"), no command could encrypt them, and
they stayed plaintext at rest (issue #14).
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.actions import Action
from audit.models import AuditEvent
from encryption.crypto import token_key_id
from memories.models import Memory
from tests.encryption.helpers import raw_value, set_raw_value

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("memories", "0001_initial")]
MARKER = "plaintext-from-before-the-upgrade"


def _latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return [key for key in executor.loader.graph.leaf_nodes() if key[0] == "memories"]


@pytest.fixture
def old_install(django_user_model):
    """A database at memories.0001 with plaintext memories, as an install before 0002 had it."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    executor.loader.build_graph()
    apps = executor.loader.project_state(BEFORE).apps
    Context = apps.get_model("memories", "Context")
    OldMemory = apps.get_model("memories", "Memory")
    user = django_user_model.objects.create_user(username="olga", email="olga@example.test", password="x" * 20)
    context = Context.objects.create(name="Scratchpad", scope="personal", owner_user_id=user.pk, created_by_id=user.pk)
    ids = [
        OldMemory.objects.create(
            context=context, content=f"{MARKER} {index} café ☕", metadata={"index": index, "tags": ["a"]}
        ).pk
        for index in range(7)
    ]
    yield ids
    MigrationExecutor(connection).migrate(_latest())


def test_migrating_forward_encrypts_the_old_plaintext_rows(old_install):
    executor = MigrationExecutor(connection)
    executor.migrate(_latest())

    for index, pk in enumerate(old_install):
        content = raw_value(Memory, pk, "content")
        metadata = raw_value(Memory, pk, "metadata")
        assert token_key_id(content) == "dev-field" and MARKER not in content, "encrypted at rest"
        assert token_key_id(metadata) == "dev-field"
        memory = Memory.objects.get(pk=pk)
        assert memory.content == f"{MARKER} {index} café ☕"
        assert memory.metadata == {"index": index, "tags": ["a"]}


@pytest.mark.audit_coverage("system.plaintext_encrypted")
def test_the_command_encrypts_plaintext_left_in_place_and_is_resumable(old_install):
    MigrationExecutor(connection).migrate(_latest())
    # Plaintext written after the migration ran (an old process still writing, a restored copy).
    set_raw_value(Memory, old_install[0], "content", f"{MARKER} again")
    set_raw_value(Memory, old_install[1], "metadata", '{"late": true}')
    set_raw_value(Memory, old_install[2], "metadata", "{not json")

    out = StringIO()
    with pytest.raises(CommandError, match="1 plaintext values could not be converted"):
        call_command("encrypt_plaintext", "--batch-size", "2", stdout=out)
    assert f"memories.Memory row {old_install[2]}, column metadata: the plaintext is not a valid" in out.getvalue()
    assert Memory.objects.get(pk=old_install[0]).content == f"{MARKER} again"
    assert Memory.objects.get(pk=old_install[1]).metadata == {"late": True}
    assert raw_value(Memory, old_install[2], "metadata") == "{not json", "left as it was"

    set_raw_value(Memory, old_install[2], "metadata", "{}")
    out = StringIO()
    call_command("encrypt_plaintext", stdout=out)
    assert "Plaintext encrypted: 1 values." in out.getvalue()
    out = StringIO()
    call_command("encrypt_plaintext", stdout=out)
    assert "Plaintext encrypted: 0 values." in out.getvalue(), "a rerun finds nothing left"
    events = list(AuditEvent.objects.filter(action=Action.PLAINTEXT_ENCRYPTED).order_by("id"))
    assert [event.context["values_encrypted"] for event in events] == [2, 1, 0]
    assert MARKER not in str([event.context for event in events])
