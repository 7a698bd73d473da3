"""``.env.example`` lists exactly the environment variables the code reads, each under a comment.

The variables are found by a static scan of every Python file of the project for the ways it
reads the environment: django-environ's ``env("X")`` and ``env.str("X")``, ``env.bool``,
``env.int``, ... (the one ``environ.Env`` of the settings is always named ``env``);
``os.environ["X"]``, ``os.environ.get("X")`` and ``os.getenv("X")``; ``core.settings``'
``settings_from_environment(X=...)`` (one variable per keyword) and ``secret_from_environment("X")``
(X, and X_FILE for a mounted secret); and a management command option ``--...-env`` whose
default names the variable to read (``db_roles``). ``os.environ.setdefault`` and assignments give
a library its default and are not reads.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
ENV_EXAMPLE = PROJECT_DIR / ".env.example"
SKIPPED_FOLDERS = {".venv", "var", "node_modules"}
# django-environ's readers of one variable (not its *_config parsers of a URL already read).
ENVIRON_READERS = {
    "str", "bool", "int", "float", "json", "list", "tuple", "dict", "url", "path",
    "db_url", "db", "cache_url", "cache", "email_url", "email", "search_url", "search",
}  # fmt: skip
# Read by a library, not by our code, and documented for operators all the same.
READ_BY_LIBRARIES = {"DJANGO_SETTINGS_MODULE"}  # Django: which settings module
VARIABLE_LINE = re.compile(r"^#? ?([A-Z][A-Z0-9_]*)=")


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _name(node.value) == "os"


def _reads_its_first_argument(function: ast.AST) -> bool:
    """``env(...)``, ``env.str(...)`` and the like, ``os.environ.get(...)``, ``os.getenv(...)``."""
    if _name(function) == "env":
        return True
    if not isinstance(function, ast.Attribute):
        return False
    return (
        (function.attr in ENVIRON_READERS and _name(function.value) == "env")
        or (function.attr == "get" and _is_os_environ(function.value))
        or (function.attr == "getenv" and _name(function.value) == "os")
    )


def variables_read(source: str) -> set[str]:
    """The environment variables ``source`` reads, by name."""
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_os_environ(node.value):
            found.add(_literal(node.slice))
        if not isinstance(node, ast.Call):
            continue
        function, first = node.func, _literal(node.args[0]) if node.args else None
        if _reads_its_first_argument(function):
            found.add(first)
        elif _name(function) == "settings_from_environment":
            found.update(keyword.arg for keyword in node.keywords)
        elif _name(function) == "secret_from_environment" and first:
            found.update({first, f"{first}_FILE"})
        elif isinstance(function, ast.Attribute) and function.attr == "add_argument" and (first or "").endswith("-env"):
            found.update(_literal(keyword.value) for keyword in node.keywords if keyword.arg == "default")
    found.discard(None)
    return found


def python_files() -> list[Path]:
    return [
        path
        for path in PROJECT_DIR.rglob("*.py")
        if not any(part in SKIPPED_FOLDERS or part.startswith(".") for part in path.relative_to(PROJECT_DIR).parts)
    ]


def variables_the_code_reads() -> dict[str, set[str]]:
    """Each variable read anywhere in the project, with the files that read it."""
    readers: dict[str, set[str]] = {}
    for path in python_files():
        for name in variables_read(path.read_text(encoding="utf-8")):
            readers.setdefault(name, set()).add(str(path.relative_to(PROJECT_DIR)))
    return readers


def listed_variables(text: str) -> list[tuple[str, bool]]:
    """``(name, has a comment)`` for each ``NAME=`` or ``# NAME=`` line of an ``.env.example`` text.

    A variable has a comment when the line above its run of variable lines is a comment.
    """
    listed, commented = [], False
    for line in text.splitlines():
        match = VARIABLE_LINE.match(line)
        if match:
            listed.append((match.group(1), commented))
        else:
            commented = line.startswith("#")
    return listed


def test_the_scan_recognises_every_way_the_code_reads_the_environment():
    source = """
import os
env("A1")
env.str("A2", default="")
env.bool("A3", default=False)
env.list("A4", cast=int)
env.json("A5", default={})
os.environ["A6"]
os.environ.get("A7", "")
os.environ.get("A8")
os.getenv("A9")
vars().update(settings_from_environment(A10=env.str, A11=lambda name: env.list(name, cast=int)))
SECRET = secret_from_environment("A12", required=True)
parser.add_argument("--password-env", default="A13", help="...")
os.environ["WRITTEN_NOT_READ"] = "x"
os.environ.setdefault("DEFAULT_FOR_A_LIBRARY", "x")
env.db_url_config(url)
parser.add_argument("--database", default="NOT_A_VARIABLE")
"""
    assert variables_read(source) == {f"A{number}" for number in range(1, 14)} | {"A12_FILE"}


def test_env_example_lists_every_variable_the_code_reads_and_no_other():
    read = variables_the_code_reads()
    listed = {name for name, _ in listed_variables(ENV_EXAMPLE.read_text(encoding="utf-8"))}
    missing = {name: sorted(files) for name, files in read.items() if name not in listed}
    unread = sorted(listed - set(read) - READ_BY_LIBRARIES)
    assert not missing, f"read by the code but not listed in .env.example: {missing}"
    assert not unread, f"listed in .env.example but read nowhere: {unread}"


def test_every_variable_of_env_example_is_listed_once_under_a_comment():
    listed = listed_variables(ENV_EXAMPLE.read_text(encoding="utf-8"))
    names = [name for name, _ in listed]
    assert sorted({name for name in names if names.count(name) > 1}) == []
    assert [name for name, commented in listed if not commented] == []

