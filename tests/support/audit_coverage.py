"""Provable audit coverage: the ``audit_coverage`` mark and what checks it (issue #15).

A test marked ``@pytest.mark.audit_coverage("auth.login_failed", ...)`` promises that, driven
through a real entry point (an HTTP request, an API call, a management command, a Celery task),
it makes the project record each named action. ``tests/conftest.py`` holds it to that promise at
run time: the test fails when one of its actions was not recorded while it ran (what its fixtures
recorded before it does not count). ``tests/audit/test_coverage.py`` reads every mark of the
suite from the source and fails when an action of ``audit.Action`` has none, when a mark names an
action that does not exist, or when a marked test calls ``record()`` itself.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

MARK = "audit_coverage"
TESTS_DIR = Path(__file__).resolve().parent.parent
# Calls that write an event directly rather than through an entry point.
DIRECT_RECORDERS = frozenset({"record", "record_many"})
# What a marked test's source shows of its entry point: a test client (HTTP request, API call,
# the console), a management command, a Celery task, a browser page or a process.
ENTRY_POINT_SIGNS = (
    "client", "Client(", "call_command", "run_command", ".delay(", ".apply(", "apply_async", "page.goto", "subprocess",
    "login(", "_command(",
)


def has_entry_point(source: str) -> bool:
    """Whether a test's source shows one of the entry points (see ``ENTRY_POINT_SIGNS``)."""
    return any(sign in source for sign in ENTRY_POINT_SIGNS)


def last_event_id() -> int:
    """The id of the newest audit event, after writing the events held by the connection."""
    from audit.models import AuditEvent
    from audit.services import write_held_events

    write_held_events()
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def actions_recorded_since(event_id: int) -> set[str]:
    """The actions of the events written after ``event_id``."""
    from audit.models import AuditEvent
    from audit.services import write_held_events

    write_held_events()
    return set(AuditEvent.objects.filter(id__gt=event_id).values_list("action", flat=True).distinct())


def _mark_call_actions(node: ast.AST) -> list[str] | None:
    """The string arguments of ``pytest.mark.audit_coverage(...)``, or ``None`` if ``node`` is not one."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == MARK):
        return None
    return [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]


def _calls_a_recorder(function: ast.AST) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in DIRECT_RECORDERS:
                return True
    return False


@cache
def marked_tests() -> dict[str, list[tuple[str, bool]]]:
    """Action value -> ``(test id, whether the test breaks the rules)`` for every mark in tests/.

    A test breaks the rules when it calls ``record()`` itself or its source shows no entry point.

    A mark on a ``pytest.param`` inside a module-level table counts for the test that the table
    parametrizes; its test id is the table's module and the constant's name.
    """
    found: dict[str, list[tuple[str, bool]]] = {}
    for path in sorted(TESTS_DIR.rglob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        relative = path.relative_to(TESTS_DIR.parent)
        # The module's own helpers: a test may reach its entry point through one (``login(client, ...)``).
        helpers = {
            node.name: ast.get_source_segment(text, node) or ""
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("test")
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                called = {
                    call.func.id
                    for call in ast.walk(node)
                    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                }
                reached = [ast.get_source_segment(text, node) or "", *(helpers[name] for name in called & set(helpers))]
                broken = _calls_a_recorder(node) or not any(has_entry_point(source) for source in reached)
                for decorator in node.decorator_list:
                    for action in _mark_call_actions(decorator) or ():
                        found.setdefault(action, []).append((f"{relative}::{node.name}", broken))
            elif isinstance(node, ast.Call) and not _is_decorator_of_any(tree, node):
                for action in _mark_call_actions(node) or ():
                    found.setdefault(action, []).append((f"{relative}::<table>", False))
    return found


@cache
def _decorators(tree: ast.AST) -> frozenset[int]:
    return frozenset(
        id(decorator)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for decorator in node.decorator_list
    )


def _is_decorator_of_any(tree: ast.AST, node: ast.AST) -> bool:
    return id(node) in _decorators(tree)
