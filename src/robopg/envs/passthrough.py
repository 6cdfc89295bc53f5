"""A vector wrapper that passes on what robopg asks of a vector env beyond Gymnasium's: per-env physics
(``robopg.physics``) and exact state (``robopg.envs.state``). robopg's observation wrappers build on it."""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class PhysicsWrapper(gym.vector.VectorWrapper):
    def get_physics(self):
        from ..physics import get_physics
        return get_physics(self.env)

    def set_physics(self, params, ids=None) -> None:
        from ..physics import set_physics
        set_physics(self.env, params, ids)

    def get_state(self) -> Any:
        from .state import get_vector_state
        return get_vector_state(self.env)

    def set_state(self, state: Any) -> None:
        from .state import set_vector_state
        set_vector_state(self.env, state)
