"""The config codec: every field an option, values parsed one way everywhere, configs back to argv."""

import argparse
import dataclasses

import pytest

from robopg import codec
from robopg.config import ROLES, Config, ConfigError, fields, names


def _parser(**kw):
    p = argparse.ArgumentParser()
    codec.add_options(p, **kw)
    return p


def test_every_field_has_help_a_role_and_an_option():
    p = _parser()
    options = {a.dest for a in p._actions}
    for f in fields():
        assert f.metadata["help"] and f.metadata["role"] in ROLES
        assert f.name in options or f.metadata.get("positional")


def test_absent_options_parse_to_nothing_so_the_preset_decides():
    assert codec.given(_parser().parse_args([])) == {}


@pytest.mark.parametrize("text,value", [("1000000", 1_000_000), ("1e6", 1_000_000), ("1_000_000", 1_000_000),
                                        ("2.5e3", 2500)])
def test_integer_options_accept_integral_scientific_notation(text, value):
    assert codec.parse_int(text) == value
    assert codec.given(_parser().parse_args(["--steps", text])) == {"steps": value}


@pytest.mark.parametrize("text", ["1.5", "1e-3", "inf", "nan", "ten"])
def test_integer_options_refuse_what_is_not_an_integer(text):
    with pytest.raises(ValueError):
        codec.parse_int(text)
    with pytest.raises(SystemExit):
        _parser().parse_args(["--steps", text])


def test_a_config_round_trips_through_argv():
    changed = Config(env_id="Hopper-v5", steps=123_456, lr=1.2345678901234e-4, normalize_rewards=True,
                     normalize_advantages=False, hidden_sizes=[32, 16, 8], estimator="rtg", baseline="optimal",
                     ray_address="auto", log_every=0.1)
    values = {k: v for k, v in dataclasses.asdict(changed).items() if k != "env_id"}
    parsed = codec.given(_parser().parse_args(codec.to_argv(values)))
    assert Config(env_id="Hopper-v5", **parsed) == changed


@pytest.mark.parametrize("name,text,value", [("lr", "3e-4", 3e-4), ("hidden_sizes", "64x32", [64, 32]),
                                             ("normalize_rewards", "yes", True), ("estimator", "rtg", "rtg")])
def test_parse_value_reads_one_piece_of_text(name, text, value):
    assert codec.parse_value(name, text) == value


@pytest.mark.parametrize("name,text", [("lr", "fast"), ("estimator", "magic"), ("nope", "1"), ("steps", "1.5")])
def test_parse_value_names_the_option_it_refuses(name, text):
    with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
        codec.parse_value(name, text)


def test_a_command_may_give_its_own_defaults():
    args = _parser(names=("gamma", "seed"), defaults={"gamma": 1.0}).parse_args([])
    assert args.gamma == 1.0 and args.seed is None


def test_roles_partition_the_fields():
    assert names("env") == ("env_id",)
    assert set(names("run")) == {"seed", "run_dir", "name"}
    assert set(names("arm")) == {"estimator", "baseline"}
    assert sum(len(names(r)) for r in ROLES) == len(fields())


def test_validate_never_changes_the_config():
    config = Config(env_id="CartPole-v1", workers=2, envs_per_worker=4, batch_size=4096)
    before = dataclasses.asdict(config)
    config.validate()
    assert dataclasses.asdict(config) == before and config.resolved_num_envs() == 8
