#!/usr/bin/env bash
# The CUDA checks as one prepared run, for a machine with a GPU (README, "GPU"): the machine, the tests of the
# CUDA paths (tests/test_cuda.py: cuDNN against the CPU, bfloat16 autocast, double backward with cuDNN
# bypassed, exact resume, NCCL under torchrun), training throughput (benchmarks/train.py), and the shipped
# model's recipe on the chorales with its time to quality and final evaluation. Each stage has its own time
# limit and a failing stage does not stop the next; everything lands in OUT, summary.txt first.
#
#   benchmarks/gpu_check.sh DATA OUT [TRAIN_SECONDS] [DEVICE]
#
# DATA: the chorales prepared as the README's tour does (gancomposer prepare --corpus bach-chorales --out
# data/bach --transpose=-3..3). TRAIN_SECONDS (default 200) caps the training run (SIGTERM: it saves a
# checkpoint and stops). DEVICE (default cuda) lets the script itself be tried on a CPU. The run folder and
# the evaluation's files go to WORK (default OUT/work), so that OUT holds only the logs and the curve.
set -u
data=$1 out=$2 seconds=${3:-200} device=${4:-cuda}
py=${PYTHON:-python3}
work=${WORK:-$out/work}
run=$work/run
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1
note() { echo "== $(date -u +%T) $*" | tee -a "$out/summary.txt"; }
stage() {  # stage NAME LIMIT_S LOG COMMAND...: run it with a time limit, keep its log, note how it ended
    local name=$1 limit=$2 logf=$3; shift 3
    note "$name (limit ${limit}s)"
    local t0=$SECONDS
    timeout -s TERM -k 20 "$limit" "$@" > "$out/$logf" 2>&1
    note "$name: exit $? after $((SECONDS - t0))s"
}

note "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  $py -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN',
torch.backends.cudnn.version(), 'GPU', torch.cuda.is_available() and torch.cuda.get_device_name())"
  nproc; } >> "$out/summary.txt" 2>&1

stage "tests of the CUDA paths" 120 tests.log $py -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
tail -n 4 "$out/tests.log" >> "$out/summary.txt"

stage "throughput (benchmarks/train.py)" 100 throughput.log $py benchmarks/train.py --device "$device"
grep -E "device|seconds per|pieces per|GFLOP" "$out/throughput.log" >> "$out/summary.txt"

# the shipped model's recipe (MODEL_CARD.md): the default with 3,000 likelihood steps, every checkpoint kept
stage "training" "$seconds" train.log $py -m gancomposer train --data "$data" --out "$run" --device "$device" \
    --quiet pretrain_iters=3000 keep_checkpoints=100
tail -n 12 "$out/train.log" >> "$out/summary.txt"

stage "time to quality (scripts/model_card.py, 96 x 8 at 0.9)" 140 card.log $py scripts/model_card.py "$run" \
    --data "$data" --out "$work/card" --temperature 0.9 --machine "$device"
grep -E "^step-|chosen" "$out/card.log" >> "$out/summary.txt"
cp "$work/card/time_to_quality.png" "$work/card/table.md" "$work/card/curve.json" "$out/" 2>/dev/null
note "done"
