"""A student policy: a trained VPT network made to read smaller frames, as the start of a distillation.

Why: acting is the cost of every rollout (evaluation, DAgger, PPO), and on a CPU the Crafter policy's step is its
image encoder at 64x64 (docs/results.md, "Rollout speed"). The same network at 32x32 costs about a third per
step at 64 envs, and starting it from the teacher's own weights keeps what they know: the convolutions, the
recurrent core and the heads do not depend on the frame size; only the dense layer after the last stack reads a
flattened C x H x W map, which shrinks by the same factor. Its weights are summed over each pooled block (a
feature of the smaller map is, to first order, the block average of the larger map's, so the sum keeps the
layer's output scale) and the LayerNorm before it averaged over the block.

The student is not the teacher: the convolutions see every object at half size. Distillation (`aimc train ppo`
with ``frame_size`` and ``teacher_coef``, preset ``ppo-distill``) trains it to act as the teacher does.
"""

from __future__ import annotations

import dataclasses

import torch

from aimc.core.errors import ConfigError
from aimc.policy.vpt.model import VPTPolicy

DENSE = "net.img_process.cnn.dense"


def with_frame_size(policy: VPTPolicy, img_shape: tuple[int, int]) -> VPTPolicy:
    """A new policy reading ``img_shape`` frames, every weight copied from ``policy`` except the CNN's dense layer
    (and its LayerNorm), which is pooled over the blocks by which the last feature map shrinks. ``img_shape`` must
    divide the policy's own frame size evenly, so each block is whole."""
    cfg = policy.config
    new_cfg = dataclasses.replace(cfg, img_shape=(int(img_shape[0]), int(img_shape[1])))
    c, h, w = cfg.cnn_out_shape
    c2, h2, w2 = new_cfg.cnn_out_shape
    if new_cfg.img_shape == tuple(cfg.img_shape):
        raise ConfigError(f"frame size {list(img_shape)} is the policy's own; give a smaller one")
    if h % h2 or w % w2 or (cfg.img_shape[0] % new_cfg.img_shape[0]) or (cfg.img_shape[1] % new_cfg.img_shape[1]):
        raise ConfigError(f"frame size {list(img_shape)} must divide the policy's {list(cfg.img_shape)} evenly "
                          f"(its last feature map {h}x{w} would pool to {h2}x{w2}); e.g. "
                          f"{[cfg.img_shape[0] // 2, cfg.img_shape[1] // 2]}")
    fh, fw = h // h2, w // w2
    student = VPTPolicy(new_cfg).to(next(policy.parameters()).device)
    sd = policy.state_dict()
    out = {}
    for key, value in sd.items():
        if key == f"{DENSE}.layer.weight":  # (out, c*h*w) -> (out, c*h2*w2): block sums
            value = value.reshape(-1, c, h2, fh, w2, fw).sum((3, 5)).reshape(value.shape[0], -1)
        elif key in (f"{DENSE}.norm.weight", f"{DENSE}.norm.bias"):  # (c*h*w,) -> block means
            value = value.reshape(c, h2, fh, w2, fw).mean((2, 4)).reshape(-1)
        out[key] = value
    missing = set(student.state_dict()) ^ set(out)
    if missing:  # the layout this function knows no longer matches the network's
        raise RuntimeError(f"cannot resize the policy: keys differ ({sorted(missing)[:5]})")
    with torch.no_grad():
        student.load_state_dict(out, strict=True)
    return student
