"""Scaling: robopg's steps/s and time per iteration as env count and batch size grow, where the time goes,
and memory per env.

One child process per grid cell (``benchmarks.workers.scale``): robopg's Trainer with the env's preset,
``num_envs`` and ``batch_size`` overridden, timed by part: env step and policy inference (the sampler's
optional timers), the rest of sampling, estimator (reward scaling + ``estimators.weights``), policy update,
value fit, logging (metrics row, CSV, progress, checkpoints).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from benchmarks import common

PARTS = ("env_step", "policy_inference", "sampler_other", "estimator", "policy_update", "value_fit", "logging",
         "other")




def markdown(meta: dict, cells: list[dict], mem: dict, args, figs: list[str], pending: list[str]) -> list[str]:
    md = common.header(f"Scaling: robopg on {args.env} as env count and batch size grow", meta)
    ran = ", ".join(sorted({c["backend"] for c in cells})) or "–"
    md += [f"robopg's Trainer with the {args.env} preset (GAE + value, reward scaling), `num_envs` and "
           f"`batch_size` overridden, backend {args.backend} "
           f"(ran: {ran}), one torch thread, TensorBoard off. Each cell trains at least {args.min_steps:,} env "
           f"steps (whole iterations, at least {args.min_iterations}) after one warm-up "
           "iteration (none for batches above 4k, whose first iteration is representative).", "",
           "| envs | batch | steps/s | s / iteration | " + " | ".join(PARTS)
           + " | RSS after set-up (MB) | peak RSS (MB) |",
           "|---|---|---|---|" + "---|" * len(PARTS) + "---|---|"]
    for c in cells:
        b = c["breakdown_s"]
        tot = sum(b.values())
        md.append(f"| {c['num_envs']} | {c['batch_size']:,} | {common.fmt(c['steps_per_s'])} | "
                  f"{c['s_per_iteration']:.3f} | "
                  + " | ".join(f"{100 * b[p] / tot:.0f}%" for p in PARTS)
                  + f" | {c['rss_built_mb']:.0f} | {c['peak_rss_mb']:.0f} |")
    md += ["", "Columns per part: share of the measured wall time.", ""]
    if mem:
        md += [f"Memory per env: {1024 * mem['mb_per_env']:.0f} KiB per added env (least-squares slope of RSS "
               "after "
               f"set-up against env count at batch {mem['batch_size']:,}: "
               + ", ".join(f"{n} envs {r:.0f} MB" for n, r in zip(mem["num_envs"], mem["rss_mb"])) + ").", ""]
    lines = []
    for c in cells:
        # Per cell, robopg's own largest costs: what to optimise next at that setting.
        b = c["breakdown_s"]
        tot = sum(b.values())
        own = sorted(((v, p) for p, v in b.items() if p != "env_step"), reverse=True)
        lines.append(f"- {c['num_envs']} envs, batch {c['batch_size']:,}: env step {100 * b['env_step'] / tot:.0f}%, "
                     f"then **{own[0][1]}** {100 * own[0][0] / tot:.0f}%, {own[1][1]} {100 * own[1][0] / tot:.0f}%")
    if lines:
        md += ["Where the time goes, per cell (robopg's own parts, largest first):", "", *lines, ""]
    md += [f"![{f}]({f})" for f in figs] + [""]
    if pending:
        md += [f"Not measured when this file was written: {', '.join(pending)}.", ""]
    return md


def figure(cells: list[dict], args) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not cells:
        return []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    for n in sorted({c["num_envs"] for c in cells}):
        cs = sorted((c for c in cells if c["num_envs"] == n), key=lambda c: c["batch_size"])
        ax1.plot([c["batch_size"] for c in cs], [c["steps_per_s"] for c in cs], "o-", label=f"{n} envs")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("batch size (env steps per update)")
    ax1.set_ylabel("env steps / s (whole loop)")
    ax1.legend(fontsize=8)
    ax1.set_title("throughput")
    x = np.arange(len(cells))
    bottom = np.zeros(len(cells))
    for i, p in enumerate(PARTS):
        # Shares of each cell's time: the 1-env cells take ~10x longer per step and would hide the rest.
        v = np.array([100 * c["breakdown_s"][p] / sum(c["breakdown_s"].values()) for c in cells])
        ax2.bar(x, v, bottom=bottom, label=p, color=f"C{i}")
        bottom += v
    ax2.set_xticks(x, [f"{c['num_envs']}e\n{c['batch_size'] // 1024}k" for c in cells], fontsize=7)
    ax2.set_ylabel("% of the iteration's time")
    ax2.set_title("where the time goes (envs / batch)")
    ax2.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"robopg scaling, {args.env}")
    fig.tight_layout()
    name = f"{args.name}.png"
    fig.savefig(args.out / name, dpi=110)
    plt.close(fig)
    return [name]


def memory_per_env(cells: list[dict]) -> dict:
    if not cells:
        return {}
    # The batch size every env count was measured at (the smallest), so buffers do not differ.
    batch = min(c["batch_size"] for c in cells)
    by_n = {c["num_envs"]: c["rss_built_mb"] for c in cells if c["batch_size"] == batch}
    if len(by_n) < 2:
        return {}
    ns = sorted(by_n)
    slope = float(np.polyfit(ns, [by_n[n] for n in ns], 1)[0])
    return {"batch_size": batch, "num_envs": ns, "rss_mb": [by_n[n] for n in ns], "mb_per_env": slope}


def render(path) -> int:
    """Rebuild ``<suite>.md`` and its figure from ``<suite>.json``: the same numbers, the current wording."""
    data = json.loads(path.read_text())
    args = argparse.Namespace(**data["config"])
    args.out = path.parent
    figs = figure(data["cells"], args)
    md = markdown(data["meta"], data["cells"], data["memory"], args, figs, [])
    path.with_suffix(".md").write_text("\n".join(md).rstrip() + "\n")
    print(f"wrote {path.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks scaling", description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 and 16 envs, 1k and 4k batches")
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--num-envs", nargs="+", type=int, default=None, help="default 1 4 16 64")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default 1024 4096 16384 65536")
    p.add_argument("--min-steps", type=int, default=None, help="env steps per cell at least (default 16384)")
    p.add_argument("--min-iterations", type=int, default=1)
    p.add_argument("--backend", default="auto", help="robopg --env-backend (default auto: native where supported)")
    p.add_argument("--timeout", type=float, default=1200)
    p.add_argument("--out", type=__import__("pathlib").Path, default=common.RESULTS)
    p.add_argument("--render", type=__import__("pathlib").Path, default=None,
                   help="rewrite the markdown (and figure) of an existing results JSON (no measuring)")
    args = p.parse_args(argv)
    if args.render:
        return render(args.render)
    args.num_envs = args.num_envs or ([1, 16] if args.quick else [1, 4, 16, 64])
    args.batch_sizes = args.batch_sizes or ([1024, 4096] if args.quick else [1024, 4096, 16384, 65536])
    args.min_steps = args.min_steps or (2048 if args.quick else 16384)
    args.name = "scaling-quick" if args.quick else "scaling"
    if args.backend != "auto":
        args.name += f"-{args.backend}"
    args.out.mkdir(parents=True, exist_ok=True)
    meta = common.new_meta(args.name)
    grid = [(n, b) for n in args.num_envs for b in args.batch_sizes if b >= n]
    cells: list[dict] = []
    errors: dict[str, str] = {}
    for k, (n, b) in enumerate(grid):
        iters = max(args.min_iterations, math.ceil(args.min_steps / b))
        spec = {"env_id": args.env, "num_envs": n, "batch_size": b, "iterations": iters, "backend": args.backend}
        try:
            r = common.run_child(["scale", json.dumps(spec)], timeout=args.timeout)
        except common.ChildError as e:
            errors[f"{n}x{b}"] = str(e)[-800:]
            print(f"FAILED {n} envs, batch {b}: {e}", flush=True)
            continue
        r.update({"num_envs": n, "requested_batch": b})
        cells.append(r)
        print(f"{time.strftime('%H:%M:%S')} {n} envs, batch {b}: {r['steps_per_s']:,.0f} steps/s, "
              f"{r['s_per_iteration']:.3f} s/iteration", flush=True)
        common.elapsed(meta)
        pending = [f"{n2} envs x {b2}" for n2, b2 in grid[k + 1:]]
        meta["complete"] = not pending
        mem = memory_per_env(cells)
        figs = figure(cells, args)
        common.write_results(args.name, meta, {"config": {k2: (str(v) if k2 == "out" else v) for k2, v in
                                                          vars(args).items()},
                                               "cells": cells, "memory": mem, "errors": errors},
                             markdown(meta, cells, mem, args, figs, pending), args.out)
    print(f"wrote {args.out / (args.name + '.md')}")
    return 1 if errors else 0
