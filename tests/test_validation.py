"""--eval-every: held-out deterministic evaluation during training, and checkpoints/best-eval.pt. The robots it
draws, its score, that it leaves training's numbers alone, that best-eval.pt is the best-scoring policy, bit-exact
resume, the checkpoint in the commands that read one, and bad input."""

import math

import numpy as np
import pytest
import torch

import robopg
from robopg.errors import CheckpointError, TrainingInterrupted
from robopg.metrics import read_csv
from robopg.validation import EVAL_SEED, episode_returns_on, held_out_robots, score

from .conftest import tiny
from .test_training import _numbers, _same, interrupt_at

EVAL_COLUMNS = ("eval_score", "eval_mean", "eval_min")
RANGES = "mass=0.5:1.5,friction=0.4:1.6:log"


def _hopper(**kw):
    base = dict(steps=3072, randomize=RANGES, eval_every=1024, eval_episodes=5, eval_score="worst-quarter")
    return tiny("Hopper-v5", **{**base, **kw})


def test_held_out_robots_are_drawn_once_from_the_full_ranges_by_the_runs_seed():
    robots = held_out_robots(_hopper(eval_episodes=400, randomize_after=1024, randomize_ramp=1024))
    mass = np.array([r["body_mass"] for r in robots])
    friction = np.array([r["geom_friction"] for r in robots])
    assert mass.min() >= 0.5 and mass.max() <= 1.5 and friction.min() >= 0.4 and friction.max() <= 1.6
    # The full ranges whatever the curriculum: 400 uniform draws reach both ends' last tenths.
    assert mass.min() < 0.6 and mass.max() > 1.4
    assert abs(np.mean(np.log(friction)) - (np.log(0.4) + np.log(1.6)) / 2) < 4 * np.log(4) / math.sqrt(12 * 400)
    assert held_out_robots(_hopper(eval_episodes=400)) == robots            # the same robots every time
    assert held_out_robots(_hopper(eval_episodes=400, seed=1)) != robots    # another seed, other robots
    assert held_out_robots(tiny("Hopper-v5", eval_episodes=3)) == [{}, {}, {}]  # no ranges: the nominal robot


def test_score_is_the_mean_or_the_mean_of_the_lowest_quarter():
    returns = [5.0, 1.0, 9.0, 3.0, 7.0]
    assert score(returns, "mean") == 5.0
    assert score(returns, "worst-quarter") == 2.0   # ceil(5 / 4) = 2 lowest: 1 and 3
    assert score([4.0], "worst-quarter") == 4.0


def test_evaluation_leaves_trainings_numbers_alone(tmp_path):
    plain = robopg.train(_hopper(eval_every=0), tmp_path / "plain")
    evaluated = robopg.train(_hopper(), tmp_path / "evaluated")
    def training(run):
        return [{k: v for k, v in row.items() if k not in EVAL_COLUMNS} for row in _numbers(run.run_dir)]

    _same(training(plain), training(evaluated))
    a = robopg.checkpoint.load(plain.run_dir / "checkpoints" / "latest.pt")["policy"]
    b = robopg.checkpoint.load(evaluated.run_dir / "checkpoints" / "latest.pt")["policy"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (plain.run_dir / "checkpoints" / "best-eval.pt").exists()
    assert all(math.isnan(row["eval_score"]) for row in read_csv(plain.run_dir / "metrics.csv"))


def test_best_eval_holds_the_best_scoring_policy_and_its_score_is_reproduced(tmp_path):
    run = robopg.train(_hopper(), tmp_path / "r")
    rows = read_csv(run.run_dir / "metrics.csv")
    scored = [r for r in rows if not math.isnan(r["eval_score"])]
    # Every 1024 steps, and at the end (6 batches of 512).
    assert [int(r["env_steps"]) for r in scored] == [1024, 2048, 3072]
    best = max(scored, key=lambda r: r["eval_score"])
    saved = robopg.checkpoint.load(run.run_dir / "checkpoints" / "best-eval.pt")
    assert saved["env_steps"] == best["env_steps"] and saved["eval_score"] == pytest.approx(best["eval_score"])
    policy = robopg.load(run.run_dir, which="best-eval")
    config = run.config
    returns = episode_returns_on(policy, config, held_out_robots(config))
    assert score(returns, "worst-quarter") == pytest.approx(best["eval_score"], rel=1e-6)
    assert np.mean(returns) == pytest.approx(best["eval_mean"], rel=1e-6)
    assert min(returns) == pytest.approx(best["eval_min"], rel=1e-6)
    for r in scored:
        assert r["eval_min"] <= r["eval_score"] <= r["eval_mean"] + 1e-9


def test_held_out_episodes_are_their_robots_episodes(tmp_path):
    """The evaluation's episode on a robot is what ``robopg robustness`` gives on a one-episode grid cell with that
    robot and seed: the same physics, the same reset."""
    from robopg.robustness import evaluate_cells

    run = robopg.train(_hopper(eval_episodes=2), tmp_path / "r")
    policy = robopg.load(run.run_dir)
    robots = held_out_robots(run.config)
    returns = episode_returns_on(policy, run.config, robots)
    for i, robot in enumerate(robots):
        cell = evaluate_cells(policy, "Hopper-v5", [robot], 1, seed=EVAL_SEED + i, backend="native")[0]
        # Not to the bit: the policy acts on both robots at once here, on one there, and a matrix product's last
        # bits depend on its rows (robopg.episodes.episode_returns).
        assert cell["mean_return"] == pytest.approx(returns[i], rel=1e-6)


def test_eval_keep_keeps_every_evaluated_policy(tmp_path):
    run = robopg.train(_hopper(eval_keep=True), tmp_path / "r")
    kept = sorted((run.run_dir / "checkpoints").glob("eval-*.pt"), key=lambda p: int(p.stem[5:]))
    assert [p.name for p in kept] == ["eval-1024.pt", "eval-2048.pt", "eval-3072.pt"]
    last = robopg.checkpoint.load(kept[-1])["policy"]
    final = robopg.checkpoint.load(run.run_dir / "checkpoints" / "latest.pt")["policy"]
    assert all(torch.equal(last[k], final[k]) for k in final)
    scores = {int(r["env_steps"]): r["eval_score"] for r in read_csv(run.run_dir / "metrics.csv")}
    for p in kept:  # each one's score is the one in metrics.csv, and robustness reads the file
        policy = robopg.load(p)
        assert score(episode_returns_on(policy, run.config, held_out_robots(run.config)),
                     "worst-quarter") == pytest.approx(scores[int(p.stem[5:])], rel=1e-6)


def test_interrupted_run_resumes_to_the_same_scores_and_best_eval(tmp_path):
    kw = dict(checkpoint_every=100)
    full = robopg.train(_hopper(**kw), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(_hopper(**kw), tmp_path / "cut", callbacks=[interrupt_at(3)])
    resumed = robopg.resume(tmp_path / "cut")
    _same(_numbers(full.run_dir), _numbers(resumed.run_dir))
    a = robopg.checkpoint.load(full.run_dir / "checkpoints" / "best-eval.pt")
    b = robopg.checkpoint.load(resumed.run_dir / "checkpoints" / "best-eval.pt")
    assert a["env_steps"] == b["env_steps"] and all(torch.equal(a["policy"][k], b["policy"][k]) for k in a["policy"])


def test_commands_read_best_eval_and_say_when_a_run_has_none(cli, tmp_path):
    run = robopg.train(_hopper(), tmp_path / "r")
    out = cli("eval", run.run_dir, "--checkpoint", "best-eval", "--episodes", "2")
    assert out.returncode == 0, out.stderr
    out = cli("robustness", run.run_dir, "--checkpoint", "best-eval", "--grid", "mass=0.5:1.5:2", "--episodes", "1",
              "--json")
    assert out.returncode == 0, out.stderr
    plain = robopg.train(tiny("Hopper-v5", steps=1024), tmp_path / "plain")
    out = cli("eval", plain.run_dir, "--checkpoint", "best-eval")
    assert out.returncode != 0 and "--eval-every" in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(CheckpointError, match="--eval-every"):
        robopg.load(plain.run_dir, which="best-eval")


@pytest.mark.parametrize("args,option", [
    (["--eval-every", "-1"], "--eval-every"),
    (["--eval-every", "1024", "--eval-episodes", "0"], "--eval-episodes"),
    (["--eval-every", "1024", "--eval-score", "median"], "--eval-score"),
    (["--eval-keep"], "--eval-keep"),
])
def test_bad_input_exits_2_naming_the_option(cli, tmp_path, args, option):
    out = cli("train", "Hopper-v5", *args, "--steps", "1024", "--batch-size", "512", "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()
