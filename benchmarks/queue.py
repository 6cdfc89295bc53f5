"""A queue of long learning runs: ``python -m benchmarks.queue JOBS --out RESULTS.jsonl [--jobs 2]``.

Each line of JOBS is ``ENV ALGORITHM SEED [robopg train options...]`` (``#`` starts a comment). Every run is
``robopg train ENV --algorithm ALGORITHM --seed SEED --steps 1000000 ... --torch-threads 1`` (the robot's
preset for that rule, then the options), then ``robopg eval RUN --episodes 10 --json`` — the protocol of
``learning.md``: the final policy, deterministic, 10 episodes. One JSON line per finished run is appended to
RESULTS (its eval return, the run's CPU time and wall time), so a queue stopped half way keeps what finished
and, started again, skips the runs RESULTS already holds. Both files are read again before each run: JOBS may
be reordered or extended while the queue runs.
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

import numpy as np

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


# Issue 12's targets at 1M steps (IQM of deterministic evaluation over >= 5 seeds), and published anchors.
TARGETS = {"HalfCheetah-v5": 5000, "Hopper-v5": 2800, "Walker2d-v5": 4000, "Ant-v5": 3000, "Humanoid-v5": 1500,
           "Swimmer-v5": 300, "InvertedDoublePendulum-v5": 9300, "Reacher-v5": -4.5, "Pusher-v5": -30}


def render(results: Path, title: str) -> str:
    """A markdown table of RESULTS: per robot and rule, every seed's return, the IQM with a 95% percentile
    bootstrap interval over seeds, the median CPU time per run, and the issue's target."""
    from robopg import stats

    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["algorithm"], " ".join(r["options"])), []).append(r)
    md = [f"# {title}", "", f"From `{results}` ({len(rows)} runs). Every run: `python -m robopg train ENV --algorithm "
          "RULE --seed S --steps 1000000 --torch-threads 1` with the robot's preset for the rule, then `robopg eval "
          "RUN --episodes 10 --json` (the final policy, deterministic, eval seed 10000); the exact command of each "
          "run is in the JSON lines. IQM: 25%-trimmed mean over seeds (the plain mean below 4 seeds); 95% interval: "
          "percentile bootstrap over seeds (2,000 resamples). CPU time: the training process's user + system time "
          "(two runs shared the 2 cores).", "",
          "| robot | rule | options | seeds | IQM [95% CI] | per seed (seed: return) | target | CPU / run |",
          "|---|---|---|---:|---:|---|---:|---:|"]
    for (env, algorithm, options), rs in sorted(groups.items()):
        ok = sorted((r for r in rs if "mean_return" in r), key=lambda r: r["seed"])
        failed = [r for r in rs if "mean_return" not in r]
        if ok:
            ci = stats.interval([np.array([r["mean_return"] for r in ok])])
            spec = ",.1f" if abs(ci.point) < 100 else ",.0f"  # Reacher's returns are a few units
            band = f" [{ci.low:{spec}}, {ci.high:{spec}}]" if ci.low is not None else ""
            iqm = f"**{ci.point:{spec}}**{band}"
            target = TARGETS.get(env)
            above = ci.point >= target if target is not None else False
            verdict = ("" if target is None else f"≥ {target:,} ({'met' if above else 'missed'})" if len(ok) >= 5
                       else f"≥ {target:,} (not established: {len(ok)} of 5 seeds, {'above' if above else 'below'})")
        else:
            iqm, verdict = "–", ""
        seeds = ", ".join(f"{r['seed']}: {r['mean_return']:,.1f}" for r in ok)
        seeds += "".join(f", {r['seed']}: failed" for r in failed)
        cpu = np.median([r["cpu_s"] for r in ok]) / 60 if ok else float("nan")
        md.append(f"| {env} | {algorithm} | {options or 'preset'} | {len(ok)} | {iqm} | {seeds} | {verdict} | "
                  f"{cpu:.1f} min |")
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.queue", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobfile", type=Path, metavar="JOBS", nargs="?", help="the job list (not needed with --render)")
    p.add_argument("--out", type=Path, required=True, help="results, one JSON line per finished run")
    p.add_argument("--runs", type=Path, default=Path("runs/queue"), help="folder of the run directories")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (one core each)")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--nice", type=int, default=5)
    p.add_argument("--render", type=Path, default=None, metavar="MD",
                   help="write the markdown table of --out's results to MD (no runs)")
    p.add_argument("--title", default="Learning runs")
    args = p.parse_args(argv)
    if args.render:
        args.render.write_text(render(args.out, args.title))
        print(f"wrote {args.render}")
        return 0
    lock, running = threading.Lock(), set()

    def next_job() -> dict | None:
        # JOBS and RESULTS are read again before every run: the list may be edited (reordered, extended) while
        # the queue runs, and a run that another queue recorded meanwhile is not repeated.
        done = set()
        if args.out.exists():
            done = {key(json.loads(line)) for line in args.out.read_text().splitlines() if line.strip()}
        for job in parse_jobs(args.jobfile.read_text()):
            if key(job) not in done and key(job) not in running:
                running.add(key(job))
                return job
        return None

    def worker():
        while True:
            with lock:
                job = next_job()
            if job is None:
                return
            print(f"{time.strftime('%H:%M:%S')} start {key(job)}", flush=True)
            row = run(job, args.runs, args.steps, args.nice)
            with lock, open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
                running.discard(key(job))
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
