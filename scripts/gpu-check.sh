#!/usr/bin/env bash
# GPU checks for a CUDA machine with PyTorch 2.x. Needs CMake and a C++17 compiler, not Node.js:
# builds native/core and its CTest suite against the PyTorch's libtorch (NCCL headers from the
# nvidia-nccl wheel PyTorch depends on), runs every C++ test, then the NCCL test with one rank per
# GPU (at most 2), which prints the all-reduce bus bandwidth, and the BEiT-large train-step
# images/s and MFU (bf16/fp16 autocast) of native/core vs the same model in eager PyTorch.
#   bash scripts/gpu-check.sh [build-dir]      (PYTHON=... picks the interpreter with torch)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
out="${1:-build-gpu}"
LIBTORCH="$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
export LIBTORCH
# libtorch does not ship nccl.h; the nvidia-nccl-cu* wheel next to PyTorch does.
NCCL_INCLUDE_DIR="$("$py" -c 'import os, nvidia.nccl as n; print(os.path.join(list(n.__path__)[0], "include"))' 2>/dev/null || true)"
export NCCL_INCLUDE_DIR
gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
echo "== torch $("$py" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)'), GPUs: ${gpus:-0}, nccl.h: ${NCCL_INCLUDE_DIR:-not found}"
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=Release -DMOOD_BUILD_ADDON=OFF
cmake --build "$out" -j "$(nproc)"
echo "== CTest (every C++ test of native/core)"
ctest --test-dir "$out" --output-on-failure
echo "== NCCL: collectives, bucketed gradient sync, bus bandwidth"
MOOD_TEST_NCCL_RANKS="$(( ${gpus:-0} >= 2 ? 2 : 1 ))" "$out/native/tests/mood_dist_tests" dist_nccl
echo "== BEiT-large train step (forward + CE + backward), bf16 autocast: ours vs PyTorch eager bf16 and fp16"
for amp in bf16 fp16; do
  "$out/native/tests/mood_beit_bench" --model beit_large_patch16_224 --device cuda --batch 64 --amp "$amp" --iters 20
  "$py" scripts/bench/beit-forward.py --model beit_large_patch16_224 --device cuda --amp "$amp" --train-only --train-batch 64 --iters 20
done
