"""Native batched MuJoCo vs Gymnasium's SyncVectorEnv: stepping alone and whole-loop training.

Run from the repository root:  python -m benchmarks.native [--reps 5]

Every measurement is interleaved A/B in this one process (absolute rates swing +-30-40% between runs on
shared machines; ratios taken side by side hold far better), repeated ``--reps`` times; the tables give
medians with min-max. The physics limit is MuJoCo's own single-thread ``mj_step`` rate on the states the
robots visit, times the native env's threads: no implementation of these tasks on this CPU can step
faster, so the fraction of it reached says how much Python overhead is left.

Writes benchmarks/results/native.md and native.json (``--name`` and ``--out`` change the names and the folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from mujoco.batch import Batch

from robopg import make_config
from robopg.native import available_cores, make_native_vector_env
from robopg.trainer import Trainer

ENV_IDS = ("HalfCheetah-v5", "Hopper-v5")
NUM_ENVS = (16, 64)
RESULTS = Path(__file__).parent / "results"


def gym_vec(env_id: str, n: int) -> gym.vector.VectorEnv:
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})


# --- stepping alone -----------------------------------------------------------------------------------

def steps_per_s(venv, actions: np.ndarray) -> float:
    venv.reset(seed=0)
    t0 = time.perf_counter()
    for a in actions:
        venv.step(a)
    return actions.shape[0] * actions.shape[1] / (time.perf_counter() - t0)


def bench_stepping(env_id: str, n: int, reps: int, env_steps: int, threads: int, physics: PhysicsLimit) -> dict:
    arms = {"gymnasium": gym_vec(env_id, n), "native": make_native_vector_env(env_id, n, threads=threads),
            "native_1thread": make_native_vector_env(env_id, n, threads=1)}
    space = arms["native"].single_action_space
    rng = np.random.default_rng(0)
    actions = rng.uniform(space.low, space.high, (max(env_steps // n, 1), n, space.shape[0])).astype(np.float32)
    for venv in arms.values():  # warm-up: first-call allocations, caches
        steps_per_s(venv, actions[:10])
    rates: dict[str, list[float]] = {k: [] for k in arms}
    rates["mj_step"] = []
    for _ in range(reps):
        for name, venv in arms.items():
            rates[name].append(steps_per_s(venv, actions))
        rates["mj_step"].append(physics.rate())
    for venv in arms.values():
        venv.close()
    return rates


# --- the physics limit --------------------------------------------------------------------------------

class PhysicsLimit:
    """MuJoCo's own single-thread rate, in env steps/s: ``mj_step(nstep=frame_skip)`` from each of 2000
    states the robot visits under random actions (episodes reset as they end), all in one C call on one
    thread (``mujoco.batch``), so no Python runs between the steps. (Through the Python binding, one call
    per env step, it is 5-20% slower: ~4 us of call overhead each.)"""

    def __init__(self, env_id: str, samples: int = 2000):
        venv = make_native_vector_env(env_id, 1, threads=1)
        venv.reset(seed=0)
        space = venv.single_action_space
        rng = np.random.default_rng(1)
        states = []
        for _ in range(samples):
            a = rng.uniform(space.low, space.high, (1, space.shape[0])).astype(np.float32)
            venv._ctrl[:] = a  # recorded with the state row: the control applied from it
            states.append(venv.get_state()["state"][0].copy())
            venv.step(a)
        self.states = np.array(states)
        self.frame_skip = venv.task.frame_skip
        self.batch = Batch(venv.model, samples, nthread=1)

    def rate(self) -> float:
        self.batch.state[:] = self.states
        t0 = time.perf_counter()
        self.batch.step(nstep=self.frame_skip)
        return len(self.states) / (time.perf_counter() - t0)


# --- whole-loop training ------------------------------------------------------------------------------

def _iteration(trainer: Trainer) -> int:
    rollout, _ = trainer.step()
    return rollout.num_steps


def bench_training(env_id: str, n: int, reps: int, iterations: int, threads: int) -> dict:
    """Both backends' trainers live side by side and take turns, one iteration each, ``iterations`` turns per
    repetition: the two rates of a repetition are measured over the same second or two of the machine."""
    rates: dict[str, list[float]] = {"gymnasium": [], "native": []}
    with tempfile.TemporaryDirectory() as d:
        trainers = {backend: Trainer(make_config(env_id, num_envs=n, env_backend=backend, env_threads=threads,
                                                 tensorboard=False, steps=10_000_000), Path(d) / backend)
                    for backend in rates}
        for trainer in trainers.values():  # warm-up iteration, not timed
            _iteration(trainer)
        for _ in range(reps):
            seconds, steps = dict.fromkeys(rates, 0.0), dict.fromkeys(rates, 0)
            for _ in range(iterations):
                for backend, trainer in trainers.items():
                    t0 = time.perf_counter()
                    steps[backend] += _iteration(trainer)
                    seconds[backend] += time.perf_counter() - t0
            for backend in rates:
                rates[backend].append(steps[backend] / seconds[backend])
        for trainer in trainers.values():
            trainer.close()
    return rates


# --- report -------------------------------------------------------------------------------------------

def summary(xs: list[float]) -> dict:
    return {"median": float(np.median(xs)), "min": float(np.min(xs)), "max": float(np.max(xs)),
            "runs": [float(x) for x in xs]}


def ratio_summary(a: list[float], b: list[float]) -> dict:
    # Per repetition, since the two arms of one repetition ran side by side.
    return summary([x / y for x, y in zip(a, b)])


def cpu_model() -> str:
    from .common import machine_info

    return machine_info()["cpu_model"]


def fmt(s: dict, digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def _load_note(load_before: list[float]) -> str:
    # Other jobs on a 2-core machine move absolute rates by 30-40%; say which case this was.
    return ("a shared machine: other jobs were running" if load_before[0] > 1.5
            else "no other jobs of note were running")


def _preset_batches(env_ids) -> str:
    return ", ".join(f"{e}: {make_config(e).batch_size}-step batches" for e in env_ids)


def write_report(result: dict, out: Path = RESULTS, name: str = "native") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    m = result["machine"]
    lines = [
        "# Native batched MuJoCo vs Gymnasium SyncVectorEnv",
        "",
        f"Command: `{result['command']}` ({result['reps']} interleaved repetitions; medians, min–max in "
        "brackets; ratios are per repetition, native over Gymnasium).",
        "",
        f"Machine: {m['cpu']}, {m['cores_available']} cores available to the process "
        f"({m['cpu_count']} logical CPUs); load average {m['load_before']} before, {m['load_after']} after "
        f"({_load_note(m['load_before'])}). Versions: " +
        ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"Native threads: {result['threads']} (the default: cores available). Torch threads: 1.",
        "",
        "## Stepping alone (env steps/s, random actions, SAME_STEP autoreset)",
        "",
        "| task | envs | Gymnasium | native | speed-up | native, 1 thread | speed-up, 1 thread | "
        "physics limit (mj_step × threads) | fraction reached |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["stepping"]:
        lines.append(f"| {r['env_id']} | {r['num_envs']} | {fmt(r['gymnasium'])} | {fmt(r['native'])} | "
                     f"**{fmt(r['speedup'], 2)}×** | {fmt(r['native_1thread'])} | {fmt(r['speedup_1thread'], 2)}× | "
                     f"{r['physics_limit']:,.0f} | {r['fraction_of_limit']:.0%} (1 thread: "
                     f"{r['fraction_of_limit_1thread']:.0%}) |")
    lines += [
        "",
        "Physics limit: MuJoCo alone on one thread, `mj_step(nstep=frame_skip)` from each of 2000 states "
        "visited under random actions, in one C call (no Python between steps), measured in each repetition "
        "beside the envs (median: " +
        ", ".join(f"{k} {v:,.0f}" for k, v in result["mj_step_rate"].items()) + " env steps/s), times the "
        f"{result['threads']} threads. Fraction reached = native rate / limit; the 1-thread fraction divides "
        "by the single-thread rate.",
        "",
        "## Whole-loop training (env steps/s: sampling + policy inference + update)",
        "",
        f"robopg's Trainer with the task's preset (GAE + value baseline, "
        f"{_preset_batches(sorted({r['env_id'] for r in result['training']}))}), `--num-envs` as "
        f"given: one trainer per backend, both alive in the process, taking turns one iteration each, "
        f"{result['iterations']} iterations per backend and repetition, after one untimed warm-up iteration each.",
        "",
        "| task | envs | Gymnasium | native | speed-up |",
        "|---|---|---|---|---|",
    ]
    for r in result["training"]:
        lines.append(f"| {r['env_id']} | {r['num_envs']} | {fmt(r['gymnasium'])} | {fmt(r['native'])} | "
                     f"**{fmt(r['speedup'], 2)}×** |")
    lines += ["", "Targets: ≥ 2.5× stepping, ≥ 2× whole loop. " + result["verdict"], ""]
    (out / f"{name}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--env-steps", type=int, default=8192, help="env steps per stepping measurement")
    p.add_argument("--iterations", type=int, default=8,
                   help="training iterations per backend and repetition of the whole-loop measurement")
    p.add_argument("--threads", type=int, default=0, help="native threads (0: cores available)")
    p.add_argument("--envs", nargs="+", default=list(ENV_IDS))
    p.add_argument("--num-envs", nargs="+", type=int, default=list(NUM_ENVS))
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    p.add_argument("--name", default="native", help="results file name (NAME.md, NAME.json)")
    p.add_argument("--render", action="store_true", help="rewrite NAME.md from NAME.json (no measuring)")
    args = p.parse_args(argv)
    if args.render:
        write_report(json.loads((args.out / f"{args.name}.json").read_text()), args.out, args.name)
        return
    torch.set_num_threads(1)
    threads = args.threads or available_cores()
    load_before = os.getloadavg()
    result: dict = {
        "command": "python -m benchmarks.native " + " ".join(argv if argv is not None else sys.argv[1:]),
        "reps": args.reps, "threads": threads, "iterations": args.iterations,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "mujoco": mujoco.__version__,
                     "gymnasium": gym.__version__, "torch": torch.__version__},
        "stepping": [], "training": [], "mj_step_rate": {},
    }
    for env_id in args.envs:
        physics = PhysicsLimit(env_id)
        for n in args.num_envs:
            r = bench_stepping(env_id, n, args.reps, args.env_steps, threads, physics)
            rate = float(np.median(r["mj_step"]))
            result["mj_step_rate"][f"{env_id} x{n}"] = rate
            limit = rate * min(threads, n)
            row = {"env_id": env_id, "num_envs": n, **{k: summary(v) for k, v in r.items()},
                   "speedup": ratio_summary(r["native"], r["gymnasium"]),
                   "speedup_1thread": ratio_summary(r["native_1thread"], r["gymnasium"]),
                   "physics_limit": limit}
            row["fraction_of_limit"] = row["native"]["median"] / limit
            row["fraction_of_limit_1thread"] = row["native_1thread"]["median"] / rate
            result["stepping"].append(row)
            print(f"stepping {env_id} x{n}: gymnasium {fmt(row['gymnasium'])}, native {fmt(row['native'])}, "
                  f"speed-up {fmt(row['speedup'], 2)}, 1 thread {fmt(row['speedup_1thread'], 2)}, "
                  f"{row['fraction_of_limit']:.0%} of the physics limit", flush=True)
    for env_id in args.envs:
        for n in args.num_envs:
            r = bench_training(env_id, n, args.reps, args.iterations, threads)
            row = {"env_id": env_id, "num_envs": n, **{k: summary(v) for k, v in r.items()},
                   "speedup": ratio_summary(r["native"], r["gymnasium"])}
            result["training"].append(row)
            print(f"training {env_id} x{n}: gymnasium {fmt(row['gymnasium'])}, native {fmt(row['native'])}, "
                  f"speed-up {fmt(row['speedup'], 2)}", flush=True)
    step_min = min(r["speedup"]["median"] for r in result["stepping"])
    train_min = min(r["speedup"]["median"] for r in result["training"])
    result["verdict"] = (f"Smallest median speed-up: stepping {step_min:.2f}× "
                         f"({'met' if step_min >= 2.5 else 'missed'}), whole loop {train_min:.2f}× "
                         f"({'met' if train_min >= 2.0 else 'missed'}).")
    result["machine"] = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "cores_available": available_cores(),
                         "load_before": [round(x, 2) for x in load_before],
                         "load_after": [round(x, 2) for x in os.getloadavg()]}
    write_report(result, args.out, args.name)
    print(result["verdict"])
    print(f"wrote {args.out / (args.name + '.md')} and {args.out / (args.name + '.json')}")


if __name__ == "__main__":
    main()
