"""Which precision a trainer's autocast runs in on this machine: bf16 where the hardware computes it, else fp32.

Why: on a CPU with AMX or AVX-512 BF16, oneDNN runs bf16 convolutions and matrix products at about twice the
fp32 rate (the crafter-small training step: 860 -> 440 ms at 16 x 32 frames, 2 threads; docs/training.md,
"Speed"). Elsewhere bf16 is emulated with conversions and is slower than fp32, so a CPU without those
instructions keeps fp32 whatever the config asks. Autocast keeps the weights, the optimiser, the norms and
the losses in fp32; only convolution and matrix-product inputs are rounded to bf16, as on a GPU.

``AIMC_CPU_BF16=0`` (or ``1``) overrides the CPU check, e.g. to reproduce an fp32 run on a bf16 machine.
"""

from __future__ import annotations

import contextlib
import os
from functools import cache
from pathlib import Path

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags (as /proc/cpuinfo names them) of instructions that compute bf16 products natively."""
ENV_OVERRIDE = "AIMC_CPU_BF16"


@cache
def _cpu_flags() -> frozenset[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return frozenset(value.split())
    return frozenset()


def native_bf16_cpu() -> bool:
    """True where this CPU computes bf16 natively (or ``AIMC_CPU_BF16`` says so)."""
    forced = os.environ.get(ENV_OVERRIDE, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return any(f in _cpu_flags() for f in NATIVE_BF16_FLAGS)


def resolve_mixed_precision(requested: str, device_type: str) -> str:
    """The autocast a trainer asked for (``"no"`` or ``"bf16"``) as it will run on ``device_type``: bf16 on a
    GPU and on a CPU with native bf16, fp32 (``"no"``) otherwise."""
    if requested == "no":
        return "no"
    if requested != "bf16":
        raise ValueError(f"mixed precision must be 'no' or 'bf16', got {requested!r}")
    if device_type == "cpu" and not native_bf16_cpu():
        return "no"
    return "bf16"


ACTING_PRECISIONS = ("fp32", "bf16")


def resolve_acting_precision(requested: str, device_type: str) -> str:
    """The precision an acting policy asked for (``"fp32"`` or ``"bf16"``) as it will run on ``device_type``.

    Why acting has its own switch: rollouts (evaluation, DAgger, PPO's episodes) spend most of a step in the
    policy's convolutions once the world is fast, and bf16 halves their cost where the hardware computes it
    (the shipped Crafter agent at 16 envs: docs/results.md, "Rollout speed"). It is opt-in, not the default,
    because it changes the sampled actions now and then (a near-tie flips), so a run is reproducible only at
    the precision it was made with; `resolve_mixed_precision` decides where bf16 is native.
    """
    if requested not in ACTING_PRECISIONS:
        raise ValueError(f"acting precision must be one of {', '.join(ACTING_PRECISIONS)}, got {requested!r}")
    return "bf16" if resolve_mixed_precision("no" if requested == "fp32" else "bf16", device_type) == "bf16" else "fp32"
