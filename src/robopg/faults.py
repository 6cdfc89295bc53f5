"""Named fault points, for testing that nothing is lost whatever happens.

Production code calls ``point("checkpoint.before_rename")`` where a crash would matter. Normally that is
one comparison. With ``ROBOPG_FAULT=NAME@N`` in the environment, the N-th time the process reaches NAME it
kills itself with SIGKILL (as ``kill -9``, a power cut or the OOM killer would), or, with
``ROBOPG_FAULT=NAME@N:enospc`` (or ``:eio``, ``:erofs``), raises that OSError there instead, as a full disk
would. ``tests/test_faults.py`` runs training under every point and checks that resume gives the numbers
of a run never interrupted.
"""

from __future__ import annotations

import errno
import os
import signal

ERRNOS = {"enospc": errno.ENOSPC, "eio": errno.EIO, "erofs": errno.EROFS}


def _plan() -> dict[str, tuple[int, str]] | None:
    spec = os.environ.get("ROBOPG_FAULT", "")
    if not spec:
        return None
    plan = {}
    for item in spec.split(","):
        name, _, rest = item.partition("@")
        count, _, action = rest.partition(":")
        plan[name.strip()] = (int(count or 1), action or "kill")
    return plan


_PLAN = _plan()
_hits: dict[str, int] = {}


def point(name: str, path: object = "") -> None:
    """A place where a fault may be injected; ``path`` is the file an injected OSError names."""
    if _PLAN is None or name not in _PLAN:
        return
    _hits[name] = _hits.get(name, 0) + 1
    count, action = _PLAN[name]
    if _hits[name] != count:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = ERRNOS[action]
    raise OSError(code, os.strerror(code), str(path))
