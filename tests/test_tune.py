"""``robopg tune``: an Optuna study whose trials are normal runs, resumable, with interrupted trials failed and never
counted; search spaces per update rule, changed from a YAML file; best.yaml loadable by ``train --config``."""

import signal
import subprocess
import sys
import time

import pytest
import yaml

from robopg.config import Config, ConfigError
from robopg.experiments import spaces, tune
from robopg.presets import make_config

from .conftest import run_cli

pytest.importorskip("optuna")

TINY = ["--steps", "2048", "--num-envs", "4", "--no-tensorboard", "--checkpoint-every", "1"]
SMALL_SPACE = "lr: {low: 1e-3, high: 1e-2, log: true}\nbatch_size: [512, 1024]\ndefaults: false\n"


def _one_error_line(out) -> str:
    assert out.returncode == 2, out.stdout[-1000:] + out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("robopg: error: "), out.stderr[-2000:]
    return lines[0]


def _space(tmp_path, text=SMALL_SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def _states(tune_dir):
    study, _ = tune.load_study(tune_dir)
    return sorted((t.number, t.state.name) for t in study.trials), study


def test_a_study_of_normal_runs_ends_in_best_yaml_a_summary_and_an_importance_plot(tmp_path):
    tdir = tmp_path / "t"
    out = run_cli("tune", "CartPole-v1", "--trials", "3", "--jobs", "2", *TINY, "--space", _space(tmp_path),
                  "--tune-dir", tdir, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    states, study = _states(tdir)
    assert [s for _, s in states] == ["COMPLETE"] * 3
    assert study.trials[0].params["lr"] == make_config("CartPole-v1").lr  # trial 0: the preset, inside the space
    for t in study.trials:
        run = tdir / t.user_attrs["run_dir"]
        config = Config.load(run / "config.yaml")  # a normal run directory, with the trial's settings and seed
        assert config.lr == t.params["lr"] and config.batch_size == t.params["batch_size"]
        assert config.seed == t.number and (run / "checkpoints" / "latest.pt").is_file()
    best = yaml.safe_load((tdir / "best.yaml").read_text())
    assert best["lr"] == study.best_trial.params["lr"] and "seed" not in best and "run_dir" not in best
    from robopg.cli import build_parser
    from robopg.commands import train_config

    config = train_config(build_parser().parse_args(["train", "--config", str(tdir / "best.yaml"), "--seed", "7"]))
    assert config.env_id == "CartPole-v1" and config.lr == best["lr"] and config.seed == 7
    summary = (tdir / "summary.md").read_text()
    assert summary.count("| complete |") == 3
    assert (tdir / "importance.png").stat().st_size > 0
    assert not (tdir / tune.LOCK).exists()


def test_resume_fails_what_a_crash_left_running_and_finishes_the_budget(tmp_path):
    tdir = tmp_path / "t"
    the_plan = tune.plan("CartPole-v1", {"steps": 2048, "num_envs": 4, "tensorboard": False}, trials=2,
                         space_file=str(_space(tmp_path)))
    study = tune.create_study(tdir, the_plan)
    study.ask()  # a trial that was running when its tune process died
    out = run_cli("tune", "CartPole-v1", "--resume", "--tune-dir", tdir, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "marked failed" in out.stdout
    states, study = _states(tdir)
    assert states == [(0, "FAIL"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert study.user_attrs["interrupted_trials"] == [0]
    assert "interrupted" in (tdir / "summary.md").read_text()
    out = run_cli("tune", "CartPole-v1", "--resume", "--trials", "3", "--tune-dir", tdir, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [s for _, s in _states(tdir)[0]].count("COMPLETE") == 3


def test_ctrl_c_stops_the_trials_and_marks_them_failed(tmp_path):
    tdir = tmp_path / "t"
    cmd = [sys.executable, "-m", "robopg.cli", "tune", "CartPole-v1", "--trials", "2", "--steps", "200000",
           "--num-envs", "4", "--no-tensorboard", "--space", str(_space(tmp_path)), "--tune-dir", str(tdir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tdir / "trials" / "0000" / "metrics.csv").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    assert "--resume" in out
    states, study = _states(tdir)
    assert states == [(0, "FAIL")] and study.trials[0].user_attrs["interrupted"]
    assert (tdir / "trials" / "0000" / "checkpoints" / "latest.pt").is_file()  # it stopped cleanly
    assert not (tdir / tune.LOCK).exists() and not (tdir / "best.yaml").exists()


# --- bad input: exit 2, one line, nothing written ---------------------------------------------------------------
def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    tdir = tmp_path / "t"
    assert "--trials" in _one_error_line(run_cli("tune", "CartPole-v1", "--trials", "0", "--tune-dir", tdir))
    assert "--jobs" in _one_error_line(run_cli("tune", "CartPole-v1", "--jobs", "0", "--tune-dir", tdir))
    assert "holds no study" in _one_error_line(run_cli("tune", "CartPole-v1", "--resume", "--tune-dir", tdir))
    assert "unknown environment id" in _one_error_line(run_cli("tune", "CartPol-v1", "--tune-dir", tdir))
    bad = _space(tmp_path, "learning_rate: [1, 2]\n")
    assert "learning_rate" in _one_error_line(run_cli("tune", "CartPole-v1", "--space", bad, "--tune-dir", tdir))
    bad = _space(tmp_path, "lr: {low: 1e-2, high: 1e-3}\n")
    assert "low < high" in _one_error_line(run_cli("tune", "CartPole-v1", "--space", bad, "--tune-dir", tdir))
    assert not tdir.exists()


def test_a_study_of_another_env_or_a_foreign_file_is_refused(tmp_path):
    tdir = tmp_path / "t"
    tune.create_study(tdir, tune.plan("CartPole-v1", {"steps": 2048}, trials=1))
    before = (tdir / tune.STUDY_FILE).read_bytes()
    line = _one_error_line(run_cli("tune", "Acrobot-v1", "--resume", "--tune-dir", tdir))
    assert "study of CartPole-v1, not Acrobot-v1" in line
    assert "--resume" in _one_error_line(run_cli("tune", "CartPole-v1", "--tune-dir", tdir))
    assert "--lr" in _one_error_line(run_cli("tune", "CartPole-v1", "--resume", "--lr", "0.1", "--tune-dir", tdir))
    assert (tdir / tune.STUDY_FILE).read_bytes() == before and not (tdir / "trials").exists()
    other = tmp_path / "junk"
    other.mkdir()
    (other / tune.STUDY_FILE).write_bytes(b"not a database at all" * 100)
    assert "cannot be opened" in _one_error_line(run_cli("tune", "CartPole-v1", "--resume", "--tune-dir", other))


# --- the parts ----------------------------------------------------------------------------------------------------
def test_the_learning_curve_gives_the_pruner_one_value_per_stretch_and_the_objective_its_end():
    curve = [(s, float(s)) for s in range(100, 1001, 100)]  # return = env steps
    assert tune.report_value(curve, 1000, 1) is None or tune.report_value(curve, 1000, 1) == 100.0
    assert tune.report_value(curve, 1000, tune.REPORTS) == 1000.0
    assert tune.report_value([(100, 5.0), (900, 7.0)], 1000, 10) == 5.0  # no episode ended inside: the last one
    assert tune.objective(curve) == 1000.0  # only the last 10%
    assert tune.objective([(s, 1.0 if s <= 800 else 3.0) for s in range(10, 1001, 10)]) == 3.0
    assert tune.objective([]) is None


class _Trial:
    number = 0

    def __init__(self, prune_at):
        self.reports, self.prune_at = [], prune_at

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return len(self.reports) >= self.prune_at


class _Proc:
    signals: list = []

    def send_signal(self, s):
        self.signals.append(s)


def test_a_trial_below_the_median_is_stopped_with_sigterm(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    rows = "\n".join(f"{i},{i * 100},{float(i)}" for i in range(1, 11))
    (run / "metrics.csv").write_text("iteration,env_steps,return_mean\n" + rows + "\n")
    job = tune._Job(_Trial(prune_at=6), run, tmp_path / "log", _Proc(), 0.0)
    tune._watch(job, 2000, say=lambda m: None)  # 1000 of 2000 steps: reports 1..10, pruned at the 6th
    assert job.pruned and job.proc.signals == [signal.SIGTERM]
    assert [s for s, _ in job.trial.reports] == [1, 2, 3, 4, 5, 6]
    tune._watch(job, 2000, say=lambda m: None)
    assert job.proc.signals == [signal.SIGTERM]  # once


def test_default_spaces_fit_the_config_and_files_change_them(tmp_path):
    base = make_config("CartPole-v1", steps=1024, estimator="rtg", baseline="value")
    space = spaces.fit_to(spaces.default_space(base), base)
    assert "lam" not in space  # GAE's lambda means nothing to rtg
    assert space["batch_size"].choices == (512, 1024)  # 2048 and 4096 exceed the budget
    text = ("lr: {low: 1e-4, high: 1e-3}\nentropy_coef: 0.01\nvalue_lr: null\nhidden_sizes: [32x32, [16, 16]]\n"
            "gamma: [0.9, 1]\n")
    space = spaces.load_space(_space(tmp_path, text), base)
    assert space["lr"] == spaces.Param("float", 1e-4, 1e-3) and "value_lr" not in space
    assert space["entropy_coef"].kind == "fixed" and space["hidden_sizes"].choices == ("32x32", "16x16")
    assert space["gamma"].choices == (0.9, 1.0)
    assert spaces.space_from_dict(spaces.space_to_dict(space)) == space
    only = spaces.load_space(_space(tmp_path, "defaults: false\nlr: [0.1, 0.2]\n"), base)
    assert list(only) == ["lr"]
    for bad in ("gamma: {low: 0.5, high: 2}\n", "activation: {low: 1, high: 2}\n", "seed: [1, 2]\n", "- lr\n"):
        with pytest.raises(ConfigError, match="--space"):
            spaces.fit_to(spaces.load_space(_space(tmp_path, bad), base), base)


def test_an_update_rule_without_a_default_space_asks_for_a_file():
    assert "trpo" not in spaces.SPACES
    with pytest.raises(ConfigError, match="--space FILE"):
        spaces.default_space(Config(env_id="CartPole-v1", algorithm="trpo"))
