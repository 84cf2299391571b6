#!/usr/bin/env bash
# The CUDA path, for a machine with an NVIDIA GPU (CI has none): every model x data smoke run on
# the GPU in bf16 mixed precision, default runs of the concepts on the GPU (wall time, peak GPU
# memory, quality in summary.json), Lightning's DDP strategy over NCCL, and the gpu benchmark
# (data on the device vs a DataLoader, bf16 on and off) into <out_dir>/BENCHMARKS.md and its record
# into <out_dir>/results/gpu.jsonl.
#   bash benchmarks/gpu_check.sh [out_dir]        (mlzoo and its dependencies installed)
set -uo pipefail
out=${1:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
logs=$(mktemp -d)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"

echo "== smoke: every model x data, trainer.accelerator=gpu, bf16-mixed"
MLZOO_TEST_OVERRIDES="trainer.accelerator=gpu trainer.precision=bf16-mixed" \
    python -m pytest -q -p no:cacheprovider tests/test_train.py -k few_steps 2>&1 | tail -15

echo "== data.on_device on the GPU: batched crops and flips on CUDA; the same weights as a DataLoader"
MLZOO_TEST_OVERRIDES="trainer.accelerator=gpu trainer.deterministic=warn" python -m pytest -q \
    -p no:cacheprovider tests/test_data.py tests/test_train.py -k "random_ or on_device" 2>&1 | tail -5

echo "== default runs on the GPU (bf16-mixed); 'budget' = overrides that shorten a long default"
run() {  # name, overrides... (GPU: trainer=gpu trainer.precision=bf16-mixed)
    local name=$1
    shift
    local start=$SECONDS
    if python train.py "paths.log_dir=$logs" \
        "~callbacks.progress_bar" "$@" >"$out/$name.log" 2>&1; then
        local summary
        summary=$(ls -t "$logs"/runs/*/*/summary.json | head -1)
        python - "$summary" "$name" "$((SECONDS - start))" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
test = {k: round(v, 4) for k, v in s["metrics"].items() if k.startswith("test/")}
print(f"{sys.argv[2]:<28} {sys.argv[3]:>4} s  step {s['global_step']:>6}  {test}")
EOF
    else
        echo "$name FAILED"
        tail -20 "$out/$name.log"
    fi
}
run mlp model=mlp trainer=gpu trainer.precision=bf16-mixed
run cnn model=cnn trainer=gpu trainer.precision=bf16-mixed
run rnn model=rnn trainer=gpu trainer.precision=bf16-mixed
run autoencoder model=autoencoder trainer=gpu trainer.precision=bf16-mixed
run vae model=vae trainer=gpu trainer.precision=bf16-mixed
run dcgan model=dcgan trainer=gpu trainer.precision=bf16-mixed
run ddpm-50-epochs model=ddpm trainer.max_epochs=50 trainer=gpu trainer.precision=bf16-mixed
run simclr model=simclr trainer=gpu trainer.precision=bf16-mixed
run transfer-lora model=transfer model.mode=lora trainer=gpu trainer.precision=bf16-mixed
run dqn model=dqn trainer=gpu trainer.precision=bf16-mixed
run ppo model=ppo trainer=gpu trainer.precision=bf16-mixed
run mlp-ddp-nccl-1gpu model=mlp trainer=ddp trainer.accelerator=gpu trainer.devices=1 \
    trainer.precision=bf16-mixed
echo "== DDP on CPU, 2 processes (gloo)"
run mlp-ddp-gloo-2cpu model=mlp trainer=ddp trainer.accelerator=cpu trainer.devices=2 \
    trainer.precision=32-true
run mlp-ddp-gloo-2cpu-on-device model=mlp trainer=ddp trainer.accelerator=cpu trainer.devices=2 \
    trainer.precision=32-true data.on_device=true
run cnn-ddp-nccl-1gpu-on-device model=cnn trainer=ddp trainer.accelerator=gpu trainer.devices=1 \
    data.on_device=true

echo "== data on the device vs a DataLoader, fp32 vs bf16 (synthetic MNIST/CIFAR-10 without files)"
# (18 runs of ~20 s: start-up is 13-20 s on an H200 machine; 100 batches an epoch suffice there)
python benchmarks/run.py --report "$out/BENCHMARKS.md" --results "$out/results" gpu --limit-batches 100 \
    --num-workers 0 8 2>&1 | grep '^{'
