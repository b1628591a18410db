"""The number format inference runs in.

fp32 is the default: it gives the official implementations' numbers. bf16 halves the memory
traffic and, where the hardware multiplies bf16 natively, runs the ViT faster: CPUs with
AVX512-BF16 or AMX (``lscpu`` lists ``avx512_bf16`` / ``amx_bf16``), GPUs from Ampere on.
Elsewhere bf16 is emulated and slower than fp32, so ``auto`` picks it only where it is native.
fp16 is for GPUs only. benchmarks/cpu_inference.py measures the speed and the difference in the
outputs.
"""

from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def bf16_is_native(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bf16 in hardware (oneDNN's check on CPUs)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """``fp32`` / ``bf16`` / ``fp16`` / ``auto`` (bf16 where native, else fp32) -> a dtype, with
    a clear error for a format the device cannot run well."""
    if name == "auto":
        return torch.bfloat16 if bf16_is_native(device) else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; available: auto, {', '.join(DTYPES)}")
    device = torch.device(device)
    if name == "fp16" and device.type == "cpu":
        raise ValueError("fp16 runs on GPUs only; on a CPU use bf16 (fast where the CPU has "
                         "AVX512-BF16 or AMX) or fp32")
    if name == "bf16" and not bf16_is_native(device):
        raise ValueError(f"this {device.type.upper()} has no native bf16 (it would be emulated, "
                         "slower than fp32); use fp32, or auto to pick the best")
    return DTYPES[name]
