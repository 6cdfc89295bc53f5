"""Throughput: whole-training-loop env steps per second, beside the simulator's limit, SB3 and EnvPool.

Every side runs in its own child process (its peak RSS is its own), one torch thread, a fixed number of env
steps per repetition, timed in steady state. Repetitions alternate between the sides (A, B, C, A, B, C, ...,
with the order rotated each round) so drift in the shared machine's speed reaches every side alike; the
ratios are taken within each round and reported as median [min–max] over rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks import common

ENVS = ("InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")
NUM_ENVS = (1, 8, 32)


# SB3's PPO defaults, which both PPO sides run when --ppo is given: 2048-sample batches (spread over the envs),
# 10 epochs of 64-sample minibatches, 64x64 tanh networks, lr 3e-4, clip 0.2, grad norm 0.5. robopg's side is
# its Hopper/Walker2d preset (which is those defaults) on every robot: a fixed learning rate and Psi computed once
# a batch, as SB3's, not a robot's own extras (HalfCheetah's preset refits V after every epoch and adapts the
# rate to the KL: 10 more value passes and 10 more GAE passes an iteration, work SB3's side does not do). V is
# fitted as robopg fits it, apart from the policy: 5 passes of 8 minibatches (SB3 fits it inside the policy's
# 320 minibatch steps, on one loss).
PPO_BATCH = 2048
ROBOPG_PPO = dict(batch_size=PPO_BATCH, minibatch_size=64, epochs=10, lr=3e-4, clip_range=0.2, gamma=0.99, lam=0.95,
                  hidden_sizes=[64, 64], activation="tanh", max_grad_norm=0.5, entropy_coef=0.0,
                  estimator="gae", baseline="value", recompute_advantages=False, desired_kl=None,
                  value_epochs=5, value_minibatches=8)


def variants(args) -> dict[str, tuple[str, dict]]:
    """name -> (worker kind, kwargs without env_id/num_envs/steps)."""
    if args.ppo:
        # The limit bounds any trainer on the Gymnasium vector env: limit/sb3-ppo is the most robopg-ppo/sb3-ppo
        # can be with that backend (SB3 steps the same envs), however fast the rest of robopg's loop is.
        v = {"limit": ("limit", {"backend": "gymnasium"}),
             "robopg-ppo": ("robopg", {"backend": "gymnasium", "algorithm": "ppo", "overrides": ROBOPG_PPO}),
             "sb3-ppo": ("sb3", {"algo": "ppo", "batch_size": PPO_BATCH})}
        if args.native:
            v["robopg-ppo-native"] = ("robopg", {"backend": "native", "algorithm": "ppo", "overrides": ROBOPG_PPO})
        return v
    v = {"limit": ("limit", {"backend": "gymnasium"}), "robopg": ("robopg", {"backend": "gymnasium"})}
    if args.native:
        v["limit-native"] = ("limit", {"backend": "native", "threads": args.native_threads})
        v["robopg-native"] = ("robopg", {"backend": "native"})
    if "a2c" in args.sb3:
        v["sb3-a2c"] = ("sb3", {"algo": "a2c"})
    if "ppo" in args.sb3:
        v["sb3-ppo"] = ("sb3", {"algo": "ppo"})
    if args.envpool:
        v["envpool"] = ("envpool", {"threads": 1})
    return v


RATIOS = (("robopg", "limit"), ("robopg", "sb3-a2c"), ("robopg", "sb3-ppo"), ("robopg-native", "limit-native"),
          ("robopg-native", "limit"), ("robopg-native", "sb3-a2c"), ("robopg-native", "sb3-ppo"),
          ("limit", "envpool"), ("robopg", "envpool"), ("robopg-native", "envpool"),
          ("robopg-ppo", "sb3-ppo"), ("robopg-ppo-native", "sb3-ppo"), ("limit", "sb3-ppo"))


def measure_cell(env_id: str, n: int, args, vs: dict) -> dict:
    names = [k for k in vs if args.ppo or not (k == "sb3-ppo" and n > args.ppo_max_envs)]
    reps: dict[str, list[dict]] = {name: [] for name in names}
    sides: dict[str, common.Side] = {}
    dead: set[str] = set()
    # Every side sets up and warms up (one at a time, so set-up does not load the machine while another
    # side is warming up), then all wait at their first "go" and the rounds alternate.
    for name in names:
        kind, kw = vs[name]
        sides[name] = common.Side(kind, {"env_id": env_id, "num_envs": n, "steps": args.steps, **kw}, args.timeout)
        try:
            sides[name].ready()
        except common.ChildError as e:
            dead.add(name)
            reps[name].append({"error": str(e)[-800:], "round": -1})
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            if name in dead:
                continue
            try:
                r = sides[name].rep()
            except common.ChildError as e:
                r = {"error": str(e)[-800:]}
                dead.add(name)
            r["round"] = rep
            reps[name].append(r)
            print(f"  {time.strftime('%H:%M:%S')} {env_id} x{n} {name} round {rep}: "
                  f"{r.get('steps_per_s', float('nan')):,.0f} steps/s"
                  + (f" ERROR {r['error'][-300:]}" if "error" in r else ""), flush=True)
    rss = {name: side.close() for name, side in sides.items()}
    cell = {"env": env_id, "num_envs": n, "runs": reps, "rates": {}, "peak_rss_mb": rss, "ratios": {}}
    for name, rs in reps.items():
        ok = [r for r in rs if "steps_per_s" in r]
        if ok:
            cell["rates"][name] = common.median_min_max([r["steps_per_s"] for r in ok])
    for a, b in RATIOS:
        if a in reps and b in reps:
            ra = {r["round"]: r["steps_per_s"] for r in reps[a] if "steps_per_s" in r}
            rb = {r["round"]: r["steps_per_s"] for r in reps[b] if "steps_per_s" in r}
            paired = [ra[k] / rb[k] for k in ra if k in rb]
            if paired:
                cell["ratios"][f"{a}/{b}"] = common.median_min_max(paired)
    return cell


def _mm(d: dict | None, digits: int = 0, suffix: str = "") -> str:
    if not d:
        return "–"
    return (f"{common.fmt(d['median'], digits)}{suffix} [{common.fmt(d['min'], digits)}–"
            f"{common.fmt(d['max'], digits)}]")


def markdown(meta: dict, cells: list[dict], args, pending: list[str]) -> list[str]:
    cells = sorted(cells, key=lambda c: (args.envs.index(c["env"]) if c["env"] in args.envs else 99, c["num_envs"]))
    md = common.header("Throughput: whole training loop vs the simulator's limit, SB3 and EnvPool", meta)
    md += [f"Env steps per second, median [min–max] of {args.reps} alternating rounds of at least {args.steps:,} "
           "env steps per side (whole iterations). Each side is one long-lived process with one torch thread that "
           "sets up, runs one warm-up iteration, then measures one round each time it is told to; rounds alternate "
           "between sides (order rotated each round), so start-up costs nothing and drift reaches every side. "
           "Ratios are paired within a round.",
           "",
           "- **limit**: the same Gymnasium SyncVectorEnv (SAME_STEP autoreset) robopg trains on, stepped with "
           "precomputed uniform actions, no policy, no learning.",
           "- **robopg**: `Trainer.train()` with the env's preset (InvertedPendulum: GAE+value, 2048-step batches; "
           "locomotion: GAE+value, 1024-step batches, reward scaling), `num_envs` overridden, TensorBoard off: "
           "sampling, estimator, update, value fit, metrics.csv logging and checkpoints.",
           "- **SB3 A2C / PPO**: `A2C/PPO('MlpPolicy', make_vec_env(env, n_envs=N), device='cpu')`, default "
           "hyperparameters (A2C: 5 steps per env per update; PPO: 2048 steps per env, 10 epochs of 64-sample "
           "minibatches), `.learn()` timed between rollout ends.",
           "- **EnvPool**: `envpool.make_gymnasium(env, num_envs=N, batch_size=N, num_threads=1)`, precomputed "
           "actions: what a C++ batched engine reaches on one thread." if args.envpool else
           "- EnvPool: not measured in this run (`--no-envpool`, or not installed).",
           ""]
    if args.native:
        md += [f"- **robopg-native / limit-native**: robopg's batched MuJoCo backend (`--env-backend native`, "
               f"env threads: robopg's default (all cores), {args.native_threads or 'all cores'} for the native "
               "limit). "
               "robopg-native/limit compares it with the Gymnasium vector env it replaces.", ""]
    show = [n for n in ("limit", "robopg", "limit-native", "robopg-native", "sb3-a2c", "robopg-ppo",
                        "robopg-ppo-native", "sb3-ppo", "envpool")
            if any(n in c["rates"] for c in cells)]
    md += ["## Steps per second", "", "| env | envs | " + " | ".join(show) + " |", "|---|---|" + "---|" * len(show)]
    for c in cells:
        md.append(f"| {c['env']} | {c['num_envs']} | " + " | ".join(_mm(c["rates"].get(n)) for n in show) + " |")
    rat = [r for r in (f"{a}/{b}" for a, b in RATIOS) if any(r in c["ratios"] for c in cells)]
    md += ["", "## Ratios (paired per round)", "", "| env | envs | " + " | ".join(rat) + " |",
           "|---|---|" + "---|" * len(rat)]
    for c in cells:
        md.append(f"| {c['env']} | {c['num_envs']} | "
                  + " | ".join(_mm(c["ratios"].get(r), 2, "×") for r in rat) + " |")
    if getattr(args, "ppo", False):
        md += ["", f"PPO sides (`--ppo`): robopg `--algorithm ppo` and SB3 PPO with the same {PPO_BATCH}-sample "
               "batches (spread over the envs: SB3 n_steps = 2048 / envs), 10 epochs of 64-sample minibatches, "
               "64x64 tanh networks; robopg's side with a fixed learning rate and Psi computed once a batch, as "
               "SB3's (no robot preset's extras), and V fitted apart in 5 passes of 8 minibatches (SB3 fits it on "
               "the policy's minibatches, one loss). Target: robopg PPO ≥ 3× SB3 PPO at the same env count. "
               "limit/sb3-ppo is the "
               "ceiling of robopg-ppo/sb3-ppo on the Gymnasium backend: both step the same Gymnasium envs, and no "
               "trainer on them steps faster than the limit."]
        for c in cells:
            for who in ("robopg-ppo", "robopg-ppo-native"):
                r = c["ratios"].get(f"{who}/sb3-ppo")
                if r:
                    md.append(f"- {who} {c['env']} ×{c['num_envs']}: {r['median']:.2f}× SB3 PPO "
                              f"({'met' if r['median'] >= 3 else 'MISSED'})")
    md += ["", "## Peak RSS per side (MB: the whole process, over all its rounds)", "",
           "| env | envs | " + " | ".join(show) + " |", "|---|---|" + "---|" * len(show)]
    for c in cells:
        md.append(f"| {c['env']} | {c['num_envs']} | "
                  + " | ".join(common.fmt(c["peak_rss_mb"].get(n, float("nan"))) for n in show) + " |")
    md += ["", "Targets: robopg ≥ 0.6× the limit at 8+ envs on every env, and ≥ 2× SB3 A2C at the same env count.",
           ""]
    checks = []
    for c in cells:
        if c["num_envs"] < 8:
            continue
        for who in ("robopg", "robopg-native"):
            lim, a2c = c["ratios"].get(f"{who}/limit"), c["ratios"].get(f"{who}/sb3-a2c")
            if lim and a2c:
                checks.append(f"{who} {c['env']} ×{c['num_envs']}: {lim['median']:.2f}× limit "
                              f"({'met' if lim['median'] >= 0.6 else 'MISSED'}), {a2c['median']:.2f}× A2C "
                              f"({'met' if a2c['median'] >= 2 else 'MISSED'})")
    md += [f"- {x}" for x in checks] + [""]
    if pending:
        md += [f"Not measured when this file was written: {', '.join(pending)}.", ""]
    errors = [f"{c['env']} x{c['num_envs']} {n}" for c in cells for n, rs in c["runs"].items()
              if any("error" in r for r in rs)]
    if errors:
        md += ["Runs that failed (see the JSON): " + ", ".join(errors), ""]
    return md


def render(path) -> int:
    """Rebuild ``<suite>.md`` from ``<suite>.json``: the same numbers, the current wording."""
    import argparse as _argparse
    data = json.loads(path.read_text())
    args = _argparse.Namespace(**data["config"])
    md = markdown(data["meta"], data["cells"], args, [])
    path.with_suffix(".md").write_text("\n".join(md).rstrip() + "\n")
    print(f"wrote {path.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks throughput", description=__doc__)
    p.add_argument("--quick", action="store_true", help="HalfCheetah only, 8 envs, 3 rounds, 2k steps")
    p.add_argument("--envs", nargs="+", default=None)
    p.add_argument("--num-envs", nargs="+", type=int, default=None)
    p.add_argument("--reps", type=int, default=None, help="alternating rounds (default 5)")
    p.add_argument("--steps", type=int, default=None, help="env steps per side per round (default 4096)")
    p.add_argument("--sb3", nargs="*", default=["a2c", "ppo"], help="SB3 algorithms to measure (a2c ppo)")
    p.add_argument("--ppo-max-envs", type=int, default=1,
                   help="skip PPO above this env count (default 1: its default rollout is 2048 steps per "
                   "env, so one iteration at 8 envs is 16k steps plus 2,560 minibatch updates, too slow for every "
                   "round here)")
    p.add_argument("--no-envpool", action="store_true")
    p.add_argument("--ppo", action="store_true",
                   help="measure robopg PPO against SB3 PPO instead (same batch, epochs and minibatches)")
    p.add_argument("--backends", nargs="+", default=None,
                   help="robopg backends (default: gymnasium, plus native when robopg.native exists)")
    p.add_argument("--native-threads", type=int, default=0,
                   help="env threads of the native limit (default 0: all cores, as robopg's default --env-threads)")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", type=__import__("pathlib").Path, default=common.RESULTS)
    p.add_argument("--name", default=None, help="results file name (default throughput[-quick])")
    p.add_argument("--render", type=__import__("pathlib").Path, default=None,
                   help="rewrite the markdown of an existing results JSON (no measuring)")
    args = p.parse_args(argv)
    if args.render:
        return render(args.render)
    args.envs = args.envs or (["HalfCheetah-v5"] if args.quick else list(ENVS))
    args.num_envs = args.num_envs or ([8] if args.quick else list(NUM_ENVS))
    args.reps = args.reps or (3 if args.quick else 5)
    args.steps = args.steps or (2048 if args.quick else 4096)
    backends = args.backends or (["gymnasium", "native"] if common.native_available() else ["gymnasium"])
    args.native = "native" in backends
    if args.sb3 and not common.has_module("stable_baselines3"):
        print("stable_baselines3 is not installed (pip install -e '.[bench]'): SB3 sides skipped", file=sys.stderr)
        args.sb3 = []
    args.envpool = not args.no_envpool and common.has_module("envpool")
    suite = args.name or ("throughput-quick" if args.quick else "throughput")
    vs = variants(args)
    meta = common.new_meta(suite)
    cells: list[dict] = []
    # Env-count-major: the 8- and 32-env cells the targets name come first when given first.
    todo = [(e, n) for n in args.num_envs for e in args.envs]
    for env_id, n in todo:
        print(f"{time.strftime('%H:%M:%S')} {env_id} x{n}: {', '.join(vs)}", flush=True)
        cells.append(measure_cell(env_id, n, args, vs))
        common.elapsed(meta)
        pending = [f"{e} x{k}" for e, k in todo[len(cells):]]
        meta["complete"] = not pending
        config = {k: v if isinstance(v, (int, float, list, str, bool, type(None))) else str(v)
                  for k, v in vars(args).items()}
        common.write_results(suite, meta, {"config": config, "cells": cells}, markdown(meta, cells, args, pending),
                             args.out)
    print(f"wrote {args.out / (suite + '.md')}")
    return 0
