"""A queue of long learning runs: ``python -m benchmarks.queue JOBS --out RESULTS.jsonl [--jobs 2]``.

Each line of JOBS is ``ENV ALGORITHM SEED [robopg train options...]`` (``#`` starts a comment). Every run is
``robopg train ENV --algorithm ALGORITHM --seed SEED --steps 1000000 ... --torch-threads 1`` (the robot's
preset for that rule, then the options), then ``robopg eval RUN --episodes 10 --json`` — the protocol of
``learning.md``: the final policy, deterministic, 10 episodes. One JSON line per finished run is appended to
RESULTS (its eval return, the run's CPU time and wall time), so a queue stopped half way keeps what finished
and, started again, skips the runs RESULTS already holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# python -m robopg, not the robopg script: PYTHONPATH then picks the tree (e.g. a worktree frozen for the queue).
ROBOPG = [sys.executable, "-m", "robopg"]


def parse_jobs(text: str) -> list[dict]:
    jobs = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            env, algorithm, seed, *options = words
            jobs.append({"env": env, "algorithm": algorithm, "seed": int(seed), "options": options})
    return jobs


def key(job: dict) -> str:
    return " ".join([job["env"], job["algorithm"], str(job["seed"]), *job["options"]])


def run_dir(root: Path, job: dict) -> Path:
    tag = f"{job['env']}-{job['algorithm']}-s{job['seed']}"
    if job["options"]:
        tag += "-" + hashlib.sha1(" ".join(job["options"]).encode()).hexdigest()[:8]
    return root / tag


def run(job: dict, root: Path, steps: int, nice: int) -> dict:
    out = run_dir(root, job)
    train = [*ROBOPG, "train", job["env"], "--algorithm", job["algorithm"], "--seed", str(job["seed"]),
             "--steps", str(steps), "--run-dir", str(out), "--overwrite", "--no-tensorboard", "--torch-threads", "1",
             *job["options"]]
    t0 = time.time()
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(["nice", "-n", str(nice), *train], stdout=subprocess.DEVNULL, stderr=err)
        # wait4: this child's own CPU time (RUSAGE_CHILDREN would mix the runs going side by side).
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        message = err.read()[-1500:]
    row = {**job, "steps": steps, "run_dir": str(out), "wall_s": round(time.time() - t0, 1),
           "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "returncode": child.returncode,
           "command": shlex.join(train)}
    if child.returncode != 0:
        row["error"] = message
        return row
    ev = subprocess.run([*ROBOPG, "eval", str(out), "--episodes", "10", "--json"], capture_output=True,
                        text=True)
    if ev.returncode != 0:
        row["error"] = ev.stderr[-1500:]
        return row
    row.update(json.loads(ev.stdout))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.queue", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobfile", type=Path, metavar="JOBS")
    p.add_argument("--out", type=Path, required=True, help="results, one JSON line per finished run")
    p.add_argument("--runs", type=Path, default=Path("runs/queue"), help="folder of the run directories")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (one core each)")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--nice", type=int, default=5)
    args = p.parse_args(argv)
    done = set()
    if args.out.exists():
        done = {key(json.loads(line)) for line in args.out.read_text().splitlines() if line.strip()}
    todo = [j for j in parse_jobs(args.jobfile.read_text()) if key(j) not in done]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                job = todo.pop(0)
            print(f"{time.strftime('%H:%M:%S')} start {key(job)}", flush=True)
            row = run(job, args.runs, args.steps, args.nice)
            with lock, open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{time.strftime('%H:%M:%S')} done  {key(job)}: "
                  f"{row.get('mean_return', row.get('error', '?'))}", flush=True)

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MUJOCO_GL", "egl")
    sys.exit(main())
