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
    assert first.count(match.group(1)) == 1
    again = _run()
    assert "Password" not in again and match.group(1) not in again


def _user_rows(output: str) -> dict[str, list[str]]:
    """The demo-user table: username -> [organization, org role, teams], split on runs of spaces."""
    lines = output.split("Demo users (sign in at http://127.0.0.1:8000/accounts/login/):\n", 1)[1].splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["username", "organization", "org role", "teams (role)"]
    rows = {}
    for line in lines[1:]:
        if not line.startswith("  "):
            break
        username, *cells = re.split(r"\s{2,}", line.strip())
        rows[username] = cells
    return rows


@pytest.mark.parametrize("generated", [True, False])
def test_every_run_prints_the_demo_users_with_their_organization_role_and_teams(monkeypatch, generated):
    if generated:
        monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    for output in (_run(), _run()):
        rows = _user_rows(output)
        assert sorted(rows) == sorted(get_user_model().objects.values_list("username", flat=True))
        assert rows["amara.okafor"] == ["Acme Robotics", "owner", "ML Research (owner)"]
        assert rows["chen.wei"] == ["Acme Robotics", "member", "Platform (maintainer), Security (viewer)"]
        assert rows["emil.lindqvist"] == ["Acme Robotics", "-", "Platform (member)"]
        assert rows["priya.nair"] == ["Northwind Health", "maintainer", "Data Engineering (maintainer)"]
        assert DEMO_PASSWORD not in output


def test_a_weak_demo_password_is_refused_before_anything_is_written(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "password")
    with pytest.raises(CommandError, match="DEMO_PASSWORD"):
        _run()
    assert not get_user_model().objects.exists()
    assert not Organization.objects.exists()
