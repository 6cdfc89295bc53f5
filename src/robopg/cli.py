"""The ``robopg`` command. Options of ``train`` are generated from ``robopg.config.Config``, so the help text,
the saved config.yaml and the Python API never disagree. torch is imported only once a command runs."""

from __future__ import annotations

import argparse
import json
import sys

from .config import Config, ConfigError, fields
from .presets import PRESETS

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _add_config_options(p: argparse.ArgumentParser) -> None:
    defaults = Config()
    for f in fields():
        if f.name == "env_id":
            continue
        opt = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"{f.metadata['help']} (default: {default!r}, unless the env's preset sets it)"
        kw: dict = {"dest": f.name, "default": None, "help": help_text}
        if f.type in ("bool", bool):
            p.add_argument(opt, action=argparse.BooleanOptionalAction, **kw)
        elif f.type in ("list", list):
            p.add_argument(opt, nargs="+", type=int, metavar="N", **kw)
        else:
            typ = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            p.add_argument(opt, type=typ, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robopg",
        description="Train robot control policies with policy gradients (REINFORCE, reward-to-go, baselines, "
                    "GAE) and measure why they work.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a policy on a Gymnasium environment",
                       description="Train a policy. Known robots start from a tuned preset ("
                                   + ", ".join(PRESETS) + "); any other Gymnasium id uses the general "
                                   "defaults. Options override either.")
    p.add_argument("env_id", help="Gymnasium environment id, e.g. Hopper-v5 or CartPole-v1")
    _add_config_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --run-dir")

    p = sub.add_parser("eval", help="evaluate a trained policy",
                       description="Run the trained policy for complete episodes and report its return.")
    p.add_argument("run", help="a run directory (runs/<env>/<name>) or a checkpoint file")
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default: 10)")
    p.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                   help="which checkpoint of a run directory: the final policy or the best seen in training")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mean/argmax")
    p.add_argument("--seed", type=int, default=10_000, help="seed of the evaluation episodes")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("resume", help="continue an interrupted run",
                       description="Continue a run from its checkpoints/latest.pt. It reaches the same numbers "
                                   "as a run that was never interrupted.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--steps", type=int, default=None, help="a new total step budget (to train longer)")
    from .experiments.commands import register

    register(sub)  # sweep, compare, report, video
    return parser


def _config_from_args(args: argparse.Namespace) -> Config:
    from .presets import make_config

    overrides = {f.name: getattr(args, f.name) for f in fields() if f.name != "env_id"}
    return make_config(args.env_id, **overrides)


def _fail(message: str, code: int) -> int:
    print(f"robopg: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as e:
        return _fail(str(e), EXIT_BAD_INPUT)


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "run_command", None):
        return args.run_command(args)
    if args.command == "train":
        config = _config_from_args(args)
        config.validate()
    from .checkpoint import CheckpointError
    from .envs import EnvError
    from .trainer import NonFiniteError, TrainingInterrupted

    try:
        if args.command == "train":
            from .api import train

            run = train(config, overwrite=args.overwrite)
            _report(run)
        elif args.command == "resume":
            from .api import resume

            run = resume(args.run, steps=args.steps)
            _report(run)
        elif args.command == "eval":
            from .api import evaluate, load

            policy = load(args.run, which=args.checkpoint)
            result = evaluate(policy, policy.config.env_id, args.episodes, seed=args.seed,
                              deterministic=not args.stochastic)
            if args.json:
                print(json.dumps(result))
            else:
                print(f"{policy.config.env_id}: mean return {result['mean_return']:.1f} "
                      f"± {result['std_return']:.1f} over {result['episodes']} episodes")
        return 0
    except (EnvError, CheckpointError) as e:
        return _fail(str(e), EXIT_BAD_INPUT)
    except NonFiniteError as e:
        return _fail(f"{e}; training stopped. The last good checkpoint and metrics.csv are kept.", EXIT_FAILED)
    except TrainingInterrupted as e:
        print(f"robopg: {e}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _report(run) -> None:
    print(f"run written to {run.run_dir}  ({run.iterations} iterations, {run.env_steps} env steps, "
          f"last mean return {run.final_return:.1f})")
    print(f"  evaluate: robopg eval {run.run_dir} --episodes 10")


if __name__ == "__main__":
    sys.exit(main())

