"""What every suite shares: child processes with their own peak RSS, machine facts, statistics, writing."""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work"  # run directories; git-ignored
RESULT_PREFIX = "BENCH-RESULT "
READY = "BENCH-READY"

# One thread per process on both sides: the machine has 2 cores and small MLPs are fastest on one.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MUJOCO_GL": "egl",
             "PYTHONWARNINGS": "ignore"}


class ChildError(RuntimeError):
    pass


def run_child(args: list[str], timeout: float | None = None, cwd: Path | None = None) -> dict:
    """Run ``python -m benchmarks.workers <args>`` and return its result dict, with ``peak_rss_mb`` added.

    Peak RSS comes from ``wait4`` on this very child (ru_maxrss, KiB on Linux): the child's own high-water
    mark, which getrusage(RUSAGE_CHILDREN) would mix across every child this process ever waited for.
    """
    cmd = [sys.executable, "-m", "benchmarks.workers", *args]
    env = {**os.environ, **CHILD_ENV, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd or ROOT)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        raise ChildError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{tail}")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0
    return result


def emit(result: dict) -> None:
    """Called by a child: its one machine-readable line."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --- machine and versions ------------------------------------------------------------------------------
def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = math.nan
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {"cores": cores, "cpu_model": cpu, "memory_gib": round(mem_gib, 1), "platform": platform.platform(),
            "python": platform.python_version(), "load_average_at_start": list(os.getloadavg())}


PACKAGES = ("robopg", "torch", "gymnasium", "mujoco", "numpy", "stable_baselines3", "envpool")


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["robopg_commit"] = _git("rev-parse", "--short", "HEAD")
    out["robopg_dirty"] = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return out


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def has_module(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(name) is not None


def native_available() -> bool:
    return (ROOT / "src" / "robopg" / "native").is_dir() or has_module("robopg.native")


# --- statistics ----------------------------------------------------------------------------------------
def iqm(x) -> float:
    """Interquartile mean over seeds (``robopg.stats.iqm``); NaN for no runs."""
    from robopg import stats
    x = np.asarray(x, dtype=float)
    return float(stats.iqm(x)) if x.size else math.nan


def bootstrap_ci(x, reps: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the IQM over seeds (``robopg.stats.interval``); NaN below 2 runs."""
    from robopg import stats
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return (math.nan, math.nan)
    iv = stats.interval([x], stats.iqm, reps, level, seed)
    return iv.low, iv.high


def median_min_max(x) -> dict:
    x = np.asarray(x, dtype=float)
    return {"median": float(np.median(x)), "min": float(x.min()), "max": float(x.max()), "n": int(x.size)}


# --- writing -------------------------------------------------------------------------------------------
def command_line() -> str:
    return "python -m benchmarks " + shlex.join(sys.argv[1:])


def header(title: str, meta: dict) -> list[str]:
    m, v = meta["machine"], meta["versions"]
    vers = ", ".join(f"{k} {v[k]}" for k in PACKAGES if v.get(k)) or "n/a"
    return [f"# {title}", "",
            f"Command: `{meta['command']}`  ",
            f"Started {meta['started']} UTC, took {meta.get('elapsed_min', math.nan):.1f} min"
            + ("." if meta.get("complete", True)
               else " (**partial**: the run had not finished when this was written)."),
            "",
            f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gib']} GiB, {m['platform']}, Python "
            f"{m['python']}; load average at start {', '.join(f'{x:.1f}' for x in m['load_average_at_start'])} "
            f"(the machine is shared; compare ratios measured in one run, not absolute rates across runs).  ",
            f"Versions: {vers}; robopg commit {v.get('robopg_commit')}{' (dirty)' if v.get('robopg_dirty') else ''}.",
            ""]


def new_meta(suite: str) -> dict:
    return {"suite": suite, "command": command_line(), "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "machine": machine_info(), "versions": versions(), "complete": False, "_t0": time.monotonic()}


def write_results(suite: str, meta: dict, data: dict, markdown: list[str], out_dir: Path = RESULTS) -> Path:
    """Write ``<suite>.json`` (every raw number) and ``<suite>.md``; safe to call after every finished run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in meta.items() if not k.startswith("_")}
    (out_dir / f"{suite}.json").write_text(json.dumps({"meta": meta, **data}, indent=1, default=_jsonable))
    path = out_dir / f"{suite}.md"
    path.write_text("\n".join(markdown).rstrip() + "\n")
    return path


def elapsed(meta: dict) -> None:
    meta["elapsed_min"] = (time.monotonic() - meta["_t0"]) / 60


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def fmt(x: float, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{digits}f}"


class Side:
    """One long-lived measured process (``benchmarks.sides``): ``rep()`` runs one repetition; ``close()``
    ends it and returns its peak RSS in MB (from ``wait4`` on this very child)."""

    def __init__(self, kind: str, spec: dict, timeout: float = 900):
        self.timeout = timeout
        self.cmd = [sys.executable, "-m", "benchmarks.sides", kind, json.dumps(spec)]
        env = {**os.environ, **CHILD_ENV, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     env=env, cwd=ROOT, text=True, bufsize=1)
        self.peak_rss_mb = math.nan

    def ready(self) -> None:
        """Wait until the side has set up and run its warm-up iteration."""
        self._read_until(READY)

    def rep(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return json.loads(self._read_until(RESULT_PREFIX)[len(RESULT_PREFIX):])

    def _read_until(self, prefix: str) -> str:
        import select
        deadline = time.monotonic() + self.timeout
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self.proc.kill()
                raise ChildError(f"{shlex.join(self.cmd)}: no result within {self.timeout:.0f} s")
            line = self.proc.stdout.readline()
            if not line:
                raise ChildError(f"{shlex.join(self.cmd)} exited:\n{self._stderr_tail()}")
            if line.startswith(prefix):
                return line

    def _stderr_tail(self) -> str:
        self.err.seek(0)
        return "\n".join(self.err.read().strip().splitlines()[-15:])

    def close(self) -> float:
        try:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            _, _, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = 0  # reaped here: Popen must not wait for it again
            self.peak_rss_mb = usage.ru_maxrss / 1024.0
        except ChildProcessError:
            pass
        self.err.close()
        return self.peak_rss_mb
