"""Native batched MuJoCo vs Gymnasium's SyncVectorEnv: stepping alone and whole-loop training.

Run from the repository root:  python -m benchmarks.native [--reps 5]

Every measurement is interleaved A/B in this one process (absolute rates swing +-30-40% between runs on
shared machines; ratios taken side by side hold far better), repeated ``--reps`` times; the tables give
medians with min-max. The physics limit is MuJoCo's own single-thread ``mj_step`` rate on the states the
robots visit, times the native env's threads: no implementation of these tasks on this CPU can step
faster, so the fraction of it reached says how much Python overhead is left.

Per-env physics parameters (``robopg.physics``): a fourth stepping arm sets fresh factors (mass, friction,
damping, gear, gravity: what domain randomisation draws) for every env whose episode ended, once per episode,
and reports the share of its loop spent in ``set_physics``. Memory: peak RSS of child processes holding a
native env of ``--memory-num-envs`` envs (``--memory-envs``), and its growth per extra env.

Writes benchmarks/results/native.md and native.json (``--name`` and ``--out`` change the names and the folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
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

from robopg import make_config, physics
from robopg.native import available_cores, make_native_vector_env
from robopg.trainer import Trainer

ENV_IDS = ("HalfCheetah-v5", "Hopper-v5")
NUM_ENVS = (16, 64)
RESULTS = Path(__file__).parent / "results"
# The issues' targets: native over Gymnasium, median speed-up (others: 2.5x stepping, 2x whole loop).
STEP_TARGET = {"Ant-v5": 2.0, "Humanoid-v5": 2.0, "HumanoidStandup-v5": 2.0, "Swimmer-v5": 2.0, "Reacher-v5": 2.0,
               "Pusher-v5": 2.0}
TRAIN_TARGET = {"Humanoid-v5": 1.8}
PHYSICS_COST_TARGET = 0.05      # share of stepping time, parameters set once per episode
MEMORY_TARGET_MIB = 1.0         # peak RSS per extra native env
# What domain randomisation will draw per env and episode: factors in [0.8, 1.2].
RANDOMISED = ("body_mass", "geom_friction", "dof_damping", "actuator_gear", "gravity")


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


class PhysicsPerEpisode:
    """Stepping with fresh physics factors for every env whose episode ended (set right after the step that
    ended it: the new episode's steps run with them), timing the ``set_physics`` calls."""

    def __init__(self, venv, seed: int = 0):
        self.venv = venv
        rng = np.random.default_rng(seed)
        shapes = physics.param_shapes(venv.model)
        # One pool of draws, so that the random generator's cost is not counted as the API's.
        self.pool = {name: rng.uniform(0.8, 1.2, (venv.num_envs, *shapes[name])) for name in RANDOMISED}
        self.set_seconds = 0.0
        self.sets = 0
        self.envs_set = 0

    def rate(self, actions: np.ndarray) -> float:
        venv = self.venv
        venv.set_physics(self.pool)
        venv.reset(seed=0)
        self.set_seconds, self.sets, self.envs_set = 0.0, 0, 0
        t0 = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = venv.step(a)
            ended = terminated | truncated
            if ended.any():
                t1 = time.perf_counter()
                ids = np.flatnonzero(ended)
                venv.set_physics({name: f[ids] for name, f in self.pool.items()}, ids)
                self.set_seconds += time.perf_counter() - t1
                self.sets += 1
                self.envs_set += len(ids)
        self.loop_seconds = time.perf_counter() - t0
        return actions.shape[0] * actions.shape[1] / self.loop_seconds


def bench_stepping(env_id: str, n: int, reps: int, env_steps: int, threads: int, physics: PhysicsLimit) -> dict:
    arms = {"gymnasium": gym_vec(env_id, n), "native": make_native_vector_env(env_id, n, threads=threads),
            "native_1thread": make_native_vector_env(env_id, n, threads=1)}
    per_episode = PhysicsPerEpisode(make_native_vector_env(env_id, n, threads=threads))
    space = arms["native"].single_action_space
    rng = np.random.default_rng(0)
    actions = rng.uniform(space.low, space.high, (max(env_steps // n, 1), n, space.shape[0])).astype(np.float32)
    for venv in arms.values():  # warm-up: first-call allocations, caches
        steps_per_s(venv, actions[:10])
    per_episode.rate(actions[:10])
    rates: dict[str, list[float]] = {k: [] for k in arms}
    rates["mj_step"] = []
    rates["native_physics"] = []
    cost: dict[str, list[float]] = {"set_share": [], "us_per_env_set": [], "episodes_per_1000_env_steps": []}
    for _ in range(reps):
        for name, venv in arms.items():
            rates[name].append(steps_per_s(venv, actions))
        rates["native_physics"].append(per_episode.rate(actions))
        cost["set_share"].append(per_episode.set_seconds / per_episode.loop_seconds)
        cost["us_per_env_set"].append(per_episode.set_seconds / max(per_episode.envs_set, 1) * 1e6)
        cost["episodes_per_1000_env_steps"].append(per_episode.envs_set / actions.shape[0] / n * 1000)
        rates["mj_step"].append(physics.rate())
    for venv in [*arms.values(), per_episode.venv]:
        venv.close()
    return {**rates, "physics_cost": cost}


# --- memory -------------------------------------------------------------------------------------------

MEMORY_CHILD = """
import sys
import numpy as np
from robopg.native import make_native_vector_env
def hwm():  # peak RSS (VmHWM), KiB
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
env_id, n = sys.argv[1], int(sys.argv[2])
# Importing robopg (torch) peaks far above a native env: reset the high-water mark to the RSS now (Linux).
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = hwm()
env = make_native_vector_env(env_id, n, threads=1)
env.reset(seed=0)
rng = np.random.default_rng(0)
space = env.single_action_space
for _ in range(300):  # episodes end and reset on the way (a falling humanoid: its contacts too)
    env.step(rng.uniform(space.low, space.high, (n, space.shape[0])).astype(np.float32))
print(base, hwm())
"""


def bench_memory(env_id: str, sizes: list[int]) -> dict:
    """Peak RSS (MiB) of a fresh process holding a native env of each size, after 300 random steps: the
    high-water mark from just before the env was made (reset after the imports) to the end."""
    peak = {}
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, env_id, str(n)], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
        before, after = map(int, out.stdout.split()[-2:])
        peak[n] = {"peak_rss_mib": after / 1024, "before_env_mib": before / 1024, "env_mib": (after - before) / 1024}
    sizes = sorted(peak)
    per_env = {f"{a}->{b}": (peak[b]["peak_rss_mib"] - peak[a]["peak_rss_mib"]) / (b - a)
               for a, b in zip(sizes, sizes[1:])}
    return {"env_id": env_id, "peak": {str(k): v for k, v in peak.items()}, "mib_per_extra_env": per_env}


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
        trainers = {backend: Trainer(make_config(env_id, algorithm="pg", num_envs=n, env_backend=backend,
                                                 env_threads=threads, tensorboard=False, steps=10_000_000),
                                     Path(d) / backend)
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


def _load_note(load_before: list[float], load_after: list[float] | None = None) -> str:
    # Other jobs on a 2-core machine move absolute rates by 30-40%; say which case this was. The benchmark's
    # own two threads bring the 1-minute load to ~2 by its end.
    busy = load_before[0] > 1.5 or (load_after is not None and load_after[0] > 3.0)
    return "a shared machine: other jobs were running" if busy else "no other jobs of note were running"


def _preset_batches(env_ids) -> str:
    return ", ".join(f"{e}: {make_config(e, algorithm='pg').batch_size}-step batches" for e in env_ids)


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
        f"({_load_note(m['load_before'], m['load_after'])}). Versions: " +
        ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"Native threads: {result['threads']} (the default: cores available). Torch threads: 1.",
        "",
        *[f"Note: {note}\n" for note in result.get("notes", [])],
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
    if any("physics_cost" in r for r in result["stepping"]):
        lines += [
            "",
            "## Per-env physics parameters, set once per episode",
            "",
            "A fourth arm beside the three above: the native env with fresh factors for mass, friction, damping, "
            "gear and gravity (`set_physics`, factors in [0.8, 1.2]) for every env whose episode ended, right "
            "after the step that ended it. Random actions end episodes far more often than a trained policy "
            "(a falling Humanoid lasts ~25 steps, not 1000), so this is a harsh case. Share = time inside "
            "`set_physics` / the arm's whole loop, per repetition.",
            "",
            "| task | envs | episodes per 1000 env steps | native | native + physics per episode | "
            "share in `set_physics` (target ≤ 5%) | µs per env set |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in result["stepping"]:
            if "physics_cost" not in r:
                continue
            c = r["physics_cost"]
            lines.append(f"| {r['env_id']} | {r['num_envs']} | {c['episodes_per_1000_env_steps']['median']:.1f} | "
                         f"{fmt(r['native'])} | {fmt(r['native_physics'])} | "
                         f"**{c['set_share']['median']:.2%}** ({c['set_share']['min']:.2%}–{c['set_share']['max']:.2%})"
                         f" | {fmt(c['us_per_env_set'], 1)} |")
    if result.get("memory"):
        lines += [
            "",
            "## Memory (peak RSS of a fresh process: a native env, reset, 300 random steps)",
            "",
            "The process's high-water mark (VmHWM) is reset after the imports (torch's peak is far higher), so "
            "the peak is that of the env; in brackets, its growth over the RSS just before the env was made.",
            "",
            "| task | " + " | ".join(f"{k} envs" for k in result["memory"][0]["peak"]) + " | MiB per extra env |",
            "|---|" + "---|" * (len(result["memory"][0]["peak"]) + 1),
        ]
        for m in result["memory"]:
            lines.append(f"| {m['env_id']} | " + " | ".join(f"{v['peak_rss_mib']:.0f} MiB (+{v.get('env_mib', 0):.1f})"
                                                            for v in m["peak"].values())
                         + " | " + ", ".join(f"{k}: **{v:.2f}**" for k, v in m["mib_per_extra_env"].items()) + " |")
    lines += ["", "Targets: " + result.get("targets", "≥ 2.5× stepping, ≥ 2× whole loop") + ". " + result["verdict"],
              ""]
    (out / f"{name}.md").write_text("\n".join(lines))


def verdict(result: dict) -> tuple[str, str]:
    """The targets that apply to the measured rows, and whether each was met (by its median)."""
    parts, missed = [], []

    def check(label: str, value: float, target: float, ok: bool) -> None:
        parts.append(f"{label} {value:.2f} (target {target:g}, {'met' if ok else 'missed'})")
        if not ok:
            missed.append(label)

    for r in result["stepping"]:
        t = STEP_TARGET.get(r["env_id"], 2.5)
        check(f"stepping {r['env_id']} ×{r['num_envs']}", r["speedup"]["median"], t, r["speedup"]["median"] >= t)
    for r in result["training"]:
        t = TRAIN_TARGET.get(r["env_id"], 2.0)
        check(f"whole loop {r['env_id']} ×{r['num_envs']}", r["speedup"]["median"], t, r["speedup"]["median"] >= t)
    shares = [r["physics_cost"]["set_share"]["median"] for r in result["stepping"] if "physics_cost" in r]
    if shares:
        check("largest share in set_physics", max(shares), PHYSICS_COST_TARGET, max(shares) <= PHYSICS_COST_TARGET)
    for m in result.get("memory", []):
        worst = max(m["mib_per_extra_env"].values())
        check(f"MiB per extra {m['env_id']} env", worst, MEMORY_TARGET_MIB, worst <= MEMORY_TARGET_MIB)
    targets = ("stepping ≥ " + ", ".join(sorted({f"{STEP_TARGET.get(r['env_id'], 2.5):g}× ({r['env_id']})"
                                                  for r in result["stepping"]}))
               + "; whole loop ≥ " + ", ".join(sorted({f"{TRAIN_TARGET.get(r['env_id'], 2.0):g}× ({r['env_id']})"
                                                     for r in result["training"]}))
               + (f"; ≤ {PHYSICS_COST_TARGET:.0%} of stepping in set_physics" if shares else "")
               + (f"; ≤ {MEMORY_TARGET_MIB:g} MiB per extra native env" if result.get("memory") else ""))
    smallest = [f"{what} {min(r['speedup']['median'] for r in result[key]):.2f}×"
                for what, key in (("stepping", "stepping"), ("whole loop", "training")) if result[key]]
    summary_line = (f"Smallest median speed-up: {', '.join(smallest)}. " + "; ".join(parts) + ". "
                    + (f"Missed: {', '.join(missed)}." if missed else "All met."))
    return targets, summary_line


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--env-steps", type=int, default=8192, help="env steps per stepping measurement")
    p.add_argument("--iterations", type=int, default=8,
                   help="training iterations per backend and repetition of the whole-loop measurement")
    p.add_argument("--threads", type=int, default=0, help="native threads (0: cores available)")
    p.add_argument("--envs", nargs="+", default=list(ENV_IDS))
    p.add_argument("--num-envs", nargs="+", type=int, default=list(NUM_ENVS))
    p.add_argument("--train-envs", nargs="*", default=None,
                   help="env ids of the whole-loop measurement (default: --envs; none: skip it)")
    p.add_argument("--train-num-envs", nargs="+", type=int, default=None, help="default: --num-envs")
    p.add_argument("--memory-envs", nargs="*", default=[], help="env ids whose native memory to measure")
    p.add_argument("--memory-num-envs", nargs="+", type=int, default=[1, 16, 256])
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
            cost = r.pop("physics_cost")
            row = {"env_id": env_id, "num_envs": n, **{k: summary(v) for k, v in r.items()},
                   "speedup": ratio_summary(r["native"], r["gymnasium"]),
                   "speedup_1thread": ratio_summary(r["native_1thread"], r["gymnasium"]),
                   "physics_limit": limit, "physics_cost": {k: summary(v) for k, v in cost.items()}}
            row["fraction_of_limit"] = row["native"]["median"] / limit
            row["fraction_of_limit_1thread"] = row["native_1thread"]["median"] / rate
            result["stepping"].append(row)
            print(f"stepping {env_id} x{n}: gymnasium {fmt(row['gymnasium'])}, native {fmt(row['native'])}, "
                  f"speed-up {fmt(row['speedup'], 2)}, 1 thread {fmt(row['speedup_1thread'], 2)}, "
                  f"{row['fraction_of_limit']:.0%} of the physics limit; physics set per episode: "
                  f"{row['physics_cost']['set_share']['median']:.2%} of the loop", flush=True)
    for env_id in args.envs if args.train_envs is None else args.train_envs:
        for n in args.num_envs if args.train_num_envs is None else args.train_num_envs:
            r = bench_training(env_id, n, args.reps, args.iterations, threads)
            row = {"env_id": env_id, "num_envs": n, **{k: summary(v) for k, v in r.items()},
                   "speedup": ratio_summary(r["native"], r["gymnasium"])}
            result["training"].append(row)
            print(f"training {env_id} x{n}: gymnasium {fmt(row['gymnasium'])}, native {fmt(row['native'])}, "
                  f"speed-up {fmt(row['speedup'], 2)}", flush=True)
    for env_id in args.memory_envs:
        m = bench_memory(env_id, args.memory_num_envs)
        result.setdefault("memory", []).append(m)
        print(f"memory {env_id}: " + ", ".join(f"{k} envs {v['peak_rss_mib']:.0f} MiB" for k, v in m["peak"].items())
              + "; MiB per extra env " + ", ".join(f"{k}: {v:.2f}" for k, v in m["mib_per_extra_env"].items()),
              flush=True)
    result["targets"], result["verdict"] = verdict(result)
    result["machine"] = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "cores_available": available_cores(),
                         "load_before": [round(x, 2) for x in load_before],
                         "load_after": [round(x, 2) for x in os.getloadavg()]}
    write_report(result, args.out, args.name)
    print(result["verdict"])
    print(f"wrote {args.out / (args.name + '.md')} and {args.out / (args.name + '.json')}")


if __name__ == "__main__":
    main()
