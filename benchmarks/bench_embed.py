"""Cached `window_embeddings` vs naive per-window recompute, in one run (ratios are what count).

    python benchmarks/bench_embed.py                      # MineCLIP full size (random weights) + videotext
    python benchmarks/bench_embed.py --mineclip-frames 64 --naive-windows 3 --small-frames 1000

The cached path runs the image encoder once per frame and the temporal pool once per window; the naive
path calls `encode_clips` on every 16-frame window (16 image-encoder calls per window), as STEVE-1's
frame buffer does. For full-size MineCLIP on CPU the naive path is timed on `--naive-windows` evenly
spaced windows and scaled to all windows (each window costs the same); outputs are compared on those
windows. The small embedder is timed on every window.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aimc.embed.base import EMBED_OFFSET
from aimc.embed.mineclip import MineCLIPEmbedder
from aimc.embed.mineclip_model import MineCLIP, MineCLIPConfig
from aimc.embed.videotext import VideoTextConfig, VideoTextEmbedder


def bench(name: str, emb, frames: np.ndarray, naive_windows: int | None) -> float:
    t0 = time.perf_counter()
    cached, mask = emb.window_embeddings(frames)
    t_cached = time.perf_counter() - t0
    n_windows = int(mask.sum())
    ends = np.arange(EMBED_OFFSET, len(frames))
    if naive_windows is not None and naive_windows < n_windows:
        ends = ends[np.linspace(0, n_windows - 1, naive_windows).round().astype(int)]
    t0 = time.perf_counter()
    naive = torch.cat([emb.encode_clips(frames[e - EMBED_OFFSET : e + 1][None]) for e in ends])
    t_naive = (time.perf_counter() - t0) * n_windows / len(ends)
    err = float((naive - cached[ends]).abs().max())
    ratio = t_naive / t_cached
    scaled = "" if len(ends) == n_windows else f" (timed on {len(ends)} windows, scaled)"
    print(
        f"{name}: {len(frames)} frames, {n_windows} windows | cached {t_cached:.2f}s | naive {t_naive:.2f}s"
        f"{scaled} | speed-up {ratio:.1f}x | max |diff| {err:.2e} (fp32)"
    )
    return ratio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mineclip-frames", type=int, default=64)
    p.add_argument("--naive-windows", type=int, default=3)
    p.add_argument("--small-frames", type=int, default=1000)
    p.add_argument("--skip-mineclip", action="store_true")
    a = p.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ratios = {}
    small = VideoTextEmbedder(VideoTextConfig(channels=[16, 32, 64, 128]), device="cpu")
    ratios["videotext"] = bench(
        "videotext 64x64", small, rng.integers(0, 256, (a.small_frames, 64, 64, 3), dtype=np.uint8), None
    )
    if not a.skip_mineclip:
        mc = MineCLIPEmbedder(MineCLIP(MineCLIPConfig(variant="attn")), device="cpu")
        frames = rng.integers(0, 256, (a.mineclip_frames, 160, 256, 3), dtype=np.uint8)
        ratios["mineclip"] = bench("MineCLIP attn 160x256", mc, frames, a.naive_windows)
    print("ratios: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()) + " (target >= 10x)")


if __name__ == "__main__":
    main()
