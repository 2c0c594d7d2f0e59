"""torch.compile: HyperFusion compiles as one graph (no break in the hyper layers or the hand-over) and matches eager.

The CPU test uses the ``aot_eager`` backend (Dynamo's graph capture plus AOT autograd, without code generation):
Inductor's C++ code generation takes about a minute for this tiny model on a 2-core machine and ~3 minutes with
the backward pass, too slow for the test suite. ``benchmarks/compile_check.py --backend inductor`` runs the default
backend.
"""

from __future__ import annotations

import copy

import pytest
import torch

from hyperfusion.models import create_model

TINY = {
    "base_width": 2,
    "head_hidden": 8,
    "n_tabular": 5,
    "block_dropout": (0.0,) * 4,
    "head_dropout": (0.0, 0.0),
}


def _model_and_batch():
    torch.manual_seed(0)
    model = create_model("ad-hyperfusion", **TINY, hyper_layers=["block4.shortcut.conv", "fc1"])
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(4, 1, 16, 16, 16, generator=g), torch.randn(4, 5, generator=g)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.slow  # ~12 s on 2 cores, most of it Dynamo's first start
def test_hyperfusion_has_no_graph_break() -> None:
    """In training mode (batch-norm statistics, dropout): one graph, the hyper layer and hand-over included."""
    torch.manual_seed(0)
    model = create_model("ad-hyperfusion", base_width=2, head_hidden=8, n_tabular=5).train()
    image, tabular = torch.randn(4, 1, 16, 16, 16), torch.randn(4, 5)
    explanation = torch._dynamo.explain(model)(image, tabular)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
def test_compiled_hyperfusion_matches_eager_outputs_and_gradients() -> None:
    model, image, tabular = _model_and_batch()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    model.eval()
    eager.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(image, tabular), eager(image, tabular), rtol=1e-5, atol=1e-6)
    model.train()
    eager.train()
    compiled(image, tabular).square().sum().backward()
    eager(image, tabular).square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert all(slot.condition is None for slot in model.slots())
