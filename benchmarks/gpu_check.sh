#!/usr/bin/env bash
# One prepared GPU check (a few minutes): exactness and speed of the hyper layers, whole training steps, and a small
# protocol run on the GPU in bf16 + channels-last-3D. Results go to $OUT (default: gpu-check/).
set -euo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 benchmarks/hyper_layers.py --device cuda --check --out "$OUT"
python3 benchmarks/model_steps.py --device cuda --out "$OUT" \
    --models ad-imaging ad-hyperfusion brainage-imaging brainage-hyperfusion
work=$(mktemp -d)
python3 - "$work" <<'PY'
import sys, yaml
from hyperfusion.simulate import simulate_ad
work = sys.argv[1]
cohort = simulate_ad(f"{work}/cohort", n=48, voxel_size=4.0, interaction=2.0, seed=0, template="phantom", progress=False)
config = {
    "cohort": str(cohort),
    "image": {"mode": "hippocampus", "voxel_mm": 4.0, "shape": [16, 24, 16]},
    "methods": ["ad-imaging", "ad-hyperfusion"],
    "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 3, "folds": 2},
    "training": {"epochs": 3, "batch_size": 16, "lr": 0.001, "device": "cuda", "precision": "bf16",
                 "channels_last": True, "progress": False},
}
open(f"{work}/gpu.yaml", "w").write(yaml.safe_dump(config))
PY
python3 -m hyperfusion.cli run "$work/gpu.yaml" --out "$work/run"
cp "$work/run/report.md" "$OUT/gpu_protocol_report.md"
