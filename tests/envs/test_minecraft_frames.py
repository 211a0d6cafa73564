"""Cursor overlay and VPT's resize (cv2 INTER_LINEAR written out), against independent references: hand-computed
fixed-point values, torch's bilinear (same taps, float rounding) and OpenCV itself when it is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aimc.core.errors import AimcError
from aimc.envs.minecraft.frames import arrow_cursor, cursor_position, draw_cursor, load_cursor, resize


@pytest.mark.parametrize("size", [(128, 128), (36, 64), (160, 256), (720, 1280), (7, 5)])
def test_resize_is_half_pixel_bilinear_in_fixed_point(size) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    ref = torch.nn.functional.interpolate(torch.from_numpy(frame).permute(2, 0, 1)[None].double(), size=size,
                                          mode="bilinear", align_corners=False, antialias=False)[0].permute(1, 2, 0)
    diff = resize(frame, size).astype(np.float64) - ref.numpy()
    assert np.abs(diff).max() < 1.0  # 11-bit weights and OpenCV's truncations: within one level of the exact value
    assert resize(frame, (360, 640)) is frame
    batch = np.stack([frame, frame[::-1]])
    np.testing.assert_array_equal(resize(batch, size)[1], resize(frame[::-1], size))  # leading dims are batches


def test_resize_fixed_point_by_hand() -> None:
    # 1x4 -> 1x3: column positions 0.1667, 1.5, 2.8333 (float32) -> weights of 2048: (1707, 341), (1024, 1024),
    # (341, 1707); horizontal sums >> 4, vertical weight 2048 on the single row: ((2048 * S) >> 16 + 2) >> 2
    row = np.array([[[0], [100], [201], [255]]], np.uint8)
    s = [(0 * 1707 + 100 * 341) >> 4, (100 * 1024 + 201 * 1024) >> 4, (201 * 341 + 255 * 1707) >> 4]
    want = [(((2048 * v) >> 16) + 2) >> 2 for v in s]
    assert want == [17, 151, 246]  # exact values 16.65, 150.5, 246.0
    np.testing.assert_array_equal(resize(row, (1, 3))[0, :, 0], want)


def test_resize_equals_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    for shape, size in [((360, 640), (128, 128)), ((360, 640), (160, 256)), ((360, 640), (180, 320)),
                        ((36, 64), (128, 128)), ((101, 77), (63, 17)), ((360, 640), (720, 1280))]:
        frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        want = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(resize(frame, size), want)


def test_cursor_position_and_clipping() -> None:
    assert cursor_position(400, 300, 360) == (200, 150) and cursor_position(1279.9, 719.9, 36) == (63, 35)
    cursor = arrow_cursor()
    assert cursor.rgb.shape == (16, 16, 3) and set(np.unique(cursor.alpha)) == {0.0, 1.0}
    base = np.full((20, 30, 3), 90, np.uint8)
    for x, y in [(-3, -5), (25, 12), (-16, 0), (30, 0), (0, 20)]:
        frame = base.copy()
        draw_cursor(frame, cursor, x, y)
        # a pixel changes exactly where the drawn part of the arrow lands inside the frame
        ys, xs = np.mgrid[0:20, 0:30]
        cy, cx = ys - y, xs - x
        inside = (cy >= 0) & (cy < 16) & (cx >= 0) & (cx < 16)
        drawn = np.zeros((20, 30), bool)
        drawn[inside] = cursor.alpha[cy[inside], cx[inside], 0] > 0
        assert ((frame != base).any(axis=2) == drawn).all(), (x, y)


def test_load_cursor_crops_like_the_loader(tmp_path: Path) -> None:
    from PIL import Image

    rgba = np.zeros((256, 256, 4), np.uint8)  # the official file is 256x256 with the cursor top-left
    rgba[:16, :16] = (200, 100, 50, 255)
    rgba[16:, 16:] = (1, 2, 3, 255)
    Image.fromarray(rgba).save(tmp_path / "c.png")
    cursor = load_cursor(tmp_path / "c.png")
    assert cursor.rgb.shape == (16, 16, 3) and (cursor.rgb == [200, 100, 50]).all() and (cursor.alpha == 1).all()
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(AimcError, match="cursor image .*bad.png is unreadable"):
        load_cursor(tmp_path / "bad.png")
