"""Rank the layers of an untrained backbone by loss entropy: where a hyper layer is likely to matter (paper §3.1.2).

Uses the config's cohort (simulated first when the config asks for it): the first split seed's fold-0 training rows,
the tabular preprocessing fitted on them, and the imaging-only model of the config's family at the config's settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a run config YAML, or a preset name (hyperfusion run --list-presets)")
    parser.add_argument("--out", type=Path, required=True, help="CSV of the ranking")
    parser.add_argument("--method", help="the backbone to probe (default: the family's imaging-only model)")
    parser.add_argument("--draws", type=int, default=100, help="re-draws per layer (paper: 1000)")
    parser.add_argument("--bins", type=int, default=30, help="histogram bins")
    parser.add_argument("--subjects", type=int, default=64, help="training subjects the loss is measured on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="folder for a simulated cohort and the image cache")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Subset

    from hyperfusion.atomic import write_text_atomic
    from hyperfusion.config import load_config
    from hyperfusion.data import ImageCache, build_dataset, collate_items, load_manifest
    from hyperfusion.engine.layer_selection import loss_entropy
    from hyperfusion.models import create_model
    from hyperfusion.models.registry import family_member
    from hyperfusion.run.plan import Unit
    from hyperfusion.run.runner import check_cohort, unit_roles
    from hyperfusion.run.setup import image_spec, make_preprocessor, model_kwargs
    from hyperfusion.run.simulated import ensure_simulated_cohort

    work = args.work or args.out.with_name(args.out.stem + "-work")
    config = ensure_simulated_cohort(load_config(args.config), work)
    cohort = load_manifest(config.cohort)
    check_cohort(config, cohort)
    method = args.method or family_member(config.reference_method, "imaging")
    if method is None:
        raise SystemExit(f"{config.reference_method}'s family has no imaging-only model; pass --method")
    roles = unit_roles(config, cohort, Unit(method, config.protocol.split_seeds[0], 0, 0))
    train = (roles == "train").to_numpy()
    preprocessor = make_preprocessor(config, cohort).fit(cohort.frame[train])
    cache = ImageCache(Path(work) / "cache")
    dataset = build_dataset(cohort, train, preprocessor, image_spec(config), cache, train=False)
    chosen = np.random.default_rng(args.seed).permutation(len(dataset))[: args.subjects]
    batches = list(DataLoader(Subset(dataset, chosen.tolist()), batch_size=32, collate_fn=collate_items))
    torch.manual_seed(args.seed)
    kwargs = model_kwargs(
        config, method, n_tabular=len(preprocessor.feature_names_out), n_classes=len(cohort.classes)
    )
    model = create_model(method, **kwargs)
    ranking = loss_entropy(model, batches, draws=args.draws, bins=args.bins, seed=args.seed)
    write_text_atomic(args.out, ranking.to_csv(index=False))
    print(ranking.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwrote {args.out} ({method}, {len(chosen)} subjects, {args.draws} draws per layer)")
    return 0
