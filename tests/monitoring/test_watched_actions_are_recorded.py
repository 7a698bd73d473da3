"""Every action a detector watches is recorded by some code path outside the tests.

A detector waiting for an action that nothing records is an alert that can never fire (the key
rotation detector waited for ``system.key_rotation_failed`` while nothing recorded it). This
reads the project's source (not the tests) and finds, for each watched action, a call of a
recording function (``record``, ``record_many`` or a module's own ``_record...`` seam) that
names the action: ``Action.NAME`` among the call's arguments.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from audit.actions import Action
from monitoring.detectors import DETECTORS

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
SOURCE_FOLDERS = ("accounts", "api", "audit", "core", "encryption", "memories", "monitoring", "config")


def _function_name(call: ast.Call) -> str:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    if isinstance(function, ast.Name):
        return function.id
    return ""


def _actions_named(node: ast.AST) -> set[str]:
    """The ``Action.NAME`` (or ``audit.Action.NAME``) members named anywhere inside ``node``."""
    names = set()
    for child in ast.walk(node):
        if not isinstance(child, ast.Attribute):
            continue
        owner = child.value
        if (isinstance(owner, ast.Name) and owner.id == "Action") or (
            isinstance(owner, ast.Attribute) and owner.attr == "Action"
        ):
            names.add(child.attr)
    return names


@cache
def recorded_action_names() -> dict[str, list[str]]:
    """``Action`` member name -> the source files that record it."""
    found: dict[str, list[str]] = {}
    for folder in SOURCE_FOLDERS:
        for path in sorted((PROJECT_DIR / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and "record" in _function_name(node).lower():
                    arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
                    for argument in arguments:
                        for name in _actions_named(argument):
                            found.setdefault(name, []).append(str(path.relative_to(PROJECT_DIR)))
    return found


# Modules that declare, document or watch actions rather than record them.
NOT_PRODUCERS = ("audit/actions.py", "audit/schema.py", "monitoring/")


@cache
def indirectly_recorded_action_names() -> dict[str, list[str]]:
    """Member name -> producer modules that name it (``Action.NAME``, or its name or value as a
    string, for producers that pick the member by name) and call a recording function."""
    values = {member.value: member.name for member in Action}
    found: dict[str, list[str]] = {}
    for folder in SOURCE_FOLDERS:
        for path in sorted((PROJECT_DIR / folder).rglob("*.py")):
            relative = str(path.relative_to(PROJECT_DIR))
            if "migrations" in path.parts or relative.startswith(NOT_PRODUCERS):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            calls_record = any(
                isinstance(node, ast.Call) and "record" in _function_name(node).lower() for node in ast.walk(tree)
            )
            if not calls_record:
                continue
            named = _actions_named(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if node.value in Action.__members__:
                        named.add(node.value)
                    elif node.value in values:
                        named.add(values[node.value])
            for name in named:
                found.setdefault(name, []).append(relative)
    return found


# Watched actions that nothing records yet (issue #14, "every action a detector watches must be
# recorded somewhere"). Empty since issue #15 recorded context reads and lists and removed the
# actions nothing performs; an entry here is an expected failure, strict: once the action is
# recorded its case passes and the entry must leave.
KNOWN_UNRECORDED: set[tuple[str, str]] = set()


def _watched() -> list:
    pairs = []
    for detector in DETECTORS:
        for value in sorted(detector.actions):
            marks = ()
            if (detector.name, value) in KNOWN_UNRECORDED:
                marks = pytest.mark.xfail(strict=True, reason="watched but recorded nowhere yet (issue #14)")
            pairs.append(pytest.param(detector.name, value, marks=marks, id=f"{detector.name}-{value}"))
    return pairs


def test_the_source_scan_finds_known_producers():
    """The scan itself works: a producer known to exist is found (so an empty result cannot pass)."""
    found = recorded_action_names()
    assert "encryption/backups/services.py" in found["BACKUP_FAILED"]
    assert "encryption/services.py" in found["KEY_ROTATION_STARTED"]


@pytest.mark.parametrize(("detector", "action"), _watched())
def test_every_watched_action_is_recorded_somewhere(detector, action):
    name = Action(action).name
    assert recorded_action_names().get(name) or indirectly_recorded_action_names().get(name), (
        f"detector {detector!r} watches {action}, which no code outside the tests records: its alert can never fire"
    )
