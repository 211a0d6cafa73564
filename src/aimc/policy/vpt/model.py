"""The VPT policy network, weight-compatible with OpenAI's ``MinecraftAgentPolicy`` and STEVE-1.

Module and parameter names mirror the official state dict exactly (``net.img_process.cnn.stacks.0...``,
``net.recurrent_layer.blocks.k.r.orc_block.b_nd``, ``pi_head.buttons.linear_layer``, ...), so official
``.weights`` files load strictly. The maths reproduces the official quirks:

* every FanIn layer is ``norm(x) -> layer -> ReLU`` (pre-norm; bias only without norm), GroupNorm(1, C)
  for convs, LayerNorm for dense layers, flatten in C,H,W order;
* transformer block: ``y = LN(x); y = y + Attn(y); out = y + mlp1(mlp0(y))``: the block input ``x`` is
  **not** added back;
* attention logits scaled by ``1/head_dim``; relative-position bias ``sum_n r_layer(y)[head, n] *
  b_nd[n, tq - tk]``; clipped-causal window: every query sees exactly ``memory`` frames including itself;
  a FIFO cache of the last ``memory`` projected keys/values with a validity mask; ``first`` masks the
  cache (the cached tensors are not zeroed, only masked);
* after the blocks: ReLU -> lastlayer -> final_ln -> heads ``log_softmax(logits / temperature)`` (fp32) and
  a value head with an EWMA normaliser.

Speed: one fused ``scaled_dot_product_attention`` call per block with the relative bias and mask folded
into one additive mask (no per-head loops), channels-last convolutions, and the band/mask tensors built
once per forward and shared by all blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aimc.core.errors import ConfigError
from aimc.policy.base import Policy, PolicyOutput
from aimc.policy.vpt import conv_select
from aimc.policy.vpt.config import VPTConfig
from aimc.policy.vpt.winograd import winograd_conv3x3, winograd_weight

N_REL_BASIS = 10
# Input channels from which the Winograd path pays off on CPU (benchmarks/bench_vpt.py --conv-sweep).
WINOGRAD_MIN_CHANNELS = 64
CONV_IMPLS = ("direct", "winograd", "auto")


# ------------------------------------------------------------------------------------------- building blocks
def _fan_in_(weight: Tensor, scale: float) -> None:
    with torch.no_grad():
        dims = tuple(range(1, weight.ndim))
        weight.mul_(scale / weight.norm(dim=dims, p=2, keepdim=True))


class FanInLayer(nn.Module):
    """``[norm] -> conv3x3/linear -> [ReLU]`` (official ``FanInInitReLULayer``; names ``norm``, ``layer``)."""

    def __init__(
        self,
        inchan: int,
        outchan: int,
        kind: str = "conv",
        norm: str | None = None,
        act: bool = True,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.norm: nn.Module | None
        if norm == "group":
            self.norm = nn.GroupNorm(1, inchan)
        elif norm == "layer":
            self.norm = nn.LayerNorm(inchan)
        else:
            self.norm = None
        bias = self.norm is None
        if kind == "conv":
            self.layer: nn.Module = nn.Conv2d(inchan, outchan, kernel_size=3, padding=1, bias=bias)
        else:
            self.layer = nn.Linear(inchan, outchan, bias=bias)
        _fan_in_(self.layer.weight, init_scale)
        if self.layer.bias is not None:
            nn.init.zeros_(self.layer.bias)
        self.act = act
        self.conv_impl = "direct"  # in no-grad forwards: "winograd" or "auto" (VPTPolicy.set_conv_impl)
        self._wino: tuple[tuple[int, int], Tensor] | None = None  # (weight identity, transformed weight)
        self.last_impl = "direct"  # what the last forward computed with ("auto" resolved; the CNN's check reads it)

    def forward(self, x: Tensor, act: bool | None = None) -> Tensor:
        """`act` False leaves the ReLU to the caller (None: the layer's own setting)."""
        if self.norm is not None:
            x = self.norm(x)
        # Training is always direct, and so is bf16 autocast (the Winograd path computes in fp32).
        impl = self.conv_impl if not (torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type)) else "direct"
        if impl == "auto":
            impl = self._measured_impl(x)
        self.last_impl = impl
        if impl == "winograd":
            x = winograd_conv3x3(x, self._winograd_weight(), self.layer.bias)
        else:
            x = self.layer(x)
        return F.relu(x, inplace=True) if (self.act if act is None else act) else x

    def _measured_impl(self, x: Tensor) -> str:
        """The faster algorithm for this input's shape on this machine and thread count (measured once per
        machine; `aimc.policy.vpt.conv_select`). Off CPU or float32 the direct path is the only candidate."""
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return "direct"
        key = conv_select.shape_key(torch.get_num_threads(), tuple(x.shape), self.layer.out_channels)
        return conv_select.SELECTOR.choose(key, lambda: self.layer(x), lambda: winograd_conv3x3(x, self._winograd_weight(), self.layer.bias))

    def _winograd_weight(self) -> Tensor:
        """The transformed weight, recomputed whenever the conv weight changed (in place or replaced)."""
        w = self.layer.weight
        key = (w.data_ptr(), w._version)
        if self._wino is None or self._wino[0] != key:
            self._wino = (key, winograd_weight(w))
        return self._wino[1]


class CnnBasicBlock(nn.Module):
    def __init__(self, chan: int, init_scale: float) -> None:
        super().__init__()
        s = math.sqrt(init_scale)
        self.conv0 = FanInLayer(chan, chan, norm="group", init_scale=s)
        self.conv1 = FanInLayer(chan, chan, norm="group", init_scale=s)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(self.conv0(x))


class CnnDownStack(nn.Module):
    def __init__(
        self, inchan: int, outchan: int, nblock: int, init_scale: float, first_conv_norm: bool
    ) -> None:
        super().__init__()
        self.firstconv = FanInLayer(inchan, outchan, norm="group" if first_conv_norm else None)
        self.n = nn.GroupNorm(1, outchan)
        self.blocks = nn.ModuleList(
            CnnBasicBlock(outchan, init_scale / math.sqrt(nblock)) for _ in range(nblock)
        )

    def forward(self, x: Tensor) -> Tensor:
        # The official order is conv -> ReLU -> max-pool; pooling first and the ReLU after gives the same values
        # and the same gradients bit for bit (max commutes with a non-decreasing function, and the pooled
        # argmax is > 0 exactly where the official ReLU passes its gradient), while the ReLU, forward and
        # backward, touches a quarter of the elements: BC training steps about 10 % faster (docs/training.md).
        x = self.firstconv(x, act=False)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        if self.firstconv.act:
            x = F.relu(x, inplace=True)
        x = self.n(x)
        for b in self.blocks:
            x = b(x)
        return x


class ImpalaCNN(nn.Module):
    def __init__(self, cfg: VPTConfig) -> None:
        super().__init__()
        chans = cfg.chans
        self.stacks = nn.ModuleList()
        c_in = 3
        for i, c in enumerate(chans):
            self.stacks.append(
                CnnDownStack(c_in, c, cfg.impala_nblock, math.sqrt(len(chans)), first_conv_norm=i > 0)
            )
            c_in = c
        c, h, w = cfg.cnn_out_shape
        self.dense = FanInLayer(c * h * w, cfg.cnn_outsize, kind="linear", norm="layer", init_scale=1.4)

    def forward(self, img: Tensor) -> Tensor:
        """uint8 (B, T, H, W, 3) -> (B, T, cnn_outsize)."""
        b, t = img.shape[:2]
        x = img.reshape(b * t, *img.shape[2:])
        # Official order: cast to fp32, divide by 255, NHWC -> NCHW view (= channels-last memory).
        x = (x.to(torch.float32) / 255.0).permute(0, 3, 1, 2)
        x = self._auto_stacks(x) if self._auto(x) else self._stacks(x)
        x = x.reshape(b, t, -1)  # C, H, W order
        return self.dense(x)

    def _stacks(self, x: Tensor, direct: bool = False) -> Tensor:
        """The conv stacks; `direct`: every convolution direct for this call, whatever the layers are set to."""
        if not direct:
            for s in self.stacks:
                x = s(x)
            return x
        layers = [m for m in self.stacks.modules() if isinstance(m, FanInLayer) and m.conv_impl != "direct"]
        saved = [m.conv_impl for m in layers]
        try:
            for m in layers:
                m.conv_impl = "direct"
            for s in self.stacks:
                x = s(x)
        finally:
            for m, impl in zip(layers, saved, strict=True):
                m.conv_impl = impl
        return x

    def _auto(self, x: Tensor) -> bool:
        return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu")
                and any(isinstance(m, FanInLayer) and m.conv_impl == "auto" for m in self.stacks.modules()))

    def _auto_stacks(self, x: Tensor) -> Tensor:
        """"auto" checked as a whole: the layers' measured choices are kept only if the stacks run faster with them
        than all direct, timed once per machine, thread count and batch bucket (`conv_select`, key "cnn-...").
        Each layer wins alone yet the mix can lose inside the network: on an AMD EPYC at 2 threads and batch 8
        every Winograd layer won its own timing by 5-26 % and the step was 8-11 % slower than direct (issue 18)."""
        key = conv_select.network_key(torch.get_num_threads(), tuple(x.shape), tuple(s.firstconv.layer.out_channels for s in self.stacks))
        impl = conv_select.SELECTOR.memo.get(key)
        if impl is None:
            self._stacks(x)  # every layer makes (or reads) its own choice first, outside the network's timing
            if any(m.last_impl == "winograd" for m in self.stacks.modules() if isinstance(m, FanInLayer)):
                impl = conv_select.SELECTOR.choose(key, lambda: self._stacks(x, direct=True), lambda: self._stacks(x))
            else:  # every layer chose direct: nothing to check
                impl = conv_select.SELECTOR.memo[key] = "direct"
        return self._stacks(x, direct=impl == "direct")


class ImgObsProcess(nn.Module):
    def __init__(self, cfg: VPTConfig) -> None:
        super().__init__()
        self.cnn = ImpalaCNN(cfg)
        self.linear = FanInLayer(cfg.cnn_outsize, cfg.hidsize, kind="linear", norm="layer")

    def forward(self, img: Tensor) -> Tensor:
        return self.linear(self.cnn(img))


# ---------------------------------------------------------------------------------------------- attention
@dataclass
class AttnContext:
    """Per-forward tensors shared by every block: which keys each query may see and the bias gather index."""

    allowed: Tensor  # (B, 1, t, M + t) bool
    rel_index: Tensor  # (t, M + t) long: tq - tk clamped to [0, M - 1]
    new_valid: Tensor  # (B, M) bool, validity of the cache after this chunk


def make_attn_context(first: Tensor, valid: Tensor, memory: int, mode: str) -> AttnContext:
    """Clipped-causal band + episode masking for a chunk of ``t`` frames after a cache of ``memory``."""
    b, t = first.shape
    m = memory
    dev = first.device
    i = torch.arange(t, device=dev)[:, None]
    j = torch.arange(m + t, device=dev)[None, :]
    delta = m + i - j  # query time - key time
    band = (delta >= 0) & (delta < m)
    first = first.bool()
    if mode == "per_step":
        cum = first.long().cumsum(1)  # episode counter within the chunk
        cache_ok = valid[:, None, :] & (cum[:, :, None] == 0)
        new_ok = cum[:, :, None] == cum[:, None, :]
        last = cum[:, -1:]
        new_valid = torch.cat([valid & (last == 0), cum == last], dim=1)[:, -m:]
    elif mode == "chunk_start":  # official: only first[:, 0] is read
        keep = ~first[:, :1]
        cache_ok = (valid & keep)[:, None, :].expand(b, t, m)
        new_ok = torch.ones(b, t, t, dtype=torch.bool, device=dev)
        new_valid = torch.cat([valid & keep, torch.ones(b, t, dtype=torch.bool, device=dev)], dim=1)[:, -m:]
    else:
        raise ConfigError(f"unknown first_mode {mode!r}; valid: per_step, chunk_start")
    allowed = torch.cat([cache_ok, new_ok], dim=2) & band[None]
    return AttnContext(allowed[:, None], delta.clamp(0, m - 1), new_valid)


class SelfAttentionLayer(nn.Module):
    """``orc_block``: q/k/v/proj projections, relative-position bias ``r_layer`` x ``b_nd``."""

    def __init__(self, hidsize: int, heads: int, memory: int, init_scale: float) -> None:
        super().__init__()
        s = math.sqrt(init_scale)
        self.heads = heads
        self.memory = memory
        self.impl = "fused"  # or "exact": the official op sequence, bit-identical (see set_attention_impl)
        self.q_layer = nn.Linear(hidsize, hidsize)
        self.k_layer = nn.Linear(hidsize, hidsize, bias=False)
        self.v_layer = nn.Linear(hidsize, hidsize, bias=False)
        self.proj_layer = nn.Linear(hidsize, hidsize)
        self.r_layer = nn.Linear(hidsize, N_REL_BASIS * heads)
        self.b_nd = nn.Parameter(torch.randn(N_REL_BASIS, memory) * 0.2)
        for lin, sc in (
            (self.q_layer, 0.1),
            (self.k_layer, 0.2),
            (self.v_layer, s),
            (self.proj_layer, s),
            (self.r_layer, 0.1),
        ):
            _fan_in_(lin.weight, sc)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def forward(
        self, y: Tensor, k_cache: Tensor, v_cache: Tensor, ctx: AttnContext
    ) -> tuple[Tensor, Tensor, Tensor]:
        """y: (B, t, h) (already LayerNorm'ed); returns (residual (B, t, h), new K cache, new V cache)."""
        b, t, h = y.shape
        nh, m = self.heads, self.memory
        d = h // nh
        q = self.q_layer(y)
        k = self.k_layer(y)
        v = self.v_layer(y)
        k_all = torch.cat([k_cache.to(k.dtype), k], dim=1)  # (B, M + t, h)
        v_all = torch.cat([v_cache.to(v.dtype), v], dim=1)
        if self.impl == "exact":
            a = self._attend_exact(y, q, k_all, v_all, ctx)
            return self.proj_layer(a), k_all[:, -m:], v_all[:, -m:]
        # Relative-position bias in fp32: P[b, head, tq, delta] = sum_n R[b, tq, head, n] * b_nd[n, delta].
        r = self.r_layer(y).float().view(b, t, nh, N_REL_BASIS).transpose(1, 2)
        p = torch.matmul(r, self.b_nd.float())  # (B, nh, t, M)
        bias = p.gather(-1, ctx.rel_index.expand(b, nh, t, m + t))
        bias = bias.masked_fill(~ctx.allowed, float("-inf"))
        qh = q.view(b, t, nh, d).transpose(1, 2)
        kh = k_all.view(b, m + t, nh, d).transpose(1, 2)
        vh = v_all.view(b, m + t, nh, d).transpose(1, 2)
        a = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=bias.to(qh.dtype), scale=1.0 / d)
        a = a.transpose(1, 2).reshape(b, t, h)
        return self.proj_layer(a), k_all[:, -m:], v_all[:, -m:]

    def _attend_exact(self, y: Tensor, q: Tensor, k_all: Tensor, v_all: Tensor, ctx: AttnContext) -> Tensor:
        """The official operation sequence (``lib/xf.py: attention``), for bit-identical outputs.

        Heads folded into the batch, band matrix of ``b_nd`` contracted with ``einsum``, -1e9 additive
        mask, ``baddbmm`` with alpha 1/d, fp32 softmax, ``einsum`` with V. Slower than the fused path.
        """
        b, t, h = q.shape
        nh = self.heads
        d = h // nh
        big_t = k_all.shape[1]

        def split(x: Tensor) -> Tensor:
            return (
                x.reshape(b, x.shape[1], nh, x.shape[2] // nh)
                .permute(0, 2, 1, 3)
                .reshape(b * nh, x.shape[1], -1)
            )

        r = split(self.r_layer(y).float())
        extra = torch.einsum("btn,ntp->btp", r, band_matrix(self.b_nd, t, big_t))
        mask = ctx.allowed.expand(b, nh, t, big_t).reshape(b * nh, t, big_t)
        bias = (~mask).float() * -1e9 + extra
        qs, ks, vs = split(q), split(k_all), split(v_all)
        logits = torch.baddbmm(bias, qs.float(), ks.float().transpose(-1, -2), alpha=1.0 / d)
        w = torch.softmax(logits, dim=2).to(q.dtype)
        a = torch.einsum("btp,bpe->bte", w, vs)
        return a.reshape(b, nh, t, d).permute(0, 2, 1, 3).reshape(b, t, h)


def band_matrix(b_nd: Tensor, t: int, big_t: int) -> Tensor:
    """D[n, i, j] = b_nd[n, big_t - t + i - j] where 0 <= that < maxlen, else 0; contiguous (n, t, big_t)."""
    n, maxlen = b_nd.shape
    i = torch.arange(t, device=b_nd.device)[:, None]
    j = torch.arange(big_t, device=b_nd.device)[None, :]
    delta = big_t - t + i - j
    ok = (delta >= 0) & (delta < maxlen)
    d = b_nd[:, delta.clamp(0, maxlen - 1)]
    return torch.where(ok[None], d, torch.zeros((), dtype=b_nd.dtype, device=b_nd.device)).contiguous()


class MaskedAttention(nn.Module):
    """Holder named ``r`` in each block (keeps the official ``r.orc_block.*`` key names)."""

    def __init__(self, hidsize: int, heads: int, memory: int, init_scale: float) -> None:
        super().__init__()
        self.orc_block = SelfAttentionLayer(hidsize, heads, memory, init_scale)


class MaskedLSTM(nn.Module):
    """Holder named ``r`` for ``recurrence_type="lstm"``: one LSTM layer whose state is zeroed where an episode
    starts. A chunk is cut only where some row starts an episode, so training chunks (episode starts at t=0
    only) run as one cuDNN/oneDNN call and single-step acting stays one call too."""

    def __init__(self, hidsize: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(hidsize, hidsize, batch_first=True)

    def forward(self, y: Tensor, h: Tensor, c: Tensor, first: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """y: (B, t, h); h, c: (B, h); first: (B, t) bool. Returns (outputs (B, t, h), h, c)."""
        t = y.shape[1]
        starts = (torch.nonzero(first[:, 1:].any(0)).flatten() + 1).tolist() if t > 1 else []
        outs = []
        for a, b in zip([0, *starts], [*starts, t], strict=True):
            keep = (~first[:, a]).to(h.dtype)[:, None]
            o, (hn, cn) = self.lstm(y[:, a:b], ((h * keep)[None].contiguous(), (c * keep)[None].contiguous()))
            h, c = hn[0], cn[0]
            outs.append(o)
        return torch.cat(outs, 1) if len(outs) > 1 else outs[0], h, c


class ResidualRecurrentBlock(nn.Module):
    def __init__(self, cfg: VPTConfig) -> None:
        super().__init__()
        h = cfg.hidsize
        s = cfg.n_layers**-0.5 * 2**-0.5
        self.mlp0 = FanInLayer(h, h * cfg.pointwise_ratio, kind="linear", norm="layer")
        self.mlp1 = FanInLayer(h * cfg.pointwise_ratio, h, kind="linear", act=False, init_scale=s)
        self.pre_r_ln = nn.LayerNorm(h)
        self.lstm = cfg.recurrence_type == "lstm"
        self.r: nn.Module = MaskedLSTM(h) if self.lstm else MaskedAttention(h, cfg.heads, cfg.memory, init_scale=s)

    def forward(
        self, x: Tensor, k_cache: Tensor, v_cache: Tensor, ctx: AttnContext | Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Transformer: caches are the K/V FIFOs and ``ctx`` the attention context. LSTM: caches are h and c
        (B, 1, h) and ``ctx`` is ``first`` (B, t)."""
        y = self.pre_r_ln(x)
        if self.lstm:
            assert isinstance(ctx, Tensor)
            a, h, c = self.r(y, k_cache[:, 0], v_cache[:, 0], ctx)
            y = x + a  # LSTM blocks keep the input (the residual VPT's code adds for its LSTM types)
            return y + self.mlp1(self.mlp0(y)), h[:, None], c[:, None]
        assert isinstance(ctx, AttnContext)
        a, k_new, v_new = self.r.orc_block(y, k_cache, v_cache, ctx)
        y = y + a  # the attention residual wraps the LayerNorm'ed value; x itself is not added back
        return y + self.mlp1(self.mlp0(y)), k_new, v_new


class ResidualRecurrentBlocks(nn.Module):
    def __init__(self, cfg: VPTConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ResidualRecurrentBlock(cfg) for _ in range(cfg.n_layers))


# ------------------------------------------------------------------------------------------------- state
@dataclass
class VPTState:
    """Recurrent state: per block the last ``memory`` projected keys/values (B, M, h), and which are valid.
    For ``recurrence_type="lstm"`` the same container holds per block h in ``keys`` and c in ``values``
    (B, 1, h), and ``valid`` (B, 1) says whether they belong to the current episode.

    The official layout per block is ``(mask (B, 1, M) bool | None, (K, V))``; see ``to_official`` /
    ``from_official``. Row b of every tensor belongs to batch element b, so states can be indexed,
    concatenated and reset per environment.
    """

    keys: list[Tensor]
    values: list[Tensor]
    valid: Tensor  # (B, M) bool

    @property
    def batch_size(self) -> int:
        return int(self.valid.shape[0])

    def detach(self) -> VPTState:
        return VPTState([k.detach() for k in self.keys], [v.detach() for v in self.values], self.valid)

    def index(self, idx: Tensor | slice | list[int]) -> VPTState:
        return VPTState([k[idx] for k in self.keys], [v[idx] for v in self.values], self.valid[idx])

    @staticmethod
    def cat(states: list[VPTState]) -> VPTState:
        n = len(states[0].keys)
        return VPTState(
            [torch.cat([s.keys[i] for s in states]) for i in range(n)],
            [torch.cat([s.values[i] for s in states]) for i in range(n)],
            torch.cat([s.valid for s in states]),
        )

    def reset(self, mask: Tensor) -> VPTState:
        """Forget the memory of rows where ``mask`` (B,) is True (same effect as ``first=True``)."""
        return VPTState(self.keys, self.values, self.valid & ~mask.to(self.valid.device).bool()[:, None])

    def to(self, device: torch.device | str) -> VPTState:
        return VPTState(
            [k.to(device) for k in self.keys], [v.to(device) for v in self.values], self.valid.to(device)
        )

    def to_dtype(self, dtype: torch.dtype) -> VPTState:
        """Keys and values in `dtype` (an LSTM under bf16 autocast returns its h and c in bf16; an acting agent
        keeps its memory in the policy's own dtype between steps)."""
        return VPTState([k.to(dtype) for k in self.keys], [v.to(dtype) for v in self.values], self.valid)

    def to_official(self) -> list[tuple[Tensor, tuple[Tensor, Tensor]]]:
        return [(self.valid[:, None, :].clone(), (k, v)) for k, v in zip(self.keys, self.values, strict=True)]

    @staticmethod
    def from_official(state: list[Any]) -> VPTState:
        keys = [s[1][0] for s in state]
        values = [s[1][1] for s in state]
        mask = state[0][0]
        b, m = keys[0].shape[:2]
        valid = (
            torch.zeros(b, m, dtype=torch.bool, device=keys[0].device)
            if mask is None
            else mask[:, 0, :].bool()
        )
        return VPTState(keys, values, valid)


# ------------------------------------------------------------------------------------------------- heads
class CategoricalHead(nn.Module):
    def __init__(self, hidsize: int, n: int, temperature: float) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(hidsize, n)
        with torch.no_grad():  # official reset_parameters: orthogonal(gain 0.01) + fan-in 0.01, zero bias
            self.linear_layer.weight.normal_()
        _fan_in_(self.linear_layer.weight, 0.01)
        nn.init.zeros_(self.linear_layer.bias)
        self.temperature = float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.linear_layer(x) / self.temperature
        return F.log_softmax(logits.float(), dim=-1)


class NormalizeEwma(nn.Module):
    """Value normaliser; buffers are non-trainable Parameters as in the official state dict."""

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.beta = beta
        self.epsilon = epsilon
        self.running_mean = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.running_mean_sq = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.debiasing_term = nn.Parameter(torch.tensor(0.0), requires_grad=False)

    def mean_var(self) -> tuple[Tensor, Tensor]:
        db = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / db
        var = (self.running_mean_sq / db - mean**2).clamp(min=1e-2)
        return mean, var

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        x = x.detach().float()
        w = self.beta
        self.running_mean.mul_(w).add_(x.mean() * (1 - w))
        self.running_mean_sq.mul_(w).add_((x**2).mean() * (1 - w))
        self.debiasing_term.mul_(w).add_(1 - w)

    def normalize(self, x: Tensor) -> Tensor:
        mean, var = self.mean_var()
        return (x.float() - mean) / var.sqrt()

    def denormalize(self, x: Tensor) -> Tensor:
        mean, var = self.mean_var()
        return x * var.sqrt() + mean


class ScaledMSEHead(nn.Module):
    def __init__(self, hidsize: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidsize, 1)
        with torch.no_grad():
            self.linear.weight.normal_()
        _fan_in_(self.linear.weight, 1.0)
        nn.init.zeros_(self.linear.bias)
        self.normalizer = NormalizeEwma()

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)[..., 0]

    def denormalize(self, vpred: Tensor) -> Tensor:
        return self.normalizer.denormalize(vpred)


# ------------------------------------------------------------------------------------------------ network
class VPTNet(nn.Module):
    def __init__(self, cfg: VPTConfig) -> None:
        super().__init__()
        self.img_process = ImgObsProcess(cfg)
        if cfg.goal_dim:
            # STEVE-1's goal input: PyTorch's default Linear init (kept: it is what STEVE-1 trained from).
            self.mineclip_embed_linear = nn.Linear(cfg.goal_dim, cfg.hidsize)
        if cfg.pre_lstm_ln:
            self.pre_lstm_ln = nn.LayerNorm(cfg.hidsize)
        self.recurrent_layer = ResidualRecurrentBlocks(cfg)
        self.lastlayer = FanInLayer(cfg.hidsize, cfg.hidsize, kind="linear", norm="layer")
        self.final_ln = nn.LayerNorm(cfg.hidsize)


class VPTPolicy(Policy):
    """VPT / STEVE-1 policy. ``forward(obs_pov, goal, first, state) -> (PolicyOutput, VPTState)``.

    ``obs_pov``: uint8 (B, T, H, W, 3) RGB at ``config.img_shape`` (the /255 happens inside);
    ``goal``: (B, T, goal_dim) float or None (None = the unconditional all-zeros goal);
    ``first``: bool (B, T), True where an episode starts (None = all False);
    ``state``: from ``initial_state(B)`` or the previous call (None = fresh).
    """

    def __init__(self, config: VPTConfig) -> None:
        super().__init__()
        self.config = config
        self.net = VPTNet(config)
        self.value_head = ScaledMSEHead(config.hidsize)
        self.pi_head = nn.ModuleDict(
            {
                name: CategoricalHead(config.hidsize, n, config.temperature)
                for name, n in config.head_sizes.items()
            }
        )
        self.head_names = list(config.head_sizes)

    # ---------------------------------------------------------------------------------------- state
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> VPTState:
        cfg = self.config
        if device is None:
            device = self.net.final_ln.weight.device
        m = 1 if cfg.recurrence_type == "lstm" else cfg.memory
        shape = (batch_size, m, cfg.hidsize)
        dtype = self.net.final_ln.weight.dtype
        return VPTState(
            [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)],
            [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)],
            torch.zeros(batch_size, m, dtype=torch.bool, device=device),
        )

    # -------------------------------------------------------------------------------------- forward
    def encode_images(self, obs_pov: Tensor) -> Tensor:
        """(B, T, H, W, 3) uint8 -> (B, T, hidsize) image features (post-ReLU, before the goal add)."""
        cfg = self.config
        if obs_pov.ndim != 5 or tuple(obs_pov.shape[2:]) != (*cfg.img_shape, 3):
            raise ValueError(
                f"obs_pov must be (B, T, {cfg.img_shape[0]}, {cfg.img_shape[1]}, 3), got {tuple(obs_pov.shape)}"
            )
        return self.net.img_process(obs_pov)

    def embed_goal(self, goal: Tensor | None, b: int, t: int, like: Tensor) -> Tensor | None:
        cfg = self.config
        if not cfg.goal_dim:
            if goal is not None:
                raise ValueError("this policy has no goal input (goal_dim=0) but a goal was given")
            return None
        if goal is None:
            goal = like.new_zeros(b, t, cfg.goal_dim)
        if goal.shape != (b, t, cfg.goal_dim):
            raise ValueError(
                f"goal must be (B, T, {cfg.goal_dim}) = ({b}, {t}, {cfg.goal_dim}), got {tuple(goal.shape)}"
            )
        goal = goal.to(self.net.mineclip_embed_linear.weight.dtype)
        if cfg.goal_norm == "unit_variance":  # unit-variance components; the all-zeros (unconditional) goal stays zero
            norm = goal.norm(dim=-1, keepdim=True)
            goal = goal * (cfg.goal_dim**0.5 / norm.clamp_min(1e-6)) * (norm > 0)
        return self.net.mineclip_embed_linear(goal)

    def forward(  # type: ignore[override]
        self,
        obs_pov: Tensor,
        goal: Tensor | None = None,
        first: Tensor | None = None,
        state: VPTState | None = None,
    ) -> tuple[PolicyOutput, VPTState]:
        x = self.encode_images(obs_pov)
        b, t = x.shape[:2]
        g = self.embed_goal(goal, b, t, x)
        if g is not None:
            x = x + g
        return self.forward_features(x, first, state)

    def forward_features(
        self, x: Tensor, first: Tensor | None = None, state: VPTState | None = None
    ) -> tuple[PolicyOutput, VPTState]:
        """Everything after the goal add: (B, T, hidsize) features -> outputs."""
        cfg = self.config
        b, t = x.shape[:2]
        if first is None:
            first = torch.zeros(b, t, dtype=torch.bool, device=x.device)
        elif first.shape != (b, t):
            raise ValueError(f"first must be (B, T) = ({b}, {t}), got {tuple(first.shape)}")
        if state is None:
            state = self.initial_state(b, x.device)
        elif state.batch_size != b:
            raise ValueError(f"state has batch size {state.batch_size}, input has {b}")
        if cfg.pre_lstm_ln:
            x = self.net.pre_lstm_ln(x)
        first = first.to(x.device).bool()
        ctx: AttnContext | Tensor
        if cfg.recurrence_type == "lstm":
            # Stale rows (invalid state) restart like an episode start; "chunk_start" reads only first[:, 0].
            ctx = first.clone()
            if cfg.first_mode == "chunk_start":
                ctx[:, 1:] = False
            ctx[:, 0] |= ~state.valid[:, 0]
            new_valid = torch.ones_like(state.valid)
        else:
            ctx = make_attn_context(first, state.valid, cfg.memory, cfg.first_mode)
            new_valid = ctx.new_valid
        keys, values = [], []
        for blk, kc, vc in zip(self.net.recurrent_layer.blocks, state.keys, state.values, strict=True):
            x, k, v = blk(x, kc, vc, ctx)
            keys.append(k)
            values.append(v)
        x = F.relu(x)
        x = self.net.lastlayer(x)
        x = self.net.final_ln(x)
        logp = {name: head(x) for name, head in self.pi_head.items()}
        out = PolicyOutput(logp=logp, vpred=self.value_head(x), latent=x)
        return out, VPTState(keys, values, new_valid)

    def value(self, outputs: PolicyOutput) -> Tensor:
        """Denormalised value (B, T)."""
        return self.value_head.denormalize(outputs.vpred)

    def set_attention_impl(self, impl: str) -> VPTPolicy:
        """``"fused"`` (default): one ``scaled_dot_product_attention`` per block, equal to the official maths
        up to float rounding (~1e-6 relative). ``"exact"``: the official operation sequence, bit-identical
        to OpenAI's code on the same machine and torch build, slower."""
        if impl not in ("fused", "exact"):
            raise ConfigError(f"unknown attention impl {impl!r}; valid: fused, exact")
        for blk in self.net.recurrent_layer.blocks:
            if not blk.lstm:
                blk.r.orc_block.impl = impl
        return self

    def set_conv_impl(self, impl: str) -> VPTPolicy:
        """``"direct"`` (default): the convolutions as in the official code. ``"winograd"``: inference
        (no-grad) forwards compute the ImpalaCNN's 3x3 convolutions with >= ``WINOGRAD_MIN_CHANNELS`` input
        channels by Winograd F(4x4, 3x3), ~4x fewer multiplies, equal to the direct result up to float
        rounding (~1e-5 relative); forwards with gradients (training) stay direct. ``"auto"``: each such
        convolution takes whichever of the two measured faster on this machine, thread count and input
        shape (`aimc.policy.vpt.conv_select`, cached per machine), so acting is never slower than direct."""
        if impl not in CONV_IMPLS:
            raise ConfigError(f"unknown conv impl {impl!r}; valid: {', '.join(CONV_IMPLS)}")
        for layer in self.net.img_process.cnn.modules():
            if isinstance(layer, FanInLayer) and isinstance(layer.layer, nn.Conv2d):
                layer.conv_impl = impl if layer.layer.in_channels >= WINOGRAD_MIN_CHANNELS else "direct"
                layer._wino = None
        return self

    # ---------------------------------------------------------------------------------------- misc
    def num_parameters(self) -> int:
        """All state-dict elements (the figure the reference tables give)."""
        return sum(v.numel() for v in self.state_dict().values())

    def extra_repr(self) -> str:
        return f"config={self.config}"
