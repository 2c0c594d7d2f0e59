"""Why a fused model reads the image less than its own imaging-only model: what the record controls, measured.

For each fusion variant (method × initialisation × warm start) on one cohort and fold, the model is built and warm
started exactly as a run unit does (``hyperfusion.run.units``), then measured at initialisation and after
training (its best validation epoch):

* **record share** of the features the head reads (the pooled output of the last block): over the test subjects,
  the variance of those features when only the records are shuffled, against the variance when only the images
  are — Var_record / (Var_record + Var_image). A model that reads the image through the record keeps the image's
  share; one whose conditioning swamps the image pathway has a record share near 1;
* for HyperFusion, the **spread of the generated weights** across subjects relative to their mean
  (std over subjects / RMS of the mean weight) and the generated bias's standard deviation across subjects;
* test balanced accuracy and the permutation sensitivities (as in a run's results);

and the per-epoch validation curve. Writes JSON lines to ``--out`` and prints a markdown table::

    python benchmarks/conditioning.py COHORT.yaml --variants hf-paper:tabular hf-residual:both film:both \
        --epochs 40 --seeds 0 1 --out benchmarks/results/conditioning.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from hyperfusion.data import CohortDataset, ImageCache, ImageSpec, load_manifest
from hyperfusion.data.splits import fold_roles, make_partitions
from hyperfusion.engine.trainer import TrainSettings, predict, seed_everything, train_model
from hyperfusion.evaluation.metrics import balanced_accuracy
from hyperfusion.models import create_model, model_arguments
from hyperfusion.nn import ConditionedModel, principled_init_from_data_, warm_start_, warm_start_network_

#: name → (registered method, model keyword arguments)
VARIANTS = {
    "imaging": ("ad-imaging", {}),
    "tabular": ("ad-tabular", {}),
    "concat": ("ad-concat", {}),
    "film": ("ad-film", {}),
    "daft": ("ad-daft", {}),
    "hf-paper": ("ad-hyperfusion", {"residual_scale": None}),
    "hf-residual": ("ad-hyperfusion", {"residual_scale": 0.1}),
    "hf-residual-0.5": ("ad-hyperfusion", {"residual_scale": 0.5}),
    "hf-fc1": ("ad-hyperfusion", {"residual_scale": 0.1, "hyper_layers": ("fc1",)}),
    "hf-block3": ("ad-hyperfusion", {"residual_scale": 0.1, "hyper_layers": ("block3.residual.conv2",)}),
    "hf-block4-conv": ("ad-hyperfusion", {"residual_scale": 0.1, "hyper_layers": ("block4.residual.conv2",)}),
}


def arrays(manifest: str, work: str, voxel: float, shape: tuple[int, int, int]):
    cohort = load_manifest(manifest)
    spec = ImageSpec.hippocampus(voxel_mm=voxel, shape=shape)
    paths = ImageCache(work).ensure_all(cohort.frame["image"], spec)
    return cohort, np.stack([np.load(p) for p in paths]).astype(np.float32)


class Data:
    """One fold's datasets (hippocampus crops in memory) and the fold's tabular features."""

    def __init__(self, cohort, images, *, split_seed: int, fold: int, n_partitions: int = 5) -> None:
        parts = make_partitions(cohort.frame, n_partitions, stratify=cohort.stratify, age_bins="auto",
                                group="subject_id", seed=split_seed)  # fmt: skip
        self.roles = fold_roles(parts, test=n_partitions - 1, val=fold).to_numpy()
        train = self.roles == "train"
        self.tabular = (
            cohort.preprocessor().fit(cohort.frame[train]).transform(cohort.frame).astype(np.float32)
        )
        self.images, self.targets = images, cohort.targets
        self.ids = np.arange(len(images)).astype(str)

    def rows(self, role: str) -> np.ndarray:
        return np.flatnonzero(self.roles == role)

    def dataset(self, role: str, *, train: bool, seed: int, images=None, tabular=None) -> CohortDataset:
        idx = self.rows(role)
        return CohortDataset(
            list(self.images[idx] if images is None else images), self.tabular[idx] if tabular is None else tabular,
            self.targets[idx], self.ids[idx], two_sides=True, train=train, seed=seed,
        )  # fmt: skip


def build(name: str, n_tabular: int, width: int):
    method, extra = VARIANTS[name]
    kwargs = {"base_width": width, "n_tabular": n_tabular, **extra}
    accepted = model_arguments(method)
    return create_model(method, **{k: v for k, v in kwargs.items() if k in accepted})


def fit(model: nn.Module, data: Data, *, seed: int, epochs: int, lr: float, path: Path):
    settings = TrainSettings(task="classification", epochs=epochs, lr=lr, weight_decay=1e-5, n_classes=3,
                             seed=seed, progress_bar=False)  # fmt: skip
    train = DataLoader(data.dataset("train", train=True, seed=seed), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip
    val = DataLoader(data.dataset("val", train=False, seed=0), batch_size=64)
    return train_model(model, train, val, settings, path)


def pooled_features(model: nn.Module, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
    """The last block's pooled output (what the head reads) for one view, through a forward hook."""
    network = model.network if isinstance(model, ConditionedModel) else model
    captured: list[torch.Tensor] = []
    handle = network.gap.register_forward_hook(lambda _m, _i, out: captured.append(out.flatten(1)))
    try:
        with torch.no_grad():
            model(image, tabular) if isinstance(model, ConditionedModel) else model(image)
    finally:
        handle.remove()
    return captured[0]


def record_share(model: nn.Module, data: Data, seed: int) -> float:
    """Var over records / (Var over records + Var over images) of the pooled features, on the test subjects."""
    model.eval()
    idx = data.rows("test")
    image = torch.as_tensor(data.images[idx, 0])[:, None]  # the left crop
    tabular = torch.as_tensor(data.tabular[idx])
    rng = np.random.default_rng(seed)
    base = pooled_features(model, image, tabular)
    records, images = [], []
    for _ in range(4):
        order = torch.as_tensor(rng.permutation(len(idx)))
        records.append(pooled_features(model, image, tabular[order]) - base)
        images.append(pooled_features(model, image[order], tabular) - base)
    var_record = float(torch.stack(records).pow(2).mean())
    var_image = float(torch.stack(images).pow(2).mean())
    return var_record / (var_record + var_image) if var_record + var_image > 0 else float("nan")


def generated_spread(model: nn.Module, data: Data) -> dict[str, float]:
    """HyperFusion: spread of the generated weights and biases over the test subjects."""
    if not isinstance(model, ConditionedModel) or not model.hyper_layers:
        return {}
    model.eval()
    name, layer = next(iter(model.hyper_layers.items()))
    with torch.no_grad():
        embedding = model.encoder_for(name)(torch.as_tensor(data.tabular[data.rows("test")]))
        weight, bias = layer.generate(embedding)
    mean = weight.mean(0)
    out = {"weight_spread": float(weight.std(0).pow(2).mean().sqrt() / mean.pow(2).mean().sqrt())}
    if bias is not None:
        out["bias_std"] = float(bias.std(0).mean())
    out["embedding_second_moment"] = float(embedding.pow(2).mean())
    return out


def scores(model: nn.Module, data: Data, seed: int) -> dict[str, float]:
    def probabilities(**kwargs) -> np.ndarray:
        loader = DataLoader(data.dataset("test", train=False, seed=0, **kwargs), batch_size=64)
        return predict(model, loader, task="classification").values

    idx = data.rows("test")
    order = np.random.default_rng([seed, 7919]).permutation(len(idx))
    p = probabilities()
    return {
        "test_BA": balanced_accuracy(p, data.targets[idx]),
        "image_sensitivity": float(np.abs(p - probabilities(images=data.images[idx][order])).mean()),
        "tabular_sensitivity": float(np.abs(p - probabilities(tabular=data.tabular[idx][order])).mean()),
    }


def train_members(data: Data, *, seed: int, epochs: int, lr: float, width: int, work: Path, members: dict,
                  emit) -> None:  # fmt: skip
    """The single-modality models every warm start reads, trained once per seed and scored like the others."""
    for member in ("tabular", "imaging"):
        if (member, seed) in members:
            continue
        start = time.perf_counter()
        seed_everything(seed)
        model = build(member, data.tabular.shape[1], width)
        result = fit(model, data, seed=seed, epochs=epochs, lr=lr, path=work / f"{member}_{seed}.pt")
        members[(member, seed)] = model
        emit({"variant": member, "warm": "none", "seed": seed, "trained": scores(model, data, seed),
              "best_epoch": result.best_epoch, "val_BA": result.best_metric,
              "history": [h["val_BA"] for h in result.history], "seconds": time.perf_counter() - start})  # fmt: skip


def run_variant(name: str, warm: str, data: Data, *, seed: int, epochs: int, lr: float, width: int, work: Path,
                members: dict) -> dict:  # fmt: skip
    start = time.perf_counter()
    n_tabular = data.tabular.shape[1]
    seed_everything(seed)
    model = build(name, n_tabular, width)
    if isinstance(model, ConditionedModel):
        if warm == "both":
            warm_start_network_(model, members[("imaging", seed)])
        if warm in ("tabular", "both"):
            warm_start_(model, members[("tabular", seed)].network.embedding)
        if model.hyper_layers:
            principled_init_from_data_(
                model, list(torch.as_tensor(data.tabular[data.rows("train")]).split(32))
            )
    row = {"variant": name, "warm": warm, "seed": seed}
    if isinstance(model, ConditionedModel):
        row["init"] = {"record_share": record_share(model, data, seed), **generated_spread(model, data)}
    result = fit(model, data, seed=seed, epochs=epochs, lr=lr, path=work / f"{name}_{warm}_{seed}.pt")
    row["trained"] = {**scores(model, data, seed)}
    if isinstance(model, ConditionedModel):
        row["trained"] |= {"record_share": record_share(model, data, seed), **generated_spread(model, data)}
    row |= {"best_epoch": result.best_epoch, "val_BA": result.best_metric,
            "history": [h["val_BA"] for h in result.history], "seconds": time.perf_counter() - start}  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("manifest", help="the cohort's manifest YAML")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["hf-paper:tabular", "hf-residual:both"],
        help="name:warm with warm in none | tabular | both; names: " + ", ".join(VARIANTS),
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--voxel", type=float, default=4.0)
    parser.add_argument("--shape", type=int, nargs=3, default=[16, 24, 16])
    parser.add_argument("--work", default="runs/conditioning")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="benchmarks/results/conditioning.jsonl")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cohort, images = arrays(args.manifest, str(work / "cache"), args.voxel, tuple(args.shape))
    data = Data(cohort, images, split_seed=args.split_seed, fold=args.fold)
    members: dict = {}

    def emit(row: dict) -> None:
        row["manifest"] = args.manifest
        with open(args.out, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        init, trained = row.get("init", {}), row["trained"]
        print(
            f"| {row['variant']} | {row['warm']} | {row['seed']} | {init.get('record_share', float('nan')):.2f} → "
            f"{trained.get('record_share', float('nan')):.2f} | {init.get('weight_spread', float('nan')):.2f} → "
            f"{trained.get('weight_spread', float('nan')):.2f} | {trained['test_BA']:.3f} | "
            f"{trained['image_sensitivity']:.3f} | {trained['tabular_sensitivity']:.3f} | {row['best_epoch']} |",
            flush=True,
        )

    for seed in args.seeds:
        train_members(data, seed=seed, epochs=args.epochs, lr=args.lr, width=args.width, work=work,
                      members=members, emit=emit)  # fmt: skip
        for spec in args.variants:
            name, _, warm = spec.partition(":")
            emit(run_variant(name, warm or "tabular", data, seed=seed, epochs=args.epochs, lr=args.lr,
                             width=args.width, work=work, members=members))  # fmt: skip


if __name__ == "__main__":
    main()
