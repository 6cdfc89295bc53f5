"""Run a policy exported by ``robopg export RUN --format onnx`` with numpy + onnxruntime + Gymnasium only.

    python examples/deploy_onnx.py runs/Hopper-v5/my-run/export --episodes 10

No torch and no robopg: ``policy.onnx`` holds the observation normaliser and the clip to the action bounds,
and ``policy.json`` says which environment it is for. The episodes are those of ``robopg eval RUN
--episodes N --seed S`` (its ``evaluate()``): min(N, 16) Gymnasium sync vector envs in SAME_STEP autoreset
mode, reset once with ``seed=S`` (env i gets seed S + i), each env contributing its first episodes in order
until N are done. A deterministic export therefore gets the same returns as ``robopg eval``.

A run trained with ``--obs-history K`` takes ``[o_t, ..., o_(t-K), a_(t-1), ..., a_(t-K)]`` (policy.json,
``inputs[0].history``): ``History`` below stacks it as robopg's env wrapper does, restarting an env's stack
when its episode ends.

A ``--stochastic`` export takes a ``noise`` input as well; this script draws it with numpy
(``--noise-seed``), so its returns are repeatable but not those of ``robopg eval --stochastic`` (which
samples with torch's generator).
"""

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime as ort
from gymnasium.vector import AutoresetMode


class OnnxPolicy:
    """``act(obs)``: actions for a batch of observations ``[batch, obs_dim]``, ready for ``env.step``."""

    def __init__(self, export_dir: str | Path, threads: int = 1, noise_seed: int = 0):
        export_dir = Path(export_dir)
        self.info = json.loads((export_dir / "policy.json").read_text())
        model = self.info["model"]
        if model["format"] != "onnx":
            raise SystemExit(f"{export_dir} holds a {model['format']} export; export with --format onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(export_dir / model["file"]), opts,
                                            providers=["CPUExecutionProvider"])
        self.stochastic = bool(model["stochastic"])
        self.rng = np.random.default_rng(noise_seed)
        self.noise_dim = next((i["shape"][-1] for i in model["inputs"] if i["name"] == "noise"), None)
        self.gaussian = self.info["policy"]["type"] == "gaussian"

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        feed = {"obs": obs}
        if self.stochastic:
            shape = (obs.shape[0], self.noise_dim)
            feed["noise"] = (self.rng.standard_normal(shape, dtype=np.float32) if self.gaussian
                             else self.rng.random(shape, dtype=np.float32))
        return self.session.run(["action"], feed)[0]


class History:
    """The stacked input of a ``--obs-history K`` policy: the last K+1 observations and K actions, newest first,
    zeros before an episode's start (discrete actions one-hot)."""

    def __init__(self, spec: dict, action_space: gym.Space, num_envs: int):
        k, self.discrete = spec["k"], isinstance(action_space, gym.spaces.Discrete)
        width = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.obs = np.zeros((num_envs, k + 1, spec["observation_dim"]), np.float32)
        self.actions = np.zeros((num_envs, k, width), np.float32)

    def start(self, obs: np.ndarray, ids=slice(None)) -> np.ndarray:
        self.obs[ids], self.actions[ids] = 0.0, 0.0
        self.obs[ids, 0] = obs[ids]
        return self.stacked()

    def step(self, action: np.ndarray, obs: np.ndarray, ended: np.ndarray) -> np.ndarray:
        self.obs[:, 1:], self.obs[:, 0] = self.obs[:, :-1].copy(), obs
        if self.actions.shape[1]:
            a = np.eye(self.actions.shape[2], dtype=np.float32)[action] if self.discrete else action
            self.actions[:, 1:], self.actions[:, 0] = self.actions[:, :-1].copy(), a.reshape(len(obs), -1)
        return self.start(obs, np.flatnonzero(ended)) if ended.any() else self.stacked()

    def stacked(self) -> np.ndarray:
        n = len(self.obs)
        return np.concatenate([self.obs.reshape(n, -1), self.actions.reshape(n, -1)], axis=1)


def evaluate(policy: OnnxPolicy, env_id: str, episodes: int = 10, seed: int = 10_000,
             num_envs: int | None = None) -> dict:
    """Mean and std of the return over ``episodes`` episodes, seeded and counted as ``robopg eval`` does."""
    n = min(num_envs or episodes, episodes, 16)
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    spec = policy.info["model"]["inputs"][0].get("history")
    history = History(spec, venv.single_action_space, n) if spec else None
    try:
        obs, _ = venv.reset(seed=seed)
        obs = history.start(obs) if history else obs
        running = np.zeros(n)
        quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
        done_count = np.zeros(n, dtype=int)
        per_env: list[list[float]] = [[] for _ in range(n)]
        while (done_count < quota).any():
            action = policy.act(obs)
            obs, reward, terminated, truncated, _ = venv.step(action)
            obs = history.step(action, obs, terminated | truncated) if history else obs
            running += reward
            for i in np.flatnonzero(terminated | truncated):
                if done_count[i] < quota[i]:
                    per_env[i].append(float(running[i]))
                    done_count[i] += 1
                running[i] = 0.0
    finally:
        venv.close()
    returns = [r for env_returns in per_env for r in env_returns]
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
            "episodes": len(returns), "returns": returns}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run an exported robopg ONNX policy in its Gymnasium environment.")
    p.add_argument("export_dir", help="the directory robopg export wrote (policy.onnx + policy.json)")
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default: 10, as robopg eval)")
    p.add_argument("--seed", type=int, default=10_000, help="seed of the episodes (default: 10000, as robopg eval)")
    p.add_argument("--noise-seed", type=int, default=0, help="numpy seed of a stochastic export's noise")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    if args.episodes <= 0:
        p.error(f"--episodes: must be positive, got {args.episodes}")
    policy = OnnxPolicy(args.export_dir, noise_seed=args.noise_seed)
    env_id = policy.info["env_id"]
    result = evaluate(policy, env_id, args.episodes, args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{env_id}: mean return {result['mean_return']:.1f} ± {result['std_return']:.1f} "
              f"over {result['episodes']} episodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
