"""Run inside a fresh container of the image (tests/deploy/test_image.py): what the image holds, as JSON.

Standard library only: it runs under the image's own Python, not the test suite's.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

APP_UID = 10001
SKIPPED = {"/proc", "/sys", "/dev", "/run", "/tmp"}
# Where a key or certificate bundle of the project or a user would land; source files that merely
# name the PEM markers (the sanitiser, cryptography's parsers) are not keys.
SCANNED_FOR_KEYS = ("/app/", "/opt/", "/etc/", "/root/", "/home/", "/var/")
HISTORY_FILES = {".python_history", ".bash_history", ".ash_history", ".sh_history", ".lesshst", ".viminfo"}


# A PEM private key: its BEGIN header alone on a line. A library's documentation that quotes such
# a header inside a JSON string (botocore's IAM examples) is not a key.
PRIVATE_KEY_HEADER = re.compile(rb"(?m)^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\s*$")


def looks_like_private_key(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    return PRIVATE_KEY_HEADER.search(head) is not None


def walk() -> dict:
    found = {"git": [], "history": [], "env": [], "databases": [], "private_keys": [], "owned_by_app": []}
    for top, directories, files in os.walk("/"):
        directories[:] = [name for name in directories if os.path.join(top, name) not in SKIPPED]
        for name in directories + files:
            path = os.path.join(top, name)
            if os.lstat(path).st_uid == APP_UID or os.lstat(path).st_gid == APP_UID:
                found["owned_by_app"].append(path)
            if name == ".git":
                found["git"].append(path)
            elif name in HISTORY_FILES or name.endswith("_history"):
                found["history"].append(path)
            elif name == ".env" or name.startswith(".env."):
                found["env"].append(path)
            elif name.endswith((".sqlite3", ".sqlite3-wal", ".db")):
                found["databases"].append(path)
        for name in files:
            path = os.path.join(top, name)
            scanned = path.startswith(SCANNED_FOR_KEYS) and not name.endswith((".py", ".pyc"))
            if scanned and looks_like_private_key(path):
                found["private_keys"].append(path)
    return found


def unresolved_libraries() -> tuple[int, list[str]]:
    """How many shared objects the virtual environment has, and every ``not found`` of ldd for them."""
    objects = []
    for top, _, files in os.walk("/opt/venv"):
        objects += [os.path.join(top, name) for name in files if ".so" in name and not name.endswith(".py")]
    missing = []
    for path in objects:
        output = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        missing += [f"{path}: {line.strip()}" for line in output.splitlines() if "not found" in line]
    return len(objects), missing


def main() -> None:
    found = walk()
    project_only = ("/app/tests", "/app/bench", "/app/var", "/app/scripts", "/app/.ci")
    found["tests"] = [path for path in project_only if os.path.exists(path)]
    compilers = ("gcc", "cc", "g++", "c++", "clang", "ld", "as", "make")
    found["compilers"] = [name for name in compilers if shutil.which(name)]
    found["pip"] = [name for name in ("pip", "pip3") if shutil.which(name)]
    if importlib.util.find_spec("pip"):
        found["pip"].append("import pip")
    found["pip_cache"] = [path for path in ("/root/.cache", "/nonexistent/.cache", "/tmp/pip") if os.path.exists(path)]
    found["app"] = sorted(os.listdir("/app"))
    found["shared_objects"], found["unresolved"] = unresolved_libraries()
    found["python"] = sys.version.split()[0]
    with open("/opt/venv/installed-packages.txt") as handle:
        found["packages"] = handle.read().split()
    print(json.dumps(found))


main()
