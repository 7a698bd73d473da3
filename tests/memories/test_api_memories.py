"""API v1: memories."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from memories.models import Memory
from tests.memories.api_helpers import assert_error, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def writer(world, make_user):
    """A member of the team: may create and update, not delete."""
    user = make_user("wendy.writer")
    world.grant(user, "member", team=world.team)
    return user


def test_create_returns_the_stored_memory(world, writer, client_for):
    response = client_for(writer).post(
        url("memory-list"),
        {
            "context": world.team_context.pk,
            "kind": "command",
            "source": "cli",
            "content": "kubectl get pods -A",
            "metadata": {"shell": "bash", "nested": {"list": [1, 2.5, None, True]}},
            "tags": ["K8s", "ops", "k8s"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["context"] == world.team_context.pk
    assert body["author"] == "wendy.writer"
    assert body["kind"] == "command"
    assert body["tags"] == ["k8s", "ops"]
    assert body["metadata"] == {"shell": "bash", "nested": {"list": [1, 2.5, None, True]}}
    stored = Memory.objects.get(pk=body["id"])
    assert stored.content == "kubectl get pods -A"


def test_create_with_only_the_required_fields(world, writer, client_for):
    response = client_for(writer).post(
        url("memory-list"), {"context": world.team_context.pk, "content": "x"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["kind"] == "note"
    assert response.json()["metadata"] == {}
    assert response.json()["tags"] == []


def test_create_needs_the_create_right_and_a_visible_context(world, make_user, client_for):
    viewer = make_user()
    world.grant(viewer, "viewer", team=world.team)
    client = client_for(viewer)
    assert_error(
        client.post(url("memory-list"), {"context": world.team_context.pk, "content": "x"}, format="json"),
        403,
        "permission_denied",
    )
    for context_id in (world.sibling_team_context.pk, 987_654):
        assert_error(
            client.post(url("memory-list"), {"context": context_id, "content": "x"}, format="json"),
            404,
            "not_found",
        )
    assert not Memory.objects.exists()


def test_retrieve(world, writer, make_memory, client_for):
    memory = make_memory(world.team_context, content="secret sauce", tags=["b", "a"])
    response = client_for(writer).get(url("memory-detail", memory_id=memory.pk))
    assert response.status_code == 200
    assert response.json()["content"] == "secret sauce"
    assert response.json()["tags"] == ["a", "b"]
    assert_error(client_for(world.owner).get(url("memory-detail", memory_id=10**25)), 404, "not_found")


def test_retrieve_invisible_is_404(world, make_user, make_memory, client_for):
    memory = make_memory(world.other_context)
    assert_error(client_for(make_user()).get(url("memory-detail", memory_id=memory.pk)), 404, "not_found")
    assert_error(client_for(world.owner).get(url("memory-detail", memory_id=memory.pk)), 404, "not_found")


def test_patch_changes_only_the_given_fields(world, writer, make_memory, client_for):
    memory = make_memory(world.team_context, content="old", kind="command", tags=["a"], source="cli")
    response = client_for(writer).patch(url("memory-detail", memory_id=memory.pk), {"tags": ["B"]}, format="json")
    assert response.status_code == 200
    assert response.json()["tags"] == ["b"]
    memory.refresh_from_db()
    assert (memory.content, memory.kind, memory.source) == ("old", "command", "cli")


def test_put_replaces_and_resets_omitted_optional_fields(world, writer, make_memory, client_for):
    memory = make_memory(world.team_context, content="old", kind="command", tags=["a"], source="cli")
    response = client_for(writer).put(url("memory-detail", memory_id=memory.pk), {"content": "new"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["content"], body["kind"], body["source"]) == ("new", "note", "")
    assert (body["tags"], body["metadata"]) == ([], {})


def test_put_without_content_is_400(world, writer, make_memory, client_for):
    memory = make_memory(world.team_context, content="old")
    response = client_for(writer).put(url("memory-detail", memory_id=memory.pk), {"kind": "note"}, format="json")
    assert_error(response, 400, "invalid", fields={"content"})
    memory.refresh_from_db()
    assert memory.content == "old"


def test_a_memory_cannot_move_to_another_context(world, writer, make_memory, client_for):
    memory = make_memory(world.team_context)
    response = client_for(writer).patch(
        url("memory-detail", memory_id=memory.pk), {"context": world.organization_context.pk}, format="json"
    )
    assert_error(response, 400, "invalid", fields={"context"})
    memory.refresh_from_db()
    assert memory.context == world.team_context


def test_update_needs_the_update_right(world, make_user, make_memory, client_for):
    viewer = make_user()
    world.grant(viewer, "viewer", team=world.team)
    memory = make_memory(world.team_context, content="old")
    path = url("memory-detail", memory_id=memory.pk)
    assert_error(client_for(viewer).patch(path, {"content": "new"}, format="json"), 403, "permission_denied")
    assert_error(client_for(make_user()).patch(path, {"content": "new"}, format="json"), 404, "not_found")
    memory.refresh_from_db()
    assert memory.content == "old"


def test_delete_needs_the_delete_right(world, writer, make_user, make_memory, client_for):
    memory = make_memory(world.team_context)
    path = url("memory-detail", memory_id=memory.pk)
    assert_error(client_for(writer).delete(path), 403, "permission_denied")
    assert_error(client_for(make_user()).delete(path), 404, "not_found")
    assert Memory.objects.filter(pk=memory.pk).exists()
    maintainer = make_user()
    world.grant(maintainer, "maintainer", team=world.team)
    assert client_for(maintainer).delete(path).status_code == 204
    assert not Memory.objects.filter(pk=memory.pk).exists()
    assert_error(client_for(maintainer).delete(path), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# Listing: visibility, filters, pagination, query count
# ---------------------------------------------------------------------------------------------
def test_list_filters(world, writer, make_memory, client_for):
    note = make_memory(world.team_context, kind="note", tags=["deploy"])
    command = make_memory(world.team_context, kind="command", tags=["deploy", "k8s"])
    make_memory(world.sibling_team_context, kind="command", tags=["k8s"])  # invisible to the writer
    client = client_for(writer)

    def ids(**params) -> list[int]:
        response = client.get(url("memory-list"), params)
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["results"]]

    assert ids() == [command.pk, note.pk]
    assert ids(kind="command") == [command.pk]
    assert ids(tag="K8S") == [command.pk]
    assert ids(tag="deploy", context=world.team_context.pk) == [command.pk, note.pk]
    assert ids(tag="nothing") == []


def test_list_filter_errors(world, writer, client_for):
    client = client_for(writer)
    assert_error(client.get(url("memory-list"), {"kind": "poem"}), 400, "invalid", fields={"kind"})
    assert_error(client.get(url("memory-list"), {"context": "abc"}), 400, "invalid", fields={"context"})
    assert_error(client.get(url("memory-list"), {"context": str(10**30)}), 400, "invalid", fields={"context"})
    assert_error(client.get(url("memory-list"), {"tag": "x" * 51}), 400, "invalid", fields={"tag"})
    assert_error(client.get(url("memory-list"), {"tag": "a\x00b"}), 400, "invalid", fields={"tag"})
    assert_error(
        client.get(url("memory-list"), {"kind": "poem", "context": "x"}), 400, "invalid", fields={"kind", "context"}
    )
    # A context the writer may not see answers like one that does not exist.
    assert_error(client.get(url("memory-list"), {"context": world.sibling_team_context.pk}), 404, "not_found")
    assert_error(client.get(url("memory-list"), {"context": 987_654}), 404, "not_found")


def test_list_pagination(world, writer, make_memory, client_for):
    created = [make_memory(world.team_context, content=f"m{index}") for index in range(12)]
    client = client_for(writer)
    page = client.get(url("memory-list"), {"page_size": 5, "page": 2}).json()
    assert page["count"] == 12
    assert [item["id"] for item in page["results"]] == [memory.pk for memory in reversed(created)][5:10]
    assert page["next"] and page["previous"]
    capped = client.get(url("memory-list"), {"page_size": 10_000}).json()
    assert len(capped["results"]) == 12  # max_page_size is 200; all 12 fit
    assert_error(client.get(url("memory-list"), {"page": "last-but-one"}), 404, "not_found")


def test_list_costs_a_fixed_number_of_queries(world, writer, make_memory, client_for):
    client = client_for(writer)

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("memory-list")).status_code == 200
        return len(queries)

    for index in range(2):
        make_memory(world.team_context, tags=[f"a{index}", "b"], author=writer)
    few = queries_for_list()
    for index in range(25):
        make_memory(world.team_context, tags=[f"c{index}", "d"], author=world.owner)
    assert queries_for_list() == few


def test_list_counts_are_capped_and_every_page_stays_reachable(world, writer, make_memory, client_for, settings):
    """At most API_LIST_COUNT_CAP rows (or what the page needs, plus one) are counted (issue #17)."""
    from audit.models import AuditEvent

    settings.API_LIST_COUNT_CAP = 5
    created = [make_memory(world.team_context, content=f"m{index}") for index in range(12)]
    newest_first = [memory.pk for memory in reversed(created)]
    client = client_for(writer)
    with CaptureQueriesContext(connection) as queries:
        first = client.get(url("memory-list"), {"page_size": 2}).json()
    assert (first["count"], first["count_capped"]) == (5, True)
    assert [item["id"] for item in first["results"]] == newest_first[:2] and first["next"]
    counts = [query["sql"] for query in queries.captured_queries if "COUNT(" in query["sql"].upper()]
    assert len(counts) == 1 and "LIMIT 6" in counts[0].upper()
    # A page past the cap: counted as far as it needs, still with a next page.
    fifth = client.get(url("memory-list"), {"page_size": 2, "page": 5}).json()
    assert [item["id"] for item in fifth["results"]] == newest_first[8:10]
    assert fifth["count_capped"] is True and fifth["next"]
    sixth = client.get(url("memory-list"), {"page_size": 2, "page": 6}).json()
    assert [item["id"] for item in sixth["results"]] == newest_first[10:12]
    assert sixth["count"] == 12 and "count_capped" not in sixth and sixth["next"] is None
    last = client.get(url("memory-list"), {"page_size": 2, "page": "last"}).json()
    assert last["count"] == 12 and [item["id"] for item in last["results"]] == newest_first[10:12]
    # The audit event of a capped page does not claim an exact total.
    totals = [event.context["total"] for event in AuditEvent.objects.filter(action="memory.list").order_by("pk")]
    assert totals == [None, None, 12, 12]


def test_a_list_under_the_cap_has_its_exact_count_and_no_flag(world, writer, make_memory, client_for):
    for index in range(3):
        make_memory(world.team_context, content=f"m{index}")
    page = client_for(writer).get(url("memory-list")).json()
    assert page["count"] == 3 and "count_capped" not in page
