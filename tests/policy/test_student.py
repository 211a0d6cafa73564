"""`with_frame_size`: a trained policy made to read smaller frames keeps every weight but the dense layer, whose
pooled weights give the same output on a feature map that is constant over each pooled block (fractional blocks
for a size that does not divide the teacher's)."""

from __future__ import annotations

import pytest
import torch

from aimc.core.errors import ConfigError
from aimc.policy import VPTPolicy, get_config
from aimc.policy.vpt.student import DENSE, overlap_matrix, with_frame_size


def _policy() -> VPTPolicy:
    torch.manual_seed(0)
    return VPTPolicy(get_config("crafter-small", goal_dim=8, img_shape=(64, 64)))


def test_student_reads_smaller_frames_and_keeps_the_other_weights():
    teacher = _policy()
    student = with_frame_size(teacher, (32, 32))
    assert student.config.img_shape == (32, 32) and teacher.config.img_shape == (64, 64)
    assert student.config.cnn_out_shape == (32, 4, 4) and teacher.config.cnn_out_shape == (32, 8, 8)
    t, s = teacher.state_dict(), student.state_dict()
    assert t.keys() == s.keys()
    pooled = {f"{DENSE}.layer.weight", f"{DENSE}.norm.weight", f"{DENSE}.norm.bias"}
    assert all(torch.equal(t[k], s[k]) for k in t if k not in pooled)
    assert s[f"{DENSE}.layer.weight"].shape == (256, 32 * 16)
    pov = torch.randint(0, 255, (2, 3, 32, 32, 3), dtype=torch.uint8)
    out, _ = student(pov, torch.randn(2, 3, 8), torch.zeros(2, 3, dtype=torch.bool), student.initial_state(2))
    assert out.logp["action"].shape == (2, 3, 17) and torch.isfinite(out.logp["action"]).all()


def test_pooled_dense_layer_matches_the_teachers_on_block_constant_maps():
    """A block-constant 8x8 map (every 2x2 block one value per channel) through the teacher's dense layer gives what
    its 4x4 block values give through the student's, when the LayerNorm's parameters are block-constant too (the
    sum of the weights over a block times the block's value is the block's share of the product)."""
    teacher = _policy()
    dense = teacher.net.img_process.cnn.dense
    with torch.no_grad():
        for p in (dense.norm.weight, dense.norm.bias):
            p.copy_(torch.randn(32, 4, 1, 4, 1).expand(32, 4, 2, 4, 2).reshape(-1))
    student = with_frame_size(teacher, (32, 32))
    small = torch.randn(5, 32, 4, 4)
    big = small.repeat_interleave(2, 2).repeat_interleave(2, 3)
    with torch.no_grad():
        a = dense(big.reshape(5, -1))
        b = student.net.img_process.cnn.dense(small.reshape(5, -1))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # and not by accident: an unpooled copy of the student (its own random init) differs
    assert not torch.allclose(b, VPTPolicy(student.config).net.img_process.cnn.dense(small.reshape(5, -1)), atol=1e-2)


def test_overlap_matrix_splits_each_big_cell_over_the_small_cells_it_covers():
    u = overlap_matrix(8, 6)  # a 64x64 frame's 8x8 map read as a 48x48 frame's 6x6 map
    torch.testing.assert_close(u.sum(1), torch.ones(8, dtype=torch.float64))
    torch.testing.assert_close(u.sum(0), torch.full((6,), 8 / 6, dtype=torch.float64))
    assert u[0].tolist() == [1, 0, 0, 0, 0, 0] and u[1, :2].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert torch.equal(overlap_matrix(8, 4), torch.eye(4, dtype=torch.float64).repeat_interleave(2, 0))  # blocks


def test_a_48x48_student_pools_the_dense_layer_over_fractional_blocks():
    """8x8 -> 6x6: the student's dense weights applied to a 6x6 map equal the teacher's applied to that map
    spread back over the 8x8 grid by area (the linear layer exactly; with the LayerNorm, close on a map whose
    values vary slowly); the student acts on 48x48 frames."""
    teacher = _policy()
    student = with_frame_size(teacher, (48, 48))
    assert student.config.cnn_out_shape == (32, 6, 6)
    t_dense, s_dense = teacher.net.img_process.cnn.dense, student.net.img_process.cnn.dense
    small = torch.randn(5, 32, 6, 6, dtype=torch.float64)
    u = overlap_matrix(8, 6)
    big = torch.einsum("ncij,yi,xj->ncyx", small, u, u)
    w_t, w_s = t_dense.layer.weight.double(), s_dense.layer.weight.double()
    torch.testing.assert_close(big.reshape(5, -1) @ w_t.T, small.reshape(5, -1) @ w_s.T, rtol=1e-5, atol=1e-5)
    smooth = torch.linspace(-1, 1, 6)[None, None, :, None] * torch.linspace(-1, 1, 6)[None, None, None, :]
    small = (smooth * torch.randn(1, 32, 1, 1)).expand(5, 32, 6, 6) + 0.01 * torch.randn(5, 32, 6, 6)
    big = torch.einsum("ncij,yi,xj->ncyx", small.double(), u, u).float()
    with torch.no_grad():
        a, b = t_dense(big.reshape(5, -1)), s_dense(small.reshape(5, -1))
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.95
    pov = torch.randint(0, 255, (2, 3, 48, 48, 3), dtype=torch.uint8)
    out, _ = student(pov, torch.randn(2, 3, 8), torch.zeros(2, 3, dtype=torch.bool), student.initial_state(2))
    assert out.logp["action"].shape == (2, 3, 17) and torch.isfinite(out.logp["action"]).all()


@pytest.mark.parametrize("shape", [(64, 64), (80, 80), (64, 72)])
def test_a_size_that_is_the_policys_own_or_not_smaller_fails_in_one_line(shape):
    with pytest.raises(ConfigError) as e:
        with_frame_size(_policy(), shape)
    assert "\n" not in str(e.value) and ("own" in str(e.value) or "smaller" in str(e.value))
