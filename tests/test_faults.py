"""Nothing lost, whatever happens: a training process killed with SIGKILL at any of many points (between
iterations, inside checkpoint writes before and after the temporary file and the rename, while metrics.csv
and TensorBoard are written, during best.pt's write, while resume rewrites metrics.csv) resumes to exactly
the numbers of a run that was never interrupted; a full disk stops the run with one line naming the file and
keeps the previous checkpoint; two writers never share a run.

The kill points are ``robopg.faults.point`` calls; ``ROBOPG_FAULT=NAME@N`` makes the N-th visit SIGKILL the
process, as ``kill -9`` would.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from robopg import checkpoint
from robopg.metrics import WALL_COLUMNS, read_csv
from robopg.runlock import is_locked

# 8 iterations of 256 steps, checkpoints every 2 (and at the end: 5 latest.pt writes), TensorBoard on.
TRAIN = ["train", "CartPole-v1", "--steps", "2048", "--batch-size", "256", "--num-envs", "4", "--estimator", "gae",
         "--baseline", "value", "--checkpoint-every", "2", "--seed", "7"]

KILL_POINTS = [
    # (fault at the first run, fault at the first resume (or None))
    ("metrics.before_rewrite_rename@1", None),  # a new run's empty metrics.csv, before anything trained
    ("iteration.end@1", None),                  # before the first checkpoint: resume starts the run again
    ("iteration.end@3", None),                  # between iterations, after the checkpoint at 2
    ("iteration.end@6", None),                  # right after a checkpoint
    ("metrics.before_row@1", None),
    ("metrics.before_row@5", None),
    ("metrics.after_row@4", None),              # the row is written, its checkpoint is not
    ("metrics.after_row@7", None),
    ("tensorboard.after_scalars@3", None),
    ("tensorboard.after_scalars@8", None),
    ("latest.pt.before_tmp@1", None),           # the first checkpoint, before its temporary file exists
    ("latest.pt.mid_tmp@2", None),              # inside the temporary file's write
    ("latest.pt.before_rename@2", None),        # the temporary file is whole, the rename not done
    ("latest.pt.after_rename@2", None),
    ("latest.pt.before_rename@5", None),        # the final checkpoint
    ("latest.pt.after_rename@5", None),         # after the final checkpoint, before the learning curve
    ("best.pt.before_tmp@1", None),
    ("best.pt.mid_tmp@2", None),
    ("best.pt.before_rename@2", None),
    ("best.pt.after_rename@1", None),           # best.pt written, latest.pt not yet: the run restarts
    ("best.pt.after_rename@3", None),
    ("iteration.end@3", "metrics.before_rewrite_rename@1"),  # killed again while resume rewrites metrics.csv
    ("latest.pt.before_rename@3", "latest.pt.mid_tmp@1"),    # killed again in resume's first checkpoint
    ("iteration.end@5", "iteration.end@1"),                  # killed again one iteration into the resume
]


def _robopg(args, fault=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "ROBOPG_FAULT"}
    if fault:
        env["ROBOPG_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "robopg.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _numbers(run_dir):
    return [{k: v for k, v in row.items() if k not in WALL_COLUMNS} for row in read_csv(run_dir / "metrics.csv")]


def _tensors(path):
    data = checkpoint.load(path)
    keys = ("policy", "optimizer", "value", "value_optimizer") if "optimizer" in data else ("policy",)
    found = {}

    def walk(obj, prefix):
        if isinstance(obj, torch.Tensor):
            found[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{prefix}/{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{prefix}/{i}")

    for key in keys:
        walk(data[key], key)
    return found, {k: data.get(k) for k in ("iteration", "env_steps", "return_mean")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    out = _robopg([*TRAIN, "--run-dir", run])
    assert out.returncode == 0, out.stderr
    return run


def _same_run(run, reference):
    rows, expected = _numbers(run), _numbers(reference)
    assert [r["iteration"] for r in rows] == list(range(1, 9))  # each iteration exactly once
    assert rows == expected or all(
        all((a[k] == b[k]) or (a[k] != a[k] and b[k] != b[k]) for k in a) for a, b in zip(rows, expected))
    for name in ("latest.pt", "best.pt"):
        (got, got_meta), (want, want_meta) = (_tensors(r / "checkpoints" / name) for r in (run, reference))
        assert got.keys() == want.keys() and got_meta == want_meta, name
        assert all(torch.equal(got[k], want[k]) for k in want), name
    assert not list((run / "checkpoints").glob("*.tmp")), "a killed write's temporary file was left behind"


@pytest.mark.slow  # ~24 x 3 processes: minutes; `make test` (and CI) runs it, `make test-fast` does not
@pytest.mark.parametrize("fault,resume_fault", KILL_POINTS, ids=[f"{a}+{b}" if b else a for a, b in KILL_POINTS])
def test_killed_anywhere_resumes_to_the_uninterrupted_numbers(tmp_path, reference, fault, resume_fault):
    run = tmp_path / "run"
    out = _robopg([*TRAIN, "--run-dir", run], fault=fault)
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-2000:])
    assert not is_locked(run), "a killed process left its lock held"
    if resume_fault:
        out = _robopg(["resume", run], fault=resume_fault)
        assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-2000:])
    out = _robopg(["resume", run])
    assert out.returncode == 0, out.stderr[-3000:]
    _same_run(run, reference)


# --- two writers ------------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "robopg.cli", "train", "CartPole-v1", "--steps", "10000000",
                              "--run-dir", str(run), "--no-tensorboard", "--checkpoint-every", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "latest.pt").exists() and time.time() < deadline:
            time.sleep(0.2)
        rows_before = len(read_csv(run / "metrics.csv"))
        for args in (["resume", run], ["train", "CartPole-v1", "--run-dir", run, "--overwrite"]):
            out = _robopg(args)
            assert out.returncode == 2, out.stderr
            assert f"process {first.pid}" in out.stderr and "Traceback" not in out.stderr
        # Read-only commands need no lock.
        assert _robopg(["eval", run, "--episodes", "1"]).returncode == 0
        assert len(read_csv(run / "metrics.csv")) >= rows_before  # nothing was rewritten behind its back
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # Killed with -9, it leaves no stale lock: the run resumes.
    assert not is_locked(run)
    out = _robopg(["resume", run, "--steps", str(int(read_csv(run / "metrics.csv")[-1]["env_steps"]) + 4096)])
    assert out.returncode == 0, out.stderr[-2000:]
    iterations = [r["iteration"] for r in read_csv(run / "metrics.csv")]
    assert iterations == list(range(1, len(iterations) + 1))


# --- a full disk ------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 384 KiB file system: a real tmpfs where this process may mount one (CI runs as root); elsewhere the
    test injects ENOSPC at the checkpoint write instead (``robopg.faults``) and says so."""
    mount = tmp_path / "disk"
    mount.mkdir()
    ok = os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mount)], capture_output=True).returncode == 0
    yield mount, bool(ok)
    if ok:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(small_disk, tmp_path):
    mount, real = small_disk
    run = mount / "run"
    fault = None if real else "latest.pt.before_rename@3:enospc"
    out = _robopg(["train", "CartPole-v1", "--steps", "1000000", "--batch-size", "256", "--num-envs", "4",
                   "--checkpoint-every", "1", "--run-dir", run], fault=fault)
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    error = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and "No space left on device" in error[0] and str(run) in error[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    latest = checkpoint.load(run / "checkpoints" / "latest.pt")  # the previous complete checkpoint
    assert latest["iteration"] >= 1
    rows = read_csv(run / "metrics.csv")
    assert [r["iteration"] for r in rows][:latest["iteration"]] == list(range(1, latest["iteration"] + 1))
    # Given room again, the run resumes from it.
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    budget = latest["env_steps"] + 1024
    assert _robopg(["resume", moved, "--steps", budget]).returncode == 0
    assert read_csv(moved / "metrics.csv")[-1]["env_steps"] >= budget


@pytest.mark.parametrize("fault,file", [("metrics.before_row@3:eio", "metrics.csv"),
                                        ("latest.pt.before_tmp@2:erofs", "latest.pt"),
                                        ("best.pt.before_rename@2:enospc", "best.pt")])
def test_a_failed_write_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, fault, file):
    # Injected at the write call (robopg.faults): EIO and a read-only file system cannot be made for real here.
    run = tmp_path / "run"
    out = _robopg(["train", "CartPole-v1", "--steps", "4096", "--batch-size", "256", "--num-envs", "4",
                   "--checkpoint-every", "1", "--run-dir", run, "--no-tensorboard"], fault=fault)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert f"cannot write {run}" in out.stderr and file in out.stderr, out.stderr[-2000:]
    assert checkpoint.load(run / "checkpoints" / "latest.pt")["iteration"] >= 1


@pytest.mark.slow
def test_killed_ray_run_resumes_with_exact_accounting(tmp_path):
    # Ray workers keep their envs' state in their own processes, so a resumed Ray run is not bit-identical
    # (README); what must hold is that it resumes and counts every iteration and env step exactly once.
    pytest.importorskip("ray")
    run = tmp_path / "run"
    args = ["train", "CartPole-v1", "--workers", "2", "--envs-per-worker", "2", "--steps", "2560", "--batch-size",
            "512", "--checkpoint-every", "2", "--run-dir", run, "--no-tensorboard"]
    out = _robopg(args, fault="iteration.end@3", timeout=600)
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    out = _robopg(["resume", run], timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_csv(run / "metrics.csv")
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["env_steps"] for r in rows] == [512 * k for k in range(1, 6)]
    assert checkpoint.load(run / "checkpoints" / "latest.pt")["env_steps"] == 2560
