"""The selectors: what a user may see, filtered, in a fixed number of queries."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from memories import selectors
from memories.exceptions import NotFound, PermissionDenied

pytestmark = pytest.mark.django_db


def test_memory_list_shows_only_visible_memories_newest_first(world, make_user, make_memory):
    reader = make_user()
    world.grant(reader, "viewer", team=world.team)
    first = make_memory(world.team_context, content="first")
    second = make_memory(world.team_context, content="second")
    make_memory(world.sibling_team_context, content="hidden")
    make_memory(world.other_context, content="hidden too")
    assert list(selectors.memory_list_for_user(user=reader)) == [second, first]


def test_memory_list_filters(world, make_memory):
    note = make_memory(world.team_context, kind="note", tags=["deploy", "k8s"])
    command = make_memory(world.team_context, kind="command", tags=["deploy"])
    elsewhere = make_memory(world.organization_context, kind="command", tags=["k8s"])
    owner = world.owner
    assert set(selectors.memory_list_for_user(user=owner, context=world.team_context)) == {note, command}
    assert set(selectors.memory_list_for_user(user=owner, kind="command")) == {command, elsewhere}
    assert set(selectors.memory_list_for_user(user=owner, tag="k8s")) == {note, elsewhere}
    combined = selectors.memory_list_for_user(user=owner, context=world.team_context, kind="command", tag="deploy")
    assert list(combined) == [command]


def test_memory_list_of_an_invisible_context_is_not_found(world, make_user):
    with pytest.raises(NotFound):
        selectors.memory_list_for_user(user=make_user(), context=world.team_context)


def test_memory_list_costs_the_same_queries_for_few_and_many(world, make_user, make_memory):
    reader = make_user()
    world.grant(reader, "viewer", organization=world.organization)

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            for memory in selectors.memory_list_for_user(user=reader):
                _ = (memory.author, memory.context.name, [tag.name for tag in memory.tags.all()])
        return len(queries)

    for index in range(3):
        make_memory(world.team_context, tags=["a", f"t{index}"], author=world.owner)
    few = count_queries()
    for index in range(30):
        make_memory(world.organization_context, tags=["b", f"u{index}"], author=reader)
    assert count_queries() == few <= 2


def test_no_query_filters_or_orders_on_content_or_metadata(world, make_memory):
    """Content and metadata will be encrypted: SQL may select them, never compare or sort them."""
    make_memory(world.team_context, tags=["a"])
    with CaptureQueriesContext(connection) as queries:
        list(selectors.memory_list_for_user(user=world.owner, context=world.team_context, kind="note", tag="a"))
        list(selectors.memory_export_for_user(user=world.owner, context=world.team_context))
    for query in queries:
        after_from = query["sql"].split(" FROM ", 1)[-1]
        assert not re.search(r'"memories_memory"\."(content|metadata)"', after_from), query["sql"]


def test_export_needs_the_export_right(world, make_user, make_memory):
    member = make_user()
    world.grant(member, "member", team=world.team)
    make_memory(world.team_context)
    with pytest.raises(PermissionDenied):
        selectors.memory_export_for_user(user=member, context=world.team_context)
    world.grant(member, "maintainer", organization=world.organization)
    assert len(selectors.memory_export_for_user(user=member, context=world.team_context)) == 1


def test_context_shares_need_the_share_right(world, make_user, make_share):
    maintainer = make_user()
    world.grant(maintainer, "maintainer", team=world.team)
    make_share(world.team_context, permission="read", user=make_user())
    with pytest.raises(PermissionDenied):
        selectors.context_shares_for_user(user=maintainer, context=world.team_context)
    assert selectors.context_shares_for_user(user=world.owner, context=world.team_context).count() == 1


def test_teams_and_organizations_visible(world, make_user):
    organization_viewer, team_member = make_user(), make_user()
    world.grant(organization_viewer, "viewer", organization=world.organization)
    world.grant(team_member, "member", team=world.other_team)
    assert set(selectors.teams_visible_to(user=organization_viewer)) == {world.team, world.sibling_team}
    assert list(selectors.teams_visible_to(user=team_member)) == [world.other_team]
    assert list(selectors.organizations_visible_to(user=organization_viewer)) == [world.organization]
    assert list(selectors.organizations_visible_to(user=team_member)) == []


def test_members_are_listed_to_whoever_sees_the_team(world, make_user):
    viewer, stranger = make_user(), make_user()
    world.grant(viewer, "viewer", team=world.team)
    assert {m.user for m in selectors.team_members(user=viewer, team=world.team)} == {world.owner, viewer}
    with pytest.raises(NotFound):
        selectors.team_members(user=stranger, team=world.team)
    with pytest.raises(NotFound):
        selectors.organization_members(user=viewer, organization=world.organization)


@pytest.mark.parametrize("bad_id", [0, -1, 2**63, 10**30, True, "1"])
def test_lookups_by_impossible_ids_are_not_found(bad_id):
    for lookup in (
        lambda: selectors.context_get(context_id=bad_id),
        lambda: selectors.memory_get(memory_id=bad_id),
        lambda: selectors.team_get(team_id=bad_id),
        lambda: selectors.organization_get(organization_id=bad_id),
    ):
        with pytest.raises(NotFound):
            lookup()
