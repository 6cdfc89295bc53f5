"""Two Ray nodes on this machine: robopg samples across both, loses one mid-run, and finishes the run.

    python -m benchmarks.ray_two_nodes [--steps 16384] [--json benchmarks/results/ray_two_nodes.json]

1. ``ray start --head`` (2 CPUs) and a second ``ray start --address`` (1 CPU) joining it, in a private temp
   dir, with token authentication off (``RAY_AUTH_MODE=disabled``: a local test cluster);
2. ``robopg train CartPole-v1 --workers 2 --ray-address ...``: the workers spread, one per node;
3. after iteration 3 the second node's raylet is killed (SIGKILL: the node is lost, and its worker with it);
   Ray restarts that worker on the head, which samples its share again;
4. checks that the run completes with a full batch every iteration and exactly one restart, then stops
   only this cluster's processes (``ray stop`` would stop every Ray cluster on the machine).

Prints the phases' durations; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
KILL_AFTER_ITERATION = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_mentioning(text: str) -> set[int]:
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.add(int(proc.name))
            except OSError:
                pass
    return pids


def _children(pids: set[int]) -> set[int]:
    out = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in pids:
                out.add(int(proc.name))
    return out


def _raylets(temp_dir: str) -> set[int]:
    return {p for p in _pids_mentioning(temp_dir) if "raylet/raylet" in Path(f"/proc/{p}/cmdline").read_text()}


def _cluster_pids(temp_dir: str, address: str) -> set[int]:
    """This cluster's processes: those whose command line names its private temp dir or its GCS address
    (GCS, raylets, monitors, client server), and their children (workers, agents)."""
    pids = _pids_mentioning(temp_dir) | _pids_mentioning(address)
    return {p for p in pids | _children(pids) if _alive(p)}


def stop_cluster(temp_dir: str, address: str, timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL (GCS and raylets outlive SIGTERM), to this cluster's processes only."""
    pids = _cluster_pids(temp_dir, address)
    pids.discard(os.getpid())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + timeout
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() and _alive(p) for p in pids):
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run(steps: int, batch_size: int, fast_detection: bool = False) -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    if fast_detection:
        # The GCS declares a silent node dead after 3 missed 1-s health checks instead of Ray's default
        # (about 15-20 s here): the lost worker is restarted sooner. For the test's time budget.
        env.update(RAY_health_check_period_ms="1000", RAY_health_check_timeout_ms="1000",
                   RAY_health_check_failure_threshold="3")
    temp_dir = tempfile.mkdtemp(prefix="rpg2n_", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    address = f"127.0.0.1:{port}"
    times: dict[str, float] = {}
    result: dict = {"address": address, "steps": steps, "batch_size": batch_size}
    try:
        t = time.time()
        subprocess.run([BIN / "ray", "start", "--head", f"--port={port}", "--num-cpus=2", f"--temp-dir={temp_dir}",
                        "--include-dashboard=false", "--disable-usage-stats",
                        f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}"],
                       env=env, check=True, capture_output=True, text=True, timeout=120)
        times["start_head_s"] = time.time() - t
        head_raylets = _raylets(temp_dir)
        t = time.time()
        subprocess.run([BIN / "ray", "start", f"--address={address}", "--num-cpus=1", "--disable-usage-stats",
                        f"--dashboard-agent-listen-port={_free_port()}"],
                       env=env, check=True, capture_output=True, text=True, timeout=120)
        times["start_second_node_s"] = time.time() - t
        second = _raylets(temp_dir) - head_raylets
        assert len(second) == 1, f"expected one new raylet, found {second}"

        run_dir = Path(temp_dir) / "run"
        t = time.time()
        proc = subprocess.Popen([BIN / "robopg", "train", "CartPole-v1", "--workers", "2", "--envs-per-worker", "2",
                                 "--steps", str(steps), "--batch-size", str(batch_size), "--ray-address", address,
                                 "--run-dir", str(run_dir), "--no-tensorboard", "--checkpoint-every", "1000"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        metrics = run_dir / "metrics.csv"
        while proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) > KILL_AFTER_ITERATION:
                break
            time.sleep(0.05)
        times["until_node_killed_s"] = time.time() - t
        os.kill(second.pop(), signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
        times["train_total_s"] = time.time() - t
        result["returncode"] = proc.returncode
        # robopg's own lines (Ray's raylet adds pages of log tail about the killed node)
        result["robopg_output"] = [line for line in out.splitlines()
                                   if line.startswith(("ray:", "ray worker", "training", "run written", "robopg:"))]

        with open(metrics, newline="") as f:
            rows = list(csv.DictReader(f))
        steps_per_iteration = [int(float(r["env_steps"])) for r in rows]
        result["iterations"] = len(rows)
        result["worker_restarts"] = sum(float(r["worker_restarts"]) for r in rows)
        result["restart_iteration_s"] = max(float(r["sync_ms"]) for r in rows) / 1000.0
        result["checks"] = {
            "completed": proc.returncode == 0,
            "workers on 2 nodes": "on 2 node(s)" in out,
            "one worker restart": result["worker_restarts"] == 1,
            "full batch every iteration": steps_per_iteration == [batch_size * (i + 1) for i in range(len(rows))]
            and steps_per_iteration[-1] >= steps,
        }
    finally:
        t = time.time()
        stop_cluster(temp_dir, f":{port} ")  # the GCS port, as in "--address=<node ip>:<port> ..."
        times["stop_cluster_s"] = time.time() - t
        result["left_running"] = sorted(_cluster_pids(temp_dir, f":{port} "))
        result["times"] = {k: round(v, 1) for k, v in times.items()}
        shutil.rmtree(temp_dir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=16384)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--fast-detection", action="store_true",
                   help="detect the lost node in ~3 s instead of Ray's default health-check timing")
    args = p.parse_args(argv)
    t = time.time()
    result = run(args.steps, args.batch_size, args.fast_detection)
    result["fast_detection"] = args.fast_detection
    result["total_s"] = round(time.time() - t, 1)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    ok = all(result.get("checks", {"ran": False}).values()) and not result["left_running"]
    print("two-node run: " + ("all checks passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
