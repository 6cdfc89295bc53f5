"""Sampling throughput on Ray (1 and 2 workers) against local sampling, and the per-iteration overhead.

    python -m benchmarks.ray_throughput [--env HalfCheetah-v5] [--iterations 8] [--out benchmarks/results/ray]

Throughput: env steps per second of ``collect()`` as the learner sees it (weights out, batch back), with
the default 64x64 tanh MLP policy, ``--envs-per-worker`` envs per worker and ``--steps-per-env`` steps on
each env per iteration (so a worker's share is the same in every setting: weak scaling).

Overhead per iteration (``sync_ms``, also a metrics.csv column of Ray runs): the learner's wall time of
``collect()`` minus the slowest worker's own sampling time: ``ray.put`` of the weights, the remote calls,
the workers loading the weights, the transfer of the results and their concatenation. Measured at the full
batch and with one step per env (where the overhead is nearly all there is).

Writes ``<out>.json`` and ``<out>.md``. Ray runs on a local instance with ``num_cpus=2``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def _cpu_model() -> str:
    from .common import machine_info

    return machine_info()["cpu_model"]


def _config(env_id: str, workers: int, envs_per_worker: int, steps_per_env: int):
    from robopg import make_config

    envs = max(workers, 1) * envs_per_worker
    return make_config(env_id, algorithm="pg", workers=workers, envs_per_worker=envs_per_worker, num_envs=envs,
                       batch_size=envs * steps_per_env, steps=10 * envs * steps_per_env, estimator="gae",
                       baseline="value", batch_mode="steps", hidden_sizes=[64, 64], tensorboard=False).validate()


def _policy(config):
    from robopg.envs import make_vector_env
    from robopg.policies import make_policy

    venv = make_vector_env(config.env_id, 1)
    try:
        return make_policy(config, venv.single_observation_space, venv.single_action_space)
    finally:
        venv.close()


def _time_collects(sampler, iterations: int) -> dict:
    sampler.collect()  # warm-up: first resets, allocations, imports
    walls, cpus, steps, sync = [], [], 0, []
    for _ in range(iterations):
        t, c = time.perf_counter(), time.process_time()
        ro = sampler.collect()
        walls.append(time.perf_counter() - t)
        stats = sampler.iteration_stats()
        # CPU seconds of whoever sampled: this process locally, the workers on Ray.
        cpus.append(stats.get("worker_cpu_s", time.process_time() - c))
        steps += ro.num_steps
        sync.append(stats.get("sync_ms", float("nan")))
    distributed = not math.isnan(sync[0])  # the local sampler has no overhead to report
    return {"steps_per_s": steps / sum(walls), "iteration_ms_median": 1000 * statistics.median(walls),
            "steps_per_cpu_s": steps / sum(cpus), "steps_per_iteration": steps // iterations,
            "sync_ms_median": statistics.median(sync) if distributed else None,
            "sync_ms_min": min(sync) if distributed else None}


def measure_local(env_id: str, envs: int, steps_per_env: int, iterations: int) -> dict:
    from robopg.envs import make_vector_env
    from robopg.sampler import Sampler

    config = _config(env_id, 0, envs, steps_per_env)
    venv = make_vector_env(env_id, envs)
    sampler = Sampler(venv, _policy(config), config.batch_size, "steps", config.seed)
    try:
        return _time_collects(sampler, iterations)
    finally:
        sampler.close()


def measure_ray(env_id: str, workers: int, envs_per_worker: int, steps_per_env: int, iterations: int) -> dict:
    from robopg.distributed import RaySampler

    config = _config(env_id, workers, envs_per_worker, steps_per_env)
    sampler = RaySampler(config, _policy(config), say=lambda msg: None)
    try:
        return _time_collects(sampler, iterations)
    finally:
        sampler.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--envs-per-worker", type=int, default=8)
    p.add_argument("--steps-per-env", type=int, default=256)
    p.add_argument("--iterations", type=int, default=6, help="timed iterations per setting and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/ray")
    args = p.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")

    import gymnasium
    import mujoco
    import ray
    import torch

    torch.set_num_threads(1)
    t_start = time.time()
    load_before = os.getloadavg()
    e, s, k = args.envs_per_worker, args.steps_per_env, args.iterations
    # The machine is shared: the settings take turns, round after round, so a burst of load elsewhere
    # falls on all of them; the table gives each setting's median round and the range.
    rounds: dict[str, list[dict]] = {"local": [], "ray_1_workers": [], "ray_2_workers": []}
    results: dict = {}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for _ in range(args.rounds):
            rounds["local"].append(measure_local(args.env, e, s, k))
            for workers in (1, 2):
                rounds[f"ray_{workers}_workers"].append(measure_ray(args.env, workers, e, s, k))
        for workers in (1, 2):
            # One step per env: the round trip with almost no sampling in it.
            results[f"ray_{workers}_workers_1_step"] = measure_ray(args.env, workers, e, 1, 4 * k)
    finally:
        ray.shutdown()
    for name, runs in rounds.items():
        median = sorted(runs, key=lambda r: r["steps_per_s"])[len(runs) // 2]
        results[name] = {**median, "steps_per_s_rounds": [round(r["steps_per_s"]) for r in runs]}

    report = {
        "command": "python -m benchmarks.ray_throughput " + " ".join(argv if argv is not None else sys.argv[1:]),
        "env": args.env, "envs_per_worker": e, "steps_per_env": s, "iterations": k, "rounds": args.rounds,
        "policy": "MLP 64x64 tanh",
        "cpu": _cpu_model(), "cores": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "versions": {"python": platform.python_version(), "ray": ray.__version__, "torch": torch.__version__,
                     "gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M"), "wall_s": round(time.time() - t_start, 1), "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


def _markdown(r: dict) -> str:
    res = r["results"]
    local = res["local"]["steps_per_s"]

    def row(name, key):
        x = res[key]
        sync = f"{x['sync_ms_median']:.1f}" if x["sync_ms_median"] is not None else "—"
        spread = x.get("steps_per_s_rounds")
        rate = f"{x['steps_per_s']:,.0f}" + (f" ({min(spread):,}–{max(spread):,})" if spread else "")
        return (f"| {name} | {x['steps_per_iteration']} | {rate} | {x['steps_per_s'] / local:.2f} | "
                f"{x['steps_per_cpu_s']:,.0f} | {x['iteration_ms_median']:.1f} | {sync} |")

    lines = [
        "# Distributed sampling on Ray: throughput and overhead", "",
        f"`{r['command'].strip()}` — {r['date']}, {r['wall_s']} s", "",
        f"{r['env']}, {r['envs_per_worker']} envs per worker (local: one vector env of as many), "
        f"{r['steps_per_env']} steps per env per iteration, policy {r['policy']}. {r['rounds']} rounds, the "
        f"settings taking turns, each {r['iterations']} timed iterations after one warm-up; the median round "
        f"is shown, the range in brackets. Machine: {r['cpu']}, {r['cores']} cores, shared with other jobs "
        f"(load average before: {', '.join(map(str, r['load_average_before']))}). Ray {r['versions']['ray']}, "
        f"torch {r['versions']['torch']}, Gymnasium {r['versions']['gymnasium']}, MuJoCo "
        f"{r['versions']['mujoco']}, Python {r['versions']['python']}; Ray local instance, num_cpus=2.", "",
        "| sampling | steps / iteration | env steps/s | × local | steps per sampling CPU-s | iteration ms "
        "(median) | overhead ms (median) |",
        "|---|---|---|---|---|---|---|",
        row("local", "local"), row("Ray, 1 worker", "ray_1_workers"), row("Ray, 2 workers", "ray_2_workers"),
        row("Ray, 1 worker, 1 step per env", "ray_1_workers_1_step"),
        row("Ray, 2 workers, 1 step per env", "ray_2_workers_1_step"), "",
        "*Overhead*: the learner's wall time of an iteration minus the slowest worker's own sampling time "
        "(weight broadcast through the object store, remote calls, loading the weights, result transfer, "
        "concatenation); `sync_ms` in metrics.csv. *Steps per sampling CPU-s*: env steps per CPU second of "
        "the processes that sampled (this one locally, the workers on Ray): the speed of one worker apart "
        "from the other jobs on the machine, so W workers on W free cores give about W times it, less the "
        "overhead.", "",
        _estimate(r),
    ]
    return "\n".join(lines)


def _estimate(r: dict) -> str:
    res = r["results"]
    rate = res["ray_1_workers"]["steps_per_cpu_s"]
    share = res["ray_1_workers"]["steps_per_iteration"]
    overhead = max(res["ray_1_workers"]["sync_ms_median"], res["ray_2_workers"]["sync_ms_median"])
    sample_s = share / rate
    return (f"*Estimate for a cluster*: one worker samples its {share}-step share in {1000 * sample_s:.0f} ms "
            f"of CPU; the overhead was {overhead:.0f} ms per iteration ({100 * overhead / 1000 / sample_s:.0f}% "
            f"of that). With W workers on W free cores, throughput ≈ W × {share} / ({sample_s:.3f} s + overhead), "
            f"≈ {rate * sample_s / (sample_s + overhead / 1000):,.0f} steps/s per worker while the overhead stays "
            f"near its 1–2-worker value; it grows with W through the learner gathering W results (measure "
            f"`sync_ms` on the cluster), and the learner's update time adds to every iteration.\n")


if __name__ == "__main__":
    sys.exit(main())
