"""Judging a process's runtime posture by the monitoring settings.

``core.posture`` reads what a process may do; this module says which of it is a problem, by
``MONITORING_POSTURE_CHECKS`` and ``MONITORING_POSTURE_CAPABILITY_BASELINE``. The
``process_posture`` detector judges the posture each process recorded when it started
(``system.process_started``); ``/readyz`` and ``/metrics`` show the posture of the web process that
answers them, read when asked (a few small files of ``/proc``).

A value the reader could not read (``unknown``) is never a problem by itself: the event and
``/readyz`` show it as unknown, and the alert stays for what is known to be wrong.
"""

from __future__ import annotations

from core.posture import UNKNOWN, Posture, read_posture
from monitoring import conf

# The checks of MONITORING_POSTURE_CHECKS, in the order an alert names them.
CHECK_NAMES = ("root_user", "root_fs_writable", "capabilities")
SHOWN_CAPABILITIES = 5  # how many extra capabilities an alert's summary names before "and n more"


def capability_baseline() -> frozenset[str]:
    """The effective capabilities a process may hold without an alert (default none)."""
    return frozenset(conf.get("MONITORING_POSTURE_CAPABILITY_BASELINE"))


def capabilities_beyond_baseline(effective: list[str] | str) -> list[str] | str:
    """The effective capabilities not in the baseline, in capability order (``unknown`` if unread)."""
    if not isinstance(effective, list):
        return UNKNOWN
    baseline = capability_baseline()
    return [str(name) for name in effective if name not in baseline]


def posture_problems(*, uid, root_fs_writable, cap_effective) -> dict[str, str]:
    """``{check: what is wrong}`` for each enabled check the posture fails, in ``CHECK_NAMES`` order."""
    enabled = set(conf.get("MONITORING_POSTURE_CHECKS"))
    problems = {}
    if "root_user" in enabled and type(uid) is int and uid == 0:
        problems["root_user"] = "runs as root (uid 0)"
    if "root_fs_writable" in enabled and root_fs_writable is True:
        problems["root_fs_writable"] = "has a writable root filesystem"
    extra = capabilities_beyond_baseline(cap_effective)
    if "capabilities" in enabled and isinstance(extra, list) and extra:
        shown = ", ".join(extra[:SHOWN_CAPABILITIES])
        more = f" and {len(extra) - SHOWN_CAPABILITIES} more" if len(extra) > SHOWN_CAPABILITIES else ""
        problems["capabilities"] = f"holds {len(extra)} effective capabilities beyond the baseline ({shown}{more})"
    return problems


def posture_summary(posture: Posture | None = None) -> dict:
    """What ``/readyz`` shows of the answering process: uid, root filesystem, extra capabilities,
    no_new_privs, revision, and the names of the checks it fails."""
    posture = posture or read_posture()
    return {
        "uid": posture.uid,
        "root_fs_writable": posture.root_fs_writable,
        "extra_capabilities": capabilities_beyond_baseline(posture.cap_effective),
        "no_new_privs": posture.no_new_privs,
        "revision": posture.revision,
        "problems": list(
            posture_problems(
                uid=posture.uid, root_fs_writable=posture.root_fs_writable, cap_effective=posture.cap_effective
            )
        ),
    }
