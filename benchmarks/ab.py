"""Whole-loop training speed of this tree against another commit, paired: did a change slow robopg down?

    python -m benchmarks.ab --ref 0202bb4 --envs HalfCheetah-v5 Hopper-v5 --rounds 5

Each round trains the same short run (the env's preset, ``--steps`` env steps) once with each tree, in
alternating order, each in its own process; the rate is env steps over the run's own ``wall_s`` (the
training loop, without interpreter start-up). The report gives each tree's median rate and the median of the
per-round ratios (this tree / ref), with their range: rounds are paired, so machine load moves both sides.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rate(src: Path, env_id: str, steps: int, backend: str, work: Path) -> float:
    run = work / "run"
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "robopg.cli", "train", env_id, "--steps", str(steps), "--env-backend", backend,
           "--run-dir", str(run), "--overwrite", "--no-tensorboard", "--checkpoint-every", "1000000"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
    if out.returncode:
        raise SystemExit(f"{src}: {out.stderr[-1500:]}")
    with open(run / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    return float(last["env_steps"]) / float(last["wall_s"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", required=True, help="the commit to compare with (e.g. the parent of a change)")
    p.add_argument("--envs", nargs="+", default=["HalfCheetah-v5"])
    p.add_argument("--steps", type=int, default=40_960)
    p.add_argument("--backend", default="native")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ref_tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(ref_tree), args.ref],
                       check=True)
        try:
            trees = {"this": ROOT / "src", "ref": ref_tree / "src"}
            print(f"| env | this tree (steps/s) | {args.ref} (steps/s) | ratio this/ref, median (range) |")
            print("|---|---:|---:|---:|")
            for env_id in args.envs:
                rates: dict[str, list[float]] = {"this": [], "ref": []}
                for r in range(args.rounds):
                    order = ("this", "ref") if r % 2 == 0 else ("ref", "this")
                    for name in order:
                        with tempfile.TemporaryDirectory() as work:
                            rates[name].append(_rate(trees[name], env_id, args.steps, args.backend, Path(work)))
                ratios = [a / b for a, b in zip(rates["this"], rates["ref"])]
                print(f"| {env_id} | {statistics.median(rates['this']):,.0f} | {statistics.median(rates['ref']):,.0f}"
                      f" | {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_tree)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
