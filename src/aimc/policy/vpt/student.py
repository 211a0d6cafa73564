"""A student policy: a trained VPT network made to read smaller frames, as the start of a distillation.

Why: acting is the cost of every rollout (evaluation, DAgger, PPO), and on a CPU the Crafter policy's step is its
image encoder at 64x64 (docs/results.md, "Rollout speed"). The same network at 32x32 costs about a third per
step at 64 envs, and starting it from the teacher's own weights keeps what they know: the convolutions, the
recurrent core and the heads do not depend on the frame size; only the dense layer after the last stack reads a
flattened C x H x W map, which shrinks by the same factor. Its weights are summed over each pooled block (a
feature of the smaller map is, to first order, the block average of the larger map's, so the sum keeps the
layer's output scale) and the LayerNorm before it averaged over the block. A size that does not divide the
teacher's (48x48 from 64x64: an 8x8 map to 6x6) pools the same way with fractional blocks: each cell of the
larger map is read as the area-weighted mix of the smaller map's cells it overlaps (`overlap_matrix`), and the
dense weights are pulled back through that mix; for a whole factor it is exactly the block sum.

The student is not the teacher: the convolutions see every object at half size. Distillation (`aimc train ppo`
with ``frame_size`` and ``teacher_coef``, preset ``ppo-distill``) trains it to act as the teacher does.
"""

from __future__ import annotations

import dataclasses

import torch

from aimc.core.errors import ConfigError
from aimc.policy.vpt.model import VPTPolicy

DENSE = "net.img_process.cnn.dense"


def overlap_matrix(big: int, small: int) -> torch.Tensor:
    """(big, small): row j is how cell j of a length-`big` axis splits over the cells of the same axis cut into
    `small` cells (overlap lengths, rows summing to 1). For `big` a multiple of `small` each row is one-hot (the
    block that holds it); every column sums to big / small."""
    u = torch.zeros(big, small, dtype=torch.float64)
    for j in range(big):
        lo, hi = j * small / big, (j + 1) * small / big  # cell j of the big axis, in small-cell units
        for i in range(int(lo), min(small, int(-(-hi // 1)))):
            u[j, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    return u / u.sum(1, keepdim=True)


def with_frame_size(policy: VPTPolicy, img_shape: tuple[int, int]) -> VPTPolicy:
    """A new policy reading smaller ``img_shape`` frames, every weight copied from ``policy`` except the CNN's dense
    layer (and its LayerNorm), which is pooled over the (possibly fractional) blocks by which the last feature map
    shrinks: the dense weights become ``W (U_h x U_w)`` and the LayerNorm's parameters their U-weighted means, with
    ``U = overlap_matrix(big, small)`` per axis."""
    cfg = policy.config
    new_cfg = dataclasses.replace(cfg, img_shape=(int(img_shape[0]), int(img_shape[1])))
    c, h, w = cfg.cnn_out_shape
    c2, h2, w2 = new_cfg.cnn_out_shape
    if new_cfg.img_shape == tuple(cfg.img_shape):
        raise ConfigError(f"frame size {list(img_shape)} is the policy's own; give a smaller one")
    if new_cfg.img_shape[0] > cfg.img_shape[0] or new_cfg.img_shape[1] > cfg.img_shape[1] or h2 < 1 or w2 < 1:
        raise ConfigError(f"frame size {list(img_shape)} must be smaller than the policy's {list(cfg.img_shape)} "
                          f"(a student reads smaller frames); e.g. {[cfg.img_shape[0] // 2, cfg.img_shape[1] // 2]}")
    uh, uw = overlap_matrix(h, h2), overlap_matrix(w, w2)
    col_h, col_w = uh.sum(0), uw.sum(0)  # each small cell's share of the big map: big / small per axis
    student = VPTPolicy(new_cfg).to(next(policy.parameters()).device)
    sd = policy.state_dict()
    out = {}
    for key, value in sd.items():
        if key == f"{DENSE}.layer.weight":  # (out, c*h*w) -> (out, c*h2*w2): W pulled back through the mix
            v = value.double().reshape(-1, c, h, w)
            value = torch.einsum("ocyx,yi,xj->ocij", v, uh, uw).reshape(value.shape[0], -1).to(value.dtype)
        elif key in (f"{DENSE}.norm.weight", f"{DENSE}.norm.bias"):  # (c*h*w,) -> U-weighted means
            v = value.double().reshape(c, h, w)
            mean = torch.einsum("cyx,yi,xj->cij", v, uh, uw) / (col_h[:, None] * col_w[None, :])
            value = mean.reshape(-1).to(value.dtype)
        out[key] = value
    missing = set(student.state_dict()) ^ set(out)
    if missing:  # the layout this function knows no longer matches the network's
        raise RuntimeError(f"cannot resize the policy: keys differ ({sorted(missing)[:5]})")
    with torch.no_grad():
        student.load_state_dict(out, strict=True)
    return student
