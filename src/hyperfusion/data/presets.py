"""Built-in manifest presets: defaults for common cohort layouts, written as plain data (never code).

A spec names a preset; its own keys override the preset's, dictionaries key by key (so ``target.mapping``
entries are added to the preset's mapping) and lists whole.
"""

from __future__ import annotations

import copy
from typing import Any

#: ADNI's ADNIMERGE table: baseline visit, diagnosis mapped onto CN/MCI/AD, the paper's nine attributes (§4.3.3).
ADNIMERGE: dict[str, Any] = {
    "table": "ADNIMERGE.csv",
    "subject": "PTID",
    "visit": {"column": "VISCODE", "keep": "bl"},
    "target": {
        "column": "DX_bl",
        "task": "classification",
        "classes": ["CN", "MCI", "AD"],
        # DX_bl uses SMC/EMCI/LMCI, DX uses Dementia, the image collection's Group uses EMCI/LMCI.
        "mapping": {"SMC": "CN", "EMCI": "MCI", "LMCI": "MCI", "Dementia": "AD"},
    },
    "image": {"column": "image"},
    "tabular": {
        "continuous": ["AGE", "PTEDUCAT", "APOE4", "ABETA", "PTAU", "TAU", "FDG", "AV45"],
        "categorical": ["PTGENDER"],
        "binary": [],
    },
    "stratify": ["PTGENDER", "AGE"],
}

#: A BIDS dataset: participants.tsv (participant_id, age, sex) and T1w images found under each subject folder.
BIDS: dict[str, Any] = {
    "table": "participants.tsv",
    "subject": "participant_id",
    "target": {"column": "age", "task": "regression"},
    "image": {"column": None, "glob": "{subject}/**/anat/*_T1w.nii*"},
    "tabular": {"continuous": [], "categorical": ["sex"], "binary": []},
    "stratify": ["sex"],
    # BIDS allows M/F or male/female; one spelling per sex keeps the one-hot columns stable.
    "values": {
        "sex": {
            "M": "M",
            "m": "M",
            "male": "M",
            "Male": "M",
            "F": "F",
            "f": "F",
            "female": "F",
            "Female": "F",
        }
    },
}

#: Nothing assumed: every role is named in the spec.
GENERIC: dict[str, Any] = {}

PRESETS: dict[str, dict[str, Any]] = {"adnimerge": ADNIMERGE, "bids": BIDS, "generic": GENERIC}


def preset(name: str) -> dict[str, Any]:
    """A deep copy of the named preset's defaults.

    Raises:
        ValueError: unknown preset name.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown manifest preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: nested dictionaries merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
