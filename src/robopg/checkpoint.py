"""Complete, atomically written checkpoints, and loading that refuses anything corrupt or mismatched."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

FORMAT = "robopg-checkpoint"
VERSION = 1


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write through a temporary file and rename: a crash or Ctrl-C mid-write leaves the old file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
