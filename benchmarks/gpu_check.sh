#!/bin/bash
# The CUDA paths on a machine with a GPU, in one go (none of this runs in CI):
#   1. seconds an epoch of sasrec, gnn, multimodal and contrastive on the GPU and the
#      CPU (benchmarks/bench_epoch.py; bfloat16 autocast on the GPU),
#   2. sasrec with torch.compile,
#   3. torchrun with one process a GPU (NCCL) and with two processes (NCCL when the
#      machine has two GPUs, else gloo sharing one),
# each step's output under $OUT (default: runs/gpu_check). Needs ml-100k fetched
# (`primetime data fetch ml-100k`) and, for multimodal and contrastive, its texts
# encoded once (any earlier fit of them on this PRIMETIME_HOME).
#
#   bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 COLUMNS=200
PY=${PYTHON:-python3}
TORCHRUN=${TORCHRUN:-torchrun}
nvidia-smi -L || { echo "no GPU: nothing to check"; exit 1; }
step() {
    local name=$1
    shift
    echo "=== $name"
    local t0=$SECONDS
    "$@" 2>&1 | tee "$OUT/$name.txt"
    echo "=== $name: rc=${PIPESTATUS[0]} in $((SECONDS - t0)) s"
}
step epochs timeout 600 "$PY" benchmarks/bench_epoch.py --devices cuda,cpu --epochs 3
step compile timeout 300 "$PY" benchmarks/bench_epoch.py --models sasrec --devices cuda \
    --epochs 4 --set compile=true
for n in 1 2; do
    step "torchrun$n" timeout 300 "$TORCHRUN" --standalone --nproc-per-node "$n" \
        -m primetime.cli train sasrec --set epochs=2 --no-refit --no-blend --no-promote \
        --registry "$OUT/registry$n"
done
