#!/usr/bin/env bash
# One prepared GPU check (about 10 minutes on an H100/H200): exactness and speed of the hyper layers, whole training
# steps, eager fp32 vs bf16 + channels-last + compile, units packed on one GPU with Ray, the data loader at paper
# sizes with 0/2/4/8 workers, graph breaks under torch.compile, and a small protocol run on the GPU.
# Results go to $OUT (default: gpu-check/).
set -euo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
python3 benchmarks/hyper_layers.py --device cuda --check --out "$OUT"
python3 benchmarks/model_steps.py --device cuda --out "$OUT" \
    --models ad-imaging ad-hyperfusion brainage-imaging brainage-hyperfusion
python3 benchmarks/protocol_throughput.py --device cuda --epochs 3 --out "$OUT/protocol_throughput_cuda.json"
python3 benchmarks/loader.py --subjects 256 --out "$OUT/loader_gpu_machine.json"
python3 benchmarks/compile_check.py --backend inductor --device cuda > "$OUT/compile_check_cuda.md" || true
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
