"""The command line: help, bad input (exit 2, one clear line, no traceback), train/eval/resume."""

import json

import pytest

OPTIONS = ["--steps", "--seed", "--num-envs", "--batch-size", "--lr", "--gamma", "--lam", "--estimator",
           "--baseline", "--normalize-advantages", "--no-normalize-advantages", "--run-dir"]


def test_help_explains_every_option(cli):
    top = cli("--help")
    assert top.returncode == 0
    for cmd in ("train", "eval", "resume"):
        assert cmd in top.stdout
    out = cli("train", "--help")
    assert out.returncode == 0
    for opt in OPTIONS:
        assert opt in out.stdout, opt
    assert "Hopper-v5" in out.stdout  # presets are listed


def test_unknown_env_id_names_close_matches(cli, tmp_path):
    out = cli("train", "Hoper-v5", "--run-dir", tmp_path / "r")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Hopper-v5" in lines[0] and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,option", [
    (["--gamma", "1.5"], "--gamma"),
    (["--lam", "-0.1"], "--lam"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1e-3"], "--lr"),
    (["--steps", "0"], "--steps"),
    (["--batch-size", "4", "--num-envs", "8"], "--batch-size"),
    (["--estimator", "gae", "--baseline", "none"], "--estimator"),
    (["--estimator", "reinforce", "--baseline", "value", "--batch-mode", "steps"], "--estimator"),
    (["--baseline", "mean", "--batch-mode", "steps", "--estimator", "rtg"], "--batch-mode"),
    (["--num-envs", "-2"], "--num-envs"),
    (["--workers", "-1"], "--workers"),
    (["--workers", "2", "--envs-per-worker", "0"], "--envs-per-worker"),
    (["--workers", "2", "--worker-timeout", "0"], "--worker-timeout"),
    (["--workers", "2", "--worker-timeout", "nan"], "--worker-timeout"),
    (["--ray-address", "ray://head:10001"], "--ray-address"),
    (["--workers", "4", "--envs-per-worker", "8", "--batch-size", "16"], "--batch-size"),
])
def test_invalid_settings_exit_2_naming_the_option(cli, tmp_path, args, option):
    out = cli("train", "CartPole-v1", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


def test_bad_choice_is_rejected_by_the_parser(cli):
    out = cli("train", "CartPole-v1", "--estimator", "magic")
    assert out.returncode == 2 and "--estimator" in out.stderr


def test_train_eval_resume_end_to_end(cli, tmp_path):
    run = tmp_path / "cp"
    out = cli("train", "CartPole-v1", "--steps", "3000", "--batch-size", "500", "--num-envs", "4",
              "--estimator", "reinforce", "--baseline", "none", "--run-dir", run, "--seed", "3")
    assert out.returncode == 0, out.stderr
    for f in ("config.yaml", "metrics.csv", "checkpoints/latest.pt", "checkpoints/best.pt", "learning_curve.png"):
        assert (run / f).exists(), f
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    ev = cli("eval", run, "--episodes", "3", "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert set(result) == {"mean_return", "std_return", "episodes"} and result["episodes"] == 3
    # Training again into the same folder refuses, rather than clobbering the run.
    again = cli("train", "CartPole-v1", "--run-dir", run)
    assert again.returncode == 2 and "resume" in again.stderr
    more = cli("resume", run, "--steps", "4500")
    assert more.returncode == 0, more.stderr
    assert "4500" in (run / "config.yaml").read_text()


def test_eval_and_resume_refuse_non_runs(cli, tmp_path):
    out = cli("eval", tmp_path)
    assert out.returncode == 2 and "checkpoint" in out.stderr and "Traceback" not in out.stderr
    out = cli("resume", tmp_path)
    assert out.returncode == 2 and "not a robopg run" in out.stderr


def test_workers_without_ray_installed_say_how_to_install_it(tmp_path):
    import subprocess
    import sys

    # sys.modules[name] = None makes `import ray` fail as if Ray were not installed.
    code = ("import sys; sys.modules['ray'] = None; from robopg.cli import main; "
            f"sys.exit(main(['train', 'CartPole-v1', '--workers', '2', '--run-dir', r'{tmp_path / 'r'}']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers" in lines[0] and "pip install -e '.[ray]'" in lines[0], out.stderr
    assert not (tmp_path / "r").exists()


def test_a_corrupt_config_names_its_file_and_line(cli, tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("env_id: CartPole-v1\nsteps: [1, 2\nseed: 3\n")
    out = cli("resume", run)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{run / 'config.yaml'} line 3, column 5" in out.stderr
    (run / "config.yaml").write_text("env_id: CartPole-v1\nseed: three\n")
    out = cli("resume", run)
    assert out.returncode == 2 and "seed" in out.stderr and "config.yaml" in out.stderr


def test_run_dir_naming_a_file_is_bad_input(cli, tmp_path):
    (tmp_path / "f").write_text("mine")
    out = cli("train", "CartPole-v1", "--run-dir", tmp_path / "f")
    assert out.returncode == 2 and "is a file" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "f").read_text() == "mine"


def test_mujoco_warnings_go_to_the_run_log_not_the_working_directory(cli, tmp_path):
    # HalfCheetah's model warns that 'settotalmass' is deprecated each time it is built.
    out = cli("train", "HalfCheetah-v5", "--steps", "256", "--num-envs", "2", "--batch-size", "256",
              "--run-dir", tmp_path / "r", "--no-tensorboard", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert "settotalmass" in (tmp_path / "r" / "run.log").read_text()
