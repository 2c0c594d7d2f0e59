"""The hand-over of conditions: safe under DataParallel replicas and DDP, deepcopy, state_dict; warm starts."""

from __future__ import annotations

import copy
import importlib
import threading

import pytest
import torch
from torch import nn

from hyperfusion.nn import (
    ConditionedModel,
    concat,
    daft,
    film,
    hyperize,
    tabular_encoders,
    warm_start_,
)
from tests.faults import fault
from tests.nn.fused_reference import randomise_fusion

replicate_module = importlib.import_module("torch.nn.parallel.replicate")  # the module, not the function


def encoder(width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(5, width), nn.BatchNorm1d(width), nn.PReLU())


def network() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 1, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    )


def fused_model(seed: int = 0) -> ConditionedModel:
    """Hyper, FiLM, DAFT and concatenation slots; shared and per-layer encoders and the raw vector."""
    torch.manual_seed(seed)
    shared = encoder()
    net = network()
    net.append(nn.ReLU()).append(nn.Linear(3, 2))
    model = hyperize(net, ["2", "7"], shared)
    model = concat(model, ["9"], 5)
    model = film(model, ["0"], 5, encoder=shared)
    model = daft(model, ["5"], 5, encoder={"5": encoder(3)})
    randomise_fusion(model, torch.Generator().manual_seed(seed + 1))
    return model


def batch(seed: int = 2, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, 1, 6, 6, generator=g), torch.randn(size, 5, generator=g)


def fake_broadcast(tensors, devices, detach=False):
    """``_broadcast_coalesced_reshape`` on the CPU: one differentiable copy of each tensor per "device"."""
    return [[t.detach().clone() if detach else t.clone() for t in tensors] for _ in devices]


def test_dataparallel_replicas_use_their_own_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.nn.parallel.replicate, run for real on the CPU; replicas run concurrently as DataParallel does."""
    monkeypatch.setattr(replicate_module, "_broadcast_coalesced_reshape", fake_broadcast)
    model = fused_model().eval()
    replicas = replicate_module.replicate(model, [0, 1])
    assert all(r is not model for r in replicas)
    first = next(s for s in replicas[0].slots())
    assert first is not next(s for s in model.slots())  # the replica's own slot modules are found
    image, tabular = batch()
    halves = [(image[:2], tabular[:2]), (image[2:], tabular[2:])]
    outputs: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            for _ in range(5):  # several interleaved calls per thread
                outputs[index] = replicas[index](*halves[index])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(slot.condition is None for slot in model.slots())  # the original was never written to
    expected = model(image, tabular)
    torch.testing.assert_close(torch.cat([outputs[0], outputs[1]]), expected)
    # gradients flow from both replicas back to the original's parameters, as in DataParallel
    torch.cat([outputs[0], outputs[1]]).sum().backward()
    got = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model(image, tabular).sum().backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(got[name], p.grad, msg=name)


def test_ddp_single_process_matches_the_model(tmp_path) -> None:
    """Under DDP (gloo, one process) the model runs unchanged and its gradients are the plain model's."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = fused_model()
        reference = copy.deepcopy(model)
        wrapped = nn.parallel.DistributedDataParallel(model)
        image, tabular = batch()
        out = wrapped(image, tabular)
        torch.testing.assert_close(out, reference(image, tabular))
        out.square().sum().backward()
        reference(image, tabular).square().sum().backward()
        for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, msg=name)
    finally:
        dist.destroy_process_group()


def test_deepcopy_and_state_dict_round_trip() -> None:
    model = fused_model(0).eval()
    image, tabular = batch()
    twin = copy.deepcopy(model)
    assert all(a is not b for a, b in zip(model.slots(), twin.slots(), strict=True))
    torch.testing.assert_close(twin(image, tabular), model(image, tabular))
    other = fused_model(5).eval()  # same structure, different values
    assert not torch.allclose(other(image, tabular), model(image, tabular))
    missing, unexpected = other.load_state_dict(model.state_dict())
    assert not missing and not unexpected
    torch.testing.assert_close(other(image, tabular), model(image, tabular))
    assert not any(isinstance(v, bool) for v in model.state_dict().values())
    assert all(slot.condition is None for slot in model.slots())


def test_conditions_are_cleared_even_when_the_network_fails() -> None:
    model = fused_model().eval()
    with pytest.raises(ValueError, match=r"FiLM expects a feature map \[B, 1, \.\.\.\]"):
        model(torch.randn(2, 3, 6, 6), torch.randn(2, 5))  # wrong channel count inside the network
    assert all(slot.condition is None for slot in model.slots())


@fault("fusion", "fused network called on its own, without the tabular data", "RuntimeError naming the layer")
def test_calling_the_inner_network_alone_is_an_error() -> None:
    model = fused_model()
    with pytest.raises(RuntimeError, match=r"'0' was called without a condition"):
        model.network(batch()[0])


def test_a_nested_fused_model_keeps_its_own_conditions() -> None:
    """An outer fusion never hands its conditions to the slots of a fused model nested inside its network."""
    torch.manual_seed(0)
    inner = film(nn.Sequential(nn.Linear(3, 3)), ["0"], 2, encoder=nn.Linear(2, 2))

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner
            self.head = nn.Linear(3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x)

    outer = concat(Wrapper(), ["head"], 4)
    assert [s.name for s in outer.slots()] == ["head"]
    assert [s.name for s in inner.slots()] == ["0"]


def test_tabular_encoders_and_warm_start() -> None:
    model = fused_model()
    assert tabular_encoders(model) == list(model.encoders) and len(model.encoders) == 2
    assert tabular_encoders(nn.Linear(2, 2)) == []
    source = encoder()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
        source[1].running_mean.normal_()
    target = film(network(), ["0"], 5, encoder={"0": encoder()})
    first_weight = target.encoders[0][0].weight
    warm_start_(target, source)
    for key, value in source.state_dict().items():
        assert torch.equal(target.encoders[0].state_dict()[key], value)
    assert target.encoders[0][0].weight is first_weight  # copied into place: an optimiser keeps working
    with torch.no_grad():
        target.encoders[0][0].weight.zero_()
    assert source[0].weight.abs().sum() > 0  # independent copies


@fault(
    "fusion",
    "warm_start_ with an encoder of another shape, or on a model without encoders",
    "ValueError naming the encoder and the mismatch; nothing is changed",
)
def test_warm_start_refuses_mismatches() -> None:
    model = film(network(), ["0", "5"], 5, encoder={"0": encoder(4), "5": encoder(3)})
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"tabular encoder 1: '0\.weight' has shape \[3, 5\]"):
        warm_start_(model, encoder(4))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # encoder 0 untouched too
    with pytest.raises(ValueError, match="has state"):
        warm_start_(model, nn.Linear(5, 4))
    with pytest.raises(ValueError, match="no tabular encoder"):
        warm_start_(film(network(), ["0"], 5), encoder())
    with pytest.raises(ValueError, match="no tabular encoder"):
        warm_start_(nn.Linear(5, 2), encoder())


@pytest.mark.parametrize("method", ["ad-concat", "ad-film", "ad-daft", "ad-hyperfusion"])
def test_warm_start_network_copies_the_image_network_into_every_fusion(method: str) -> None:
    from hyperfusion.models import create_model
    from hyperfusion.nn import warm_start_network_

    torch.manual_seed(21)
    source = create_model("ad-imaging", base_width=2, head_hidden=8).eval()
    fused = create_model(method, base_width=2, head_hidden=8, n_tabular=5).eval()
    warm_start_network_(fused, source)
    with torch.no_grad():  # switch off what the fusion adds: the fused model is then the source exactly
        for name, param in fused.named_parameters():
            if ".tabular." in name or "modulator.generator.2" in name or "weight_head" in name:
                if "weight_head" in name:
                    param[1:].zero_()
                else:
                    param.zero_()
            if "bias_generator.weight" in name:
                param.zero_()
    image, tabular = torch.randn(3, 1, 16, 24, 16), torch.randn(3, 5)
    torch.testing.assert_close(fused(image, tabular), source(image), rtol=1e-5, atol=1e-6)


def test_warm_start_network_keeps_hyper_offsets_through_reinitialisation() -> None:
    from hyperfusion.models import create_model
    from hyperfusion.nn import principled_init_from_data_, warm_start_network_

    torch.manual_seed(22)
    source = create_model("ad-imaging", base_width=2)
    fused = create_model("ad-hyperfusion", base_width=2, n_tabular=5)
    warm_start_network_(fused, source)
    principled_init_from_data_(fused, [torch.randn(16, 5)])
    layer = fused.hyper_layers["block4.shortcut.conv"]
    torch.testing.assert_close(layer.weight_head[0], source.block4.shortcut.conv.weight)


def test_warm_start_network_refuses_a_network_that_does_not_fit() -> None:
    from hyperfusion.models import create_model
    from hyperfusion.nn import warm_start_network_

    fused = create_model("ad-concat", base_width=2, n_tabular=5)
    before = {k: v.clone() for k, v in fused.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit the fused network"):
        warm_start_network_(fused, create_model("ad-imaging", base_width=4))
    assert all(torch.equal(before[k], v) for k, v in fused.state_dict().items())  # nothing changed
    with pytest.raises(ValueError, match="expects a fused model"):
        warm_start_network_(create_model("ad-imaging"), create_model("ad-imaging"))
