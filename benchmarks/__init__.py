"""robopg's benchmark suites: ``python -m benchmarks {throughput,learning,scaling}``, and ``benchmarks.native``
(the native backend against the physics limit: ``python -m benchmarks.native``).

Benchmark-only dependencies (Stable-Baselines3, EnvPool) come from the ``bench`` extra; robopg itself never
imports them.
"""
