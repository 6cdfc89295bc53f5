"""my_robots: robots of our own for robopg. ``import my_robots`` registers ``Arm-v0`` (see ``envs.py``).

From the folder that holds this package (``examples/``)::

    robopg train my_robots:Arm-v0 --steps 50000
    robopg train my_robots.envs:Arm-v0 --env-kwargs reward_scale=2 target=0.5,0.1
    robopg train my_robots:Arm-v0 --env-kwargs dict_obs=true --flatten-observations

or from Python: ``import my_robots; robopg.train(robopg.make_config("Arm-v0"))``.
"""

from . import envs  # noqa: F401  (registers Arm-v0)
