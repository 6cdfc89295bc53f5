"""The ``robopg`` command: every subcommand registered in one table, every error mapped to its exit code in
one place. torch is imported only once a command runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .errors import (
    CheckpointError,
    ConfigError,
    EnvError,
    EnvFailure,
    NonFiniteError,
    RenderError,
    StorageError,
    TrainingInterrupted,
    WorkerError,
)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# error type -> (exit code, what follows the message): bad input is 2, a run that failed 1, Ctrl-C 130.
EXIT_CODES: dict[type, tuple[int, str]] = {
    ConfigError: (EXIT_BAD_INPUT, ""),
    EnvError: (EXIT_BAD_INPUT, ""),
    CheckpointError: (EXIT_BAD_INPUT, ""),
    NonFiniteError: (EXIT_FAILED, "; training stopped. The last good checkpoint and metrics.csv are kept."),
    WorkerError: (EXIT_FAILED, ". The last checkpoint is kept; `robopg resume` continues the run."),
    RenderError: (EXIT_FAILED, ""),
    EnvFailure: (EXIT_FAILED, ""),
    StorageError: (EXIT_FAILED, ""),
}


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def commands() -> list[Command]:
    from . import commands as core
    from . import export, robustness
    from .experiments import commands as exp
    from .experiments import tune

    return [
        Command("train", "train a policy on a Gymnasium environment", core.TRAIN_DESCRIPTION,
                core.add_train_arguments, core.run_train),
        Command("eval", "evaluate a trained policy", core.EVAL_DESCRIPTION, core.add_eval_arguments, core.run_eval),
        Command("resume", "continue an interrupted run", core.RESUME_DESCRIPTION, core.add_resume_arguments,
                core.run_resume),
        Command("variance", "measure the bias and variance of policy-gradient estimators",
                core.VARIANCE_DESCRIPTION, core.add_variance_arguments, core.run_variance),
        Command("sweep", "train every setting x seed, as separate processes", exp.SWEEP_DESCRIPTION,
                exp.add_sweep_arguments, exp.run_sweep),
        Command("compare", "learning curves, IQM and confidence intervals across seeds", exp.COMPARE_DESCRIPTION,
                exp.add_compare_arguments, exp.run_compare),
        Command("report", "one self-contained HTML page of a comparison", exp.REPORT_DESCRIPTION,
                exp.add_report_arguments, exp.run_report),
        Command("video", "MP4 (or GIF) of a trained policy, rendered headless", exp.VIDEO_DESCRIPTION,
                exp.add_video_arguments, exp.run_video),
        Command("export", "write a trained policy as ONNX or TorchScript, ready to deploy", export.DESCRIPTION,
                export.add_arguments, export.run),
        Command("tune", "search a robot's settings with Optuna, each trial a run of its own", tune.DESCRIPTION,
                tune.add_arguments, tune.run_command),
        Command("robustness", "evaluate a policy on a grid of physics scale factors (robustness map)",
                robustness.DESCRIPTION, robustness.add_arguments, robustness.run),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robopg",
        description="Train robot control policies with policy gradients (REINFORCE, reward-to-go, baselines, "
                    "GAE) and measure why they work.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands():
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(p)
        p.set_defaults(run_command=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run_command(args)
    except TrainingInterrupted as e:
        print(f"robopg: {e}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except tuple(EXIT_CODES) as e:
        code, suffix = next(v for t, v in EXIT_CODES.items() if isinstance(e, t))
        print(f"robopg: error: {e}{suffix}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
