"""Mutation testing of the security-critical modules with cosmic-ray (docs/mutation.md).

``make mutation`` runs this script. It reads ``mutation.toml``: a list of modules, each with the
tests that cover it, and the surviving mutants that were judged equivalent (each with its reason).
For each module it plants every mutant cosmic-ray can make, one at a time, runs only that module's
tests against it, and prints the score: killed / (mutants - listed equivalents).

Mutants are planted in a copy of the tree under ``var/mutation/tree``, never in the working tree,
so a run that is interrupted (even by ``kill -9``) leaves the sources as they were.

    python scripts/mutation.py                      # every module in mutation.toml
    python scripts/mutation.py api/signing.py       # one module (a path listed in mutation.toml)
    python scripts/mutation.py --report api/signing.py   # the last run's figures, without running
    python scripts/mutation.py --survivors api/signing.py  # run the last run's survivors again
                                                           # (after new tests; the module unchanged)

An equivalent listed with ``skip = true`` (and ``mutated = "*"``) is not even run: every mutant of
that line by those operators is marked skipped right after ``cosmic-ray init`` and counted as
equivalent, which saves a full test run per mutant on lines such as annotations.

    python scripts/mutation.py --sample 3 accounts/services/lockout.py  # run one mutant in 3

``--sample N`` runs every N-th mutant (by position in the source, so every stretch of lines keeps
some) and leaves the others "not run": the score is then over the sample, and says so.

Exit status: 0 when every module run reaches ``fail-under``, 1 when one does not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "mutation.toml"
WORK = ROOT / "var" / "mutation"
TREE = WORK / "tree"


class MutationConfigError(Exception):
    """``mutation.toml`` or the command line names something that is not there."""


@dataclass(frozen=True)
class Equivalent:
    operator: str
    original: str
    mutated: str
    reason: str
    skip: bool = False


@dataclass
class Module:
    path: str
    tests: list[str]
    pytest_args: list[str]
    equivalent: list[Equivalent] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.path.replace("/", "__").removesuffix(".py")


@dataclass
class Score:
    module: str
    total: int = 0
    killed: int = 0
    incompetent: int = 0
    pending: int = 0
    equivalent: int = 0
    skipped: int = 0
    survivors: list[tuple[str, str, str]] = field(default_factory=list)
    unused_equivalents: list[Equivalent] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return self.total - self.incompetent - self.pending - self.equivalent

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.counted if self.counted else 100.0


def load_config(path: Path = CONFIG, root: Path = ROOT) -> tuple[dict, list[Module]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MutationConfigError(f"cannot read {path.name}: {exc}") from exc
    settings = data.get("settings", {})
    modules = []
    for entry in data.get("module", []):
        try:
            equivalents = [
                Equivalent(
                    item["operator"],
                    item["original"].strip(),
                    item["mutated"].strip(),
                    item["reason"],
                    bool(item.get("skip", False)),
                )
                for item in entry.get("equivalent", [])
            ]
            pytest_args = list(entry.get("pytest-args", settings.get("pytest-args", [])))
            module = Module(entry["path"], list(entry["tests"]), pytest_args, equivalents)
        except (KeyError, TypeError) as exc:
            raise MutationConfigError(f"{path.name}: a [[module]] entry lacks {exc}") from exc
        for equivalent in equivalents:
            if equivalent.skip and equivalent.mutated != "*":
                raise MutationConfigError(
                    f'{path.name}: skip = true needs mutated = "*" (every mutant of the line): {equivalent.original}'
                )
        for name in [module.path, *module.tests]:
            if not (root / name.split("::")[0]).exists():
                raise MutationConfigError(f"{path.name}: {name} does not exist")
        modules.append(module)
    return settings, modules


def copy_tree() -> None:
    """Copy the project's files (tracked and new, not ignored) into ``TREE``, fresh each run."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    if TREE.exists():
        shutil.rmtree(TREE)
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if not source.is_file():
            continue
        target = TREE / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def cosmic_ray_config(module: Module, settings: dict) -> Path:
    # -x: the first failing test kills the mutant; the rest need not run.
    pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    test_command = " ".join(shlex.quote(part) for part in [*pytest, *module.pytest_args, *module.tests])
    timeout = float(settings.get("timeout", 120))
    text = (
        "[cosmic-ray]\n"
        f"module-path = {_toml_string(module.path)}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {_toml_string(test_command)}\n\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    path = WORK / f"{module.slug}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cosmic_ray(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", *arguments], cwd=TREE, check=True)


def _source_digest(module: Module) -> str:
    return hashlib.sha256((ROOT / module.path).read_bytes()).hexdigest()


def run_module(module: Module, settings: dict, *, survivors_only: bool = False, sample: int = 1) -> None:
    """Plant every mutant of ``module`` (or, ``survivors_only``, the last run's survivors again)."""
    config = cosmic_ray_config(module, settings)
    session = WORK / f"{module.slug}.sqlite"
    digest = WORK / f"{module.slug}.sha256"
    print(f"== {module.path}: tests {' '.join(module.tests)}", flush=True)
    if survivors_only:
        # The mutants are stored by position in the source: valid only for the same source.
        if not session.exists() or not digest.exists() or digest.read_text() != _source_digest(module):
            raise MutationConfigError(f"{module.path} changed since its last full run (or has none): run it in full")
        with sqlite3.connect(session) as connection:
            connection.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
        # Survivors since listed `skip = true` need no new run.
        skipped = skip_listed_equivalents(module, session)
        if skipped:
            print(f"   {skipped} survivors of lines since listed `skip = true` are not run again", flush=True)
    else:
        session.unlink(missing_ok=True)
        digest.write_text(_source_digest(module))
        _cosmic_ray("init", str(config), str(session))
        skipped = skip_listed_equivalents(module, session)
        if skipped:
            print(f"   {skipped} mutants of lines listed `skip = true` are not run", flush=True)
        if sample > 1:
            left_out = sample_mutants(session, sample)
            print(f"   a sample of one mutant in {sample}: {left_out} are not run", flush=True)
    # The baseline runs the tests unmutated: a failing test would make every mutant look killed.
    _cosmic_ray("baseline", str(config))
    _cosmic_ray("exec", str(config), str(session))


def _skipping_equivalent(module: Module, operator: str, original: str) -> Equivalent | None:
    return next(
        (e for e in module.equivalent if e.skip and re.fullmatch(e.operator, operator) and e.original == original),
        None,
    )


def _source_lines(module: Module, root: Path) -> list[str]:
    return (root / module.path).read_text(encoding="utf-8").splitlines()


def _line_of(lines: list[str], item) -> str:
    number = item.mutations[0].start_pos[0]
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""


def skip_listed_equivalents(module: Module, session: Path, root: Path = ROOT) -> int:
    """Mark as skipped (not to be run) the pending mutants of the lines listed ``skip = true``."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    if not any(e.skip for e in module.equivalent):
        return 0
    lines = _source_lines(module, root)
    skipped = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            if _skipping_equivalent(module, item.mutations[0].operator_name, _line_of(lines, item)) is not None:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
                skipped += 1
    return skipped


def sample_mutants(session: Path, every: int) -> int:
    """Keep every ``every``-th pending mutant; mark the others skipped (counted as not run)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        # By position in the source (then operator): the same sample on every run, line by line.
        pending = sorted(
            db.pending_work_items,
            key=lambda item: (item.mutations[0].start_pos, item.mutations[0].operator_name, item.job_id),
        )
        left_out = [item for index, item in enumerate(pending) if index % every]
        for item in left_out:
            db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    return len(left_out)


def _changed_lines(diff: str) -> tuple[str, str]:
    removed = added = ""
    for line in (diff or "").splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-") and not removed:
            removed = line[1:].strip()
        elif line.startswith("+") and not added:
            added = line[1:].strip()
    return removed, added


def score_module(module: Module, session: Path | None = None, root: Path = ROOT) -> Score:
    """Count a finished (or interrupted) run's mutants; survivors that ``module`` lists as equivalent
    (and mutants skipped as listed ``skip = true``) are left out of the score, the others are
    returned to be printed."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    session = session or WORK / f"{module.slug}.sqlite"
    if not session.exists():
        raise MutationConfigError(f"no run of {module.path} yet: run scripts/mutation.py {module.path}")
    score = Score(module.path)
    used: set[Equivalent] = set()
    lines = _source_lines(module, root) if any(e.skip for e in module.equivalent) else []
    with use_db(str(session), WorkDB.Mode.open) as db:
        results = {item.job_id: result for item, result in db.completed_work_items}
        for item in db.work_items:
            score.total += 1
            result = results.get(item.job_id)
            if result is not None and result.worker_outcome == WorkerOutcome.SKIPPED:
                skipping = _skipping_equivalent(module, item.mutations[0].operator_name, _line_of(lines, item))
                if skipping is not None:
                    score.equivalent += 1
                    score.skipped += 1
                    used.add(skipping)
                else:  # left out of a --sample, or skipped by an entry since removed: not run
                    score.pending += 1
                continue
            if result is None or result.test_outcome is None:
                score.pending += 1
                continue
            if result.test_outcome == TestOutcome.INCOMPETENT:
                score.incompetent += 1
                continue
            if result.test_outcome == TestOutcome.KILLED:
                score.killed += 1
                continue
            operator = item.mutations[0].operator_name
            original, mutated = _changed_lines(result.diff)
            match = next(
                (
                    e
                    for e in module.equivalent
                    if re.fullmatch(e.operator, operator) and e.original == original and e.mutated in ("*", mutated)
                ),
                None,
            )
            if match is not None:
                score.equivalent += 1
                used.add(match)
            else:
                line = item.mutations[0].start_pos[0]
                score.survivors.append((operator, f"{module.path}:{line}: {original}", mutated))
    score.unused_equivalents = [e for e in module.equivalent if e not in used]
    return score


def print_score(score: Score) -> None:
    print(
        f"{score.module}: {score.percent:.1f} % "
        f"({score.killed} killed of {score.counted}; {score.equivalent} equivalent listed"
        f"{f' ({score.skipped} not run)' if score.skipped else ''}, "
        f"{len(score.survivors)} survived, {score.incompetent} incompetent, {score.pending} not run; "
        f"{score.total} mutants)",
        flush=True,
    )
    for operator, original, mutated in score.survivors:
        print(f"   survived {operator}\n      {original}\n   -> {mutated}")
    for equivalent in score.unused_equivalents:
        print(f"   listed equivalent no longer seen (remove it from mutation.toml): {equivalent.original}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths listed in mutation.toml (default: all)")
    parser.add_argument("--report", action="store_true", help="print the last run's scores without running")
    parser.add_argument("--survivors", action="store_true", help="run only the last run's surviving mutants again")
    parser.add_argument("--sample", type=int, default=1, metavar="N", help="run only every N-th mutant")
    arguments = parser.parse_args(argv)
    try:
        settings, modules = load_config()
        by_path = {module.path: module for module in modules}
        unknown = [name for name in arguments.modules if name not in by_path]
        if unknown:
            raise MutationConfigError(f"not listed in mutation.toml: {', '.join(unknown)}")
        selected = [by_path[name] for name in arguments.modules] or modules
        if arguments.sample < 1:
            raise MutationConfigError(f"--sample must be at least 1, not {arguments.sample}")
        WORK.mkdir(parents=True, exist_ok=True)
        if not arguments.report:
            copy_tree()
            for module in selected:
                run_module(module, settings, survivors_only=arguments.survivors, sample=arguments.sample)
        scores = [score_module(module) for module in selected]
    except MutationConfigError as exc:
        print(f"mutation: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"mutation: {' '.join(map(str, exc.cmd[2:4]))} failed with status {exc.returncode}", file=sys.stderr)
        return 2
    print()
    for score in scores:
        print_score(score)
    fail_under = float(settings.get("fail-under", 90))
    below = [score.module for score in scores if score.percent < fail_under]
    if below:
        print(f"under {fail_under:g} %: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
