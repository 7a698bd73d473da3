"""The layering contract of docs/architecture.md, read from the imports of the code itself.

Lower floors never import higher ones, ``config`` is imported by no app, and no two modules
import each other round a cycle. The test reads every import statement (module level and inside
functions alike: a lazy import is a dependency too) with ``ast``.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("core", "encryption", "audit", "accounts", "api", "memories", "monitoring", "config")
# The crypto core: the other ground-floor room (Django, cryptography and libraries only), with
# the encryption app's settings, which it reads.
CRYPTO_CORE = {f"encryption.{name}" for name in ("conf", "crypto", "errors", "fields", "keyring", "streams")}

# Which rooms each room may import (besides itself, Django and libraries).
ALLOWED = {
    "core": set(),
    "crypto core": {"core"},
    "encryption": {"audit", "crypto core", "core"},
    "audit": {"crypto core", "core"},
    "accounts": {"audit", "crypto core", "core"},
    "api": {"accounts", "audit", "crypto core", "core"},
    "memories": {"api", "accounts", "audit", "crypto core", "encryption", "core"},
    "monitoring": {"audit", "accounts.selectors", "core"},
    "config": set(APPS) | {"crypto core"},
}

# Back edges that are part of the design, each with its reason; everything else must be acyclic.
ALLOWED_BACK_EDGES = {
    # A service enqueues its own Celery task after commit; the task module wraps the service.
    ("accounts.services.notifications", "accounts.tasks"),
    ("monitoring.services.notifications", "monitoring.tasks"),
    # Model hooks that hand over to their service: QuerySet.update() of privilege fields is
    # audited (django-auditlog misses bulk updates), and django-otp calls Device.verify_token.
    ("accounts.models.user", "accounts.services.privileges"),
    ("accounts.models.mfa", "accounts.services.mfa"),
}


def _modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _room(module: str) -> str:
    if module in CRYPTO_CORE or any(module.startswith(name + ".") for name in CRYPTO_CORE):
        return "crypto core"
    return module.split(".")[0]


def _allowed(source: str, target: str) -> bool:
    source_room, target_room = _room(source), _room(target)
    if source_room == target_room:
        return True
    allowed = ALLOWED[source_room]
    return target_room in allowed or any(target == name or target.startswith(name + ".") for name in allowed)


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for module, path in MODULES.items():
        for line, imported in _imports(path):
            target = _resolve(imported)
            if target and target != module and not module.startswith(target + "."):
                graph[module].setdefault(target, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_rooms_are_all_there():
    assert {_room(module) for module in MODULES} == set(ALLOWED)


def test_imports_point_down():
    wrong = [
        f"{MODULES[source].relative_to(ROOT)}:{line} imports {target}"
        for source, targets in _graph().items()
        for target, line in targets.items()
        if not _allowed(source, target)
    ]
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()
    for source, target in ALLOWED_BACK_EDGES:
        assert target in graph.get(source, {}), f"{source} no longer imports {target}: drop the exception"
        del graph[source][target]
    assert _cycles(graph) == []


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("audit.services", "accounts.models", False),
        ("core.context", "audit.services", False),
        ("encryption.keyring", "audit.services", False),
        ("encryption.services", "audit.services", True),
        ("monitoring.selectors", "accounts.models", False),
        ("monitoring.selectors", "accounts.selectors", True),
        ("accounts.services.mfa", "config.settings.base", False),
        ("config.urls", "monitoring.views", True),
    ],
)
def test_the_contract_refuses_what_it_should(source, target, allowed):
    assert _allowed(source, target) is allowed


def test_a_cycle_is_found():
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
