#!/bin/bash
# The GPU benchmarks in one go, for a machine with one CUDA GPU and the package's Python
# dependencies: the transformers reward backend on random weights in the real Qwen3-VL-8B shape
# (bench_reward.py), then LoRA SFT + GRPO steps on it (bench_finetune.py). Each is bounded by a
# timeout so that a time-limited GPU lease still brings back what finished; both merge their rows
# into the JSON files under OUT as they go.
#
#     bash bench/gpu_benchmarks.sh [OUT] [SECONDS_FOR_REWARD] [SECONDS_FOR_FINETUNE]
#
# Defaults: bench/results, 330 s, 400 s (on one H200, 2026-12-04: the reward bench took 286 s;
# the fine-tune, cut at 234 s by the lease in its last GRPO step, would take about 260 s).
set -u -o pipefail   # a bench's own exit status, not tee's: a failed run is not a success
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/results}
mkdir -p "$out"
export PYTHONPATH="$here/../sole_r1_ros${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$here"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# make setup installs the CPU build of torch: say so, rather than fail in the first bench
if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_benchmarks: this Python's torch ($(python3 -c 'import torch; print(torch.__version__)' \
2>/dev/null || echo none)) cannot use CUDA: install a CUDA build in it, e.g. pip install" \
       "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130" >&2
  exit 2
fi
status=0
timeout "${2:-330}" python3 bench_reward.py --device cuda --model 8b-random \
    --out "$out/reward.json" 2>&1 | tee "$out/reward_cuda.log" || status=$?
[ "$status" = 124 ] && echo "bench_reward: timed out; its rows so far are in $out/reward.json"
finetune=0
timeout "${3:-400}" python3 bench_finetune.py --device cuda \
    --out "$out/finetune.json" 2>&1 | tee "$out/finetune_cuda.log" || finetune=$?
[ "$finetune" = 124 ] && echo "bench_finetune: timed out; its rows so far are in $out/finetune.json"
# a timeout (124) is a partial result, kept; any other failure fails the script
for code in "$status" "$finetune"; do
  if [ "$code" != 0 ] && [ "$code" != 124 ]; then exit "$code"; fi
done
