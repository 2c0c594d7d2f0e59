"""Units on Ray: a two-worker local cluster gives the local executor's results bit for bit, and survives a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hyperfusion.config import load_config
from hyperfusion.run.executors import RayExecutor, make_executor
from hyperfusion.run.runner import run_protocol
from hyperfusion.simulate import simulate_ad
from tests.run.test_runner import write_config

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cohort_yaml(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    return simulate_ad(out, n=30, voxel_size=4.0, interaction=2.0, seed=5, template="phantom", progress=False)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with two worker slots (one core each), shared by this module's tests."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _states(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        p.relative_to(out).as_posix(): torch.load(p, weights_only=True)
        for p in sorted(out.glob("checkpoints/*/*.pt"))
    }


@pytest.mark.slow
def test_ray_and_local_executors_give_the_same_results(cohort_yaml, tmp_path, ray_cluster):
    config = load_config(write_config(tmp_path / "run.yaml", cohort_yaml))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a Ray task with one core runs one thread: compare like with like
    try:
        local = run_protocol(config, tmp_path / "local", echo=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    lines: list[str] = []
    remote = run_protocol(config, tmp_path / "ray", echo=lines.append, executor=RayExecutor())
    assert any("executor ray" in line for line in lines)
    pd.testing.assert_frame_equal(local, remote)
    a, b = _states(tmp_path / "local"), _states(tmp_path / "ray")
    assert a.keys() == b.keys() and len(a) == 8  # 4 methods (the crop reader included) x 2 folds
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}: {key} differs"


@pytest.mark.slow
def test_a_killed_ray_worker_loses_only_its_unit(cohort_yaml, tmp_path, ray_cluster):
    """SIGKILL the worker process of a running unit: Ray retries it, the run completes and nothing is lost."""
    config = load_config(write_config(tmp_path / "run.yaml", cohort_yaml, epochs=3))
    out = tmp_path / "run"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            found = subprocess.run(
                ["pgrep", "-f", "ray::_run_after"], capture_output=True, text=True
            ).stdout.split()
            if found and list(out.glob("checkpoints/*/*.pt")):  # a unit is mid-training
                os.kill(int(found[0]), signal.SIGKILL)
                killed.append(int(found[0]))
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    results = run_protocol(config, out, echo=lambda _: None, executor=RayExecutor(max_retries=3))
    killer.join()
    assert killed, "no worker was killed mid-unit"
    assert len(list(out.glob("units/*/*.json"))) == 8
    assert set(results["method"]) == {"ad-imaging", "ad-crop-reader", "ad-hyperfusion", "no-skill"}


def test_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("slurm")
