"""``manage.py load_demo_data``: realistic, loaded through the services, idempotent."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from memories.models import Context, ContextShare, Membership, Memory, MemoryTag, Organization, Team
from memories.permissions import context_role

pytestmark = pytest.mark.django_db

DEMO_PASSWORD = "orbit-velvet-lantern-42"


def _snapshot() -> list:
    return [
        list(model.objects.order_by("pk").values())
        for model in (Organization, Team, Membership, Context, ContextShare, Memory, MemoryTag)
    ] + [list(get_user_model().objects.order_by("pk").values_list("pk", "username", "password"))]


def _run() -> str:
    out = StringIO()
    call_command("load_demo_data", stdout=out)
    return out.getvalue()


def test_demo_data_is_realistic_and_loading_it_twice_adds_nothing(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    output = _run()
    assert Organization.objects.count() == 2
    assert Team.objects.count() == 5
    assert get_user_model().objects.count() == 12
    assert Memory.objects.count() >= 300
    assert ContextShare.objects.count() >= 3
    roles = set(Membership.objects.values_list("role", flat=True))
    assert roles == {"viewer", "member", "maintainer", "admin", "owner"}
    assert set(Context.objects.values_list("scope", flat=True)) == {"personal", "team", "organization"}
    assert set(Memory.objects.values_list("kind", flat=True)) == {"note", "command", "ai_context", "snippet"}
    assert MemoryTag.objects.values("name").distinct().count() >= 10
    # Every memory was written by someone allowed to write there.
    for memory in Memory.objects.select_related("context", "author")[:50]:
        assert context_role(memory.author, memory.context) in {"member", "maintainer", "admin", "owner"}
    assert "Demo data: 2 organizations, 5 teams, 12 users" in output
    assert "Password" not in output  # the password came from the environment
    assert get_user_model().objects.get(username="amara.okafor").check_password(DEMO_PASSWORD)

    before = _snapshot()
    again = _run()
    assert _snapshot() == before
    assert "nothing (already loaded)" in again


def test_a_generated_password_is_printed_once(monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    first = _run()
    match = re.search(r"Password of the 12 new demo users: (\S+)", first)
    assert match
    assert get_user_model().objects.get(username="noah.becker").check_password(match.group(1))
    assert "Password" not in _run()


def test_a_weak_demo_password_is_refused_before_anything_is_written(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "password")
    with pytest.raises(CommandError, match="DEMO_PASSWORD"):
        _run()
    assert not get_user_model().objects.exists()
    assert not Organization.objects.exists()
