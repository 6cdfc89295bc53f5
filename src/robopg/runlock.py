"""One writer per run directory: an OS file lock (``flock``) on ``<run>/run.lock``.

The kernel drops the lock when its process ends, however it ends (``kill -9`` included), so a stale lock is
never left behind. A second process that wants to write the run is refused with the PID and command of the
holder. Read-only commands (eval, compare, report, video, export) never take it.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from .errors import RunLockedError

LOCK = "run.lock"


class RunLock:
    """``with RunLock(run_dir):`` holds the run for this process; raises RunLockedError if another holds it."""

    def __init__(self, run_dir: str | Path, name: str = LOCK):
        self.path = Path(run_dir) / name
        self._file = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunLockedError(f"{self.path.parent} is in use by {holder}; wait for it to finish (or stop it) "
                                 "before writing into it") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} ({' '.join(sys.argv[:4])})")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def is_locked(run_dir: str | Path, name: str = LOCK) -> bool:
    """Whether some process holds ``run_dir``'s lock now (without taking it)."""
    path = Path(run_dir) / name
    if not path.exists():
        return False
    with open(path) as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False
