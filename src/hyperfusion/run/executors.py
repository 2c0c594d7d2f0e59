"""Where units run: in this process one after another (``local``), or as Ray tasks across cores, GPUs and machines.

An executor only runs :class:`~hyperfusion.run.units.UnitJob` s and reports each finished one; the plan decides
what runs and in which order, the run directory what is written. Both executors respect dependencies (a warm-started
method waits for its tabular-only model; late fusion for its two members), and a unit gives the same result whichever
ran it, because everything random in it is seeded from the unit.

Ray: each unit is one task with the resources the config asks for (``protocol.num_cpus``, fractional
``protocol.num_gpus`` such as 0.25 to pack four small models on one GPU). ``protocol.address`` (or ``--address``)
connects to a running cluster (``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others;
see docs/cluster.md); without one, a local Ray instance is started on this machine's cores and GPUs. A worker killed
mid-unit loses only that unit: its record is never written, so the unit is retried by Ray (``max_retries``) and, if
the run itself dies, by the next resume.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hyperfusion.run.plan import Unit
from hyperfusion.run.units import UnitJob, UnitOutcome, run_unit

log = logging.getLogger("hyperfusion")

EXECUTORS = ("local", "ray")
OnDone = Callable[[UnitOutcome], None]


class LocalExecutor:
    """Runs units one after another in this process, in plan order (which already respects dependencies)."""

    name = "local"

    def run(self, jobs: Sequence[UnitJob], on_done: OnDone) -> None:
        for job in jobs:
            on_done(run_unit(job))


@dataclass
class RayExecutor:
    """Runs every unit as a Ray task; a unit's task receives its dependencies' results, so Ray orders them.

    Args:
        address: a running cluster's address (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``), or None to
            start a local instance.
        num_cpus, num_gpus: resources of one unit's task (fractional GPUs pack several units on one GPU).
        max_retries: retries of a unit whose worker died (its partial files are never records, so a retry is clean).
        local_cpus: cores of a local instance started here (None: all of them).
    """

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 2
    local_cpus: int | None = None
    name: str = "ray"

    def run(self, jobs: Sequence[UnitJob], on_done: OnDone) -> None:
        ray = _import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            _init_ray(ray, self.address, self.local_cpus)
        try:
            remote = ray.remote(_run_after).options(
                num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries
            )
            refs: dict[Unit, object] = {}
            pending: dict[object, UnitJob] = {}
            for job in jobs:  # plan order: a unit's needs are submitted before it
                needs = [refs[u] for u in job.planned.needs if u in refs]
                ref = remote.remote(job, *needs)
                refs[job.planned.unit] = ref
                pending[ref] = job
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as err:  # a task's error arrives wrapped; name the unit, keep the cause
                        for other in pending:
                            ray.cancel(other)
                        cause = getattr(err, "cause", None) or err
                        raise RuntimeError(
                            f"{job.planned.unit.name} failed on a Ray worker: {cause}"
                        ) from cause
                    on_done(outcome)
        finally:
            if started_here:
                ray.shutdown()


def _run_after(job: UnitJob, *needs: UnitOutcome) -> UnitOutcome:
    """A Ray task body: its dependencies have finished when Ray calls it (their outcomes are the arguments)."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    return run_unit(job)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("protocol.executor: ray needs the ray package (pip install 'ray==2.60.0')") from None
    return ray


def _init_ray(ray, address: str | None, local_cpus: int | None) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance on loopback; clusters set their own
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=local_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
        )


def make_executor(
    name: str, *, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0
) -> LocalExecutor | RayExecutor:
    """The executor a config (``protocol.executor``) or the command line (``--executor``) asks for."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus, num_gpus=num_gpus)
    raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {name!r}")
