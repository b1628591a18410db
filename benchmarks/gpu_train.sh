#!/usr/bin/env bash
# Train the synthetic hand model on a GPU machine for a fixed wall time, then hand back only the
# final weights (issue 19). The engine checkpoints and exits cleanly on SIGTERM, so `timeout`
# ends the run without losing a step; run the script again to go on from where it stopped.
#
#   bash benchmarks/gpu_train.sh [MINUTES] [RUN_FOLDER]         # defaults: 8, runs/hand-gpu
#
# Rendering the synthetic clips is the bottleneck there: every core but two renders
# (data.workers). A step takes 16 clips of 8 frames, 4x the recipe's batch, at twice its
# learning rate (the square-root rule). The final weights go to $OUT (when set) as
# extpose-hamer-synthetic.safetensors / .json, with the run's log.
set -euo pipefail
minutes="${1:-8}"
run="${2:-runs/hand-gpu}"
python3 -c "import torch, sys; torch.cuda.is_available() or sys.exit('gpu_train.sh needs a CUDA GPU')"
workers=$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))
set +e
timeout -s TERM "$(( minutes * 60 ))" python3 -m extpose_sdk train synthetic-hand --out "$run" \
    --no-progress device=cuda optim.amp=bf16 data.workers="$workers" batch_size=16 lr=6e-4
status=$?
set -e
# 0: finished; 130: stopped by the signal, checkpointed; anything else is a failure
if [ "$status" -ne 0 ] && [ "$status" -ne 130 ] && [ "$status" -ne 124 ]; then exit "$status"; fi
latest="$run/checkpoints/$(cat "$run/checkpoints/latest")"
python3 - "$run" <<'PY'
import json, sys
vals = [json.loads(l) for l in open(f"{sys.argv[1]}/log.jsonl") if '"val"' in l]
for r in vals[-3:]:
    print(r["step"], {k: round(v, 3) for k, v in r["val"].items()})
PY
if [ -n "${OUT:-}" ]; then
    cp "$latest/model.safetensors" "$OUT/extpose-hamer-synthetic.safetensors"
    cp "$latest/model.json" "$OUT/extpose-hamer-synthetic.json"
    cp "$run/log.jsonl" "$OUT/log.jsonl"
fi
echo "weights: $latest/model.safetensors"
