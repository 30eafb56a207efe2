#!/usr/bin/env bash
# The device-pipeline / training-speed checks that need a GPU (issue #15), as one run of about 7 minutes.
#
#   bash benchmarks/gpu_check.sh prepare   # here, with network: wheels the GPU image lacks + coco_mini, into .gpu_check/
#   bash benchmarks/gpu_check.sh run       # on the GPU machine, from the repository root (carry .gpu_check)
#
# `run` installs the carried wheels (hydra-core, omegaconf, antlr4 runtime, pycocotools: the GPU image has
# torch, Lightning, OpenCV, torchvision, nvidia-ml-py) into /tmp/site and runs, each step under its own
# time limit so the whole stays under 8 minutes:
#   1. the parity tests on CUDA (encoders, crops vs cv2, device vs CPU batches, nvJPEG) and the test that
#      training steps make no synchronising CUDA call outside logging steps              (<= 70 s)
#   2. train_step.py, hrnet_w32: eager TF32 / bf16, fused Adam, at batch 64, 128, 256       (<= 70 s)
#   3. train_step.py, hrnet_w32, batch 128: torch.compile default and reduce-overhead (CUDA graphs)
#      in TF32, reduce-overhead in bf16, each beside eager channels_last+fused               (<= 220 s, compiling)
#   4. epoch.py, hrnet_w32, 12 workers: cpu, device, device+nvjpeg data paths side by side   (<= 90 s)
# plus about 20 s of installs and start-up: under 8 minutes at the very most, about 6 expected.
# Batch 128 for compile is a guess until step 2 has run: rerun step 3 at step 2's best batch if it differs.
# Logs go to $OUT (or ./gpu_check_out) as one file per step.
set -uo pipefail
cd "$(dirname "$0")/.."
CHECK=.gpu_check

prepare() {
    set -e
    mkdir -p "$CHECK/wheels" "$CHECK/data"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$CHECK/wheels" hydra-core==1.3.8 omegaconf==2.3.1 pycocotools==2.0.11
    python3 -m pip wheel -q --no-deps -w "$CHECK/wheels" antlr4-python3-runtime==4.9.3  # sdist only on PyPI
    shared="${HRNET_SHARED_DATA:-../shared/data}"
    rm -rf "$CHECK/data/coco_mini" && cp -r "$shared/coco_mini" "$CHECK/data/coco_mini"
    du -sh "$CHECK"
}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, report the status
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local status=$?
    echo "== $name: exit $status after $((SECONDS - started)) s (limit $limit s)"
    tail -n 40 "$LOGS/$name.log"
}

run() {
    LOGS="${OUT:-gpu_check_out}"
    mkdir -p "$LOGS"
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$CHECK"/wheels/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD" HRNET_SHARED_DATA="$PWD/$CHECK/data" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, torchvision, pytorch_lightning as pl; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'lightning', pl.__version__)"
    step parity 70 python3 -m pytest -q -p no:cacheprovider -s --device cuda tests/test_device_pipeline.py \
        tests/test_training.py::test_cuda_training_steps_do_not_wait_for_the_gpu
    step train_step_eager 70 python3 benchmarks/train_step.py --device cuda --models hrnet_w32 --batch-sizes 64,128,256 \
        --modes eager_fp32,channels_last,channels_last+fused,bf16+channels_last+fused --repeats 10
    # One process per compile mode (each compiles for a minute or more), so a time-out keeps the finished ones.
    step train_step_compile 220 bash -c 'for mode in channels_last+fused+compile channels_last+fused+compile:reduce-overhead \
        bf16+channels_last+fused+compile:reduce-overhead; do python3 benchmarks/train_step.py --device cuda \
        --models hrnet_w32 --batch-sizes 128 --modes channels_last+fused,$mode --repeats 10; done'
    step epoch 90 python3 benchmarks/epoch.py --device cuda --workers 12 --rounds 1
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash benchmarks/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
