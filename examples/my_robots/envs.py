"""``Arm-v0``: a two-link planar arm of our own (``arm.xml``) that reaches for a target, as a Gymnasium env.

Importing this module registers the id, so both ``robopg train my_robots:Arm-v0`` and
``robopg train my_robots.envs:Arm-v0`` find it (Gymnasium's "module:EnvId": import the module, then make the env).
Its constructor's keyword arguments are what ``--env-kwargs KEY=VALUE`` sets.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco import MujocoEnv

XML = Path(__file__).resolve().parent / "arm.xml"
REACH = 0.8  # the two links, 0.4 m each


class ArmEnv(MujocoEnv):
    """Reward: -reward_scale * (distance from fingertip to target) - ctrl_cost * |action|^2, every step.

    Observation: cos and sin of both joint angles, their velocities, and fingertip - target (8 numbers); with
    ``dict_obs=True`` the same numbers as a Dict {"joints": 6, "to_target": 2}, which robopg trains on with
    ``--flatten-observations``. ``target``: a fixed (x, y) within reach, or None for a new random one each episode.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 50}

    def __init__(self, reward_scale: float = 1.0, target: tuple[float, float] | None = None,
                 ctrl_cost: float = 0.01, dict_obs: bool = False, render_mode: str | None = None,
                 width: int = 480, height: int = 480):
        if target is not None:
            target = np.asarray(target, dtype=np.float64)
            if target.shape != (2,) or not np.all(np.isfinite(target)):
                raise ValueError(f"target must be two numbers x,y, got {target.tolist()}")
            if np.linalg.norm(target) > REACH:
                raise ValueError(f"target {target.tolist()} is out of the arm's reach ({REACH} m)")
        self.reward_scale, self.fixed_target, self.ctrl_cost = float(reward_scale), target, float(ctrl_cost)
        self.dict_obs = bool(dict_obs)
        box = spaces.Box(-np.inf, np.inf, shape=(8,), dtype=np.float64)
        space = spaces.Dict({"joints": spaces.Box(-np.inf, np.inf, shape=(6,), dtype=np.float64),
                             "to_target": spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)})
        super().__init__(str(XML), frame_skip=2, observation_space=space if dict_obs else box,
                         render_mode=render_mode, width=width, height=height,
                         default_camera_config={"distance": 2.6, "elevation": -70.0, "lookat": np.zeros(3)})

    def step(self, action):
        self.do_simulation(action, self.frame_skip)
        distance = float(np.linalg.norm(self._to_target()))
        reward = -self.reward_scale * distance - self.ctrl_cost * float(np.square(action).sum())
        if self.render_mode == "human":
            self.render()
        # The time limit (TimeLimit, from max_episode_steps at registration) truncates; nothing terminates.
        return self._get_obs(), reward, False, False, {"distance": distance}

    def reset_model(self):
        qpos = self.init_qpos.copy()
        qpos[:2] = self.np_random.uniform(-np.pi, np.pi, size=2) * np.array([1.0, 0.8])
        qpos[2:] = self.fixed_target if self.fixed_target is not None else self._random_target()
        self.set_state(qpos, np.zeros(self.model.nv))
        return self._get_obs()

    def _random_target(self) -> np.ndarray:
        radius, angle = self.np_random.uniform(0.2, REACH * 0.95), self.np_random.uniform(-np.pi, np.pi)
        return radius * np.array([np.cos(angle), np.sin(angle)])

    def _to_target(self) -> np.ndarray:
        return (self.data.body("fingertip").xpos - self.data.body("target").xpos)[:2]

    def _get_obs(self):
        angles, speeds = self.data.qpos[:2], self.data.qvel[:2]
        joints = np.concatenate([np.cos(angles), np.sin(angles), speeds])
        if self.dict_obs:
            return {"joints": joints, "to_target": self._to_target().copy()}
        return np.concatenate([joints, self._to_target()])


gym.register(id="Arm-v0", entry_point="my_robots.envs:ArmEnv", max_episode_steps=100)
