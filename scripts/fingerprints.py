"""Fingerprints of every number short runs produce: a redesign must leave them identical.

    python scripts/fingerprints.py --out fp.json            # run every case, write the fingerprints
    python scripts/fingerprints.py --check fp.json          # run again, compare, exit 1 on any difference
    python scripts/fingerprints.py --cases cartpole-reinforce --out fp.json
    git worktree add /tmp/before HEAD~1 && python scripts/fingerprints.py --src /tmp/before/src --out before.json

Each case trains (or measures) a few iterations with a fixed seed; its fingerprint is the sha256 of
metrics.csv without its wall-time columns, and the sha256 of every tensor in the final checkpoint's
parameters (policy, value function, optimiser states). ``variance-chain`` fingerprints the estimator lab's
JSON without its timing fields. Fingerprints are per machine: float results may differ on another CPU, so
record on the machine you check on (before the change), then check after it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# name -> robopg train arguments (short budgets; each case covers one path through the update).
CASES: dict[str, list[str]] = {
    "cartpole-reinforce": ["CartPole-v1", "--algorithm", "pg", "--estimator", "reinforce", "--baseline", "none",
                           "--steps", "6000", "--batch-size", "2000", "--num-envs", "4"],
    "invpendulum-rtg-mean": ["InvertedPendulum-v5", "--algorithm", "pg", "--estimator", "rtg", "--baseline",
                             "mean", "--steps", "6000", "--batch-size", "2000", "--num-envs", "4"],
    "hopper-gae-value-native": ["Hopper-v5", "--algorithm", "pg", "--env-backend", "native", "--steps", "8192",
                                "--batch-size", "1024"],
    "halfcheetah-native": ["HalfCheetah-v5", "--algorithm", "pg", "--env-backend", "native", "--steps", "3072",
                           "--batch-size", "512", "--num-envs", "2", "--log-grad-stats", "2"],
    "halfcheetah-gymnasium": ["HalfCheetah-v5", "--algorithm", "pg", "--env-backend", "gymnasium", "--steps",
                              "3072", "--batch-size", "512", "--num-envs", "2", "--log-grad-stats", "2"],
    "hopper-rtg-optimal": ["Hopper-v5", "--algorithm", "pg", "--estimator", "rtg", "--baseline", "optimal",
                           "--steps", "6000", "--batch-size", "2000", "--num-envs", "4", "--entropy-coef", "0.01"],
    "cartpole-rtg-optimal": ["CartPole-v1", "--algorithm", "pg", "--estimator", "rtg", "--baseline", "optimal",
                             "--steps", "6000", "--batch-size", "2000", "--num-envs", "4", "--entropy-coef", "0.01",
                             "--max-grad-norm", "0.5"],
    "cartpole-ray-2-workers": ["CartPole-v1", "--algorithm", "pg", "--workers", "2", "--envs-per-worker", "2",
                               "--steps", "4096", "--batch-size", "1024"],
    # PPO: one env (the sampler's and the reward scaler's longest loops), its preset's minibatch steps by hand;
    # HalfCheetah's preset (V refitted after every epoch, the KL-adaptive rate); the other options together.
    "hopper-ppo-one-env": ["Hopper-v5", "--algorithm", "ppo", "--env-backend", "native", "--num-envs", "1",
                           "--steps", "4096"],
    "halfcheetah-ppo-preset": ["HalfCheetah-v5", "--algorithm", "ppo", "--env-backend", "native", "--num-envs", "4",
                               "--steps", "8192"],
    "walker-ppo-options": ["Walker2d-v5", "--algorithm", "ppo", "--env-backend", "native", "--num-envs", "4",
                           "--steps", "4096", "--target-kl", "0.02", "--normalize-minibatch-advantages",
                           "--value-clip", "0.2", "--entropy-coef", "0.01"],
    # Domain randomisation (physics, noise, delay), the history input and the privileged critic together.
    "hopper-randomized-privileged": ["Hopper-v5", "--algorithm", "pg", "--env-backend", "native", "--num-envs", "4",
                                     "--steps", "4096", "--batch-size", "1024", "--randomize",
                                     "mass=0.5:1.5,friction=0.5:1.5:log", "--obs-noise", "0.01", "--action-noise",
                                     "0.05", "--action-delay", "0:1", "--obs-history", "2", "--critic-obs",
                                     "privileged"],
    # The physics estimator inside the policy (--policy-obs estimated), under PPO's hand-written gradient.
    "hopper-estimated-ppo": ["Hopper-v5", "--algorithm", "ppo", "--env-backend", "native", "--num-envs", "4",
                             "--steps", "4096", "--batch-size", "1024", "--randomize", "mass=0.5:1.5,friction=0.5:1.5",
                             "--obs-history", "2", "--policy-obs", "estimated"],
    # A teacher that reads the true factors (--policy-obs privileged); its student is tested in test_distill.py.
    "hopper-privileged-teacher": ["Hopper-v5", "--algorithm", "pg", "--env-backend", "native", "--num-envs", "4",
                                  "--steps", "4096", "--batch-size", "1024", "--randomize",
                                  "mass=0.5:1.5,friction=0.5:1.5", "--obs-history", "2", "--obs-noise", "0.01",
                                  "--policy-obs", "privileged"],
}
VARIANCE_CASE = "variance-chain"
TIMING_KEYS = {"seconds_per_estimate", "backward_seconds", "score_seconds", "wall_s", "elapsed_s"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The numbers metrics.csv held when the fingerprints were first recorded: columns added later (new metrics) do
# not change what an old column says, so they are left out; each value is read as a number, so a column
# written as 1 or 1.0 is the same number.
COLUMNS = ["iteration", "env_steps", "episodes", "return_mean", "return_std", "return_min", "return_max",
           "length_mean", "policy_loss", "entropy", "value_loss", "explained_variance", "grad_norm", "lr", "grad_var",
           "grad_snr", "worker_restarts"]
# The trust-region rules' own statistics, in the cases of those rules (a pg case's fingerprint stays as it was).
RULE_COLUMNS = ["approx_kl", "clip_fraction", "epochs_run", "backtracks", "surrogate_improvement"]


def metrics_fingerprint(path: Path) -> str:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = COLUMNS + [k for k in RULE_COLUMNS if any(row.get(k) for row in rows)]
    out = io.StringIO()
    for row in rows:
        out.write(",".join(f"{k}={float(row[k]) if row[k] != '' else ''!r}" for k in columns) + "\n")
    return _sha(out.getvalue().encode())


def tensors_fingerprint(obj, prefix: str = "") -> dict[str, str]:
    """sha256 of every tensor in a (nested) state dict, keyed by its path."""
    found: dict[str, str] = {}
    if isinstance(obj, torch.Tensor):
        found[prefix] = _sha(obj.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(obj, dict):
        for k, v in obj.items():
            found.update(tensors_fingerprint(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found.update(tensors_fingerprint(v, f"{prefix}/{i}"))
    return found


def parameters_fingerprint(ckpt_path: Path) -> str:
    data = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    # Whichever keys hold tensors (the policy's, the value function's and the optimisers'), wherever a
    # redesign files them: the fingerprint is of the sorted set of (leaf name, digest) pairs.
    leaves = tensors_fingerprint({k: v for k, v in data.items() if k not in ("torch_rng",)})
    digests = sorted(f"{path.rsplit('/', 1)[-1]}:{d}" for path, d in leaves.items())
    return _sha("\n".join(digests).encode())


def run_case(name: str, work: Path, src: str | None = None) -> dict[str, str]:
    robopg = [sys.executable, "-m", "robopg.cli"]
    env = {**os.environ, "PYTHONPATH": src} if src else None
    if name == VARIANCE_CASE:
        out = work / name
        res = subprocess.run(robopg + ["variance", "exact:chain", "--batches", "20", "--batch-size", "400",
                                       "--out", str(out), "--json"], capture_output=True, text=True, cwd=work, env=env)
        if res.returncode:
            raise SystemExit(f"{name} failed:\n{res.stderr[-2000:]}")
        result = json.loads(res.stdout.strip().splitlines()[-1])
        return {"result": _sha(json.dumps(_strip_timing(result), sort_keys=True).encode())}
    run_dir = work / name
    res = subprocess.run(robopg + ["train", *CASES[name], "--seed", "3", "--run-dir", str(run_dir),
                                   "--no-tensorboard", "--checkpoint-every", "3"],
                         capture_output=True, text=True, cwd=work, env=env)
    if res.returncode:
        raise SystemExit(f"{name} failed:\n{res.stderr[-2000:]}")
    best = run_dir / "checkpoints" / "best.pt"
    if not best.exists():
        raise SystemExit(f"{name}: no episode ended, so no best.pt: lengthen the case")
    return {"metrics": metrics_fingerprint(run_dir / "metrics.csv"),
            "parameters": parameters_fingerprint(run_dir / "checkpoints" / "latest.pt"),
            "best": parameters_fingerprint(best)}


def _strip_timing(obj):
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=[*CASES, VARIANCE_CASE], choices=[*CASES, VARIANCE_CASE])
    p.add_argument("--out", help="write the fingerprints here (JSON)")
    p.add_argument("--check", help="compare with fingerprints recorded earlier (JSON); exit 1 on a difference")
    p.add_argument("--src", help="run the robopg in this source folder (e.g. a worktree of the commit before a "
                                 "change) instead of the installed one")
    args = p.parse_args(argv)
    expected = json.loads(Path(args.check).read_text()) if args.check else None
    results: dict[str, dict[str, str]] = {}
    differ = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            results[name] = run_case(name, Path(tmp), args.src)
            status = ""
            if expected is not None:
                same = expected.get(name) == results[name]
                status = "identical" if same else f"DIFFERENT (expected {expected.get(name)})"
                if not same:
                    differ.append(name)
            print(f"{name:26s} " + " ".join(f"{k}={v[:12]}" for k, v in results[name].items()) + f"  {status}",
                  flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if expected is not None:
        print(f"{len(args.cases) - len(differ)} of {len(args.cases)} cases identical"
              + (f"; different: {', '.join(differ)}" if differ else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
