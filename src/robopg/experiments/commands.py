"""The ``sweep``, ``compare``, ``report`` and ``video`` subcommands of ``robopg``: each an
``add_*_arguments(parser)`` and a ``run_*(args) -> exit code``, registered by ``robopg.cli``. Only argparse,
the config and its codec are imported here, so ``robopg --help`` stays fast; each command imports what it
needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .. import codec
from ..config import CHECKPOINTS, ConfigError
from .sweep import PER_RUN_FIELDS

SWEEP_DESCRIPTION = (
    "Train the cross product of estimators (and --grid settings) x seeds, each a normal run directory trained by "
    "its own process, at most --jobs at once. Run the same command on the sweep's folder again (robopg sweep "
    "SWEEP_DIR) to continue an interrupted sweep: finished runs are skipped, unfinished ones resumed.")
COMPARE_DESCRIPTION = (
    "Compare the arms of a sweep (or any runs of one environment): learning curves vs env steps and wall time "
    "with 95%% bootstrap bands, and a table of final return and AUC as IQM with stratified-bootstrap 95%% "
    "intervals, and steps to reach a threshold. Writes comparison.md, comparison.json and comparison.png.")
REPORT_DESCRIPTION = ("Write one HTML file, viewable offline: the results table, the figures, the configuration "
                      "of each arm, each run's status, and a video of the best run.")
VIDEO_DESCRIPTION = ("Render the trained policy with MuJoCo's offscreen renderer (MUJOCO_GL=egl, else osmesa) and "
                     "write an MP4 (or a GIF). Classic-control envs (CartPole) need pygame.")


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="ENV_OR_SWEEP",
                   help="a Gymnasium id (a new sweep) or an existing sweep folder (continue it)")
    p.add_argument("--estimators", help="comma-separated ESTIMATOR[+BASELINE], e.g. reinforce,rtg,rtg+value "
                                        "(default: reinforce,rtg,rtg+value)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, help="number of seeds: 0..N-1 (default: 5)")
    seeds.add_argument("--seed-list", help="comma-separated seeds, e.g. 3,7,11")
    p.add_argument("--grid", action="append", default=[], metavar="OPTION=V1,V2",
                   help="also sweep a train option over values (repeatable), e.g. --grid lr=3e-4,1e-3")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once (default: 1; each uses "
                                                        "--torch-threads cores)")
    p.add_argument("--sweep-dir", help="the sweep's folder (default: runs/<env>/<name>)")
    p.add_argument("--name", help="the sweep's name (default: sweep-<date>-<time>)")
    g = p.add_argument_group("options passed to every run (as for robopg train; the env's preset fills the rest)")
    codec.add_options(g, skip=PER_RUN_FIELDS, help_suffix="or the preset's")


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    _add_comparison_options(p)
    p.add_argument("--out", help="folder for the table, JSON and figure (default: the sweep's or runs' folder)")
    p.add_argument("--no-figure", action="store_true", help="skip the figure")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON instead of the table")


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    _add_comparison_options(p)
    p.add_argument("--out", help="the HTML file (default: <sweep or runs folder>/report.html)")
    p.add_argument("--no-video", action="store_true", help="leave out the video of the best run")
    p.add_argument("--video-seconds", type=float, default=10.0, help="simulated seconds of video (default: 10)")
    p.add_argument("--video-size", type=int, default=320, help="video width and height in pixels (default: 320)")


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory or a checkpoint file")
    p.add_argument("--episodes", type=int, default=2, help="episodes to record (default: 2)")
    p.add_argument("--out", help="output file (default: <run>/video.mp4, or video.gif with --gif)")
    p.add_argument("--gif", action="store_true", help="write a GIF instead of an MP4")
    p.add_argument("--width", type=int, default=480, help="frame width in pixels (default: 480)")
    p.add_argument("--height", type=int, default=480, help="frame height in pixels (default: 480)")
    p.add_argument("--fps", type=float, default=None,
                   help="frames per second (default: real time, about 30 frames per simulated second)")
    p.add_argument("--max-steps", type=int, default=None, help="stop each episode after this many steps")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="latest",
                   help="the final policy, the best training return's, or the best held-out score's (--eval-every)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mean")
    p.add_argument("--seed", type=codec.SEED, default=10_000,
                   help="seed of the first episode (default: 10000)")


def _add_comparison_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a sweep folder, run folders, or folders holding runs (all of one environment)")
    p.add_argument("--threshold", type=float, default=None,
                   help="return to reach for 'steps to threshold' (default: the env's Gymnasium "
                        "reward_threshold, e.g. 950 for InvertedPendulum-v5)")
    p.add_argument("--smooth", type=int, default=5,
                   help="trailing mean over this many iterations for curves and the threshold (default: 5)")
    p.add_argument("--include-partial", action="store_true",
                   help="include runs that stopped short of their budget in the statistics (they are listed "
                        "either way)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap (default: 0)")


def run_sweep(args: argparse.Namespace) -> int:
    from . import sweep as sw

    if args.jobs < 1:
        raise ConfigError(f"--jobs: must be at least 1, got {args.jobs}")
    options = codec.given(args, skip=PER_RUN_FIELDS)
    given = list(options)
    if sw.is_sweep(args.target):
        s = sw.load(args.target)
        asked = given + [k for k in ("estimators", "seeds", "seed_list", "sweep_dir", "name")
                         if getattr(args, k) is not None] + (["grid"] if args.grid else [])
        if asked:
            raise ConfigError(f"{args.target} is a sweep: its settings come from its {sw.MANIFEST}, so only "
                              f"--jobs may be given (got --{', --'.join(a.replace('_', '-') for a in asked)})")
    else:
        if Path(args.target).is_dir():
            raise ConfigError(f"{args.target} is a folder but not a sweep (no {sw.MANIFEST}); give an "
                              f"environment id to start one")
        seeds = list(range(args.seeds if args.seeds is not None else 5))
        if args.seeds is not None and args.seeds < 1:
            raise ConfigError(f"--seeds: must be at least 1, got {args.seeds}")
        if args.seed_list is not None:
            try:
                seeds = [int(x) for x in args.seed_list.split(",") if x.strip()]
            except ValueError:
                raise ConfigError(f"--seed-list: cannot read {args.seed_list!r}; write e.g. 0,1,2") from None
        estimators = [e.strip() for e in (args.estimators or "reinforce,rtg,rtg+value").split(",") if e.strip()]
        if args.sweep_dir and args.name:
            raise ConfigError("--sweep-dir and --name: give one (the name is the folder's last part)")
        path = Path(args.sweep_dir) if args.sweep_dir else \
            (Path("runs") / args.target / args.name if args.name else None)
        command = "robopg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        s = sw.plan(args.target, estimators, seeds, options, sw.parse_grid(args.grid), path, command)
        if sw.is_sweep(s.path):
            old = sw.load(s.path)
            if not old.same_plan(s):
                raise ConfigError(f"{s.path} already holds a different sweep; continue it with `robopg sweep "
                                  f"{s.path}` or choose another --sweep-dir")
            s = old
        s.save()
    return sw.run(s, args.jobs).exit_code


def _out_dir(paths: list[str]) -> Path:
    import os

    resolved = [str(Path(p).resolve()) for p in paths]
    common = Path(os.path.commonpath(resolved))
    return common if common.is_dir() else common.parent


def _comparison(args: argparse.Namespace):
    from .compare import compare

    return compare(args.paths, threshold=args.threshold, smooth=args.smooth, include_partial=args.include_partial,
                   reps=args.reps, seed=args.bootstrap_seed)


def run_compare(args: argparse.Namespace) -> int:
    cmp = _comparison(args)
    out = Path(args.out) if args.out else _out_dir(args.paths)
    written = cmp.write(out, figure=not args.no_figure)
    if args.json:
        from .compare import _json_default

        print(json.dumps(cmp.to_dict(), indent=2, default=_json_default))
    else:
        print(cmp.markdown())
        print("written: " + ", ".join(str(p) for p in written))
    for note in cmp.notes():
        print(f"robopg compare: {note}", file=sys.stderr)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from . import report

    if args.video_seconds <= 0:
        raise ConfigError(f"--video-seconds: must be positive, got {args.video_seconds}")
    if args.video_size < 16 or args.video_size % 2:
        raise ConfigError(f"--video-size: an even number of pixels, at least 16, got {args.video_size}")
    cmp = _comparison(args)
    out = Path(args.out) if args.out else _out_dir(args.paths) / "report.html"
    report.write(cmp, out, video=not args.no_video, video_seconds=args.video_seconds, video_size=args.video_size)
    print(f"report written to {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def run_video(args: argparse.Namespace) -> int:
    from .video import make_video

    v = make_video(args.run, args.out, episodes=args.episodes, width=args.width, height=args.height,
                   fps=args.fps, gif=args.gif, max_steps=args.max_steps, which=args.checkpoint, seed=args.seed,
                   deterministic=not args.stochastic)
    print(f"video written to {v.path} ({v.frames} frames, {v.width}x{v.height}, {v.fps:.0f} fps; episode returns "
          + ", ".join(f"{r:.1f}" for r in v.returns) + ")")
    return 0
