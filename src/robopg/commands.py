"""The ``train``, ``resume``, ``eval`` and ``variance`` subcommands: each an ``add_arguments(parser)`` and a
``run(args) -> exit code``. Only the config, the codec and the presets are imported to build the parser, so
``robopg --help`` stays fast; a command imports torch when it runs, after the checks that need none.
"""

from __future__ import annotations

import argparse
import json

from . import codec
from .config import CHECKPOINTS, CHECKS, PRIVILEGED_CONTEXT_NOISE, ConfigError, parse_estimator_spec
from .presets import PRESETS

# --- train ----------------------------------------------------------------------------------------------
TRAIN_DESCRIPTION = ("Train a policy. Known robots start from a tuned preset (" + ", ".join(PRESETS) + "); any "
                     "other Gymnasium id uses the general defaults. A --config file overrides the preset, and "
                     "options on the command line override both.")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("env_id", nargs="?", help="Gymnasium environment id, e.g. Hopper-v5 or CartPole-v1, or "
                                             "MODULE:ID for an env your own module registers (my_robots:Arm-v0); "
                                             "may come from --config instead")
    p.add_argument("--config", metavar="FILE.yaml",
                   help="a YAML file of options: the schema of a run's config.yaml, any subset of its keys (e.g. a "
                        "tune's best.yaml); options given on the command line override it")
    codec.add_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --run-dir")


def train_config(args: argparse.Namespace):
    """The run's config: the env's preset, then the --config file, then the options given on the command line."""
    from .presets import make_config

    values = codec.load_config_file(args.config) if args.config else {}
    given = codec.given(args, skip=("env_id",))
    teacher = given.get("distill_from", values.get("distill_from"))
    if teacher:  # a student starts from its teacher's config (robopg.distill)
        from .api import load_config
        from .distill import student_values

        try:
            teacher_config = load_config(teacher)
        except ConfigError as e:
            raise ConfigError(f"--distill-from: {e}") from None
        values = {**student_values(teacher_config, teacher), **values}
    env_id = args.env_id or values.get("env_id")  # an id on the command line overrides the file's, as options do
    values.pop("env_id", None)
    if not env_id:
        raise ConfigError("give an environment id (robopg train ENV_ID), or a --config file with env_id")
    return make_config(env_id, **{**values, **given})


def run_train(args: argparse.Namespace) -> int:
    config = train_config(args)
    config.validate()  # before torch is imported: a typo is answered at once
    from .api import train

    _report(train(config, overwrite=args.overwrite))
    return 0


# --- resume ---------------------------------------------------------------------------------------------
RESUME_DESCRIPTION = ("Continue a run from its checkpoints/latest.pt. It reaches the same numbers as a run that "
                      "was never interrupted.")


def add_resume_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="the run directory")
    p.add_argument("--steps", type=codec.parse_int, default=None, help="a new total step budget (to train longer)")


def run_resume(args: argparse.Namespace) -> int:
    from .api import resume

    _report(resume(args.run, steps=args.steps))
    return 0


def _report(run) -> None:
    print(f"run written to {run.run_dir}  ({run.iterations} iterations, {run.env_steps} env steps, "
          f"last mean return {run.final_return:.1f})")
    print(f"  evaluate: robopg eval {run.run_dir} --episodes 10")


# --- eval -----------------------------------------------------------------------------------------------
EVAL_DESCRIPTION = "Run the trained policy for complete episodes and report its return."


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (runs/<env>/<name>) or a checkpoint file")
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default: 10)")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="latest",
                   help="which checkpoint of a run directory: the final policy, the best training return's, or "
                        "the best held-out score's (--eval-every)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mean/argmax")
    p.add_argument("--seed", type=codec.SEED, default=10_000, help="seed of the evaluation episodes")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_eval(args: argparse.Namespace) -> int:
    from .api import evaluate, load

    policy = load(args.run, which=args.checkpoint)
    result = evaluate(policy, policy.config.env_id, args.episodes, seed=args.seed, deterministic=not args.stochastic)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{policy.config.env_id}: mean return {result['mean_return']:.1f} "
              f"± {result['std_return']:.1f} over {result['episodes']} episodes")
    return 0


# --- variance -------------------------------------------------------------------------------------------
VARIANCE_DESCRIPTION = (
    "Sample batches of whole episodes and compute every listed estimator on the same batches (paired): bias "
    "against the true gradient (exact, or a reference from independent batches), total and per-layer variance, "
    "cosine similarity, signal-to-noise ratio, and cost, at several batch sizes. Prints a table; writes CSV, "
    "JSON and a figure.")
DEFAULT_ESTIMATORS = "reinforce,rtg,rtg+mean,rtg+value,gae,rtg+optimal"
EXACT_PROBLEMS = ("chain", "gridworld", "random", "lqr")


def add_variance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="exact:chain | exact:gridworld | exact:random | exact:lqr (add -H<steps> for "
                                  "the time-limited variant), a Gymnasium id (an initial policy), a run "
                                  "directory or a checkpoint file (a trained policy)")
    p.add_argument("--estimators", default=DEFAULT_ESTIMATORS,
                   help=f"comma list of ESTIMATOR[+BASELINE] (default: {DEFAULT_ESTIMATORS})")
    p.add_argument("--batches", type=int, default=50, help="independent batches (estimates) per estimator")
    p.add_argument("--batch-size", type=codec.parse_int, default=5000,
                   help="steps per batch (whole episodes, at least this)")
    p.add_argument("--batch-sizes", default=None,
                   help="comma list of smaller batch sizes, measured by splitting each batch "
                        "(default: a quarter and a half of --batch-size)")
    # gamma 1 by default: every estimator then targets the gradient of the undiscounted return.
    codec.add_options(p, names=("gamma", "lam", "seed", "env_backend", "randomize", "critic_context_noise"),
                      defaults={"gamma": 1.0, "lam": 0.95, "seed": 0, "env_backend": "auto", "randomize": "",
                                "critic_context_noise": PRIVILEGED_CONTEXT_NOISE})
    p.add_argument("--reference-batches", type=int, default=None,
                   help="independent batches for the reference gradient where none is exact (default 2x --batches)")
    p.add_argument("--value-batches", type=int, default=10,
                   help="independent batches to fit the value baseline on before measuring (robots)")
    p.add_argument("--algorithms", default=None,
                   help="comma list of update rules (pg, npg, ppo): instead of the estimators, measure each rule's "
                        "step from one batch against the exact gradient and exact natural gradient, and PPO's "
                        "drift over epochs and clip ranges (exact:... targets; Psi from the first --estimators "
                        "entry if given, else gae)")
    p.add_argument("--clip-ranges", default="0.1,0.2,0.3", help="with --algorithms: PPO's clip ranges")
    p.add_argument("--ppo-epochs", type=int, default=10, help="with --algorithms: PPO's epochs per batch")
    p.add_argument("--out", default=None, help="output folder (default runs/variance/<target>-<time>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")


def _check_variance_args(args) -> tuple[list[str], list[int]]:
    names = [s for s in args.estimators.split(",") if s.strip()]
    for name in names:
        parse_estimator_spec(name, privileged=True)
    try:
        sizes = ([codec.parse_int(x) for x in args.batch_sizes.split(",") if x.strip()] if args.batch_sizes
                 else [max(1, args.batch_size // 4), max(1, args.batch_size // 2)])
    except ValueError as e:
        raise ConfigError(f"--batch-sizes: {e}") from e
    if not 0.0 <= args.gamma <= 1.0:
        raise ConfigError(f"--gamma: must be in [0, 1], got {args.gamma}")
    from .config import parse_randomize

    try:
        parse_randomize(args.randomize)
    except ValueError as e:
        raise ConfigError(f"--randomize: {e}") from None
    why = CHECKS["non_negative"](args.critic_context_noise)  # the check train's --critic-context-noise gets
    if why:
        raise ConfigError(f"--critic-context-noise: {why}")
    if args.batches < 2:
        raise ConfigError("--batches: at least 2 batches are needed to measure a variance")
    if args.target.startswith("exact:") and args.target[6:].partition("-H")[0] not in EXACT_PROBLEMS:
        raise ConfigError(f"unknown exact problem {args.target!r}: use "
                          f"{', '.join('exact:' + p for p in EXACT_PROBLEMS)}, optionally with -H<steps> for the "
                          "time-limited variant")
    return names, sizes


def _check_algorithm_args(args) -> tuple[list[str], list[float], str]:
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    unknown = sorted(set(algorithms) - {"pg", "npg", "ppo"})
    if not algorithms or unknown:
        raise ConfigError(f"--algorithms: {', '.join(unknown) or 'none given'}: measured are pg, npg and ppo")
    try:
        clips = [float(x) for x in args.clip_ranges.split(",") if x.strip()]
    except ValueError as e:
        raise ConfigError(f"--clip-ranges: {e}") from e
    if not clips or any(not 0 < c < 1 for c in clips):
        raise ConfigError(f"--clip-ranges: each must lie in (0, 1), got {args.clip_ranges}")
    if args.ppo_epochs < 1:
        raise ConfigError(f"--ppo-epochs: must be a positive integer, got {args.ppo_epochs}")
    if not args.target.startswith("exact:"):
        raise ConfigError("--algorithms: the update rules are measured against exact gradients: use an exact:... "
                          "target")
    spec = args.estimators.split(",")[0].strip() if args.estimators != DEFAULT_ESTIMATORS else "gae"
    if parse_estimator_spec(spec)[1] == "optimal":
        raise ConfigError("--estimators: the optimal baseline is one constant per parameter, not a weight per step: "
                          "the update rules cannot use it")
    return algorithms, clips, spec


def run_algorithm_lab(args: argparse.Namespace) -> int:
    import time

    algorithms, clips, spec = _check_algorithm_args(args)  # before torch is imported
    from .diagnostics import measure_algorithms, write_algorithm_outputs

    result = measure_algorithms(args.target, algorithms, spec, batches=args.batches, batch_size=args.batch_size,
                                clip_ranges=tuple(clips), epochs=args.ppo_epochs, lam=args.lam, seed=args.seed)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.target.replace("exact:", "exact-"))
    out = args.out or f"runs/variance/{safe}-algorithms-{time.strftime('%Y%m%d-%H%M%S')}"
    files = write_algorithm_outputs(result, out)
    print(json.dumps(result.to_dict()) if args.json else result.table())
    if not args.json:
        print(f"written: {', '.join(str(f) for f in files)}")
    return 0


def run_variance(args: argparse.Namespace) -> int:
    import time

    if args.algorithms:
        return run_algorithm_lab(args)
    names, sizes = _check_variance_args(args)  # before torch is imported
    from .diagnostics import measure, write_outputs

    result = measure(args.target, names, batches=args.batches, batch_size=args.batch_size, batch_sizes=sizes,
                     gamma=args.gamma, lam=args.lam, seed=args.seed, reference_batches=args.reference_batches,
                     value_batches=args.value_batches, backend=args.env_backend, randomize=args.randomize,
                     context_noise=args.critic_context_noise)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.target.replace("exact:", "exact-"))
    out = args.out or f"runs/variance/{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
    files = write_outputs(result, out)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.table())
        print(f"written: {', '.join(str(f) for f in files)}")
    return 0
