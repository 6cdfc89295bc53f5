"""Bring your own robot: ``module:EnvId`` ids, ``--env-kwargs``, flattened Dict observations and ``train --config``,
with the example robot in ``examples/my_robots`` (its own MuJoCo XML, a Gymnasium env class, registered on import)."""

import sys

import pytest
import yaml

from robopg import codec
from robopg.config import Config, ConfigError
from robopg.metrics import WALL_COLUMNS, read_csv

from .conftest import ROOT, run_cli

EXAMPLES = ROOT / "examples"
TINY = ["--steps", "2048", "--num-envs", "4", "--batch-size", "512", "--no-tensorboard", "--checkpoint-every", "2"]


def robopg(*args, cwd=EXAMPLES, **kw):
    """``robopg`` run from examples/, where the my_robots package lives (as a user runs it beside their module)."""
    return run_cli(*args, cwd=cwd, **kw)


def _one_error_line(out) -> str:
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("robopg: error: "), out.stderr[-2000:]
    return lines[0]


def _metrics(run_dir):
    rows = read_csv(run_dir / "metrics.csv")
    return [{k: v for k, v in row.items() if k not in WALL_COLUMNS and v == v} for row in rows]  # NaN != NaN


# --- module:EnvId and --env-kwargs from the command line ------------------------------------------------------
def test_a_robot_of_ones_own_trains_evaluates_and_resumes_from_the_command_line(tmp_path):
    run = tmp_path / "arm"
    out = robopg("train", "my_robots.envs:Arm-v0", "--env-kwargs", "reward_scale=2", "target=0.5,0.1", *TINY,
                 "--run-dir", run)
    assert out.returncode == 0, out.stderr[-2000:]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["env_id"] == "my_robots.envs:Arm-v0"
    assert saved["env_kwargs"] == {"reward_scale": 2, "target": [0.5, 0.1]}  # typed by YAML's rules
    assert saved["env_backend"] == "gymnasium"
    out = robopg("eval", run, "--episodes", "2", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"episodes": 2' in out.stdout
    out = robopg("resume", run, "--steps", "3072")
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(float(_metrics(run)[-1]["env_steps"])) >= 3072


def test_the_package_name_alone_is_enough_as_in_gymnasium(tmp_path):
    out = robopg("train", "my_robots:Arm-v0", *TINY, "--steps", "512", "--run-dir", tmp_path / "r")
    assert out.returncode == 0, out.stderr[-2000:]


def test_resume_rebuilds_the_same_env_and_reaches_the_same_numbers(tmp_path):
    common = ["my_robots:Arm-v0", "--env-kwargs", "dict_obs=true", "target=-0.3,0.4", "--flatten-observations",
              "--num-envs", "2", "--batch-size", "256", "--no-tensorboard", "--checkpoint-every", "1"]
    assert robopg("train", *common, "--steps", "1536", "--run-dir", tmp_path / "straight").returncode == 0
    out = robopg("train", *common, "--steps", "768", "--run-dir", tmp_path / "stopped")
    assert out.returncode == 0, out.stderr[-2000:]
    out = robopg("resume", tmp_path / "stopped", "--steps", "1536")
    assert out.returncode == 0, out.stderr[-2000:]
    assert _metrics(tmp_path / "stopped") == _metrics(tmp_path / "straight")


def test_from_python_importing_the_module_registers_the_id(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import my_robots  # noqa: F401

    import robopg as rp

    run = rp.train(rp.make_config("Arm-v0", steps=1024, num_envs=2, batch_size=512, tensorboard=False,
                                  env_kwargs={"target": [0.2, -0.5]}), tmp_path / "py")
    assert run.config.env_kwargs == {"target": [0.2, -0.5]}
    policy = rp.load(run.run_dir)
    result = rp.evaluate(policy, "Arm-v0", episodes=2)  # the policy's own env kwargs by default
    assert result["episodes"] == 2


def test_dict_observations_train_when_flattened_and_are_refused_clearly_otherwise(tmp_path):
    out = robopg("train", "my_robots:Arm-v0", "--env-kwargs", "dict_obs=true", *TINY, "--run-dir", tmp_path / "d")
    assert "--flatten-observations" in _one_error_line(out)
    assert not (tmp_path / "d").exists()
    out = robopg("train", "my_robots:Arm-v0", "--env-kwargs", "dict_obs=true", "--flatten-observations", *TINY,
                 "--steps", "1024", "--run-dir", tmp_path / "f")
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_sweep_passes_the_module_and_the_env_kwargs_to_every_run(tmp_path):
    out = robopg("sweep", "my_robots:Arm-v0", "--estimators", "rtg+value", "--seeds", "1", "--env-kwargs",
                 "target=0.5,0.1", "ctrl_cost=0.1", *TINY, "--steps", "1024", "--sweep-dir", tmp_path / "sw",
                 timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    saved = yaml.safe_load((tmp_path / "sw" / "rtg+value" / "s0" / "config.yaml").read_text())
    assert saved["env_id"] == "my_robots:Arm-v0"
    assert saved["env_kwargs"] == {"target": [0.5, 0.1], "ctrl_cost": 0.1}


def test_video_of_a_robot_of_ones_own(tmp_path):
    run = tmp_path / "v"
    assert robopg("train", "my_robots:Arm-v0", *TINY, "--steps", "512", "--run-dir", run).returncode == 0
    out = robopg("video", run, "--episodes", "1", "--max-steps", "6", "--width", "64", "--height", "64", "--gif")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run / "video.gif").stat().st_size > 0


def test_ray_workers_import_the_module_and_rebuild_the_same_env(tmp_path):
    pytest.importorskip("ray")
    out = robopg("train", "my_robots:Arm-v0", "--env-kwargs", "dict_obs=true", "target=0.5,0.1",
                 "--flatten-observations", "--workers", "1", "--envs-per-worker", "2", "--steps", "1024",
                 "--batch-size", "512", "--no-tensorboard", "--run-dir", tmp_path / "ray")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "on 1 Ray workers" in out.stdout


# --- bad input: exit 2, one line, nothing written ---------------------------------------------------------------
def test_a_module_that_does_not_import_is_one_line(tmp_path):
    (tmp_path / "broken_robot.py").write_text("import a_package_nobody_installed\n")
    out = robopg("train", "broken_robot:Arm-v0", "--run-dir", tmp_path / "r", cwd=tmp_path)
    line = _one_error_line(out)
    assert "broken_robot" in line and "a_package_nobody_installed" in line
    (tmp_path / "raising_robot.py").write_text("raise RuntimeError('the XML is missing')\n")
    line = _one_error_line(robopg("train", "raising_robot:Arm-v0", "--run-dir", tmp_path / "r", cwd=tmp_path))
    assert "RuntimeError: the XML is missing" in line
    line = _one_error_line(robopg("train", "no_such_module:Arm-v0", "--run-dir", tmp_path / "r", cwd=tmp_path))
    assert "no_such_module" in line
    assert not (tmp_path / "r").exists()


def test_a_module_that_registers_no_such_id_names_what_it_registers(tmp_path):
    line = _one_error_line(robopg("train", "my_robots:Hand-v0", "--run-dir", tmp_path / "r"))
    assert "'Hand-v0'" in line and "Arm-v0" in line
    assert "MODULE:ID" in _one_error_line(robopg("train", "Arm-v0", "--run-dir", tmp_path / "r"))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kwargs,expect", [(["colour=red"], "does not accept 'colour'"),
                                           (["target=2,2"], "out of the arm's reach")])
def test_env_kwargs_the_env_refuses(tmp_path, kwargs, expect):
    line = _one_error_line(robopg("train", "my_robots:Arm-v0", "--env-kwargs", *kwargs, "--run-dir", tmp_path / "r"))
    assert expect in line
    assert not (tmp_path / "r").exists()


def test_env_kwargs_and_the_native_backend(tmp_path):
    line = _one_error_line(robopg("train", "Hopper-v5", "--env-backend", "native", "--env-kwargs",
                                  "forward_reward_weight=2", "--run-dir", tmp_path / "r"))
    assert "--env-kwargs" in line and "--env-backend gymnasium" in line


# --- --env-kwargs values, and train --config -----------------------------------------------------------------
@pytest.mark.parametrize("text,value", [("2", 2), ("0.5", 0.5), ("3e-4", 3e-4), ("1e6", 1e6), ("true", True),
                                        ("red", "red"), ("0.5,0.1", [0.5, 0.1]), ("[1, 2]", [1, 2]),
                                        ("'a,b'", "a,b"), ("{x: 1}", {"x": 1}), ("null", None)])
def test_env_kwarg_values_are_read_as_yaml(text, value):
    assert codec.yaml_value(text) == value
    assert codec.yaml_value(codec.yaml_text(value)) == value


def test_env_kwargs_round_trip_through_argv():
    import argparse

    p = argparse.ArgumentParser()
    codec.add_options(p)
    kwargs = {"reward_scale": 2, "target": [0.5, 0.1], "name": "a,b", "deep": {"k": [1, "2"]}, "flag": False}
    argv = codec.to_argv({"env_kwargs": kwargs, "flatten_observations": True})
    assert codec.given(p.parse_args(argv)) == {"env_kwargs": kwargs, "flatten_observations": True}
    assert codec.given(p.parse_args(["--env-kwargs", "a=1", "--env-kwargs", "b=2"])) == {"env_kwargs": {"a": 1, "b": 2}}
    with pytest.raises(SystemExit):
        p.parse_args(["--env-kwargs", "no_equals_sign"])
    with pytest.raises(ConfigError, match="--env-kwargs"):
        Config(env_kwargs={"not a name": 1}).validate()


def _train_args(*argv):
    from robopg.cli import build_parser

    return build_parser().parse_args(["train", *map(str, argv)])


def test_a_config_file_sits_between_the_preset_and_the_command_line(tmp_path):
    from robopg.commands import train_config

    path = tmp_path / "arm.yaml"
    path.write_text("env_id: Hopper-v5\nlr: 3e-4\nsteps: 5e5\nhidden_sizes: 32x32\nseed: 1\n"
                    "env_kwargs: {forward_reward_weight: 2}\n")
    config = train_config(_train_args("--config", path, "--seed", "3"))
    assert config.env_id == "Hopper-v5" and config.lr == 3e-4 and config.steps == 500_000
    assert config.seed == 3 and config.hidden_sizes == [32, 32] and config.env_kwargs == {"forward_reward_weight": 2}
    from robopg import make_config

    preset = make_config("Hopper-v5")  # the rest: the preset of Hopper's default rule
    assert config.algorithm == preset.algorithm and config.normalize_rewards == preset.normalize_rewards
    assert config.batch_size == preset.batch_size and config.lr_schedule == preset.lr_schedule
    assert train_config(_train_args("Walker2d-v5", "--config", path)).env_id == "Walker2d-v5"


def test_the_example_config_file(monkeypatch):
    from robopg.commands import train_config

    monkeypatch.chdir(EXAMPLES)
    config = train_config(_train_args("--config", "my_robots/arm.yaml", "--seed", "3"))
    assert config.env_id == "my_robots:Arm-v0" and config.seed == 3 and config.lr == 3e-3
    config.validate()


def test_a_runs_config_yaml_is_a_config_file(trained_cartpole):
    from robopg.commands import train_config

    config = train_config(_train_args("--config", trained_cartpole.run_dir / "config.yaml"))
    assert config == Config.load(trained_cartpole.run_dir / "config.yaml")


@pytest.mark.parametrize("text,expect", [("learning_rate: 0.1\n", "unknown key 'learning_rate'"),
                                         ("seed: abc\n", "seed in"),
                                         ("normalize_rewards: maybe\n", "normalize_rewards"),
                                         ("lr: -1\n", "must be a positive number"), ("env_kwargs: [1]\n", "env_kwargs"),
                                         ("- lr\n", "mapping"), ("lr: [1\n", "not valid YAML")])
def test_a_bad_config_file_is_one_line_naming_the_key_and_the_file(tmp_path, text, expect):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = _one_error_line(robopg("train", "CartPole-v1", "--config", path, "--run-dir", tmp_path / "r"))
    assert expect in line and str(path) in line
    assert not (tmp_path / "r").exists()


def test_without_an_env_id_anywhere(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.001\n")
    assert "environment id" in _one_error_line(robopg("train", "--config", path))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
