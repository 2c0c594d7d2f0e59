"""A torch `Dataset` over preprocessed images and tabular features: items ``(image, tabular, target, subject_id)``.

Shapes per item:
    image     float32 ``[1, D, H, W]``; for hippocampal crops in training one side drawn per item
              (paper §4.3.6: left, or the mirrored right), in evaluation both sides ``[2, 1, D, H, W]``
              (left, mirrored right) so the caller can average the two soft decisions;
    tabular   float32 ``[F]``;
    target    int64 class index, or float32 value (a 0-d tensor);
    subject_id  str.

The side is drawn from ``default_rng([seed, epoch, index])``: reproducible whatever the number of DataLoader
workers. Call `CohortDataset.set_epoch` before each epoch (with non-persistent workers) for fresh draws.

Training items can also be augmented (:class:`Augment`): a random shift of a few voxels along each axis, the
vacated voxels filled with 0 (the background of a z-scored, skull-stripped image), and a left-right mirror. A
brain-age CNN trained on a few hundred subjects memorises them without it (docs/evaluation.md); shifts and mirrors
are the usual remedy for brain-age CNNs (e.g. Peng et al. 2021). Draws come from ``default_rng([seed, epoch, index,
1])``, so they too are reproducible.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from hyperfusion.data.batches import BufferPool, ItemBatch, MappedFiles, ReadThreads, load_npy
from hyperfusion.data.cache import ImageCache
from hyperfusion.data.images import ImageSpec
from hyperfusion.data.manifest import Cohort
from hyperfusion.data.tabular import TabularPreprocessor

Item = tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation of one ``[D, H, W]`` volume in RAS order (axis 0 runs left to right).

    Args:
        shift: largest shift in voxels along each axis (each axis drawn uniformly from ``[-shift, shift]``).
        flip_lr: mirror left-right with probability 1/2.
    """

    shift: int = 0
    flip_lr: bool = False

    def __bool__(self) -> bool:
        return self.shift > 0 or self.flip_lr

    def __call__(
        self, volume: np.ndarray, rng: np.random.Generator, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The augmented volume, contiguous, copied at most once (the mirror is a view the shift copies from;
        with neither drawn, ``volume`` itself), written into ``out`` when given (a batch slot)."""
        moved = np.asarray(volume)
        if self.flip_lr and rng.integers(2):
            moved = moved[::-1]
        if self.shift > 0:
            return shift_volume(moved, rng.integers(-self.shift, self.shift + 1, size=3), out=out)
        if out is None:
            return np.ascontiguousarray(moved)
        np.copyto(out, moved)
        return out


def shift_volume(volume: np.ndarray, offsets: Sequence[int], out: np.ndarray | None = None) -> np.ndarray:
    """``volume`` moved by ``offsets`` voxels per axis; voxels moved in from outside are 0 (not wrapped).
    Written into ``out`` when given (same shape, not ``volume``'s memory)."""
    out = np.zeros_like(volume) if out is None else out
    source, target = [], []
    for size, offset in zip(volume.shape, offsets):
        offset = int(offset)
        if abs(offset) >= size:
            out[...] = 0
            return out
        source.append(slice(max(0, -offset), size - max(0, offset)))
        target.append(slice(max(0, offset), size - max(0, -offset)))
    _zero_outside(out, target)
    out[tuple(target)] = volume[tuple(source)]
    return out


def _zero_outside(out: np.ndarray, inside: list[slice]) -> None:
    """Zero the voxels of ``out`` outside the box ``inside`` (the faces a shift vacates), leaving the box as it is."""
    for axis, part in enumerate(inside):
        before = (slice(None),) * axis
        out[(*before, slice(0, part.start))] = 0
        out[(*before, slice(part.stop, None))] = 0


class CohortDataset(Dataset):
    """Indexes preprocessed images (``.npy`` paths, read as memory maps, or arrays) with their rows.

    Args:
        images: per item, a ``.npy`` path or an array: ``[D, H, W]``, or ``[2, D, H, W]`` with ``two_sides``.
        tabular: ``[N, F]`` features (e.g. `TabularPreprocessor.transform` output).
        targets: ``[N]`` integer class indices or float values.
        subject_ids: ``N`` ids.
        two_sides: items hold (left, mirrored right) hippocampal crops.
        train: draw one side per item (training) instead of returning both (evaluation).
        seed: seed of the side draws.
        augment: training-time augmentation (used only with ``train``).

    Raises:
        ValueError: lengths that differ, a non-2D ``tabular``, non-finite features or targets.
    """

    def __init__(
        self,
        images: Sequence[str | Path | np.ndarray],
        tabular: np.ndarray,
        targets: np.ndarray,
        subject_ids: Sequence[str],
        *,
        two_sides: bool = False,
        train: bool = False,
        seed: int = 0,
        augment: Augment | None = None,
    ) -> None:
        tabular = np.asarray(tabular, dtype=np.float32)
        targets = np.asarray(targets)
        if tabular.ndim != 2:
            raise ValueError(f"tabular must be [N, F], got shape {tabular.shape}")
        lengths = {
            "images": len(images),
            "tabular": len(tabular),
            "targets": len(targets),
            "ids": len(subject_ids),
        }
        if len(set(lengths.values())) != 1:
            raise ValueError(f"CohortDataset inputs differ in length: {lengths}")
        if not np.all(np.isfinite(tabular)):
            raise ValueError("tabular features contain NaN or Inf (impute before building the dataset)")
        if np.issubdtype(targets.dtype, np.integer):
            self._targets = torch.as_tensor(targets, dtype=torch.int64)
        elif np.issubdtype(targets.dtype, np.floating) and np.all(np.isfinite(targets)):
            self._targets = torch.as_tensor(targets, dtype=torch.float32)
        else:
            raise ValueError(
                f"targets must be integer class indices or finite floats, got dtype {targets.dtype}"
            )
        self.images = list(images)
        self.tabular = torch.from_numpy(tabular)
        self.subject_ids = [str(s) for s in subject_ids]
        self.two_sides = bool(two_sides)
        self.train = bool(train)
        self.seed = int(seed)
        self.augment = augment if train and augment else None
        self.epoch = 0

    @property
    def targets(self) -> np.ndarray:
        """Every item's target without reading any image (class weights and oversampling need them)."""
        return self._targets.numpy()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose side draws `__getitem__` makes."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def side(self, index: int) -> int:
        """The side item ``index`` shows in training this epoch: 0 = left, 1 = mirrored right."""
        return int(np.random.default_rng([self.seed, self.epoch, index]).integers(2))

    def __getitem__(self, index: int) -> Item:
        array = self._array(index)
        if self.two_sides:
            array = array[self.side(index)] if self.train else array
        if self.augment is not None:
            array = self.augment(array, np.random.default_rng([self.seed, self.epoch, index, 1]))
        return self._item(array[:, None] if self.two_sides and not self.train else array[None], index)

    def __getitems__(self, indices: Sequence[int]) -> ItemBatch:
        """The items ``indices``, their images read straight into one batch tensor (`hyperfusion.data.batches`):
        the same values as ``[self[i] for i in indices]``, with one copy per image instead of two."""
        indices = [int(i) for i in indices]
        shape = self._item_shape(indices[0]) if indices else (0,)
        images = self._pool.take((len(indices), *shape))
        self._threads.map(self._fill, indices, list(images.numpy()))
        items = [
            (images[j], self.tabular[i], self._targets[i], self.subject_ids[i]) for j, i in enumerate(indices)
        ]
        return ItemBatch(items, images, self.tabular[indices], self._targets[indices])

    def _item_shape(self, index: int) -> tuple[int, ...]:
        """The shape of item ``index``'s image (from the file's header: its mapping is made here)."""
        source = self.images[index]
        array = None
        if not isinstance(source, np.ndarray):
            array = self._mapped.array(source, functools.partial(self._check_shape, index))
        volume = (array if array is not None else self._array(index)).shape[-3:]
        return (2, 1, *volume) if self.two_sides and not self.train else (1, *volume)

    def _fill(self, index: int, slot: np.ndarray) -> None:
        """Write item ``index``'s image into ``slot`` (the shape `__getitem__`'s image has), with one copy: the
        augmentation, where there is one, reads the file's mapping and writes the slot."""
        side = self.side(index) if self.two_sides and self.train else None
        volume = self._volume(index, side, slot.shape[-3:])
        if self.augment is not None:
            self.augment(volume, np.random.default_rng([self.seed, self.epoch, index, 1]), out=slot[0])
        else:
            np.copyto(slot.reshape(slot.shape[0], *slot.shape[2:]) if slot.ndim == 5 else slot[0], volume)

    def _volume(self, index: int, side: int | None, shape: tuple[int, ...]) -> np.ndarray:
        """Item ``index``'s array (side ``side`` of it) without a copy: a view of the file's mapping, of ``np.load``'s
        map where the file is not raw float32, or of the array itself.

        Raises:
            ValueError: its volume is not ``shape`` (the batch's first item's), naming the item.
        """
        source = self.images[index]
        array = None
        if not isinstance(source, np.ndarray):
            array = self._mapped.array(source, functools.partial(self._check_shape, index))
        if array is None:
            array = self._array(index)
        if array.shape[-3:] != tuple(shape):
            raise ValueError(
                f"item {index} ({_name(source)}): image shape {array.shape}, but the batch's first item has "
                f"{tuple(shape)} (every image of a cohort is preprocessed to one shape)"
            )
        return array[side] if side is not None else array

    @property
    def _pool(self) -> BufferPool:
        return self.__dict__.setdefault("_buffers", BufferPool())

    @property
    def _mapped(self) -> MappedFiles:
        return self.__dict__.setdefault("_mapped_files", MappedFiles())

    @property
    def _threads(self) -> ReadThreads:
        return self.__dict__.setdefault("_read_threads", ReadThreads())

    def __getstate__(self) -> dict:
        """Without the batch buffers (a worker or a pickle gets its own)."""
        state = dict(self.__dict__)
        for private in ("_buffers", "_read_threads", "_mapped_files"):
            state.pop(private, None)
        return state

    def _item(self, image: np.ndarray, index: int) -> Item:
        return (
            _tensor(image),
            self.tabular[index],
            self._targets[index],
            self.subject_ids[index],
        )

    def _array(self, index: int) -> np.ndarray:
        source = self.images[index]
        # copy-on-write map: read in place (torch can wrap it), and nothing an item's user writes reaches the file
        array = source if isinstance(source, np.ndarray) else load_npy(source, mmap_mode="c")
        self._check_shape(index, array.shape)
        return array

    def _check_shape(self, index: int, shape: tuple[int, ...]) -> None:
        expected = 4 if self.two_sides else 3
        if len(shape) != expected or (self.two_sides and shape[0] != 2):
            want = "[2, D, H, W] (left, right)" if self.two_sides else "[D, H, W]"
            raise ValueError(
                f"item {index} ({_name(self.images[index])}): image shape {shape}, expected {want}"
            )


def _name(source: object) -> str:
    return "array" if isinstance(source, np.ndarray) else str(source)


def _tensor(image: np.ndarray) -> torch.Tensor:
    """A float32 tensor over ``image``'s memory where it can be (a float32, writable array: the cache's map or an
    augmented copy), so the batch collation is the item's only copy; otherwise a float32 copy."""
    if image.dtype == np.float32 and image.flags.writeable and all(s >= 0 for s in image.strides):
        return torch.from_numpy(image)
    return torch.from_numpy(np.array(image, dtype=np.float32))


def build_dataset(
    cohort: Cohort,
    rows: Sequence[int] | np.ndarray | pd.Series,
    preprocessor: TabularPreprocessor,
    spec: ImageSpec,
    cache: ImageCache,
    *,
    train: bool,
    seed: int = 0,
) -> CohortDataset:
    """A `CohortDataset` over some rows of a cohort (positions, or a boolean mask over ``cohort.frame``).

    ``preprocessor`` must already be fitted — on training rows only; images are preprocessed into
    ``cache`` when missing.
    """
    rows = np.asarray(rows)
    positions = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
    frame = cohort.frame.iloc[positions]
    return CohortDataset(
        cache.ensure_all(frame["image"], spec),
        preprocessor.transform(frame),
        cohort.targets[positions],
        frame["subject_id"].tolist(),
        two_sides=spec.mode == "hippocampus",
        train=train,
        seed=seed,
    )
