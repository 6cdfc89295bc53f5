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

    _add_variance_command(sub)
    from .experiments.commands import register

    register(sub)  # sweep, compare, report, video
    return parser


DEFAULT_ESTIMATORS = "reinforce,rtg,rtg+mean,rtg+value,gae,rtg+optimal"


def _add_variance_command(sub) -> None:
    p = sub.add_parser(
        "variance", help="measure the bias and variance of policy-gradient estimators",
        description="Sample batches of whole episodes and compute every listed estimator on the same batches "
                    "(paired): bias against the true gradient (exact, or a reference from independent batches), "
                    "total and per-layer variance, cosine similarity, signal-to-noise ratio, and cost, at "
                    "several batch sizes. Prints a table; writes CSV, JSON and a figure.")
    p.add_argument("target", help="exact:chain | exact:gridworld | exact:random | exact:lqr (add -H<steps> for "
                                  "the time-limited variant), a Gymnasium id (an initial policy), a run "
                                  "directory or a checkpoint file (a trained policy)")
    p.add_argument("--estimators", default=DEFAULT_ESTIMATORS,
                   help=f"comma list of ESTIMATOR[+BASELINE] (default: {DEFAULT_ESTIMATORS})")
    p.add_argument("--batches", type=int, default=50, help="independent batches (estimates) per estimator")
    p.add_argument("--batch-size", type=int, default=5000, help="steps per batch (whole episodes, at least this)")
    p.add_argument("--batch-sizes", default=None,
                   help="comma list of smaller batch sizes, measured by splitting each batch "
                        "(default: a quarter and a half of --batch-size)")
    p.add_argument("--gamma", type=float, default=1.0,
                   help="discount (default 1: all estimators then target the gradient of the undiscounted return)")
    p.add_argument("--lam", type=float, default=0.95, help="GAE lambda")
    p.add_argument("--seed", type=int, default=0, help="seed of the policy (when initialised) and the sampling")
    p.add_argument("--reference-batches", type=int, default=None,
                   help="independent batches for the reference gradient where none is exact (default 2x --batches)")
    p.add_argument("--value-batches", type=int, default=10,
                   help="independent batches to fit the value baseline on before measuring (robots)")
    p.add_argument("--env-backend", choices=("auto", "gymnasium", "native"), default="auto")
    p.add_argument("--out", default=None, help="output folder (default runs/variance/<target>-<time>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")


EXACT_PROBLEMS = ("chain", "gridworld", "random", "lqr")


def _check_variance_args(args) -> tuple[list[str], list[int]]:
    from .config import parse_estimator_spec

    # Everything checkable without torch is checked first: a typo costs no import time.
    names = [s for s in args.estimators.split(",") if s.strip()]
    for name in names:
        parse_estimator_spec(name)
    try:
        sizes = ([int(x) for x in args.batch_sizes.split(",") if x.strip()] if args.batch_sizes
                 else [max(1, args.batch_size // 4), max(1, args.batch_size // 2)])
    except ValueError as e:
        raise ConfigError(f"--batch-sizes: {e}") from e
    if not 0.0 <= args.gamma <= 1.0:
        raise ConfigError(f"--gamma: must be in [0, 1], got {args.gamma}")
    if args.batches < 2:
        raise ConfigError("--batches: at least 2 batches are needed to measure a variance")
    if args.target.startswith("exact:") and args.target[6:].partition("-H")[0] not in EXACT_PROBLEMS:
        raise ConfigError(f"unknown exact problem {args.target!r}: use "
                          f"{', '.join('exact:' + p for p in EXACT_PROBLEMS)}, optionally with -H<steps> for the "
                          "time-limited variant")
    return names, sizes


def _run_variance(args, names: list[str], sizes: list[int]) -> int:
    import time

    from .diagnostics import measure, write_outputs
    result = measure(args.target, names, batches=args.batches, batch_size=args.batch_size, batch_sizes=sizes,
                     gamma=args.gamma, lam=args.lam, seed=args.seed, reference_batches=args.reference_batches,
                     value_batches=args.value_batches, backend=args.env_backend)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.target.replace("exact:", "exact-"))
    out = args.out or f"runs/variance/{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
    files = write_outputs(result, out)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.table())
        print(f"written: {', '.join(str(f) for f in files)}")
    return 0


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
    # Checks that need no torch come first, so a typo is answered at once.
    if args.command == "train":
        config = _config_from_args(args)
        config.validate()
    elif args.command == "variance":
        variance_args = _check_variance_args(args)
    from .checkpoint import CheckpointError
    from .distributed import WorkerError
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
        elif args.command == "variance":
            return _run_variance(args, *variance_args)
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
    except WorkerError as e:
        return _fail(f"{e}. The last checkpoint is kept; `robopg resume` continues the run.", EXIT_FAILED)
    except TrainingInterrupted as e:
        print(f"robopg: {e}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _report(run) -> None:
    print(f"run written to {run.run_dir}  ({run.iterations} iterations, {run.env_steps} env steps, "
          f"last mean return {run.final_return:.1f})")
    print(f"  evaluate: robopg eval {run.run_dir} --episodes 10")


if __name__ == "__main__":
    sys.exit(main())

