"""One reading of a device name: what Lightning is asked for, which torch device a tensor goes to, and whether this
machine has it — shared by training, ``predict``, ``explain`` and ``validate`` (each once had its own copy).

Names: ``cpu``, ``cuda`` (or ``gpu``), ``cuda:<index>``, ``auto`` (a GPU when there is one).
"""

from __future__ import annotations

import torch


def accelerator(device: str) -> tuple[str, int | list[int]]:
    """Lightning's ``(accelerator, devices)`` for a device name.

    Raises:
        ValueError: not a device name.
    """
    if device == "auto":
        return ("gpu", 1) if torch.cuda.is_available() else ("cpu", 1)
    if device == "cpu":
        return "cpu", 1
    if device in ("cuda", "gpu"):
        return "gpu", 1
    if device.startswith("cuda:") and device[5:].isdigit():
        return "gpu", [int(device[5:])]
    raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:<index>' or 'auto', got {device!r}")


def torch_device(device: str) -> torch.device:
    """The torch device a device name puts tensors on (``auto``: the first GPU when there is one)."""
    kind, devices = accelerator(device)
    if kind == "cpu":
        return torch.device("cpu")
    return torch.device("cuda", devices[0] if isinstance(devices, list) else 0)


def check_available(device: str, devices: int = 1, *, key: str = "training.device") -> None:
    """Refuse a device this machine does not have, naming the setting (``key``) that asked for it.

    Raises:
        ValueError: CUDA asked for on a machine without it, a GPU index out of range, or fewer GPUs than
            ``devices`` (DDP).
    """
    if device in ("cpu", "auto"):
        return
    if not torch.cuda.is_available():
        raise ValueError(
            f"{key}: {device!r}, but this machine has no CUDA GPU (torch {torch.__version__}); "
            "use 'cpu' or 'auto'"
        )
    count = torch.cuda.device_count()
    if device.startswith("cuda:") and int(device[5:]) >= count:
        raise ValueError(f"{key}: {device!r}, but this machine has {count} GPU(s)")
    if devices > count:
        key_devices = key.rsplit(".", 1)[0] + ".devices" if "." in key else "devices"
        raise ValueError(f"{key_devices}: {devices}, but this machine has {count} GPU(s)")
