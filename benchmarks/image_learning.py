"""Does the image CNN read what the crops hold? Learning curves of ``ad-imaging`` beside the crop reader.

On one cohort and one fold (split seed 0, validation partition ``--fold``, test partition 4 of 5), ``ad-imaging``
is trained under one setting at a time — training subjects, epochs, width, dropout, shifts, a learning-rate
schedule, input normalisation — and scored on the test partition; the crop reader (``ad-crop-reader``: PCA +
logistic regression on the pooled crops, fitted on the same training rows) is the yardstick. JSON lines go to
``--out``; ``--plot`` draws the learning-curve figure of docs/evaluation.md from them::

    python benchmarks/image_learning.py COHORT.yaml --grid base subjects epochs width dropout shift schedule zscore \
        --out benchmarks/results/image_learning.jsonl
    python benchmarks/image_learning.py --plot benchmarks/results/image_learning.jsonl \
        --figure docs/images/image-learning.png

The schedule setting wraps the engine's optimiser in a one-cycle schedule for this measurement only: the package
has no schedule option, because none that was measured here helped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from hyperfusion.data import Augment, CohortDataset, ImageCache, ImageSpec, load_manifest
from hyperfusion.data.splits import fold_roles, make_partitions
from hyperfusion.engine import module as engine_module
from hyperfusion.engine.trainer import TrainSettings, predict, seed_everything, train_model
from hyperfusion.evaluation.metrics import balanced_accuracy
from hyperfusion.models import create_model

BASE = {"subjects": None, "epochs": 40, "width": 4, "dropout": "paper", "shift": 0, "schedule": "constant",
        "zscore": True, "lr": 1e-3}  # fmt: skip
GRID = {
    "base": [{}],  # the base setting itself: the yardstick of a grid measured in one invocation
    "subjects": [{"subjects": n} for n in (150, 300, 600, None)],  # None: every training row of the fold
    "epochs": [{"epochs": e} for e in (10, 20, 80)],
    "width": [{"width": 8}],
    "dropout": [{"dropout": "none"}],
    "shift": [{"shift": 2}],
    "schedule": [{"schedule": "onecycle"}],
    "zscore": [{"zscore": False}],
}


def images(manifest: str, work: Path, *, zscore: bool) -> tuple:
    cohort = load_manifest(manifest)
    spec = dataclasses.replace(ImageSpec.hippocampus(voxel_mm=4.0, shape=(16, 24, 16)), zscore=zscore)
    paths = ImageCache(work).ensure_all(cohort.frame["image"], spec)
    return cohort, np.stack([np.load(p) for p in paths]).astype(np.float32)


ENGINE_OPTIMISERS = engine_module.TrainingModule.configure_optimizers  # the engine's own, read once at import


def with_schedule(kind: str):
    """Wrap the engine's optimiser in a schedule for this measurement (``constant``: the engine's own).

    The wrapper always wraps the engine's own method, never what is patched in now: restoring with the patched
    method in place would wrap a wrapper, and the second schedule run would schedule a Lightning dict."""
    original = ENGINE_OPTIMISERS
    if kind == "constant":
        return original

    def configure(self):
        optimiser = original(self)
        steps = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=self.lr, total_steps=steps)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    return configure


def run(setting: dict, cohort, x: np.ndarray, roles: np.ndarray, *, seed: int, work: Path) -> dict:
    y, ids = cohort.targets, np.arange(len(x)).astype(str)
    train = np.flatnonzero(roles == "train")
    if setting["subjects"] is not None and setting["subjects"] < len(train):
        train = np.sort(np.random.default_rng(seed).choice(train, setting["subjects"], replace=False))
    val, test = np.flatnonzero(roles == "val"), np.flatnonzero(roles == "test")
    augment = Augment(shift=setting["shift"]) if setting["shift"] else None
    tabular = np.zeros((len(x), 1), np.float32)

    def dataset(rows, is_train):
        return CohortDataset(list(x[rows]), tabular[rows], y[rows], ids[rows], two_sides=True, train=is_train,
                             seed=seed, augment=augment)  # fmt: skip

    kwargs = {"base_width": setting["width"]}
    if setting["dropout"] == "none":
        kwargs |= {"block_dropout": (0.0,) * 4, "head_dropout": (0.0, 0.0)}
    seed_everything(seed)
    model = create_model("ad-imaging", **kwargs)
    settings = TrainSettings(task="classification", epochs=setting["epochs"], lr=setting["lr"], weight_decay=1e-5,
                             n_classes=3, seed=seed, progress_bar=False)  # fmt: skip
    start = time.perf_counter()
    engine_module.TrainingModule.configure_optimizers = with_schedule(setting["schedule"])
    try:
        result = train_model(
            model,
            DataLoader(dataset(train, True), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(seed)),
            DataLoader(dataset(val, False), batch_size=64),
            settings,
            work / f"imaging_{seed}.pt",
        )  # fmt: skip
    finally:
        engine_module.TrainingModule.configure_optimizers = with_schedule("constant")
    test_p = predict(model, DataLoader(dataset(test, False), batch_size=64), task="classification").values
    reader = create_model("ad-crop-reader", input_shape=(16, 24, 16))
    reader.fit(
        DataLoader(dataset(train, False), batch_size=64), DataLoader(dataset(val, False), batch_size=64)
    )
    reader_p = predict(reader, DataLoader(dataset(test, False), batch_size=64), task="classification").values
    return {
        **setting,
        "seed": seed,
        "n_train": len(train),
        "test_BA": balanced_accuracy(test_p, y[test]),
        "reader_BA": balanced_accuracy(reader_p, y[test]),
        "best_epoch": result.best_epoch,
        "val_BA": result.best_metric,
        "train_loss": [h["train_loss"] for h in result.history],
        "val_curve": [h["val_BA"] for h in result.history],
        "seconds": time.perf_counter() - start,
    }


def measure(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    loaded: dict[bool, tuple] = {}
    for axis in args.grid:
        for change in GRID[axis]:
            setting = {**BASE, **change}
            if setting["zscore"] not in loaded:
                loaded[setting["zscore"]] = images(args.manifest, work / f"cache-z{int(setting['zscore'])}",
                                                   zscore=setting["zscore"])  # fmt: skip
            cohort, x = loaded[setting["zscore"]]
            parts = make_partitions(cohort.frame, 5, stratify=cohort.stratify, age_bins="auto",
                                    group="subject_id", seed=0)  # fmt: skip
            roles = fold_roles(parts, test=4, val=args.fold).to_numpy()
            for seed in args.seeds:
                row = {"axis": axis, "manifest": args.manifest, "fold": args.fold,
                       **run(setting, cohort, x, roles, seed=seed, work=work)}  # fmt: skip
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"{axis}: {change} seed {seed}: test BA {row['test_BA']:.3f} (reader {row['reader_BA']:.3f}), "
                      f"best epoch {row['best_epoch']}, {row['seconds']:.0f} s", flush=True)  # fmt: skip


def plot(rows_path: str, figure_path: str) -> None:
    from matplotlib.figure import Figure

    rows = [json.loads(line) for line in Path(rows_path).read_text().splitlines() if line.strip()]
    figure = Figure(figsize=(12, 4.2), constrained_layout=True)
    left, middle, right = (figure.add_subplot(1, 3, i) for i in (1, 2, 3))
    subjects = sorted((r for r in rows if r["axis"] == "subjects"), key=lambda r: r["n_train"])
    for key, label, style in (
        ("test_BA", "ad-imaging (40 epochs)", "o-"),
        ("reader_BA", "crop reader", "s--"),
    ):
        left.plot([r["n_train"] for r in subjects], [r[key] for r in subjects], style, label=label)
    epochs = sorted((r for r in rows if r["axis"] in ("epochs", "subjects") and r["subjects"] is None),
                    key=lambda r: r["epochs"])  # fmt: skip
    middle.plot([r["epochs"] for r in epochs], [r["test_BA"] for r in epochs], "o-", label="ad-imaging")
    for ax in (left, middle):
        ax.axhline(1 / 3, color="k", lw=0.8, ls=":", label="no skill")
        ax.set_ylabel("test balanced accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_xlabel("training subjects")
    middle.set_xlabel("epochs (every training subject)")
    for r in rows:
        if r["axis"] in ("epochs", "subjects") and r["subjects"] is None and r["epochs"] in (10, 40):
            right.plot(range(1, len(r["val_curve"]) + 1), r["val_curve"], label=f"{r['epochs']} epochs")
    right.set_xlabel("epoch")
    right.set_ylabel("validation balanced accuracy")
    right.axhline(1 / 3, color="k", lw=0.8, ls=":")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    figure.suptitle("ad-imaging on 4 mm crops: subjects, epochs, and the validation curve")
    figure.savefig(figure_path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("manifest", nargs="?", help="the cohort's manifest YAML")
    parser.add_argument("--grid", nargs="+", default=list(GRID), choices=list(GRID))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--work", default="runs/image-learning")
    parser.add_argument("--out", default="benchmarks/results/image_learning.jsonl")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--plot", help="draw the figure from these JSON lines instead of measuring")
    parser.add_argument("--figure", default="docs/images/image-learning.png")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, args.figure)
        return
    if args.manifest is None:
        parser.error("a manifest is needed to measure")
    if args.threads:
        torch.set_num_threads(args.threads)
    measure(args)


if __name__ == "__main__":
    main()
