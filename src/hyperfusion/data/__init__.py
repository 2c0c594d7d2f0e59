"""hyperfusion.data: cohort manifests, NIfTI preprocessing and caching, tabular preprocessing, partitions, Dataset.

Typical use (the protocol's view)::

    cohort = load_manifest("cohort.yaml")                          # validated table + column roles
    cache = ImageCache("cache")
    check_duplicate_images(cohort, cache)                           # one scan under two subjects = leakage
    check_stratifiable(cohort.frame, 5, classes=cohort.classes, source=str(cohort.table_path))
    parts = make_partitions(cohort.frame, 5, stratify=cohort.stratify, age_bins="auto", group="subject_id")
    roles = fold_roles(parts, test=4, val=0)
    pre = cohort.preprocessor().fit(cohort.frame[roles == "train"])   # training rows only
    pre.check_known(cohort.frame[roles != "train"], source=str(cohort.table_path))  # before training
    spec = ImageSpec.hippocampus()                                  # or ImageSpec.whole_brain()
    train = build_dataset(cohort, roles == "train", pre, spec, cache, train=True)

A new cohort format is one module that calls ``register_table_reader`` (how its table is read) and/or
``register_image_locator`` (how a row's image is found); a manifest then names them (``table_reader``,
``image.locator``). See CONTRIBUTING.md ("How to add a cohort format").

Warnings go to the ``hyperfusion`` logger, one line each.
"""

from hyperfusion.data.batches import collate_items
from hyperfusion.data.cache import ImageCache, cache_key, file_digest
from hyperfusion.data.censor import parse_numeric
from hyperfusion.data.dataset import Augment, CohortDataset, build_dataset
from hyperfusion.data.duplicates import check_duplicate_images
from hyperfusion.data.images import (
    ImageSpec,
    brain_extent_mm,
    check_brain_extent,
    preprocess_image,
    preprocess_volume,
    read_volume,
    sample_box,
    zscore_nonzero,
)
from hyperfusion.data.locators import ImageRow, Located, register_image_locator
from hyperfusion.data.manifest import (
    Cohort,
    ManifestSpec,
    load_manifest,
    load_table,
    read_spec,
    spec_from_dict,
)
from hyperfusion.data.presets import PRESETS
from hyperfusion.data.splits import (
    check_stratifiable,
    default_age_bins,
    fold_roles,
    make_partitions,
    make_split,
    read_partitions,
    write_partitions,
)
from hyperfusion.data.tables import register_table_reader
from hyperfusion.data.tabular import TabularPreprocessor

__all__ = [
    "PRESETS",
    "Augment",
    "Cohort",
    "CohortDataset",
    "ImageCache",
    "ImageRow",
    "ImageSpec",
    "Located",
    "ManifestSpec",
    "TabularPreprocessor",
    "brain_extent_mm",
    "build_dataset",
    "cache_key",
    "check_brain_extent",
    "check_duplicate_images",
    "check_stratifiable",
    "collate_items",
    "default_age_bins",
    "file_digest",
    "fold_roles",
    "load_manifest",
    "load_table",
    "make_partitions",
    "make_split",
    "parse_numeric",
    "preprocess_image",
    "preprocess_volume",
    "read_partitions",
    "read_spec",
    "read_volume",
    "register_image_locator",
    "register_table_reader",
    "sample_box",
    "spec_from_dict",
    "write_partitions",
    "zscore_nonzero",
]
