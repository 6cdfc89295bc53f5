"""Random command lines never end in a traceback: every run of ``robopg`` exits 0, 1 (one-line error), 2 (bad
input) or 130, and a ``train`` that fails leaves no half-made run directory behind.

Property-based (hypothesis): options and values are drawn from the real ones, valid and invalid, with step
budgets kept small so that a valid command trains in about a second.
"""

import os
import re
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robopg.cli import main

ALLOWED = {0, 1, 2, 130}

VALUES = {
    "--steps": ["512", "1e3", "0", "-5", "1.5", "abc", "2_048"],
    "--num-envs": ["1", "2", "0", "x", "1e0"],
    "--batch-size": ["256", "2e2", "1", "0", "-1"],
    "--estimator": ["reinforce", "rtg", "gae", "magic"],
    "--baseline": ["none", "mean", "value", "optimal", "oracle"],
    "--batch-mode": ["auto", "episodes", "steps", "sometimes"],
    "--gamma": ["0.99", "1", "1.5", "-0.1", "nan"],
    "--lam": ["0.95", "2"],
    "--lr": ["3e-3", "0", "-1", "inf", "fast"],
    "--hidden-sizes": ["8", "8 8", "0", "-4"],
    "--activation": ["tanh", "relu", "sigmoid"],
    "--entropy-coef": ["0.01", "-1"],
    "--max-grad-norm": ["0.5", "-2"],
    "--value-epochs": ["1", "0"],
    "--workers": ["-1", "x"],
    "--env-backend": ["auto", "gymnasium", "native", "warp"],
    "--on-env-error": ["stop", "reset", "ignore"],
    "--max-env-errors": ["0", "-1", "3"],
    "--seed": ["0", "7", "-3", "s"],
    "--checkpoint-every": ["1", "0"],
}
FLAGS = ["--normalize-rewards", "--no-normalize-observations", "--no-tensorboard", "--overwrite", "--tensorboard"]
ENVS = ["CartPole-v1", "InvertedPendulum-v5", "Nope-v0", "CartPole"]


@st.composite
def train_argv(draw):
    argv = ["train", draw(st.sampled_from(ENVS))]
    for opt in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=5, unique=True)):
        argv += [opt, *draw(st.sampled_from(VALUES[opt])).split()]
    argv += draw(st.lists(st.sampled_from(FLAGS), max_size=2, unique=True))
    if "--steps" not in argv:
        argv += ["--steps", "512"]  # a valid command trains for a second, not for the preset's budget
    if "--batch-size" not in argv:
        argv += ["--batch-size", "256"]
    return argv


def _run(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2


def _half_made(run) -> bool:
    """A run directory that holds files but is not a run that can be resumed or evaluated."""
    if not run.exists():
        return False
    if not (run / "config.yaml").exists():
        return any(p.name != "run.lock" for p in run.iterdir())
    return not (run / "checkpoints" / "latest.pt").exists()


@settings(max_examples=int(os.environ.get("ROBOPG_FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=train_argv())
def test_train_never_gives_a_traceback_nor_a_half_made_run(tmp_path, capsys, argv):
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    code = _run([*argv, "--run-dir", run])
    err = capsys.readouterr().err
    assert code in ALLOWED and "Traceback" not in err, (argv, code, err[-2000:])
    if code != 0:
        assert not _half_made(run), (argv, code, sorted(p.name for p in run.iterdir()))
        if code == 2:
            assert len([line for line in err.splitlines() if re.match(r"robopg[\w ]*: error: ", line)]) == 1, err


PATHS = ["{tmp}/nope", "{tmp}", "{tmp}/file.txt", "{run}", "{run}/checkpoints/latest.pt", ""]


@pytest.fixture(scope="module")
def a_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fuzz") / "run"
    assert _run(["train", "CartPole-v1", "--steps", "512", "--batch-size", "256", "--run-dir", run]) == 0
    return run


@st.composite
def other_argv(draw):
    command = draw(st.sampled_from(["eval", "resume", "compare", "variance", "sweep", "report", "video", "export"]))
    path = draw(st.sampled_from(PATHS))
    extra = {
        "eval": [["--episodes", "1"], ["--episodes", "0"], ["--checkpoint", "best"], ["--json"], ["--seed", "x"],
                 ["--seed", "-1"], ["--episodes", "-2"]],
        "resume": [["--steps", "768"], ["--steps", "1e2"], ["--steps", "-1"], []],
        "compare": [["--threshold", "1"], ["--smooth", "0"], ["--reps", "10"], ["--json"]],
        "variance": [["--batches", "2", "--batch-size", "50"], ["--batches", "1"], ["--gamma", "2"],
                     ["--estimators", "rtg,nope"]],
        "sweep": [["--seeds", "0"], ["--jobs", "0"], ["--grid", "lr"], ["--grid", "seed=1,2"]],
        "report": [["--video-size", "3"], ["--video-seconds", "0"]],
        "video": [["--episodes", "0"], ["--width", "-1"], ["--seed", "-5"]],
        "export": [["--format", "gif"], ["--checkpoint", "worst"]],
    }[command]
    target = "exact:chain" if command == "variance" and draw(st.booleans()) else path
    return [command, *([target] if target else []), *draw(st.sampled_from(extra))]


@settings(max_examples=int(os.environ.get("ROBOPG_FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=other_argv())
def test_other_commands_never_give_a_traceback(tmp_path, capsys, a_run, argv):
    (tmp_path / "file.txt").write_text("not a run")
    argv = [a.format(tmp=tmp_path, run=a_run) for a in argv]
    if argv[0] == "resume" and a_run.as_posix() in " ".join(argv):
        return  # resuming the shared run would change it for the other examples
    code = _run([*argv, *(["--out", tmp_path / "out"] if argv[0] in ("variance", "compare") else [])])
    err = capsys.readouterr().err
    assert code in ALLOWED and "Traceback" not in err, (argv, code, err[-2000:])
