"""robopg: policy-gradient reinforcement learning for robots, with the estimators as first-class choices."""

from .config import Config, ConfigError
from .presets import PRESETS, make_config

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "PRESETS", "make_config", "train", "resume", "load", "evaluate"]


def __getattr__(name):  # torch and gymnasium load only when training/evaluating is asked for
    if name in ("train", "resume", "load", "evaluate", "load_config"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'robopg' has no attribute {name!r}")
