"""The runtime posture of this process: who it runs as and what it may do (standard library only).

``read_posture()`` answers, for the process that calls it: its effective uid and gid, whether the
root filesystem is writable, its effective, permitted and bounding capability sets by name,
``no_new_privs``, whether it seems to run in a container, and the image revision. It never
raises: a field it cannot read is ``UNKNOWN`` (the string ``"unknown"``).

Sources, all of them Linux's own reports about the calling process:

* **uid, gid**: ``os.geteuid()``, ``os.getegid()`` (the effective ids: those decide what the
  process may touch).
* **capabilities, no_new_privs**: ``CapEff``, ``CapPrm``, ``CapBnd`` and ``NoNewPrivs`` of
  ``/proc/self/status``; a mask is decoded bit by bit with the Linux capability numbers
  (``include/uapi/linux/capability.h``; a bit newer than this table is named ``cap_<n>``).
* **root filesystem**: the mount flags of ``/`` in ``/proc/self/mountinfo`` (``ro`` in the
  per-mount or the superblock options means read-only). Only when that cannot be read (no
  ``/proc``, or no entry for ``/`` as in a chroot) does it fall back to creating and removing a
  uniquely named file in ``/``. The mount flag comes first because it answers what a deployment
  sets (Docker's ``--read-only``, Kubernetes' ``readOnlyRootFilesystem``) whoever the process
  runs as: a non-root process on a writable root cannot create a file in ``/`` (owned by root,
  mode 0755), so the write attempt would report "read-only" for exactly the unhardened case, the
  application's own folders left writable; and reading a file has no side effect, where the
  write attempt, run as root, writes to ``/`` and leaves the file behind if the process dies
  between the two steps. ``root_fs_source`` says which answered: ``mountinfo``, ``write_probe``
  or ``unknown``.
* **container** (best effort): ``/.dockerenv`` (Docker), ``/run/.containerenv`` (Podman), a
  Kubernetes service-account folder, a container runtime named in the cgroup of the process or
  of PID 1 (cgroup v1: ``docker``, ``kubepods``, ``containerd``, ``libpod``, ``lxc``), or an
  ``overlay`` root filesystem (how images are mounted). ``container_evidence`` names the first
  sign found; ``container`` is ``False`` when none was, which does not prove there is no
  container (cgroup v2 with its own namespace shows none of these).
* **revision**: the ``IMAGE_REVISION`` environment variable the image sets; ``unknown`` when it is
  unset or empty, ``invalid`` when it is not a short revision-like text (letters, digits and
  ``._:+/@-``, at most 128 characters), so nothing arbitrary travels on into events or metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"
INVALID = "invalid"

# The Linux capability numbers, in order: CAPABILITY_NAMES[n] is capability n (capability.h).
CAPABILITY_NAMES: tuple[str, ...] = (
    "cap_chown",  # 0
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",  # 5
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",  # 10
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",  # 15
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",  # 20
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",  # 25
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",  # 30
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",  # 35
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",  # 40
)
CAPABILITY_MASK = re.compile(r"[0-9a-fA-F]{1,16}")  # a 64-bit mask as /proc prints it
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/@-]{0,127}")
CONTAINER_CGROUP_WORDS = ("docker", "kubepods", "containerd", "libpod", "lxc")
HOST_MAX_LENGTH = 255


def decode_capabilities(mask: str) -> list[str]:
    """The names of the capabilities set in ``mask`` (hex, as ``/proc/self/status`` prints it), in order.

    ``0000000000000000`` is ``[]``; a bit beyond the table is named ``cap_<n>``. Anything but
    1 to 16 hex digits raises ``ValueError``.
    """
    if not CAPABILITY_MASK.fullmatch(mask):
        raise ValueError(f"not a capability mask: {mask[:40]!r}")
    value = int(mask, 16)
    return [
        CAPABILITY_NAMES[bit] if bit < len(CAPABILITY_NAMES) else f"cap_{bit}"
        for bit in range(value.bit_length())
        if value >> bit & 1
    ]


def parse_status(text: str) -> dict[str, str]:
    """``/proc/<pid>/status`` as ``{field: value}`` (``"CapEff": "000001ffffffffff"``)."""
    fields = {}
    for line in text.splitlines():
        name, separator, value = line.partition(":")
        if separator:
            fields[name.strip()] = value.strip()
    return fields


def root_mount_writable(mountinfo: str) -> bool | None:
    """Whether ``/`` is mounted read-write, from a ``/proc/self/mountinfo`` text; ``None`` if it has no ``/``.

    Each line: id, parent, major:minor, root, mount point, per-mount options, optional fields,
    ``-``, filesystem type, source, superblock options (proc(5)). The last entry for ``/`` is
    the one in effect (a later mount stacks on an earlier one); ``ro`` in either option list
    makes it read-only.
    """
    verdict = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[4] != "/":
            continue
        options = set(fields[5].split(","))
        if "-" in fields[6:]:
            separator = fields.index("-", 6)
            if len(fields) > separator + 3:
                options |= set(fields[separator + 3].split(","))
        verdict = "ro" not in options
    return verdict


def root_filesystem_type(mountinfo: str) -> str | None:
    """The filesystem type of the last ``/`` entry of a mountinfo text (``overlay``, ``ext4``...)."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[4] == "/" and "-" in fields[6:]:
            separator = fields.index("-", 6)
            if len(fields) > separator + 1:
                found = fields[separator + 1]
    return found


def write_probe(root: Path) -> bool | str:
    """Try to create and remove a uniquely named file in ``root``: True, False, or ``UNKNOWN``.

    ``False`` means this process may not write there (read-only filesystem, or no permission);
    any other failure is ``UNKNOWN``.
    """
    probe = root / f".posture-probe-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except PermissionError:
        return False
    except OSError as error:
        return False if error.errno == errno.EROFS else UNKNOWN
    os.close(descriptor)
    with contextlib.suppress(OSError):  # created, so writable, whether or not it goes away
        os.unlink(probe)
    return True


@dataclasses.dataclass(frozen=True)
class Posture:
    """What ``read_posture`` found; each field may be ``UNKNOWN``."""

    pid: int
    host: str
    uid: int | str
    gid: int | str
    root_fs_writable: bool | str
    root_fs_source: str
    cap_effective: list[str] | str
    cap_permitted: list[str] | str
    cap_bounding: list[str] | str
    no_new_privs: bool | str
    container: bool
    container_evidence: str
    revision: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (the context of ``system.process_started``)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _effective_id(name: str) -> int | str:
    function = getattr(os, name, None)
    if function is None:  # not a POSIX system
        return UNKNOWN
    try:
        return int(function())
    except Exception:
        return UNKNOWN


def _capabilities(status: dict[str, str], field: str) -> list[str] | str:
    value = status.get(field)
    if value is None:
        return UNKNOWN
    try:
        return decode_capabilities(value)
    except ValueError:
        return UNKNOWN


def _no_new_privs(status: dict[str, str]) -> bool | str:
    value = status.get("NoNewPrivs")
    return {"0": False, "1": True}.get(value or "", UNKNOWN)


def _root_filesystem(proc: Path, root: Path, mountinfo: str | None) -> tuple[bool | str, str]:
    if mountinfo is not None:
        verdict = root_mount_writable(mountinfo)
        if verdict is not None:
            return verdict, "mountinfo"
    verdict = write_probe(root)
    return verdict, ("unknown" if verdict == UNKNOWN else "write_probe")


def _container(proc: Path, root: Path, mountinfo: str | None) -> tuple[bool, str]:
    for marker in (".dockerenv", "run/.containerenv", "var/run/secrets/kubernetes.io/serviceaccount"):
        try:
            if (root / marker).exists():
                return True, f"/{marker}"
        except OSError:
            continue
    for process in ("self", "1"):
        cgroup = _read_text(proc / process / "cgroup") or ""
        for word in CONTAINER_CGROUP_WORDS:
            if word in cgroup:
                return True, f"cgroup:{word}"
    if mountinfo is not None and root_filesystem_type(mountinfo) == "overlay":
        return True, "overlay root filesystem"
    return False, ""


def _revision() -> str:
    value = os.environ.get("IMAGE_REVISION", "").strip()
    if not value:
        return UNKNOWN
    return value if REVISION.fullmatch(value) else INVALID


def _host() -> str:
    try:
        return socket.gethostname()[:HOST_MAX_LENGTH] or UNKNOWN
    except Exception:
        return UNKNOWN


def read_posture(*, proc: Path | str = "/proc", root: Path | str = "/") -> Posture:
    """The posture of the calling process; never raises (unreadable fields are ``UNKNOWN``).

    ``proc`` and ``root`` name where ``/proc`` and the root filesystem are (tests point them at a
    prepared folder); the uid, gid, pid, host name and revision always come from the process itself.
    """
    proc, root = Path(proc), Path(root)
    status_text = _read_text(proc / "self" / "status")
    status = parse_status(status_text) if status_text is not None else {}
    mountinfo = _read_text(proc / "self" / "mountinfo")
    try:
        writable, source = _root_filesystem(proc, root, mountinfo)
    except Exception:
        writable, source = UNKNOWN, "unknown"
    try:
        container, evidence = _container(proc, root, mountinfo)
    except Exception:
        container, evidence = False, ""
    return Posture(
        pid=os.getpid(),
        host=_host(),
        uid=_effective_id("geteuid"),
        gid=_effective_id("getegid"),
        root_fs_writable=writable,
        root_fs_source=source,
        cap_effective=_capabilities(status, "CapEff"),
        cap_permitted=_capabilities(status, "CapPrm"),
        cap_bounding=_capabilities(status, "CapBnd"),
        no_new_privs=_no_new_privs(status),
        container=container,
        container_evidence=evidence,
        revision=_revision(),
    )
