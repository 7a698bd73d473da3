"""Memory content and metadata reach the database only as ciphertext, and read back intact."""

from __future__ import annotations

import pytest
from django.db import connection

from memories import services
from memories.models import Memory

CONTENT = "ssh deploy@10.0.0.5 -- the staging root password is hunter2-hunter2"
METADATA = {"prompt": "you are a careful assistant", "tokens": 42}


@pytest.mark.django_db
def test_content_and_metadata_are_ciphertext_in_the_raw_column(world):
    memory = services.memory_create(
        actor=world.owner, context=world.personal_context, content=CONTENT, metadata=METADATA
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT content, metadata FROM memories_memory WHERE id = %s", [memory.pk])
        raw_content, raw_metadata = cursor.fetchone()
    assert "hunter2" not in raw_content
    assert "careful assistant" not in str(raw_metadata)
    assert raw_content.startswith("nv1:")
    assert str(raw_metadata).startswith("nv1:")
    reloaded = Memory.objects.get(pk=memory.pk)
    assert reloaded.content == CONTENT
    assert reloaded.metadata == METADATA
