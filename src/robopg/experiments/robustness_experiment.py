"""Robots that generalise, end to end: does domain randomisation buy robustness off the nominal robot, and what
does the privileged baseline add?

    python -m robopg.experiments.robustness_experiment                      # the full experiment
    python -m robopg.experiments.robustness_experiment --envs Hopper-v5 --seeds 2 --steps 300000 \\
        --grid mass=0.5:1.5:5 friction=0.5:1.5:5 --episodes 5                # the reduced one docs/robustness.md ran

For each robot and seed it trains three arms at the same step budget, one process at a time: ``nominal`` (the
preset), ``randomized`` (``--randomize`` below) and ``privileged`` (the same, with ``--critic-obs privileged``);
and, when asked for (``--arms``), ``distilled``: a teacher that reads the true physics (``--policy-obs
privileged``) trained for the budget less ``--distill-steps``, then its student (``--distill-from``) for those
steps: the arm's policy is the student. Then ``robopg robustness`` evaluates every run on the same mass x
friction grid. It writes, per robot, into
``docs/robustness/<env>/``: ``results.md`` and ``results.json`` (IQM with 95% stratified-bootstrap intervals over
seeds of the nominal-cell return, the worst-cell return and the grid mean) and ``maps.png`` (each arm's mean map,
side by side). Run again, it skips every run that already has its robustness.json, and resumes (``robopg resume``)
a run an interrupted experiment left short of its budget.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from ..config import CHECKPOINTS

ARMS = {"nominal": [], "randomized": ["--randomize", "RANDOMIZE"],
        "privileged": ["--randomize", "RANDOMIZE", "--critic-obs", "privileged"],
        "distilled": ["--randomize", "RANDOMIZE", "--policy-obs", "privileged"]}  # the teacher's; then its student
DEFAULT_ARMS = ("nominal", "randomized", "privileged")
METRICS = {"nominal_return": "nominal-cell return", "worst_return": "worst-cell return", "grid_mean": "grid mean"}


def _robopg(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "robopg.cli", *args], check=True)


def run_arm(env_id: str, arm: str, seed: int, args) -> dict:
    run_dir = Path(args.runs_dir) / env_id / f"{arm}-s{seed}"
    which = args.checkpoint
    maps = run_dir / ("robustness" if which == "latest" else f"robustness-{which}")
    done = maps / "robustness.json"
    if not done.exists():
        extra = arm_options(arm, args)
        steps, train_dir = args.steps, run_dir
        if arm == "distilled":  # the teacher first, on the budget the student leaves it
            steps, train_dir = args.steps - args.distill_steps, run_dir.with_name(f"teacher-s{seed}")
        _trained(train_dir, steps, ["train", env_id, "--algorithm", args.algorithm, "--seed", str(seed), "--steps",
                                    str(steps), "--run-dir", str(train_dir), "--overwrite", "--no-tensorboard", *extra])
        if arm == "distilled":
            _trained(run_dir, args.distill_steps, ["train", "--distill-from", str(train_dir), "--seed", str(seed),
                                                   "--steps", str(args.distill_steps), "--run-dir", str(run_dir),
                                                   "--overwrite", "--no-tensorboard"])
        _robopg("robustness", str(run_dir), "--grid", *args.grid, "--episodes", str(args.episodes),
                "--checkpoint", which, "--out", str(maps))
    return json.loads(done.read_text())


def _trained(run_dir: Path, steps: int, train: list[str]) -> None:
    """Train ``run_dir`` with the ``train`` command unless it already holds a run of ``steps`` env steps; a run
    that an interrupted experiment left short of them is resumed, never mapped half-trained."""
    from .sweep import run_state

    state = run_state(run_dir, steps)
    if state.action == "broken":
        raise SystemExit(f"robustness_experiment: error: {run_dir}: {state.detail}")
    if state.action == "resume":
        _robopg("resume", str(run_dir))
    elif state.action != "done":
        _robopg(*train)


def arm_options(arm: str, args) -> list[str]:
    """The ``robopg train`` options of ``arm`` beyond the preset's: --all-args for every arm (the nominal arm has
    nothing else); then the randomised arms' --randomize, --obs-history, --randomize-ramp, --randomize-after,
    --randomize-focus, --randomize-nominal and --train-args."""
    options = shlex.split(args.all_args) + [args.randomize if a == "RANDOMIZE" else a for a in ARMS[arm]]
    if arm == "nominal":
        return options
    for option, value in (("--obs-history", args.obs_history), ("--randomize-ramp", args.randomize_ramp),
                          ("--randomize-after", args.randomize_after), ("--randomize-focus", args.randomize_focus),
                          ("--randomize-nominal", args.randomize_nominal)):
        if value:
            options += [option, str(value)]
    return options + shlex.split(args.train_args)


def summarize(env_id: str, docs: dict[str, list[dict]], out: Path, args) -> str:
    import numpy as np

    from ..stats import interval, iqm

    common = shlex.split(args.all_args)
    extra = arm_options("randomized", args)[len(common) + len(ARMS["randomized"]):]  # what they add to --randomize
    counts = {arm: len(runs) for arm, runs in docs.items()}
    per_arm = (f"{_seeds(next(iter(counts.values())))} per arm" if len(set(counts.values())) == 1  # a pilot arm
               else ", ".join(f"{_seeds(n)} {arm}" for arm, n in counts.items()))              # may have fewer
    lines = [f"### {env_id}: {per_arm}, `{args.algorithm}`, {args.steps:,} steps, "
             f"grid {' x '.join(args.grid)}, {args.episodes} episodes per cell"
             + (f"; every arm with {shlex.join(common)}" if common else "")
             + (f"; randomised arms with {shlex.join(extra)}" if extra else ""),
             "", "| arm | " + " | ".join(METRICS.values()) + " | per seed (nominal / worst / mean) |",
             "|---|" + "---:|" * (len(METRICS) + 1)]
    result = {}
    for arm, runs in docs.items():
        cells = []
        result[arm] = {}
        for key in METRICS:
            x = np.array([d[key] for d in runs])
            ci = interval([x], iqm, reps=2000, seed=0)
            result[arm][key] = {"iqm": float(iqm(x)), "low": ci.low, "high": ci.high, "per_seed": x.tolist()}
            # one seed: no interval to give
            cells.append(f"{iqm(x):,.0f}" + ("" if ci.low is None else f" [{ci.low:,.0f}, {ci.high:,.0f}]"))
        seeds = "; ".join(f"{d['nominal_return']:.0f} / {d['worst_return']:.0f} / {d['grid_mean']:.0f}" for d in runs)
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {seeds} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"env_id": env_id, "algorithm": args.algorithm, "steps": args.steps,
                                                  "grid": args.grid,
                                                  "episodes": args.episodes, "randomize": args.randomize,
                                                  "obs_history": args.obs_history,
                                                  "randomize_ramp": args.randomize_ramp,
                                                  "randomize_after": args.randomize_after,
                                                  "randomize_focus": args.randomize_focus,
                                                  "randomize_nominal": args.randomize_nominal,
                                                  "train_args": args.train_args, "all_args": args.all_args,
                                                  "distill_steps": args.distill_steps if "distilled" in docs else None,
                                                  "arms": result}, indent=1))
    _maps(env_id, docs, out / "maps.png")
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    return text


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _maps(env_id: str, docs: dict[str, list[dict]], png: Path) -> None:
    """Each arm's map averaged over its seeds, side by side, on one colour scale."""
    import matplotlib.pyplot as plt

    from ..robustness import mean_map, plot_maps

    fig = plot_maps({f"{env_id} {arm} (mean of {_seeds(len(runs))})": mean_map(runs) for arm, runs in docs.items()})
    fig.savefig(png)
    plt.close(fig)


def throughput(env_id: str, randomize: str, iterations: int = 40, seed: int = 0, algorithm: str = "pg",
               focus: float = 0.0) -> dict:
    """Whole training iterations (sample + update) of a nominal and a randomised trainer, alternated in one
    process on the native backend so that the machine's load falls on both alike: steps/s of each, and the
    cost of randomisation, 1 - randomised / nominal (the randomised trainer with ``focus`` as its
    --randomize-focus)."""
    import tempfile
    import time

    from ..presets import make_config
    from ..trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainers = {arm: Trainer(make_config(env_id, algorithm=algorithm, seed=seed, env_backend="native",
                                             tensorboard=False, randomize=r, randomize_focus=f), Path(tmp) / arm)
                    for arm, r, f in (("nominal", "", 0.0), ("randomized", randomize, focus))}
        seconds, steps = dict.fromkeys(trainers, 0.0), dict.fromkeys(trainers, 0)
        for i in range(iterations):
            for arm in (list(trainers) if i % 2 == 0 else list(trainers)[::-1]):
                t0 = time.perf_counter()
                rollout, _ = trainers[arm].step()
                seconds[arm] += time.perf_counter() - t0
                steps[arm] += rollout.num_steps
        for t in trainers.values():
            t.close()
    rate = {arm: steps[arm] / seconds[arm] for arm in trainers}
    return {"env_id": env_id, "randomize": randomize, "randomize_focus": focus, "iterations": iterations,
            "steps_per_s": rate,
            "cost": 1.0 - rate["randomized"] / rate["nominal"]}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robopg.experiments.robustness_experiment", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="Hopper-v5,Walker2d-v5", help="comma-separated env ids")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--algorithm", default="pg", choices=["pg", "npg", "trpo", "ppo"],
                   help="the update rule of every arm (default pg, the rule the documented results used)")
    p.add_argument("--steps", type=int, default=1_000_000, help="step budget of every run")
    p.add_argument("--randomize", default="mass=0.5:1.5,friction=0.5:1.5", help="the randomised arms' --randomize")
    p.add_argument("--obs-history", type=int, default=0,
                   help="the randomised arms' --obs-history (the nominal arm stays the preset)")
    p.add_argument("--randomize-ramp", type=int, default=0,
                   help="the randomised arms' --randomize-ramp: env steps over which their ranges widen from the "
                   "nominal robot (0: full width from the start)")
    p.add_argument("--randomize-after", type=int, default=0,
                   help="the randomised arms' --randomize-after: env steps of the nominal robot before their ranges "
                   "open (0: randomised from the start)")
    p.add_argument("--randomize-focus", type=float, default=0.0,
                   help="the randomised arms' --randomize-focus: the fraction of episode starts drawn by rank from the "
                   "physics cells where recent episodes returned least (0: uniform)")
    p.add_argument("--randomize-nominal", type=float, default=0.0,
                   help="the randomised arms' --randomize-nominal: the fraction of episode starts at the nominal robot "
                   "(0: every start drawn from the ranges)")
    p.add_argument("--train-args", default="", help="more `robopg train` options for the randomised arms, as one "
                   "string, e.g. '--hidden-sizes 256 256' (the nominal arm stays the preset)")
    p.add_argument("--all-args", default="", help="more `robopg train` options for every arm, the nominal one "
                   "included, as one string, e.g. '--num-envs 64 --batch-size 2048'")
    p.add_argument("--grid", nargs="+", default=["mass=0.5:1.5:7", "friction=0.5:1.5:7"])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="latest",
                   help="the checkpoint each run's grid evaluates (best-eval: with --eval-every in --all-args; "
                        "its maps go to RUN/robustness-best-eval)")
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS), help="comma-separated arms to run, of "
                   + ", ".join(ARMS) + " (default: " + ", ".join(DEFAULT_ARMS) + ")")
    p.add_argument("--distill-steps", type=int, default=400_000,
                   help="the distilled arm's student budget, out of --steps (the teacher trains the rest)")
    p.add_argument("--runs-dir", default="runs/robustness-experiment")
    p.add_argument("--docs-dir", default="docs/robustness")
    p.add_argument("--throughput", action="store_true", help="only measure randomisation's training throughput "
                   "cost (paired, alternated iterations, native backend) on each env")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not arms or set(arms) - set(ARMS):
        p.error(f"--arms: choose from {', '.join(ARMS)}, got {args.arms!r}")
    if "distilled" in arms and not 0 < args.distill_steps < args.steps:
        p.error(f"--distill-steps: the student's share of --steps {args.steps}, got {args.distill_steps}")
    from ..cli import build_parser

    for option, value in (("--all-args", args.all_args), ("--train-args", args.train_args)):
        try:  # checked now, not when the first randomised run starts after every nominal one
            build_parser().parse_args(["train", "Hopper-v5", *shlex.split(value)])
        except (ValueError, SystemExit):
            p.error(f"{option}: not options of robopg train: {value!r}")
    if args.throughput:
        for env_id in [e.strip() for e in args.envs.split(",") if e.strip()]:
            print(json.dumps(throughput(env_id, args.randomize, algorithm=args.algorithm, focus=args.randomize_focus)),
                  flush=True)
        return 0
    for env_id in [e.strip() for e in args.envs.split(",") if e.strip()]:
        docs = {arm: [run_arm(env_id, arm, seed, args) for seed in range(args.seeds)] for arm in arms}
        print(summarize(env_id, docs, Path(args.docs_dir) / env_id, args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
