"""Winograd F(4x4, 3x3) convolution for inference: the same 3x3 "same" convolution with ~4x fewer multiplies.

Why: on a CPU the VPT ImpalaCNN convolutions already run at the FMA peak through oneDNN, so the only way to
step faster is doing less arithmetic. Winograd's minimal filtering (Lavin & Gray 2016) computes each 4x4
output tile from a 6x6 input tile with 36 multiplies per input/output channel pair instead of 144. The
maths is exactly a convolution; in float32 the rounding differs from the direct algorithm by ~1e-5
relative (the direct algorithm itself differs from float64 by ~1e-6), which is why it is an opt-in
inference mode (`VPTPolicy.set_conv_impl`) and never used for training or the bit-exact parity checks.

Layout: the zero-padded NHWC input is cut into P overlapping 6x6 tiles and transformed to (36, P, C),
multiplied with the pre-transformed weights as 36 batched (P x C) @ (C x K) GEMMs, and transformed back
to (N, H, W, K) channels-last. On CPU float32 the two transforms are fused gather/scatter loops compiled by
numba (channels innermost, so they vectorise): as torch ops they were tiny-M matrix products running far
below memory speed and ate most of the gain. Elsewhere (float64, GPU) the same maths runs as torch ops.
Images are processed in chunks so the transformed tiles stay cache-sized.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numba
import numpy as np
import torch
import torch.nn.functional as F
from numba import prange
from torch import Tensor

# Transform matrices of F(4, 3) with interpolation points 0, +-1, +-2, infinity (float64 for the weights).
_BT = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
_AT = (
    (1, 1, 1, 1, 1, 0),
    (0, 1, -1, 2, -2, 0),
    (0, 1, 1, 4, 4, 0),
    (0, 1, -1, 8, -8, 1),
)

F2, F4, F8 = np.float32(2.0), np.float32(4.0), np.float32(8.0)  # float32 constants keep the kernels in float32

# Bound on tiles x channels per GEMM batch: keeps the transformed tiles (36 x P x C floats) cache-sized.
MAX_TILE_ELEMS = 1 << 14


def winograd_weight(weight: Tensor) -> Tensor:
    """(K, C, 3, 3) conv weight -> (36, C, K) transformed weight ``G g G^T`` (computed in float64)."""
    if weight.ndim != 4 or tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"winograd_weight needs a (K, C, 3, 3) weight, got {tuple(weight.shape)}")
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    u = torch.einsum("ai,kcij,bj->abck", g, weight.detach().double(), g)
    k, c = weight.shape[:2]
    return u.reshape(36, c, k).to(weight.dtype).contiguous()


def _tiles(xp: Tensor) -> Tensor:
    """(6, 6, n*th*tw, c) overlapping 6x6 tiles (stride 4) of the padded NHWC input ``xp`` (a strided view)."""
    t = xp.unfold(1, 6, 4).unfold(2, 6, 4)  # (n, th, tw, c, 6, 6)
    return t.permute(4, 5, 0, 1, 2, 3).flatten(2, 4)


# ---------------------------------------------------------------------- fused CPU transforms (numba)
# Each kernel applies its 6-point transform twice (tile rows, then columns) with the formula written out
# in both loops: factoring it into an inlined helper returning a tuple measured ~15 % slower at B=8.
def _input_transform_py(xp: np.ndarray, th: int, tw: int, v: np.ndarray) -> None:  # pragma: no cover - jitted
    """v[6a+b, p, c] = (B^T d B)[a, b] for the 6x6 tile p of the padded NHWC input (fused gather + transform).
    Rows of tiles are independent: `prange` spreads them over threads in the parallel build."""
    n = xp.shape[0]
    c = xp.shape[3]
    for row in prange(n * th):
        i = row // th
        ty = row % th
        tmp = np.empty((6, 6, c), np.float32)
        for tx in range(tw):
            p = (i * th + ty) * tw + tx
            r0 = 4 * ty
            c0 = 4 * tx
            for j in range(6):
                for ch in range(c):
                    d0 = xp[i, r0, c0 + j, ch]
                    d1 = xp[i, r0 + 1, c0 + j, ch]
                    d2 = xp[i, r0 + 2, c0 + j, ch]
                    d3 = xp[i, r0 + 3, c0 + j, ch]
                    d4 = xp[i, r0 + 4, c0 + j, ch]
                    d5 = xp[i, r0 + 5, c0 + j, ch]
                    t1 = d4 - F4 * d2
                    t2 = d3 - F4 * d1
                    t3 = d4 - d2
                    t4 = d3 - d1
                    tmp[0, j, ch] = F4 * (d0 - d2) + t3
                    tmp[1, j, ch] = t1 + t2
                    tmp[2, j, ch] = t1 - t2
                    tmp[3, j, ch] = t3 + F2 * t4
                    tmp[4, j, ch] = t3 - F2 * t4
                    tmp[5, j, ch] = (d5 - d3) - F4 * t4
            for a in range(6):
                q = a * 6
                for ch in range(c):
                    d0 = tmp[a, 0, ch]
                    d1 = tmp[a, 1, ch]
                    d2 = tmp[a, 2, ch]
                    d3 = tmp[a, 3, ch]
                    d4 = tmp[a, 4, ch]
                    d5 = tmp[a, 5, ch]
                    t1 = d4 - F4 * d2
                    t2 = d3 - F4 * d1
                    t3 = d4 - d2
                    t4 = d3 - d1
                    v[q, p, ch] = F4 * (d0 - d2) + t3
                    v[q + 1, p, ch] = t1 + t2
                    v[q + 2, p, ch] = t1 - t2
                    v[q + 3, p, ch] = t3 + F2 * t4
                    v[q + 4, p, ch] = t3 - F2 * t4
                    v[q + 5, p, ch] = (d5 - d3) - F4 * t4


def _output_transform_py(m: np.ndarray, n: int, th: int, tw: int, h: int, w: int, y: np.ndarray) -> None:  # pragma: no cover - jitted
    """y[i, 4ty+r, 4tx+s, k] = (A^T m A)[r, s] for tile p = (i, ty, tx), cropped to (h, w) (fused transform + scatter).
    Rows of tiles write disjoint output rows: `prange` spreads them over threads in the parallel build."""
    k = m.shape[2]
    for row in prange(n * th):
        i = row // th
        ty = row % th
        tmp = np.empty((4, 6, k), np.float32)
        for tx in range(tw):
            p = (i * th + ty) * tw + tx
            for b in range(6):
                for ch in range(k):
                    m0 = m[b, p, ch]
                    m1 = m[6 + b, p, ch]
                    m2 = m[12 + b, p, ch]
                    m3 = m[18 + b, p, ch]
                    m4 = m[24 + b, p, ch]
                    m5 = m[30 + b, p, ch]
                    s12 = m1 + m2
                    d12 = m1 - m2
                    s34 = m3 + m4
                    d34 = m3 - m4
                    tmp[0, b, ch] = m0 + s12 + s34
                    tmp[1, b, ch] = d12 + F2 * d34
                    tmp[2, b, ch] = s12 + F4 * s34
                    tmp[3, b, ch] = d12 + F8 * d34 + m5
            for a in range(4):
                r = 4 * ty + a
                if r >= h:
                    continue
                c0 = 4 * tx
                full = c0 + 3 < w
                for ch in range(k):
                    m0 = tmp[a, 0, ch]
                    m1 = tmp[a, 1, ch]
                    m2 = tmp[a, 2, ch]
                    m3 = tmp[a, 3, ch]
                    m4 = tmp[a, 4, ch]
                    m5 = tmp[a, 5, ch]
                    s12 = m1 + m2
                    d12 = m1 - m2
                    s34 = m3 + m4
                    d34 = m3 - m4
                    y0 = m0 + s12 + s34
                    y1 = d12 + F2 * d34
                    y2 = s12 + F4 * s34
                    y3 = d12 + F8 * d34 + m5
                    if full:
                        y[i, r, c0, ch] = y0
                        y[i, r, c0 + 1, ch] = y1
                        y[i, r, c0 + 2, ch] = y2
                        y[i, r, c0 + 3, ch] = y3
                    else:
                        y[i, r, c0, ch] = y0
                        if c0 + 1 < w:
                            y[i, r, c0 + 1, ch] = y1
                        if c0 + 2 < w:
                            y[i, r, c0 + 2, ch] = y2


_input_transform = numba.njit(cache=True)(_input_transform_py)
_output_transform = numba.njit(cache=True)(_output_transform_py)
_input_transform_par = numba.njit(cache=True, parallel=True)(_input_transform_py)
_output_transform_par = numba.njit(cache=True, parallel=True)(_output_transform_py)
_parallel_ok: bool | None = None  # None = not tried yet; False = no thread-safe numba threading layer here


def _transforms(threads: int) -> tuple[Callable[..., None], Callable[..., None]]:
    """The serial kernels for one thread, else the row-parallel ones on `threads` numba threads (the serial
    transforms next to oneDNN's multi-threaded GEMM were what made Winograd lose at 2 threads, issue 18).
    The parallel build needs a thread-safe threading layer (OpenMP or TBB: acting may run in several Python
    threads at once); without one the serial kernels stay."""
    global _parallel_ok
    if threads <= 1 or _parallel_ok is False:
        return _input_transform, _output_transform
    if _parallel_ok is None:
        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "threadsafe"
        try:
            _input_transform_par(np.zeros((1, 6, 6, 1), np.float32), 1, 1, np.zeros((36, 1, 1), np.float32))
            _parallel_ok = True
        except (ValueError, RuntimeError):  # no OpenMP/TBB layer: numba refuses the thread-safe request
            _parallel_ok = False
            return _input_transform, _output_transform
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return _input_transform_par, _output_transform_par


_local = threading.local()


def _scratch(name: str, shape: tuple[int, ...]) -> Tensor:
    """A float32 work buffer kept per thread and shape. The transformed tiles and the GEMM products are
    megabytes; allocated fresh every call they come back as new pages the kernel must fault in and zero,
    which measured as slow as the GEMM itself (1.06 ms instead of 0.38 ms at 64 -> 64 channels, 64x64, B=1).
    Per thread, so agents acting in several threads at once never share one."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    key = (name, shape)
    buf = bufs.get(key)
    if buf is None:
        with torch.inference_mode(False):  # a normal tensor: writable under inference_mode and no_grad alike
            buf = bufs[key] = torch.empty(shape, dtype=torch.float32)
    return buf


def winograd_conv3x3(x: Tensor, u: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.conv2d(x, w, bias, padding=1)`` for a 3x3 ``w`` given ``u = winograd_weight(w)``.

    ``x``: (N, C, H, W) in any memory format; returns (N, K, H, W) in channels-last memory. float32 on CPU
    uses the fused numba transforms; anything else (float64, GPU) the same maths as small torch GEMMs.
    """
    n, c, h, w = x.shape
    if u.shape[:2] != (36, c):
        raise ValueError(f"transformed weight {tuple(u.shape)} does not match {c} input channels")
    k = u.shape[2]
    th, tw = (h + 3) // 4, (w + 3) // 4
    chunk = max(1, MAX_TILE_ELEMS // (th * tw * c))
    fused = x.device.type == "cpu" and x.dtype == torch.float32 and u.dtype == torch.float32
    # zero padding: 1 before, enough after to cover whole tiles (NHWC)
    pad_shape = (n, 4 * th + 2, 4 * tw + 2, c)
    if fused:
        input_transform, output_transform = _transforms(torch.get_num_threads())
        xp = _scratch("xp", pad_shape)
        xp[:, 1 : h + 1, 1 : w + 1].copy_(x.permute(0, 2, 3, 1))
        for border in (xp[:, :1], xp[:, h + 1 :], xp[:, 1 : h + 1, :1], xp[:, 1 : h + 1, w + 1 :]):
            border.zero_()  # only the padding: the interior was just overwritten
        y = torch.empty(n, h, w, k, dtype=x.dtype)
        u = u.contiguous()
        for i in range(0, n, chunk):
            nb = min(chunk, n - i)
            v = _scratch("v", (36, nb * th * tw, c))
            input_transform(xp[i : i + nb].numpy(), th, tw, v.numpy())
            m = torch.bmm(v, u, out=_scratch("m", (36, nb * th * tw, k)))  # 36 GEMMs (P x C) @ (C x K)
            output_transform(m.numpy(), nb, th, tw, h, w, y[i : i + nb].numpy())
    else:
        xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, pad_shape[2] - 1 - w, 1, pad_shape[1] - 1 - h))
        y = torch.cat([_torch_chunk(xp[i : i + chunk], u, th, tw, h, w) for i in range(0, n, chunk)], 0)
    if bias is not None:
        y = y + bias
    return y.permute(0, 3, 1, 2)


def _torch_chunk(xp: Tensor, u: Tensor, th: int, tw: int, h: int, w: int) -> Tensor:
    """The transforms as 6-row matrix products (any device/dtype): (nb, h, w, K) NHWC."""
    nb, c, k = xp.shape[0], xp.shape[3], u.shape[2]
    p = nb * th * tw
    bt = torch.tensor(_BT, dtype=xp.dtype, device=xp.device)
    at = torch.tensor(_AT, dtype=xp.dtype, device=xp.device)
    d = _tiles(xp).reshape(6, 6 * p * c)
    d = torch.matmul(bt, d).view(6, 6, p * c)  # rows:    B^T d
    v = torch.matmul(bt, d).view(36, p, c)  # columns: (B^T d) B
    m = torch.bmm(v, u).view(6, 6 * p * k)  # 36 GEMMs (P x C) @ (C x K)
    m = torch.matmul(at, m).view(4, 6, p * k)
    y = torch.matmul(at, m).view(4, 4, nb, th, tw, k)  # A^T M A
    return y.permute(2, 3, 0, 4, 1, 5).reshape(nb, 4 * th, 4 * tw, k)[:, :h, :w]
