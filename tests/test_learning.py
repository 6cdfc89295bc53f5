"""Learning runs with the presets (minutes; marked slow). Returns are evaluated on fresh episodes."""

import pytest

import robopg


@pytest.mark.slow
@pytest.mark.parametrize("env_id,threshold", [("CartPole-v1", 475.0), ("InvertedPendulum-v5", 950.0)])
def test_preset_learns(tmp_path, env_id, threshold):
    run = robopg.train(robopg.make_config(env_id, tensorboard=False), tmp_path / "run")
    result = robopg.evaluate(robopg.load(run.run_dir), env_id, episodes=20)
    assert result["mean_return"] >= threshold, result


@pytest.mark.slow
def test_seed_reinforce_learns_cartpole(tmp_path):
    # The seed's own algorithm: whole-episode returns, no baseline, whole-episode batches.
    config = robopg.make_config("CartPole-v1", estimator="reinforce", baseline="none", steps=300_000,
                                tensorboard=False)
    run = robopg.train(config, tmp_path / "run")
    result = robopg.evaluate(robopg.load(run.run_dir), "CartPole-v1", episodes=20)
    assert result["mean_return"] >= 400.0, result
