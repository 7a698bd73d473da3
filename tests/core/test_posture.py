"""The posture reader: against this process's real /proc, a prepared /proc, and a restricted process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.posture import (
    CAPABILITY_NAMES,
    UNKNOWN,
    decode_capabilities,
    read_posture,
    root_mount_writable,
    write_probe,
)

PROJECT_DIR = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")

DOCKER_DEFAULT = [
    "cap_chown", "cap_dac_override", "cap_fowner", "cap_fsetid", "cap_kill", "cap_setgid", "cap_setuid",
    "cap_setpcap", "cap_net_bind_service", "cap_net_raw", "cap_sys_chroot", "cap_mknod", "cap_audit_write",
    "cap_setfcap",
]  # fmt: skip
# A container started with Docker's --read-only: the overlay mounted ro per mount, rw underneath.
READ_ONLY_ROOT = (
    "1000 900 0:52 / / ro,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A,"
    "upperdir=/var/lib/docker/overlay2/B/diff,workdir=/var/lib/docker/overlay2/B/work\n"
    "1001 1000 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
    "1002 1000 0:56 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,size=65536k\n"
)
WRITABLE_ROOT = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n22 27 0:21 / /proc rw,relatime - proc proc rw\n"


def fake_proc(tmp_path: Path, *, status: str | None = None, mountinfo: str | None = None, cgroup: str = "0::/\n"):
    """A /proc tree with only what the reader reads of it, and an empty root folder beside it."""
    proc, root = tmp_path / "proc", tmp_path / "root"
    (proc / "self").mkdir(parents=True)
    (proc / "1").mkdir()
    root.mkdir()
    if status is not None:
        (proc / "self" / "status").write_text(status)
    if mountinfo is not None:
        (proc / "self" / "mountinfo").write_text(mountinfo)
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "1" / "cgroup").write_text(cgroup)
    return proc, root


def status_text(*, effective: str, permitted: str | None = None, bounding: str = "000001ffffffffff", nnp: str = "0"):
    return (
        "Name:\tpython\nUid:\t1000\t1000\t1000\t1000\n"
        f"CapInh:\t0000000000000000\nCapPrm:\t{permitted or effective}\nCapEff:\t{effective}\n"
        f"CapBnd:\t{bounding}\nCapAmb:\t0000000000000000\nNoNewPrivs:\t{nnp}\nSeccomp:\t2\n"
    )


# --- the real /proc of this process -------------------------------------------------------------
@linux_only
def test_the_reader_reports_this_process_as_the_kernel_and_other_tools_see_it():
    posture = read_posture()
    assert posture.pid == os.getpid()
    assert posture.uid == os.geteuid() and posture.gid == os.getegid()
    assert posture.root_fs_source == "mountinfo"
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    assert posture.no_new_privs is (fields["NoNewPrivs"].strip() == "1")
    for field, attribute in (("CapEff", "cap_effective"), ("CapPrm", "cap_permitted"), ("CapBnd", "cap_bounding")):
        assert getattr(posture, attribute) == decode_capabilities(fields[field].strip())
    if shutil.which("findmnt"):  # util-linux reads the same mount table its own way
        options = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", "/"], capture_output=True, text=True).stdout
        assert posture.root_fs_writable is ("ro" not in options.strip().split(","))
    assert json.loads(json.dumps(posture.as_dict())) == posture.as_dict()  # ready for an audit context


@pytest.mark.skipif(shutil.which("capsh") is None, reason="needs libcap's capsh to compare with")
@pytest.mark.parametrize("mask", ["0000000000000000", "00000000a80425fb", "000001ffffffffff", "000001fffeffffff"])
def test_masks_decode_to_the_names_libcap_gives_them(mask):
    decoded = subprocess.run(["capsh", f"--decode={mask}"], capture_output=True, text=True, check=True).stdout
    names = decoded.strip().partition("=")[2]
    assert decode_capabilities(mask) == (names.split(",") if names else [])


# --- a prepared /proc: the decoding of known values ---------------------------------------------
def test_no_capabilities_decode_to_none(tmp_path):
    proc, root = fake_proc(tmp_path, status=status_text(effective="0000000000000000", bounding="0000000000000000",
                                                         nnp="1"), mountinfo=READ_ONLY_ROOT)
    posture = read_posture(proc=proc, root=root)
    assert posture.cap_effective == [] and posture.cap_permitted == [] and posture.cap_bounding == []
    assert posture.no_new_privs is True
    assert posture.root_fs_writable is False and posture.root_fs_source == "mountinfo"


def test_dockers_default_set_decodes_to_its_fourteen_capabilities(tmp_path):
    proc, root = fake_proc(tmp_path, status=status_text(effective="00000000a80425fb"), mountinfo=WRITABLE_ROOT)
    posture = read_posture(proc=proc, root=root)
    assert posture.cap_effective == DOCKER_DEFAULT
    assert posture.cap_bounding == list(CAPABILITY_NAMES)
    assert posture.no_new_privs is False
    assert posture.root_fs_writable is True


def test_a_capability_newer_than_the_table_is_named_by_its_number():
    assert decode_capabilities("0000060000000400") == ["cap_net_bind_service", "cap_41", "cap_42"]
    assert len(CAPABILITY_NAMES) == 41 and CAPABILITY_NAMES[40] == "cap_checkpoint_restore"


@pytest.mark.parametrize("mask", ["", "xyz", "0" * 17, "00000000 a80425fb", "-1"])
def test_a_malformed_mask_is_refused_by_the_decoder_and_unknown_to_the_reader(tmp_path, mask):
    with pytest.raises(ValueError, match="not a capability mask"):
        decode_capabilities(mask)
    proc, root = fake_proc(tmp_path, status=status_text(effective=mask, nnp="maybe"), mountinfo=WRITABLE_ROOT)
    posture = read_posture(proc=proc, root=root)
    assert posture.cap_effective == UNKNOWN and posture.cap_permitted == UNKNOWN
    assert posture.no_new_privs == UNKNOWN


def test_without_a_readable_proc_every_proc_field_is_unknown_and_nothing_raises(tmp_path):
    proc, root = fake_proc(tmp_path)  # no status, no mountinfo
    posture = read_posture(proc=proc, root=tmp_path / "missing-root")
    assert (posture.cap_effective, posture.cap_permitted, posture.cap_bounding) == (UNKNOWN, UNKNOWN, UNKNOWN)
    assert posture.no_new_privs == UNKNOWN
    assert (posture.root_fs_writable, posture.root_fs_source) == (UNKNOWN, "unknown")
    assert posture.uid == os.geteuid()  # from the process itself


# --- the root filesystem ------------------------------------------------------------------------
def test_ro_in_the_per_mount_or_the_superblock_options_means_read_only():
    assert root_mount_writable(READ_ONLY_ROOT) is False
    assert root_mount_writable("27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 ro,errors=remount-ro\n") is False
    assert root_mount_writable(WRITABLE_ROOT) is True
    assert root_mount_writable("22 27 0:21 / /proc rw - proc proc rw\n") is None  # no entry for /


def test_the_last_mount_on_root_is_the_one_in_effect():
    assert root_mount_writable(WRITABLE_ROOT + READ_ONLY_ROOT) is False
    assert root_mount_writable(READ_ONLY_ROOT + WRITABLE_ROOT) is True


def test_without_a_mount_entry_for_root_the_reader_tries_a_write_and_leaves_nothing(tmp_path):
    only_proc = "22 27 0:21 / /proc rw - proc proc rw\n"  # as in a chroot: no entry for /
    proc, root = fake_proc(tmp_path, status=status_text(effective="0"), mountinfo=only_proc)
    posture = read_posture(proc=proc, root=root)
    assert (posture.root_fs_writable, posture.root_fs_source) == (True, "write_probe")
    assert list(root.iterdir()) == []


def test_a_write_probe_that_cannot_tell_is_unknown(tmp_path):
    assert write_probe(tmp_path / "no-such-folder") == UNKNOWN
    assert write_probe(tmp_path) is True and list(tmp_path.iterdir()) == []


# --- container and revision ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("marker", "cgroup", "mountinfo", "evidence"),
    [
        (".dockerenv", "0::/\n", WRITABLE_ROOT, "/.dockerenv"),
        ("run/.containerenv", "0::/\n", WRITABLE_ROOT, "/run/.containerenv"),
        (None, "11:memory:/kubepods/burstable/pod1234/abcd\n", WRITABLE_ROOT, "cgroup:kubepods"),
        ("var/run/secrets/kubernetes.io/serviceaccount/token", "0::/\n", WRITABLE_ROOT,
         "/var/run/secrets/kubernetes.io/serviceaccount"),
        (None, "0::/\n", READ_ONLY_ROOT, "overlay root filesystem"),
        (None, "0::/\n", WRITABLE_ROOT, ""),
    ],
)
def test_signs_of_a_container_are_reported_with_the_first_found(tmp_path, marker, cgroup, mountinfo, evidence):
    proc, root = fake_proc(tmp_path, status=status_text(effective="0"), mountinfo=mountinfo, cgroup=cgroup)
    if marker:
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("")
    posture = read_posture(proc=proc, root=root)
    assert (posture.container, posture.container_evidence) == (bool(evidence), evidence)


@pytest.mark.parametrize(
    ("value", "reported"),
    [
        (None, "unknown"),
        ("", "unknown"),
        ("3f2c1e9d0b7a", "3f2c1e9d0b7a"),
        ("v1.4.2+build.7", "v1.4.2+build.7"),
        ("sha256:0123abcd", "sha256:0123abcd"),
        ("main 3f2c1e9", "invalid"),
        ("3f2c\nforged line", "invalid"),
        ("a" * 129, "invalid"),
    ],
)
def test_the_revision_comes_from_image_revision_and_only_when_it_looks_like_one(monkeypatch, tmp_path, value, reported):
    if value is None:
        monkeypatch.delenv("IMAGE_REVISION", raising=False)
    else:
        monkeypatch.setenv("IMAGE_REVISION", value)
    proc, root = fake_proc(tmp_path)
    assert read_posture(proc=proc, root=root).revision == reported


# --- a real restricted process ------------------------------------------------------------------
@linux_only
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux's setpriv")
@pytest.mark.skipif(os.geteuid() != 0, reason="setpriv can change the uid only when run as root")
def test_a_process_restricted_by_setpriv_reads_as_unprivileged():
    """Nobody, no capability at all, no_new_privs: what a hardened container's process shows.

    The root filesystem of this machine stays writable for it (the mount says so) although the
    process cannot create a file in ``/``: why the reader trusts the mount flags over a write.
    """
    script = (
        "import json; from pathlib import Path; from core.posture import read_posture, write_probe; "
        "print(json.dumps({'posture': read_posture().as_dict(), 'probe': write_probe(Path('/'))}))"
    )
    completed = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
         "--no-new-privs", sys.executable, "-c", script],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result = json.loads(completed.stdout)
    posture = result["posture"]
    assert (posture["uid"], posture["gid"]) == (65534, 65534)
    assert posture["cap_effective"] == [] and posture["cap_permitted"] == [] and posture["cap_bounding"] == []
    assert posture["no_new_privs"] is True
    mine = read_posture()
    assert posture["root_fs_source"] == "mountinfo" and posture["root_fs_writable"] == mine.root_fs_writable
    if mine.root_fs_writable is True:
        assert result["probe"] is False  # the write attempt would have called this disk read-only
