"""robopg's benchmark suites: ``python -m benchmarks {throughput,learning,scaling}``.

Benchmark-only dependencies (Stable-Baselines3, EnvPool) come from the ``bench`` extra; robopg itself never
imports them.
"""
