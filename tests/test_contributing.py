"""CONTRIBUTING.md's how-tos, done once each: a new fusion method is one file (docs/examples/gated_fusion.py),
loaded as a plugin, trained, ensembled and reported beside the built-in methods without touching the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from hyperfusion.cli import main
from hyperfusion.simulate import simulate_ad

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


@pytest.fixture(scope="module")
def cohort_yaml(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    return simulate_ad(out, n=40, voxel_size=4.0, interaction=2.0, seed=3, template="phantom", progress=False)


def test_a_fusion_method_is_one_file(cohort_yaml, tmp_path):
    shutil.copy(EXAMPLES / "gated_fusion.py", tmp_path / "gated_fusion.py")
    config = {
        "cohort": str(cohort_yaml),
        "plugins": ["gated_fusion.py"],
        "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 16, 16]},
        "methods": ["ad-imaging", "ad-gated"],
        "reference_method": "ad-gated",
        "model": {"base_width": 2},
        "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 3, "folds": 2},
        "training": {"epochs": 1, "batch_size": 8, "device": "cpu", "progress": False},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv")
    assert {"ad-gated", "ad-imaging", "no-skill"} <= set(results["method"])
    report = (out / "report.md").read_text()
    assert "ad-gated" in report
    # its family's members were found from its registry entry: the tabular model trained for the warm start,
    # the crop reader fitted beside imaging only, and the report compares the fusion with its imaging member
    assert sorted(p.name for p in (out / "units").iterdir()) == [
        "ad-crop-reader",
        "ad-gated",
        "ad-imaging",
        "ad-tabular",
    ]
    assert "| ad-gated | ad-imaging | BA | 1 |" in report  # the "below its member" table


def test_the_gate_starts_as_the_plain_network():
    """The example's slot: zero-initialised gates are exactly 1, so the fused model starts as its trunk."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gated_example", EXAMPLES / "gated_fusion.py")
    module = importlib.util.module_from_spec(spec)
    from hyperfusion.models import registry

    saved = dict(registry._REGISTRY)
    registry._REGISTRY.pop("ad-gated", None)  # registered already when the run above imported the plugin
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        plain = torch.nn.Linear(6, 3)
        slot = module.GatedInput(plain, 6, 4, "fc1")
        slot.condition = torch.randn(5, 4)
        x = torch.randn(5, 6)
        assert torch.equal(slot(x), plain(x))
        slot.gate.bias.data.fill_(-50.0)  # every gate shut: the layer sees zeros
        assert torch.allclose(slot(x), plain(torch.zeros_like(x)))
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)
