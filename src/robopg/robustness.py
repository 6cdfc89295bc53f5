"""``robopg robustness``: how a trained policy's return degrades off the nominal robot.

The policy runs deterministically on every cell of a 1-D or 2-D grid of physics scale factors (``--grid
mass=0.5:1.5:7 friction=0.4:1.6:7``). Every cell runs the same episodes as ``robopg eval RUN --episodes K
--seed S``: ``min(K, 16)`` envs seeded ``S, S+1, ...``, each contributing its first episodes in order, so the
nominal cell (every factor 1) gives ``robopg eval``'s numbers exactly. All cells (and the nominal one) are one
vector env, stepped together: one batched MuJoCo call per control step on the native backend.

Only the config, the codec and the errors are imported at module level (``robopg --help`` stays fast).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .config import CHECKPOINTS, RANDOMIZE_PARAMS, ConfigError

SHORT = {v: k for k, v in RANDOMIZE_PARAMS.items()}  # physics name -> the name written on the command line


@dataclass
class Axis:
    name: str            # the name as written (mass, friction...)
    param: str           # robopg.physics parameter
    values: list[float]


def parse_grid(specs: list[str]) -> list[Axis]:
    """``['mass=0.5:1.5:7', ...]`` -> axes; ConfigError naming --grid for anything that cannot work."""
    if not 1 <= len(specs) <= 2:
        raise ConfigError(f"--grid: give one or two parameters (P=LO:HI:N), got {len(specs)}")
    axes = []
    for spec in specs:
        name, eq, rng = spec.partition("=")
        param = RANDOMIZE_PARAMS.get(name, name if name in RANDOMIZE_PARAMS.values() else None)
        if param is None:
            raise ConfigError(f"--grid: unknown parameter {name!r} in {spec!r}; the parameters are "
                              f"{', '.join(RANDOMIZE_PARAMS)}")
        bits = rng.split(":")
        try:
            lo, hi, n = float(bits[0]), float(bits[1]), int(bits[2])
            if len(bits) != 3 or not eq:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(f"--grid: cannot read {spec!r}; write P=LO:HI:N, e.g. mass=0.5:1.5:7") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi <= 0:
            raise ConfigError(f"--grid: {spec!r}: scale factors must be positive and finite")
        if lo > hi:
            raise ConfigError(f"--grid: {spec!r}: lo {lo:g} > hi {hi:g}")
        if n < 2:
            raise ConfigError(f"--grid: {spec!r}: a grid needs at least 2 points, got {n}")
        if any(a.param == param for a in axes):
            raise ConfigError(f"--grid: {name!r} is given twice")
        values = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
        values = [1.0 if abs(v - 1.0) < 1e-12 else v for v in values]  # the nominal cell exactly
        axes.append(Axis(name, param, values))
    return axes


def grid_cells(axes: list[Axis]) -> list[dict[str, float]]:
    """Every cell, the first axis varying slowest: ``[{param: factor, ...}, ...]``."""
    return [dict(zip([a.param for a in axes], combo)) for combo in itertools.product(*[a.values for a in axes])]


def evaluate_cells(policy, env_id: str, cells: list[dict[str, float]], episodes: int, seed: int = 10_000,
                   backend: str = "auto", deterministic: bool = True) -> list[dict]:
    """Mean and std of the return in each cell (``{param: factor}``; ``{}`` is the nominal robot), each over the
    episodes ``robopg.evaluate(policy, env_id, episodes, seed)`` runs, all cells in one vector env."""
    import numpy as np

    from .api import trained_env_options
    from .envs import make_vector_env, resolve_backend
    from .episodes import episode_returns
    from .physics import set_physics

    if episodes <= 0:
        raise ConfigError(f"--episodes: must be positive, got {episodes}")
    n = min(episodes, 16)
    own = trained_env_options(policy, env_id)  # the robot the policy was trained on, as robopg.evaluate builds it
    venv = make_vector_env(env_id, n * len(cells), backend=resolve_backend(env_id, backend, own["env_kwargs"]),
                           **own)
    try:
        for c, cell in enumerate(cells):
            if cell:
                set_physics(venv, {p: np.full(n, f) for p, f in cell.items()}, np.arange(c * n, (c + 1) * n))
        quota = np.tile([episodes // n + (i < episodes % n) for i in range(n)], len(cells))
        returns = episode_returns(venv, policy, [seed + i for i in range(n)] * len(cells), quota, deterministic, n)
    finally:
        venv.close()
    out = []
    for c in range(len(cells)):
        r = [x for env_returns in returns[c * n:(c + 1) * n] for x in env_returns]
        out.append({"mean_return": float(np.mean(r)), "std_return": float(np.std(r)), "episodes": len(r)})
    return out


def summarize(axes: list[Axis], cells: list[dict], results: list[dict], nominal: dict,
              threshold: float | None) -> dict:
    """The JSON document: cells with their returns, the nominal return, the worst cell, the grid mean and the
    fraction of cells at or above ``threshold`` (default: 80% of the nominal return)."""
    rows = [{**{SHORT.get(p, p): f for p, f in cell.items()}, **res} for cell, res in zip(cells, results)]
    means = [r["mean_return"] for r in rows]
    worst = min(range(len(rows)), key=lambda i: means[i])
    thr = 0.8 * nominal["mean_return"] if threshold is None else threshold
    return {"grid": {a.name: a.values for a in axes}, "nominal_return": nominal["mean_return"],
            "nominal_std": nominal["std_return"], "worst_cell": rows[worst], "worst_return": means[worst],
            "grid_mean": sum(means) / len(means), "threshold": thr,
            "fraction_above": sum(m >= thr for m in means) / len(means), "cells": rows}


# --- files ------------------------------------------------------------------------------------------------
def write_outputs(doc: dict, out: Path, title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    names = list(doc["grid"])
    with open(out / "robustness.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*names, "mean_return", "std_return", "episodes"])
        for c in doc["cells"]:
            w.writerow([*(c[n] for n in names), c["mean_return"], c["std_return"], c["episodes"]])
    (out / "robustness.json").write_text(json.dumps(doc, indent=1))
    plot_map(doc, out / "robustness.png", title)
    return [out / "robustness.csv", out / "robustness.json", out / "robustness.png"]


def mean_map(docs: list[dict]) -> dict:
    """The map of several runs evaluated on the same grid: each cell's mean return, and the nominal return,
    averaged over the runs."""
    mean = dict(docs[0], nominal_return=sum(d["nominal_return"] for d in docs) / len(docs))
    mean["cells"] = [dict(c, mean_return=sum(d["cells"][i]["mean_return"] for d in docs) / len(docs))
                     for i, c in enumerate(docs[0]["cells"])]
    return mean


def plot_maps(maps: dict[str, dict]):
    """The figure of several maps (title -> map) side by side, heatmaps on one colour scale so that a colour
    is the same return in every panel (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c["mean_return"] for m in maps.values() for c in m["cells"]]
    fig, axes = plt.subplots(1, len(maps), figsize=(5.2 * len(maps), 4.2), dpi=100, squeeze=False)
    for ax, (title, doc) in zip(axes[0], maps.items()):
        plot_map(doc, None, title, ax=ax, limits=(min(cells), max(cells)))
    fig.tight_layout()
    return fig


def plot_map(doc: dict, png: Path | None, title: str, ax=None, limits: tuple[float, float] | None = None) -> None:
    """A heatmap (2-D grid) or a curve (1-D) of the mean return, the nominal robot marked; ``limits``: the
    colour scale's (default: this map's own range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5.2, 4.2), dpi=100)
    names = list(doc["grid"])
    means = np.array([c["mean_return"] for c in doc["cells"]])
    if len(names) == 1:
        xs = doc["grid"][names[0]]
        ax.errorbar(xs, means, yerr=[c["std_return"] for c in doc["cells"]], marker="o", capsize=3)
        ax.plot([1.0], [doc["nominal_return"]], "r*", markersize=14, label="nominal")
        ax.set_xlabel(f"{names[0]} scale")
        ax.set_ylabel("mean return")
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        ys, xs = doc["grid"][names[0]], doc["grid"][names[1]]
        z = means.reshape(len(ys), len(xs))
        vmin, vmax = limits or (None, None)
        im = ax.pcolormesh(_edges(xs), _edges(ys), z, cmap="viridis", shading="flat", vmin=vmin, vmax=vmax)
        for (i, j), v in np.ndenumerate(z):
            ax.text(xs[j], ys[i], f"{v:.0f}", ha="center", va="center", fontsize=7, color="w")
        ax.plot([1.0], [1.0], "r*", markersize=14, label="nominal")
        ax.set_xlabel(f"{names[1]} scale")
        ax.set_ylabel(f"{names[0]} scale")
        ax.figure.colorbar(im, ax=ax, label="mean return")
    ax.set_title(title, fontsize=9)
    if own:
        fig.tight_layout()
        fig.savefig(png)
        plt.close(fig)


def _edges(values: list[float]) -> list[float]:
    mids = [(a + b) / 2 for a, b in zip(values, values[1:])]
    return [values[0] - (mids[0] - values[0]), *mids, values[-1] + (values[-1] - mids[-1])]


# --- the command ------------------------------------------------------------------------------------------
DESCRIPTION = ("Evaluate a trained policy (deterministic) on every cell of a grid of physics scale factors, the same "
               "episode seeds in every cell; the nominal cell equals `robopg eval RUN --episodes K`. Writes "
               "robustness.csv, robustness.json and a heatmap (2-D) or curve (1-D) PNG.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (runs/<env>/<name>) or a checkpoint file")
    p.add_argument("--grid", nargs="+", required=True, metavar="P=LO:HI:N",
                   help="one or two axes, e.g. mass=0.5:1.5:7 friction=0.4:1.6:7 (parameters: "
                        + ", ".join(RANDOMIZE_PARAMS) + ")")
    p.add_argument("--episodes", type=int, default=10, help="episodes per cell (default: 10)")
    p.add_argument("--seed", type=int, default=10_000, help="seed of the evaluation episodes (as robopg eval)")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="latest", help="which checkpoint of a run")
    p.add_argument("--threshold", type=float, default=None,
                   help="report the fraction of cells with a mean return >= this (default: 80%% of the nominal)")
    p.add_argument("--backend", choices=("auto", "gymnasium", "native"), default="auto",
                   help="simulator (auto: native where it supports the robot; both give the same numbers)")
    p.add_argument("--out", default=None, help="output folder (default: RUN/robustness)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    axes = parse_grid(args.grid)  # before torch is imported
    if args.episodes <= 0:
        raise ConfigError(f"--episodes: must be positive, got {args.episodes}")
    doc, title = robustness(args.run, axes, args.episodes, args.seed, args.checkpoint, args.threshold, args.backend)
    out = Path(args.out) if args.out else (Path(args.run) if Path(args.run).is_dir() else
                                           Path(args.run).parent) / "robustness"
    files = write_outputs(doc, out, title)
    if args.json:
        print(json.dumps(doc))
        return 0
    w = doc["worst_cell"]
    where = ", ".join(f"{n}={w[n]:g}" for n in doc["grid"])
    print(f"{title}\n  nominal return {doc['nominal_return']:.1f} ± {doc['nominal_std']:.1f}\n"
          f"  worst cell {where}: {doc['worst_return']:.1f}\n  grid mean {doc['grid_mean']:.1f}\n"
          f"  cells >= {doc['threshold']:.1f}: {doc['fraction_above']:.0%}\n  written: "
          + ", ".join(str(f) for f in files))
    return 0


def robustness(run_path: str, axes: list[Axis], episodes: int, seed: int, which: str = "latest",
               threshold: float | None = None, backend: str = "auto") -> tuple[dict, str]:
    """Load the run's policy (a clear error, nothing written, for a corrupt or foreign directory), check the env
    has the grid's parameters, evaluate every cell and the nominal robot; the document and a title."""
    from .api import load
    from .envs import make_vector_env
    from .errors import EnvError
    from .physics import get_physics

    policy = load(run_path, which=which)
    env_id = policy.config.env_id
    probe = make_vector_env(env_id, 1, env_kwargs=policy.config.env_kwargs)
    try:
        get_physics(probe)
    except EnvError:
        raise EnvError(f"--grid: {env_id} has no physics parameter {axes[0].name!r} (only MuJoCo robots have "
                       "them)") from None
    finally:
        probe.close()
    cells = grid_cells(axes)
    results = evaluate_cells(policy, env_id, [{}, *cells], episodes, seed, backend)
    doc = summarize(axes, cells, results[1:], results[0], threshold)
    doc.update(env_id=env_id, run=str(run_path), episodes=episodes, seed=seed, checkpoint=which)
    return doc, f"{env_id}: {Path(run_path).name} ({episodes} episodes per cell)"
