"""Session settings: under pytest-xdist each worker computes on one thread.

`make test` runs two workers on a two-core machine. Each torch process otherwise starts one intra-op thread per
core, so two workers would run four spinning threads on two cores (seen here: a study model that trains in 30 s
alone took 270-520 s while the test suite ran beside it). Subprocesses (the CLI, the device
script's dry run) inherit the one thread through OMP_NUM_THREADS.
"""

from __future__ import annotations

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
