"""What a ``robopg tune`` study leaves behind when it stops: ``best.yaml`` (a config file ``robopg train --config``
reads), ``summary.md`` and ``summary.json`` (every trial: state, objective, settings, seed, run directory) and
``importance.png`` (Optuna's parameter importances: which settings mattered to the objective)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, names

TOP = 10  # rows printed to the terminal (summary.md has them all)


def trial_rows(study, path: Path) -> list[dict[str, Any]]:
    """One row per trial: complete ones best first, then pruned (by their last value), then the rest."""
    interrupted = set(study.user_attrs.get("interrupted_trials", []))
    rows = []
    for t in study.get_trials(deepcopy=False):
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        note = "interrupted" if t.user_attrs.get("interrupted") or t.number in interrupted else \
            t.user_attrs.get("error", "")
        # Optuna gives a pruned trial its last reported value; that is not the objective, so it is kept apart.
        objective = t.value if t.state.name == "COMPLETE" else None
        rows.append({"trial": t.number, "state": t.state.name.lower(), "objective": objective, "last_report": last,
                     "params": dict(t.params), "seed": t.user_attrs.get("seed"),
                     "run_dir": str(path / t.user_attrs["run_dir"]) if "run_dir" in t.user_attrs else "",
                     "wall_s": t.user_attrs.get("wall_s"), "note": note})
    order = {"complete": 0, "pruned": 1}
    return sorted(rows, key=lambda r: (order.get(r["state"], 2), -(r["objective"] if r["objective"] is not None
                                                                   else r["last_report"] or -math.inf)))


def write_outputs(study, the_plan, path: Path, say: Callable[[str], None]) -> list[Path]:
    rows = trial_rows(study, path)
    files = [_write_summary(rows, the_plan, path, say)]
    best = _write_best(study, path, say)
    files += [best] if best else []
    plot = _write_importance(study, path)
    files += [plot] if plot else []
    _atomic(path / "summary.json", json.dumps({"env_id": the_plan.env_id, "options": the_plan.options,
                                               "trials": rows}, indent=2, default=str) + "\n")
    files.append(path / "summary.json")
    return files


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def _write_summary(rows: list[dict], the_plan, path: Path, say: Callable[[str], None]) -> Path:
    params = list(the_plan.space)
    head = ["trial", "state", "objective", *params, "seed", "wall s", "run", "note"]
    lines = [f"# robopg tune: {the_plan.env_id}", "",
             f"{sum(r['state'] == 'complete' for r in rows)} complete, {sum(r['state'] == 'pruned' for r in rows)} "
             f"pruned, {sum(r['state'] == 'fail' for r in rows)} failed. Objective: mean training return over the "
             f"last 10% of {the_plan.options['steps']} steps (pruned trials: their last reported value, in "
             "brackets). Shared options: " + (", ".join(f"{k}={v}" for k, v in the_plan.options.items())), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        value = _fmt(r["objective"]) if r["objective"] is not None else \
            f"({_fmt(r['last_report'])})" if r["last_report"] is not None else ""
        cells = [str(r["trial"]), r["state"], value, *(_fmt(r["params"].get(p)) for p in params), _fmt(r["seed"]),
                 _fmt(r["wall_s"]), os.path.relpath(r["run_dir"], path) if r["run_dir"] else "", r["note"][:80]]
        lines.append("| " + " | ".join(cells) + " |")
    _atomic(path / "summary.md", "\n".join(lines) + "\n")
    for line in lines[4:6 + TOP]:
        say(line)
    return path / "summary.md"


def _write_best(study, path: Path, say: Callable[[str], None]) -> Path | None:
    """The best complete trial's config, less what names one run (seed, run_dir, name): a --config file."""
    try:
        best = study.best_trial
    except ValueError:
        say("no trial has completed yet: no best.yaml")
        return None
    run_dir = path / best.user_attrs["run_dir"]
    values = {k: v for k, v in Config.load(run_dir / "config.yaml").to_dict().items() if k not in names("run")}
    header = (f"# robopg tune: the best of {len(study.trials)} trials of {values['env_id']}: trial {best.number} "
              f"(seed {best.user_attrs.get('seed')}), objective {best.value:.2f}\n"
              f"# run dir: {run_dir}\n"
              "# Train it: robopg train --config best.yaml --seed S   (check it on seeds the study did not use)\n")
    _atomic(path / "best.yaml", header + yaml.safe_dump(values, sort_keys=False))
    say(f"best: trial {best.number}, objective {best.value:.2f}; settings in {path / 'best.yaml'}")
    return path / "best.yaml"


def _write_importance(study, path: Path) -> Path | None:
    """Optuna's parameter importances (PED-ANOVA by default: no scikit-learn needed) as a bar chart."""
    import optuna

    try:
        importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None  # too few complete trials, or none that differ
    if not importances:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4477aa")
    ax.set_xlabel("importance (share of the objective's variation)")
    complete = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    ax.set_title(f"{study.user_attrs.get('env_id', '')}: which settings mattered ({complete} complete trials)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path / "importance.png", dpi=100)
    plt.close(fig)
    return path / "importance.png"
