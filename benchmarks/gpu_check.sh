#!/usr/bin/env bash
# One prepared GPU check (about 8 minutes on an H100/H200): exactness of the hyper layers, then one table
# (benchmarks/gpu_table.py) of eager fp32 vs compiled bf16 + channels-last step time per registered model, models/hour
# for the AD protocol at 1, 2, 4 and 8 units packed per GPU through the Ray executor, loader items/s with 16 workers,
# and the projected wall time of the paper's 252-model protocol; graph breaks under torch.compile; a small protocol
# run on the GPU. Results go to $OUT (default: gpu-check/).
#
#   bash benchmarks/gpu_check.sh             # on a GPU machine
#   bash benchmarks/gpu_check.sh --dry-run   # the same steps on the CPU at tiny sizes: checks the script, no GPU figures
set -euo pipefail
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; fi
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
PYTHON=${PYTHON:-python3}
# timed LABEL COMMAND...: runs COMMAND and says how long it took (where a short device window goes)
timed() { local label=$1 start=$SECONDS; shift; "$@"; echo "gpu_check: $label $((SECONDS - start)) s" >&2; }
if [[ $DRY == 1 ]]; then
    DEVICE=cpu
    timed hyper_layers "$PYTHON" benchmarks/hyper_layers.py --device cpu --quick --precision fp32 --rounds 1 --out "$OUT"
    timed gpu_table "$PYTHON" benchmarks/gpu_table.py --dry-run --out "$OUT"
    timed compile_check "$PYTHON" benchmarks/compile_check.py --device cpu --models ad-hyperfusion > "$OUT/compile_check_cpu.md"
else
    DEVICE=cuda
    timed hyper_layers "$PYTHON" benchmarks/hyper_layers.py --device cuda --check --out "$OUT"
    timed gpu_table "$PYTHON" benchmarks/gpu_table.py --device cuda --out "$OUT"
    timed compile_check "$PYTHON" benchmarks/compile_check.py --backend inductor --device cuda > "$OUT/compile_check_cuda.md" || true
fi
work=$(mktemp -d)
start=$SECONDS
"$PYTHON" - "$work" "$DEVICE" <<'PY'
import sys, yaml
from hyperfusion.simulate import simulate_ad
work, device = sys.argv[1], sys.argv[2]
n, voxel, shape = (48, 4.0, [16, 24, 16]) if device == "cuda" else (24, 8.0, [8, 12, 8])
cohort = simulate_ad(f"{work}/cohort", n=n, voxel_size=voxel, interaction=2.0, seed=0, template="phantom", progress=False)
config = {
    "cohort": str(cohort),
    "image": {"mode": "hippocampus", "voxel_mm": voxel, "shape": shape},
    "methods": ["ad-imaging", "ad-hyperfusion"],
    "protocol": {"split_seeds": [0], "versions": 1, "n_partitions": 3, "folds": 2},
    "training": {"epochs": 3 if device == "cuda" else 1, "batch_size": 16, "lr": 0.001, "device": device,
                 "precision": "bf16" if device == "cuda" else "fp32", "channels_last": device == "cuda",
                 "progress": False},
}
open(f"{work}/gpu.yaml", "w").write(yaml.safe_dump(config))
PY
echo "gpu_check: protocol cohort $((SECONDS - start)) s" >&2
timed protocol_run "$PYTHON" -m hyperfusion.cli run "$work/gpu.yaml" --out "$work/run"
if [[ $DRY == 1 ]]; then REPORT=protocol_report_dry_run.md; else REPORT=gpu_protocol_report.md; fi
cp "$work/run/report.md" "$OUT/$REPORT"
cat "$OUT"/gpu_table*.md
