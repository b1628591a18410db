#!/usr/bin/env bash
# The GPU checks in one run. The extension (issue 10): the xformers path agrees with SDPA (dense bias
# and block-diagonal segments), then ViT-H in bf16, xformers vs SDPA over 1024 frames as the paper
# timed it, and the two packing ways under training-like modality dropout.
#
# On a machine with a CUDA GPU, torch and xformers installed:   bash benchmarks/gpu_check.sh
# On a device machine with no network, bring xformers as a wheel; with --no-deps it pulls no torch
# (0.0.35 asks for torch>=2.10 and falls back to PyTorch's own flash / efficient kernels where its
# compiled extension does not match the installed torch):
#   here:  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#              --platform manylinux_2_28_x86_64 -d .whl xformers==0.0.35
#   there: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#          PYTHONPATH=/tmp/site:$PWD bash benchmarks/gpu_check.sh
# (the SDK needs attrs, pluggy, numpy and pytest, which such an image usually has).
set -euo pipefail
python3 - <<'EOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check.sh needs a CUDA GPU; torch sees none")
import xformers
print(f"torch {torch.__version__}, xformers {xformers.__version__}, {torch.cuda.get_device_name()}")
EOF
python3 -m pytest -q -p no:cacheprovider tests/test_extend.py tests/test_vit.py -k "xformers or segment"
python3 -m pytest -q -p no:cacheprovider tests/test_mask_paths.py  # the CUDA merge, its LSE op
# the paper mask merged by log-sum-exp against full and the dense mask (issue 20's goal: paper
# ms/frame <= full ms/frame x paper/full FLOPs x 1.1)
python3 benchmarks/masks.py --device cuda --dtype bf16 --size h --depth 32
bench="python3 benchmarks/extension.py --size h --device cuda --dtype bf16 --frames 1024"
$bench --T 1 16 --masks frame paper --attention sdpa xformers --repeats 3
$bench --T 16 --masks frame full --attention xformers --packing groups segments --dropout 0.5
# The training engine (issue 18): ViT-H bf16, T = 16, two modalities, every token computed:
# samples/s, peak memory and model-FLOPs utilisation (989: an H100 SXM's dense bf16 peak; use
# the peak of the GPU at hand). Needs the training extras (smplx, timm, safetensors, opencv).
python3 benchmarks/training.py --device cuda --size vit-h --frames 16 --amp bf16 --batch 64 \
    --processes 1 --dropout 0 --peak-tflops 989 --steps 15 --warmup 5
