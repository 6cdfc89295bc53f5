"""Every error robopg raises on purpose, in one module that imports nothing, so any module may raise any of
them without importing another (this is what keeps ``envs`` and ``native`` out of an import circle).

The command line maps each to one exit code (``robopg.cli.EXIT_CODES``): bad input 2, a failed run 1, an
interrupted run 130.
"""

from __future__ import annotations

from pathlib import Path


class RobopgError(Exception):
    """Base of the errors below: a message meant to be shown as one line."""


class ConfigError(RobopgError, ValueError):
    """A setting that cannot work; the message names the option (as on the command line)."""


class EnvError(RobopgError, ValueError):
    """An environment that cannot be made or used."""


class CheckpointError(RobopgError, RuntimeError):
    """A checkpoint that cannot be used; the file is never modified."""


class NonFiniteError(RobopgError):
    """The loss, gradient or parameters stopped being finite; the last good checkpoint is kept."""


class WorkerError(RobopgError, RuntimeError):
    """Ray workers could not start, or one kept failing; the message says which and why."""


class RenderError(RobopgError, RuntimeError):
    """No way to render here; the message names what to install."""


class TrainingInterrupted(RobopgError):
    """Raised by ``train`` after SIGINT/SIGTERM, once the checkpoint and metrics are written."""

    def __init__(self, run_dir: Path, iteration: int):
        super().__init__(f"interrupted at iteration {iteration}; resume with: robopg resume {run_dir}")
        self.run_dir, self.iteration = run_dir, iteration


class RunLockedError(ConfigError):
    """Another process holds the run directory's lock (exit 2, naming its PID)."""


class StorageError(RobopgError, OSError):
    """A run's file could not be written (a full disk, EIO, a read-only file system); the previous complete
    checkpoint is kept."""


class EnvFailure(RobopgError):
    """The environment misbehaved: it raised in step/reset, or returned a non-finite observation or reward.
    The message names the env id, the env index and the step; the last good checkpoint is kept."""
