"""The update rule of a distillation run (``--distill-from``): none.

The policy, its observation normaliser included, stays the teacher's; what the run learns is the policy's
physics estimate, fit after each batch by ``robopg.physics_estimate``.
"""

from __future__ import annotations


class Frozen:
    name = "frozen"

    def __init__(self, config, policy, num_envs: int):
        self.policy = policy

    def update(self, rollout, iteration: int, progress: float) -> dict[str, float]:
        return {}

    def modules(self) -> list:
        return [self.policy]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
