"""hyperfusion.engine.devices: one reading of a device name for training, predict, explain and validate."""

from __future__ import annotations

import pytest
import torch

from hyperfusion.engine.devices import accelerator, check_available, torch_device


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cpu", ("cpu", 1)), ("cuda", ("gpu", 1)), ("gpu", ("gpu", 1)), ("cuda:3", ("gpu", [3]))],
)
def test_accelerator_is_what_lightning_is_asked_for(name, expected):
    assert accelerator(name) == expected


def test_auto_is_a_gpu_only_when_there_is_one():
    assert accelerator("auto") == (("gpu", 1) if torch.cuda.is_available() else ("cpu", 1))
    assert torch_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_torch_device_keeps_the_index():
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device("cuda:2") == torch.device("cuda", 2)


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "cuda:", ""])
def test_a_name_that_is_no_device_is_refused(bad):
    with pytest.raises(ValueError, match="device must be"):
        accelerator(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
@pytest.mark.parametrize("key", ["training.device", "--device"])
def test_a_missing_gpu_names_the_setting_that_asked_for_it(key):
    with pytest.raises(ValueError, match=rf"^{key}: 'cuda:0', but this machine has no CUDA GPU"):
        check_available("cuda:0", key=key)
    check_available("cpu", key=key)
    check_available("auto", key=key)
