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
    # Wide plausible ranges: they catch missing-value codes (ADNI's -4, -1; -999) and unit slips, never a
    # real participant. CSF in pg/mL (Elecsys reports ABETA 200–1700, PTAU 8–120, TAU 80–1300, older assays
    # lower), FDG and AV45 as ADNIMERGE's uptake ratios, education in years, APOE4 as the ε4 allele count.
    "ranges": {
        "AGE": [40, 110],
        "PTEDUCAT": [0, 30],
        "APOE4": [0, 2],
        "ABETA": [20, 5000],
        "PTAU": [1, 500],
        "TAU": [10, 3000],
        "FDG": [0.5, 15],
        "AV45": [0.3, 4],
    },
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
    "ranges": {"age": [0, 120]},
}

#: A UK Biobank extract: eid, sex (field 31, 0 = female, 1 = male), age at the imaging visit (field 21003,
#: instance 2) as the brain-age target, and the unzipped bulk field 20252 (T1 already registered to MNI).
UKBIOBANK: dict[str, Any] = {
    "table": "ukb_extract.csv",
    "subject": "eid",
    "target": {"column": "21003-2.0", "task": "regression"},
    "image": {"column": None, "glob": "imaging/{subject}_20252_2_0/T1/T1_brain_to_MNI.nii.gz"},
    "tabular": {"continuous": [], "categorical": ["31-0.0"], "binary": []},
    "values": {"31-0.0": {"0": "F", "1": "M"}},
    "stratify": ["31-0.0"],
    "ranges": {"21003-2.0": [40, 100], "21003-3.0": [40, 100], "21022-0.0": [35, 80], "845-0.0": [5, 30]},
}

#: Nothing assumed: every role is named in the spec.
GENERIC: dict[str, Any] = {}

PRESETS: dict[str, dict[str, Any]] = {
    "adnimerge": ADNIMERGE,
    "bids": BIDS,
    "generic": GENERIC,
    "ukbiobank": UKBIOBANK,
}


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
