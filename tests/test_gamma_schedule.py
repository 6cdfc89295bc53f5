"""--gamma-schedule: the discount changed at given env steps. Its schedule, the batches weighed (and the rewards
scaled) with the discount of their step, bit-exact resume across the change, a distilled student leaving it
behind, and bad input."""

import pytest

import robopg
from robopg.config import parse_gamma_schedule
from robopg.errors import ConfigError, TrainingInterrupted

from .conftest import tiny
from .test_training import _numbers, _same, interrupt_at


def test_each_discount_holds_from_its_step_on():
    c = tiny("Pendulum-v1", steps=10_000, gamma=0.99, gamma_schedule="0.995@4000;0.9@8_000")
    assert [c.gamma_at(s) for s in (0, 3999, 4000, 7999, 8000, 10_512)] == [0.99, 0.99, 0.995, 0.995, 0.9, 0.9]
    assert tiny("Pendulum-v1", gamma=0.97).gamma_at(10**9) == 0.97   # not given: --gamma throughout
    assert parse_gamma_schedule(" 0.995@0 ; ") == [(0.995, 0)]


def test_a_schedule_from_the_first_step_is_that_discount(tmp_path):
    # The advantages, V's targets and the reward scaler's returns all take the scheduled discount: the same
    # numbers, to the bit, as the run trained with it as --gamma (and not those of the run's own --gamma).
    kw = dict(steps=2048, batch_size=512, normalize_rewards=True)
    scheduled = robopg.train(tiny("Pendulum-v1", gamma=0.99, gamma_schedule="0.9@0", **kw), tmp_path / "s")
    fixed = robopg.train(tiny("Pendulum-v1", gamma=0.9, **kw), tmp_path / "f")
    plain = robopg.train(tiny("Pendulum-v1", gamma=0.99, **kw), tmp_path / "p")
    _same(_numbers(scheduled.run_dir), _numbers(fixed.run_dir))
    assert _numbers(plain.run_dir) != _numbers(fixed.run_dir)


def test_batches_are_weighed_with_the_discount_of_their_step(tmp_path):
    kw = dict(steps=2048, batch_size=512, gamma=0.99, normalize_rewards=True)
    seen = []

    def record(trainer, rollout, row):
        critic = trainer.algorithm.critic
        seen.append((trainer.env_steps - rollout.num_steps, critic.gamma, critic.reward_scaler.gamma))

    run = robopg.train(tiny("Pendulum-v1", gamma_schedule="0.9@1024", **kw), tmp_path / "s", callbacks=[record])
    assert seen == [(0, 0.99, 0.99), (512, 0.99, 0.99), (1024, 0.9, 0.9), (1536, 0.9, 0.9)]
    plain = robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "p")
    numbers, plain_numbers = _numbers(run.run_dir), _numbers(plain.run_dir)
    _same(numbers[:2], plain_numbers[:2])   # the batches before the change: the plain run's
    assert numbers[2:] != plain_numbers[2:]


@pytest.mark.parametrize("cut_at", [1, 3])  # before the change, and after it
def test_a_scheduled_run_resumes_to_the_same_numbers(tmp_path, cut_at):
    kw = dict(steps=2048, batch_size=512, normalize_rewards=True, gamma_schedule="0.9@1024", checkpoint_every=100)
    full = robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "cut", callbacks=[interrupt_at(cut_at)])
    _same(_numbers(full.run_dir), _numbers(robopg.resume(tmp_path / "cut").run_dir))
    assert robopg.api.load_config(full.run_dir).gamma_schedule == "0.9@1024"


def test_a_distilled_student_leaves_its_teachers_schedule_behind(tmp_path):
    from robopg.distill import student_values

    teacher = tiny("Hopper-v5", randomize="mass=0.5:1.5", policy_obs="privileged", gamma_schedule="0.995@1024")
    assert student_values(teacher, tmp_path)["gamma_schedule"] == ""
    student = tiny("Hopper-v5", randomize="mass=0.5:1.5", policy_obs="estimated", distill_from=str(tmp_path),
                   gamma_schedule="0.9@0")
    with pytest.raises(ConfigError, match="--gamma-schedule"):  # a student makes no policy update to weigh
        student.validate()


@pytest.mark.parametrize("args", [
    ["--gamma-schedule", "0.995"],                      # no step
    ["--gamma-schedule", "1.5@100"],                    # not a discount
    ["--gamma-schedule", "0.9@-1"],
    ["--gamma-schedule", "0.9@x"],
    ["--gamma-schedule", "0.995@600;0.999@500"],        # out of order
    ["--gamma-schedule", "0.995@1024"],                 # = --steps: never used
])
def test_bad_input_exits_2_naming_the_option(cli, tmp_path, args):
    out = cli("train", "Pendulum-v1", *args, "--steps", "1024", "--batch-size", "512", "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert "--gamma-schedule" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
