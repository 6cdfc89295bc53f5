"""Complete, atomically written checkpoints, and loading that refuses anything corrupt or mismatched."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from . import faults
from .errors import CheckpointError, StorageError

FORMAT = "robopg-checkpoint"
VERSION = 1


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write through a temporary file and rename: a crash or Ctrl-C mid-write leaves the old file whole. A write
    that fails (a full disk, EIO, a read-only file system) raises StorageError naming the file; the old file
    stays as it was."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        faults.point(f"{path.name}.before_tmp", path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
            faults.point(f"{path.name}.mid_tmp", path)
            f.flush()
            os.fsync(f.fileno())
        faults.point(f"{path.name}.before_rename", path)
        os.replace(tmp, path)
        tmp = None
        _sync_dir(path.parent)
        faults.point(f"{path.name}.after_rename", path)
    except OSError as e:
        raise StorageError(e.errno, f"cannot write {path}: {e.strerror or e}") from e
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _sync_dir(folder: Path) -> None:
    # The rename is durable once the directory entry is: without this a power cut can bring back the old name.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of writes a killed process never finished (their targets are whole)."""
    for tmp in Path(folder).glob("*.tmp"):
        tmp.unlink(missing_ok=True)


def load(path: str | Path, env_id: str | None = None) -> dict[str, Any]:
    """Read a checkpoint; raise CheckpointError with a clear reason if it is missing, truncated, corrupt,
    not a robopg checkpoint, of another version, or made for another environment."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # weights_only: a checkpoint is data; loading it never runs code from the file.
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError,
            AttributeError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path} is corrupt or truncated ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'})") from e
    except Exception as e:  # torch raises assorted pickle errors on damaged files
        raise CheckpointError(f"{path} is corrupt or unreadable ({type(e).__name__})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a robopg checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data.get('version')}, this robopg reads "
                              f"version {VERSION}")
    for key in ("config", "policy"):
        if key not in data:
            raise CheckpointError(f"{path} is incomplete: it has no {key!r}")
    if env_id is not None and data["config"].get("env_id") != env_id:
        raise CheckpointError(f"{path} was made for {data['config'].get('env_id')}, not {env_id}")
    return data
