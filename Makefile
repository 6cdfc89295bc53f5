# The two Quick start commands: `make demo` and `make test`. Both build .venv first (a no-op when done).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
export MUJOCO_GL ?= egl

.PHONY: demo test test-fast lint clean bench-throughput bench-learning bench-scaling

$(VENV): $(BIN)/robopg
$(BIN)/robopg: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev,ray,export,tune]'
	touch $(BIN)/robopg

demo: $(VENV)
	$(BIN)/robopg train InvertedPendulum-v5 --run-dir runs/demo --overwrite
	$(BIN)/robopg eval runs/demo --episodes 10

# Two pytest workers, each taking whole files (module fixtures set up once): much of the suite waits on
# subprocesses and Ray, so a 2-core machine runs two files' worth at once.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: $(VENV)
	$(PYTEST)

test-fast: $(VENV)
	$(PYTEST) -m "not slow"

lint: $(VENV)
	$(BIN)/ruff check src tests benchmarks scripts examples

# Benchmarks: a separate venv with the bench extra (SB3, EnvPool), so baselines never touch .venv.
BVENV := .venv-bench
BBIN := $(BVENV)/bin
$(BBIN)/.bench-installed: pyproject.toml constraints.txt
	test -x $(BBIN)/python || $(PY) -m venv $(BVENV)
	$(BBIN)/python -m pip install -q --upgrade pip
	$(BBIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BBIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $@

# ARGS passes options through, e.g. `make bench-learning ARGS=--quick`.
bench-throughput bench-learning bench-scaling: bench-%: $(BBIN)/.bench-installed
	$(BBIN)/python -m benchmarks $* $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
