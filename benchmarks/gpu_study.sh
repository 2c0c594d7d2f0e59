#!/usr/bin/env bash
# The dose–response of study-cpu sized for one short GPU window (aimed at <= 8 minutes on one H200 with a 16-core
# host): the location stress test at four interaction strengths, 2 mm hippocampus crops (32×48×32), 800 subjects per
# cohort, every AD method, 3 split seeds × 1 version × 2 folds, 40 epochs, bf16 + channels-last, eight units packed
# per GPU through the Ray executor. Writes the study (summary.md, headroom.csv, headroom.png) to $OUT
# (default gpu-study/) and prints the summary and the wall time.
#
#   bash benchmarks/gpu_study.sh             # on a GPU machine
#   bash benchmarks/gpu_study.sh --dry-run   # the same steps on the CPU at tiny sizes: checks the script, no figures
set -euo pipefail
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; fi
OUT=${OUT:-gpu-study}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
PYTHON=${PYTHON:-python3}
"$PYTHON" - "$OUT" "$DRY" <<'PY'
import sys

import yaml

from hyperfusion.config import preset_text

out, dry = sys.argv[1], sys.argv[2] == "1"
study = yaml.safe_load(preset_text("study-cpu"))
if dry:  # every step of the real one, at sizes a CPU runs in a minute or two
    study["study"]["grid"] = {"simulate.interaction": [0.0, 1.0]}
    study["simulate"] |= {"n": 30, "voxel_size": 8.0, "template": "phantom"}
    study["image"] |= {"voxel_mm": 8.0, "shape": [8, 12, 8]}
    study["methods"] = ["ad-imaging", "ad-hyperfusion"]
    study["model"] = {"base_width": 2}
    study["protocol"] |= {"split_seeds": [0], "n_partitions": 3, "folds": 1}
    study["training"] |= {"epochs": 1, "batch_size": 8}
else:
    study["simulate"] |= {"n": 800, "voxel_size": 2.0}
    study["image"] |= {"voxel_mm": 2.0, "shape": [32, 48, 32]}
    study["model"] = {"base_width": 8}
    study["protocol"] |= {"executor": "ray", "num_cpus": 2, "num_gpus": 0.125}
    study["training"] |= {"device": "cuda", "precision": "bf16", "channels_last": True, "num_workers": 1}
with open(f"{out}/study.yaml", "w") as handle:
    yaml.safe_dump(study, handle, sort_keys=False)
PY
start=$(date +%s)
if [[ $DRY == 1 ]]; then
    "$PYTHON" -m hyperfusion.cli study "$OUT/study.yaml" --out "$OUT/study"
else
    "$PYTHON" -m hyperfusion.cli study "$OUT/study.yaml" --out "$OUT/study" --executor ray
fi
echo "gpu_study: $(( $(date +%s) - start )) s wall-clock"
cat "$OUT/study/summary.md"
