"""Shared fixtures: the synthetic cohort and its tiny finished runs (seconds to make, see ``runs.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.explain.runs import classification_config, make_run, regression_config, write_cohort


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, set before any module fixture runs a model (autouse fixtures of a scope come first):
    on a shared 2-core machine two threads per process contend and run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def classification_run(cohort, tmp_path_factory) -> Path:
    return make_run(classification_config(cohort), tmp_path_factory.mktemp("runs") / "classification")


@pytest.fixture(scope="module")
def regression_run(cohort, tmp_path_factory) -> Path:
    return make_run(regression_config(cohort), tmp_path_factory.mktemp("runs") / "regression")
