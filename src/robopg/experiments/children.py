"""Child processes of the experiment tools (sweep, tune): each run is ``python -m robopg.cli train|resume``
in a process of its own. The environment they get, and the folder lock that lists them, so that a sweep or
study killed with -9 is detected (and its still-running children named) by the next one to start there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def child_env() -> dict[str, str]:
    # The children must import this same robopg, even when it is not installed (PYTHONPATH=src).
    src = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def alive(pid: int, needle: str) -> bool:
    """Is ``pid`` running, with ``needle`` in its command line (so a reused pid is not mistaken)?"""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        return needle in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True


def check_lock(lock: Path, what: str, error: type[Exception]) -> None:
    """Raise ``error`` if the process that wrote ``lock`` (a sweep, a study) or one of its children still runs."""
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
        return
    if alive(int(data.get("pid", -1)), "robopg"):
        raise error(f"{lock.parent} is being run by another {what} (pid {data['pid']}); stop it first")
    for run_dir, pid in data.get("children", {}).items():
        if alive(int(pid), run_dir):
            raise error(f"{run_dir} is still being trained by pid {pid}, left over from a {what} that was killed; "
                        "stop that process first")


def write_lock(lock: Path, jobs: list) -> None:
    """Record this process and its running children (``jobs`` with ``run_dir`` and ``proc``) in ``lock``."""
    running = {str(j.run_dir): j.proc.pid for j in jobs if j.proc is not None and j.proc.poll() is None}
    tmp = lock.with_name(lock.name + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "children": running}))
    os.replace(tmp, lock)


def last_error(log: Path) -> str:
    """The line of a child's log that says why it failed."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for ln in reversed(lines[-40:]):
        if ln.startswith("robopg: error:") or "Error" in ln:
            return ln
    return lines[-1] if lines else ""
