"""Learning: return vs env steps for robopg's presets, SB3 A2C and SB3 PPO (default hyperparameters).

Two jobs run at once, each single-threaded. Results are rewritten after every finished run, so a suite
stopped early keeps what it measured; ``--resume`` skips runs already in the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks import common

ENVS = ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")
# Published final returns, NOT measured here: quoted with their source for context.
PUBLISHED = {
    "Spinning Up VPG, 3M steps (spinningup.openai.com, Benchmarks page, PyTorch VPG)":
        {"HalfCheetah-v5": 632, "Hopper-v5": 815, "Walker2d-v5": 471},
    "Tianshou REINFORCE, 10M steps (tianshou.org MuJoCo benchmark)":
        {"HalfCheetah-v5": 1139, "Hopper-v5": 416, "Walker2d-v5": 441},
    "CleanRL PPO (ppo_continuous_action), 1M steps (docs.cleanrl.dev)":
        {"HalfCheetah-v5": 1443, "Hopper-v5": 2383, "Walker2d-v5": 2288},
}
TARGETS = {"HalfCheetah-v5": 1500, "Hopper-v5": 1000, "Walker2d-v5": 800}
A2C_ENVS = 16  # robopg's locomotion presets step 16 envs; A2C gets the same (its n_steps=5 → 80-step updates)
PPO_ENVS = 1   # PPO's defaults (n_steps=2048 per env) assume one env: 2048-step updates


def jobs_for(args) -> list[dict]:
    jobs = []
    for seed in range(args.seeds):  # seed-major: a suite stopped early has every algorithm at the same seeds
        for env_id in args.envs:
            jobs.append({"algo": "robopg", "env": env_id, "seed": seed})
            jobs.append({"algo": "a2c", "env": env_id, "seed": seed})
        if seed < args.ppo_seeds and "Hopper-v5" in args.envs:
            jobs.append({"algo": "ppo", "env": "Hopper-v5", "seed": seed})
    # rl-zoo3's tuned PPO on its own robots (--zoo-envs, which --envs need not name), seed-major as well
    jobs += [{"algo": "zoo", "env": env_id, "seed": seed} for seed in range(args.zoo_seeds) for env_id in args.zoo_envs]
    return jobs


def table_envs(args) -> list[str]:
    """The robots the table and figures show: --envs, then --zoo-envs when zoo runs are asked for."""
    return list(dict.fromkeys([*args.envs, *(args.zoo_envs if args.zoo_seeds else [])]))


def key(job: dict) -> str:
    return f"{job['algo']}/{job['env']}/s{job['seed']}"


def run_robopg(job: dict, steps: int, backend: str, work: Path) -> dict:
    run_dir = work / "robopg" / job["env"] / f"s{job['seed']}"
    exe = [sys.executable, "-m", "robopg.cli"]
    train = [*exe, "train", job["env"], "--algorithm", "pg", "--seed", str(job["seed"]), "--steps", str(steps),
             "--run-dir", str(run_dir), "--no-tensorboard", "--overwrite", "--env-backend", backend,
             "--torch-threads", "1"]
    env = {**os.environ, **common.CHILD_ENV}
    t0 = time.perf_counter()
    subprocess.run(train, check=True, capture_output=True, text=True, env=env, cwd=work)
    wall = time.perf_counter() - t0
    ev = subprocess.run([*exe, "eval", str(run_dir), "--episodes", "10", "--json"], check=True,
                        capture_output=True, text=True, env=env, cwd=work)
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    from robopg.metrics import read_csv
    rows = read_csv(run_dir / "metrics.csv")
    import yaml
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    # Per iteration: the mean return of the episodes that ended in it, weighted by their count when binned.
    curve = [(int(r["env_steps"]), r["return_mean"], int(r["episodes"])) for r in rows
             if r["episodes"] > 0 and math.isfinite(r["return_mean"])]
    return {"final_return": result["mean_return"], "final_std": result["std_return"],
            "eval_episodes": result["episodes"], "wall_s": wall, "train_command": " ".join(train[2:]),
            "env_steps": int(rows[-1]["env_steps"]), "curve": curve, "backend": cfg["env_backend"],
            "num_envs": cfg["num_envs"], "batch_size": cfg["batch_size"]}


def zoo_env_kwargs(env_id: str) -> dict:
    """The env options robopg's PPO preset trains ``env_id`` with, given to SB3 too so that both sides learn
    the same task (Ant-v5: no contact forces in the observation, as Ant-v4, where rl-zoo3 tuned its values)."""
    from robopg.presets import preset
    return dict(preset(env_id, "ppo").get("env_kwargs") or {})


def run_zoo(job: dict, steps: int, work: Path) -> dict:
    out = work / "zoo" / job["env"] / f"s{job['seed']}"
    r = common.run_child(["learn_zoo", json.dumps({"env_id": job["env"], "seed": job["seed"], "steps": steps,
                                                   "out": str(out), "env_kwargs": zoo_env_kwargs(job["env"])})])
    r["curve"] = [(s, ret, 1) for s, ret in r["curve"]]
    return r


def run_sb3(job: dict, steps: int, work: Path) -> dict:
    n = A2C_ENVS if job["algo"] == "a2c" else PPO_ENVS
    out = work / job["algo"] / job["env"] / f"s{job['seed']}"
    r = common.run_child(["learn_sb3", json.dumps({"algo": job["algo"], "env_id": job["env"], "seed": job["seed"],
                                                   "steps": steps, "num_envs": n, "out": str(out)})])
    r["curve"] = [(s, ret, 1) for s, ret in r["curve"]]
    return r


def summarize(runs: dict, args) -> dict:
    table = {}
    for env_id in table_envs(args):
        for algo in ALGOS:
            rs = [r for r in runs.values() if r["env"] == env_id and r["algo"] == algo]
            if not rs:
                continue
            finals = [r["final_return"] for r in rs]
            lo, hi = common.bootstrap_ci(finals)
            table[f"{algo}/{env_id}"] = {"algo": algo, "env": env_id, "seeds": sorted(r["seed"] for r in rs),
                                         "iqm": common.iqm(finals), "ci95": [lo, hi], "finals": finals,
                                         "wall_s_median": float(np.median([r["wall_s"] for r in rs]))}
    return table


TRUST_REGION_POINTER = (
    "This suite measures `pg` (each robot's `pg` preset) against SB3. The trust-region rules' table (PPO, TRPO and "
    "NPG against the issue-12 targets on nine robots, 1M steps) is [trust-region-runs.md](trust-region-runs.md), "
    "made by `python -m benchmarks.queue`.")
ALGOS = ("robopg", "a2c", "ppo", "zoo")
NAMES = {"robopg": "robopg (preset: GAE + value, 16 envs, 1024-step batches)",
         "a2c": f"SB3 A2C defaults ({A2C_ENVS} envs)", "ppo": f"SB3 PPO defaults ({PPO_ENVS} env)",
         "zoo": "SB3 PPO, rl-zoo3's tuned hyperparameters (VecNormalize)"}


def binned_curve(rs: list[dict], steps: int, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Mean return of the episodes that ended in each step bin, per seed, then averaged over seeds."""
    edges = np.linspace(0, steps, bins + 1)
    per_seed = []
    for r in rs:
        c = np.array([(s, ret * n, n) for s, ret, n in r["curve"]], dtype=float).reshape(-1, 3)
        idx = np.clip(np.searchsorted(edges, c[:, 0], side="left") - 1, 0, bins - 1)
        tot = np.bincount(idx, c[:, 1], bins)
        cnt = np.bincount(idx, c[:, 2], bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed.append(np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan))
    with warnings.catch_warnings():  # a bin no seed has an episode in stays NaN (a gap in the line)
        warnings.simplefilter("ignore", RuntimeWarning)
        return (edges[1:] + edges[:-1]) / 2, np.nanmean(np.array(per_seed), axis=0)


def figures(runs: dict, args) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = []
    for env_id in table_envs(args):
        if not any(r["env"] == env_id for r in runs.values()):
            continue  # (a robot whose runs have not finished yet: no empty figure)
        fig, ax = plt.subplots(figsize=(6, 4))
        for algo, color in zip(ALGOS, ("C0", "C1", "C2", "C3")):
            rs = [r for r in runs.values() if r["env"] == env_id and r["algo"] == algo]
            if not rs:
                continue
            x, y = binned_curve(rs, args.steps)
            for r in rs:
                xs, ys = binned_curve([r], args.steps)
                ax.plot(xs, ys, color=color, alpha=0.2, lw=0.8)
            ax.plot(x, y, color=color, lw=2, label=f"{NAMES[algo]}, {len(rs)} seeds")
        if env_id in TARGETS:
            ax.axhline(TARGETS[env_id], color="k", ls=":", lw=1, label="robopg target at 1M")
        ax.set_xlabel("env steps")
        ax.set_ylabel("training episode return (binned)")
        ax.set_title(env_id)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"learning-{env_id}{args.suffix}.png"
        fig.savefig(args.out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def markdown(meta: dict, runs: dict, table: dict, figs: list[str], args, pending: list[str]) -> list[str]:
    md = common.header(f"Learning: return vs env steps ({args.steps:,} steps per run)", meta)
    md += [TRUST_REGION_POINTER, ""]
    carried = sorted({(r["made_by"]["started"], r["made_by"]["robopg_commit"], r["made_by"]["command"])
                      for r in runs.values() if "made_by" in r})
    for started, commit, command in carried:
        keys = [k for k, r in runs.items() if r.get("made_by", {}).get("started") == started]
        md += [f"Carried over (`--resume`) from the invocation started {started} UTC (robopg commit {commit}, "
               f"`{command}`): {', '.join(sorted(keys))}.", ""]
    md += [f"Final return: the last policy, 10 deterministic evaluation episodes (robopg: `robopg eval RUN "
           f"--episodes 10 --json`, eval seed 10000; SB3: `evaluate_policy(model, env, 10, deterministic=True)` on "
           f"an env seeded 10000). IQM = 25%-trimmed mean over seeds; 95% interval: percentile bootstrap over seeds "
           f"(2,000 resamples). Wall time: training only, median per run, two runs at once, one torch thread each. "
           f"robopg's env backend: {sorted({r.get('backend', '?') for r in runs.values() if r['algo'] == 'robopg'})}.",
           "", "| env | algorithm | seeds | final return IQM [95% CI] | per seed | wall time / run |",
           "|---|---|---|---|---|---|"]
    for env_id in table_envs(args):
        for algo in ALGOS:
            t = table.get(f"{algo}/{env_id}")
            if not t:
                continue
            md.append(f"| {env_id} | {NAMES[algo]} | {len(t['seeds'])} | **{common.fmt(t['iqm'])}** "
                      f"[{common.fmt(t['ci95'][0])}, {common.fmt(t['ci95'][1])}] | "
                      f"{', '.join(common.fmt(x) for x in t['finals'])} | {t['wall_s_median'] / 60:.1f} min |")
        for src, vals in PUBLISHED.items():
            if env_id in vals:
                md.append(f"| {env_id} | *published, not measured here:* {src} | – | {vals[env_id]:,} | – | – |")
    md += ["", "The published figures were measured on older versions of these tasks (v2 to v4; same robots and "
           "rewards up to small changes), on other machines; they are context, not a comparison made here.",
           "", "Targets at 1M steps (from the core issue): " + ", ".join(f"{k} ≥ {v:,}" for k, v in TARGETS.items())
           + "; and ahead of SB3 A2C at the same step count.", ""]
    ratios = []
    for env_id in args.envs:
        r, a = table.get(f"robopg/{env_id}"), table.get(f"a2c/{env_id}")
        if r and a:
            ratios.append(f"{env_id}: robopg IQM {common.fmt(r['iqm'])} vs A2C {common.fmt(a['iqm'])} "
                          f"({'ahead' if r['iqm'] > a['iqm'] else 'behind'}); target {TARGETS.get(env_id, '–')} "
                          f"{'met' if r['iqm'] >= TARGETS.get(env_id, math.inf) else 'not met'}")
    if ratios:
        md += ["Summary: " + "; ".join(ratios) + ".", ""]
    options = sorted({f"{r['env']} ({', '.join(f'{k}={v}' for k, v in r['env_kwargs'].items())})"
                      for r in runs.values() if r.get("env_kwargs")})
    if options:
        md += ["SB3 with rl-zoo3's values learns the task robopg's PPO preset learns, with its env options: "
               + "; ".join(options) + ".", ""]
    md += [f"![{f}]({f})" for f in figs] + [""]
    if pending:
        md += [f"Not finished when this file was written ({len(pending)}): " + ", ".join(pending) + ".", ""]
    md += ["Commands per run: robopg `python -m robopg.cli train ENV --seed S --steps N --run-dir DIR "
           "--no-tensorboard --env-backend B --torch-threads 1` (the env's preset), then `robopg eval DIR "
           "--episodes 10 --json`; SB3 `benchmarks/workers.py:learn_sb3` (`A2C/PPO('MlpPolicy', make_vec_env(env, "
           "n_envs), device='cpu', seed=S).learn(N)`)."]
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks learning", description=__doc__)
    p.add_argument("--quick", action="store_true", help="50k steps, 2 seeds (about 10 minutes)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per (env, algorithm) (default 3; quick 2)")
    p.add_argument("--ppo-seeds", type=int, default=None, help="PPO seeds on Hopper (default: min(3, --seeds))")
    p.add_argument("--zoo-seeds", type=int, default=0,
                   help="seeds of SB3 PPO with rl-zoo3's tuned hyperparameters (needs rl_zoo3; default 0: none)")
    p.add_argument("--zoo-envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5", "Ant-v5"])
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default 1M; quick 50k)")
    p.add_argument("--envs", nargs="+", default=list(ENVS))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--backend", default="auto", help="robopg --env-backend (auto: native where supported)")
    p.add_argument("--resume", action="store_true", help="keep the runs already in the results JSON")
    p.add_argument("--out", type=Path, default=common.RESULTS)
    args = p.parse_args(argv)
    args.seeds = args.seeds or (2 if args.quick else 3)
    args.ppo_seeds = min(3, args.seeds) if args.ppo_seeds is None else args.ppo_seeds
    args.steps = args.steps or (50_000 if args.quick else 1_000_000)
    args.suffix = "-quick" if args.quick else ""
    suite = "learning" + args.suffix
    work = common.WORK / suite
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    meta = common.new_meta(suite)
    runs: dict[str, dict] = {}
    if args.resume and (args.out / f"{suite}.json").exists():
        old = json.loads((args.out / f"{suite}.json").read_text())
        runs = {k: v for k, v in old.get("runs", {}).items() if v.get("env_steps", 0) >= args.steps * 0.99}
        # Which invocation made each kept run: its own meta, or the one it was carried over with.
        for r in runs.values():
            r.setdefault("made_by", {k: old["meta"].get(k) for k in ("command", "started")} |
                         {"robopg_commit": old["meta"].get("versions", {}).get("robopg_commit")})
    jobs = [j for j in jobs_for(args) if key(j) not in runs]
    pending = [key(j) for j in jobs]
    failures: dict[str, str] = {}
    lock = threading.Lock()

    def write():
        common.elapsed(meta)
        meta["complete"] = not pending
        table = summarize(runs, args)
        figs = figures(runs, args) if runs else []
        md = markdown(meta, runs, table, figs, args, pending)
        if failures:
            md += ["", "Failed runs: " + "; ".join(f"{k}: {v}" for k, v in failures.items())]
        common.write_results(suite, meta, {"config": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()},
                                           "runs": runs, "summary": table, "failures": failures}, md, args.out)

    def one(job):
        t0 = time.perf_counter()
        try:
            if job["algo"] == "robopg":
                r = run_robopg(job, args.steps, args.backend, work)
            else:
                r = run_zoo(job, args.steps, work) if job["algo"] == "zoo" else run_sb3(job, args.steps, work)
        except Exception as e:  # a failed run is reported, the suite goes on
            with lock:
                failures[key(job)] = f"{type(e).__name__}: {str(e)[-500:]}"
                pending.remove(key(job))
                write()
            print(f"FAILED {key(job)}: {e}", file=sys.stderr, flush=True)
            return
        r.update(job)
        with lock:
            runs[key(job)] = r
            pending.remove(key(job))
            write()
        print(f"{time.strftime('%H:%M:%S')} {key(job)}: final {r['final_return']:.0f}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    print(f"{len(jobs)} runs, {args.jobs} at a time, {args.steps:,} steps each", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, jobs))
    write()
    print(f"wrote {args.out / (suite + '.md')}")
    return 1 if failures else 0
