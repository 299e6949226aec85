#!/usr/bin/env bash
# The GPU checks of issues 13, 21 and 23 in one run, about 8-10 minutes on one GPU (each step has its own timeout):
#   1. resnet50 training images/s at 224 px, bf16 autocast + channels_last (goal >= 1,000 on H100-class);
#   2. the cams dump images/s against plain inference (goal >= 0.9x) and batch-64 Grad-CAM against 64
#      single calls (goal >= 10x per image): benchmarks/bench_cams.py;
#   3. DDP training on every GPU it has (torchrun, nccl), against the one-GPU figure;
#   4. issue 21: the attention map methods' images/s against plain inference of DeiT-S at 224 (goal >= 0.8x);
#   5. issue 23: faithfulness@'s cost per image x method against torchcam's on the GPU (goal >= 3x), ROAD's too.
# Usage: benchmarks/gpu_check.sh            on a GPU machine
#        benchmarks/gpu_check.sh --cpu-smoke the same steps with tiny settings on CPU (gloo): checks the script
# Paste the output into README "Scaling out" with the GPU's name.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
SMOKE=0
[[ "${1:-}" == "--cpu-smoke" ]] && SMOKE=1
failed=0
step() {  # step SECONDS TITLE CMD...: run with a timeout, report, never stop the script
  local limit=$1 title=$2; shift 2
  echo "== $title"
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  if (( rc != 0 )); then
    failed=1
    if (( rc == 124 )); then echo "!! $title: over its ${limit} s budget"; else echo "!! $title: failed (exit $rc)"; fi
  fi
  echo "   ($((SECONDS - t0)) s)"
}

date -u +"%Y-%m-%d %H:%M UTC"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
$PY -c "import torch; print('torch', torch.__version__, '| GPUs:', torch.cuda.device_count(), '|',
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu only')"

if (( SMOKE )); then
  TRAIN=(--arch tiny_gap_cnn --size 64 --cache 72 --batch 32 --images 256 --epochs 2 --workers 0)
  CAMS=(--backbones tiny_gap_cnn --size 64 --images 64 --batch 16 --repeats 1 --device cpu)
  NDDP=2
  VIT=(--backbones vit_cpu_p8 --size 64 --images 64 --batch 16 --repeats 1 --device cpu)
  FAITH=(--images 2 --methods 1 --steps 4 --backbones tiny_gap_cnn@96 --device cpu)
else
  if (( NGPU < 1 )); then echo "no CUDA GPU visible: run with --cpu-smoke to check the script"; exit 2; fi
  TRAIN=(--arch resnet50 --size 224 --cache 256 --batch 256 --images 6144 --epochs 3 --workers 12)
  CAMS=(--backbones resnet50 --size 224 --images 1024 --batch 64 --repeats 3)
  NDDP=$NGPU
  VIT=(--backbones deit_small_patch16 --size 224 --images 1024 --batch 64 --repeats 3)
  FAITH=(--images 32 --methods 3 --steps 16 --batch-size 256 --device cuda)
fi

step 200 "1. train images/s, one process" $PY benchmarks/bench_gpu_train.py "${TRAIN[@]}"
step 150 "2. cams dump vs plain inference; batched Grad-CAM" $PY benchmarks/bench_cams.py "${CAMS[@]}"
if (( NDDP >= 2 )); then
  DDP_TRAIN=("${TRAIN[@]}")
  (( SMOKE )) || DDP_TRAIN=(--arch resnet50 --size 224 --cache 256 --batch $((256 * NDDP)) --images $((6144 * NDDP))
                            --epochs 3 --workers $((12 / NDDP > 1 ? 12 / NDDP : 1)))
  step 150 "3. DDP train images/s, $NDDP processes (torchrun)" \
    $PY -m torch.distributed.run --standalone --nproc-per-node="$NDDP" benchmarks/bench_gpu_train.py "${DDP_TRAIN[@]}"
else
  echo "== 3. DDP: one GPU here, no scaling to measure; the torchrun path with one process:"
  step 100 "3. DDP train images/s, 1 process (torchrun)" \
    $PY -m torch.distributed.run --standalone --nproc-per-node=1 benchmarks/bench_gpu_train.py "${TRAIN[@]}"
fi
step 150 "4. attention map methods vs plain inference (DeiT-S)" $PY benchmarks/bench_cams.py "${VIT[@]}"
step 90 "5. faithfulness vs torchcam" $PY benchmarks/bench_faithfulness.py "${FAITH[@]}"
step 90 "5b. the same with camloc's ROAD (cost per image x method)" $PY benchmarks/bench_faithfulness.py "${FAITH[@]}" --road
exit $failed
