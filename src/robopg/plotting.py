"""Figures written beside a run."""

from __future__ import annotations

import math
from pathlib import Path

from .metrics import read_csv


def plot_learning_curve(metrics_csv: Path, out_png: Path, title: str) -> None:
    """Episode return (mean, min-max band) against environment steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_csv(metrics_csv) if math.isfinite(r["return_mean"])]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if rows:
        x = [r["env_steps"] for r in rows]
        ax.fill_between(x, [r["return_min"] for r in rows], [r["return_max"] for r in rows], alpha=0.2,
                        label="min-max of the iteration's episodes")
        ax.plot(x, [r["return_mean"] for r in rows], label="mean episode return")
        ax.legend(loc="lower right")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
