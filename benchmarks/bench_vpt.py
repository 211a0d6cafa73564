"""VPT policy speed on CPU: single-frame step rate and batched throughput, aimc vs a straightforward reference.

The reference below is a plain re-implementation of the same maths in the style of OpenAI's ``lib/``: heads
folded into the batch, a band matrix of the relative bias built with unfold/flip and contracted with
``einsum``, a boolean clipped-causal mask repeated per head and turned into a -1e9 additive bias,
``baddbmm`` + fp32 softmax + ``einsum``, ``torch.no_grad``. Both run the same weights (random, seeded) in
one process; outputs are compared before timing.

For every thread count x batch size it times the reference, aimc's acting default (``set_conv_impl("auto")``:
per conv layer whichever of Winograd F(4x4, 3x3) and direct measured faster here, cached per machine) and
aimc with direct convolutions, interleaved in one process, and prints the ratios and the CPU flags.
``--conv-sweep`` times one 3x3 convolution per channel count, direct vs Winograd, which is how
``WINOGRAD_MIN_CHANNELS`` was chosen.

    python benchmarks/bench_vpt.py                 # vpt-1x, threads {1, 2} x batch {1, 8}
    python benchmarks/bench_vpt.py --threads 2 --batch 16 --steps 20
    python benchmarks/bench_vpt.py --conv-sweep
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from aimc.policy import VPTPolicy, get_config
from aimc.policy.vpt.winograd import winograd_conv3x3, winograd_weight


# ------------------------------------------------------------------------------------ reference implementation
class Reference:
    """Straightforward functional VPT forward over an official-layout state dict."""

    def __init__(self, sd: dict[str, Tensor], cfg) -> None:
        self.sd, self.cfg = sd, cfg

    def _fanin(self, x: Tensor, name: str, kind: str, norm: str | None, act: bool = True) -> Tensor:
        sd = self.sd
        if norm == "group":
            x = F.group_norm(x, 1, sd[f"{name}.norm.weight"], sd[f"{name}.norm.bias"])
        elif norm == "layer":
            x = F.layer_norm(x, x.shape[-1:], sd[f"{name}.norm.weight"], sd[f"{name}.norm.bias"])
        w, b = sd[f"{name}.layer.weight"], sd.get(f"{name}.layer.bias")
        x = F.conv2d(x, w, b, padding=1) if kind == "conv" else F.linear(x, w, b)
        return F.relu(x) if act else x

    def cnn(self, img: Tensor) -> Tensor:
        sd, cfg = self.sd, self.cfg
        b, t = img.shape[:2]
        x = img.reshape(b * t, *img.shape[2:]).to(torch.float32) / 255.0
        x = x.permute(0, 3, 1, 2)
        for s in range(len(cfg.chans)):
            p = f"net.img_process.cnn.stacks.{s}"
            x = self._fanin(x, f"{p}.firstconv", "conv", None if s == 0 else "group")
            x = F.max_pool2d(x, 3, 2, 1)
            x = F.group_norm(x, 1, sd[f"{p}.n.weight"], sd[f"{p}.n.bias"])
            for j in range(cfg.impala_nblock):
                y = self._fanin(x, f"{p}.blocks.{j}.conv0", "conv", "group")
                x = x + self._fanin(y, f"{p}.blocks.{j}.conv1", "conv", "group")
        x = x.reshape(b, t, -1)
        x = self._fanin(x, "net.img_process.cnn.dense", "linear", "layer")
        return self._fanin(x, "net.img_process.linear", "linear", "layer")

    @staticmethod
    def bandify(b_nd: Tensor, t: int, big_t: int) -> Tensor:
        nbasis, bandsize = b_nd.shape
        b_nd = b_nd[:, torch.arange(bandsize - 1, -1, -1, device=b_nd.device)]
        if bandsize >= big_t:
            b_nt = b_nd[:, -big_t:]
        else:
            b_nt = torch.cat([b_nd.new_zeros(nbasis, big_t - bandsize), b_nd], dim=1)
        x = torch.cat([b_nt, b_nt.new_zeros(nbasis, t - 1)], dim=1)
        return x.unfold(1, big_t, 1).flip(1)

    def attention(self, x: Tensor, k: int, state: tuple, first: Tensor) -> tuple[Tensor, tuple]:
        sd, cfg = self.sd, self.cfg
        p = f"net.recurrent_layer.blocks.{k}.r.orc_block"
        mask_state, (kc, vc) = state
        b, t, e = x.shape
        h, m = cfg.heads, cfg.memory
        big_t = t + m
        # mask: clipped-causal band, cache masked where invalid or at episode start
        band = torch.ones(t, big_t, dtype=torch.bool, device=x.device).tril_(big_t - t).triu_(big_t - t - m + 1)
        mask = band[None].repeat_interleave(b, dim=0).clone()
        if mask_state is None:
            mask_state = torch.zeros(b, 1, m, dtype=torch.bool, device=x.device)
        not_first = ~first[:, :1, None]
        mask[:, :, :-t] &= not_first
        mask[:, :, :-t] &= mask_state
        mask = mask[:, None].repeat_interleave(h, dim=1).reshape(b * h, t, big_t)
        new_mask_state = torch.cat(
            [mask_state[:, :, t:] & not_first, torch.ones(b, 1, min(t, m), dtype=torch.bool, device=x.device)], -1
        )
        q = F.linear(x, sd[f"{p}.q_layer.weight"], sd[f"{p}.q_layer.bias"])
        kk = F.linear(x, sd[f"{p}.k_layer.weight"])
        vv = F.linear(x, sd[f"{p}.v_layer.weight"])
        kk = torch.cat([kc, kk], 1)
        vv = torch.cat([vc, vv], 1)
        new_state = (new_mask_state, (kk[:, -m:], vv[:, -m:]))

        def split(z: Tensor) -> Tensor:
            return z.reshape(b, z.shape[1], h, -1).permute(0, 2, 1, 3).reshape(b * h, z.shape[1], -1)

        r = split(F.linear(x, sd[f"{p}.r_layer.weight"], sd[f"{p}.r_layer.bias"]).float())
        extra = torch.einsum("btn,ntp->btp", r, self.bandify(sd[f"{p}.b_nd"], t, big_t))
        bias = (~mask).float() * -1e9 + extra
        d = e // h
        logits = torch.baddbmm(bias, split(q).float(), split(kk).float().transpose(-1, -2), alpha=1 / d)
        w = torch.softmax(logits, dim=2)
        a = torch.einsum("btp,bpe->bte", w, split(vv))
        a = a.reshape(b, h, t, d).permute(0, 2, 1, 3).reshape(b, t, e)
        return F.linear(a, sd[f"{p}.proj_layer.weight"], sd[f"{p}.proj_layer.bias"]), new_state

    def __call__(self, img: Tensor, first: Tensor, state: list) -> tuple[dict[str, Tensor], list]:
        sd, cfg = self.sd, self.cfg
        x = self.cnn(img)
        new_states = []
        for k in range(cfg.n_layers):
            pfx = f"net.recurrent_layer.blocks.{k}"
            y = F.layer_norm(x, x.shape[-1:], sd[f"{pfx}.pre_r_ln.weight"], sd[f"{pfx}.pre_r_ln.bias"])
            a, s = self.attention(y, k, state[k], first)
            new_states.append(s)
            y = y + a
            x = y + self._fanin(
                self._fanin(y, f"{pfx}.mlp0", "linear", "layer"), f"{pfx}.mlp1", "linear", None, act=False
            )
        x = F.relu(x)
        x = self._fanin(x, "net.lastlayer", "linear", "layer")
        x = F.layer_norm(x, x.shape[-1:], sd["net.final_ln.weight"], sd["net.final_ln.bias"])
        logp = {}
        for head in ("camera", "buttons"):
            logits = F.linear(
                x, sd[f"pi_head.{head}.linear_layer.weight"], sd[f"pi_head.{head}.linear_layer.bias"]
            )
            logp[head] = torch.log_softmax((logits / cfg.temperature).float(), -1)
        logp["value"] = F.linear(x, sd["value_head.linear.weight"], sd["value_head.linear.bias"])[..., 0]
        return logp, new_states

    def initial_state(self, b: int) -> list:
        z = (b, self.cfg.memory, self.cfg.hidsize)
        return [(None, (torch.zeros(z), torch.zeros(z))) for _ in range(self.cfg.n_layers)]


# ------------------------------------------------------------------------------------------------- timing
def timed(fn, n: int) -> float:
    """Median seconds per call over n calls (after 2 warm-up calls)."""
    fn()
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def conv_sweep(steps: int) -> None:
    """One 3x3 convolution at the vpt-1x spatial sizes, direct vs Winograd, B=1 and B=8."""
    print("  C   K    HxW   B | direct ms | winograd ms | speed-up")
    for c, k, hw in ((16, 16, 64), (32, 32, 64), (64, 64, 64), (64, 128, 64), (128, 128, 32), (128, 128, 16)):
        for n in (1, 8):
            x = torch.randn(n, hw, hw, c).permute(0, 3, 1, 2)
            w = torch.randn(k, c, 3, 3) / (9 * c) ** 0.5
            u = winograd_weight(w)
            with torch.inference_mode():
                t_d = timed(lambda x=x, w=w: F.conv2d(x, w, padding=1), steps)
                t_w = timed(lambda x=x, u=u: winograd_conv3x3(x, u), steps)
            print(f"{c:4d}{k:4d}{hw:5d}x{hw:<3d}{n:2d} | {t_d * 1e3:9.2f} | {t_w * 1e3:11.2f} | {t_d / t_w:6.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="vpt-1x")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op thread counts to measure")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes to measure (one frame per env)")
    ap.add_argument("--steps", type=int, default=15, help="timed calls per measurement")
    ap.add_argument("--conv-sweep", action="store_true", help="time single convolutions instead")
    ap.add_argument("--recalibrate", action="store_true", help="drop this machine's cached conv choices first")
    args = ap.parse_args()
    if args.conv_sweep:
        torch.set_num_threads(args.threads[0])
        conv_sweep(args.steps)
        return
    from aimc.policy.vpt.conv_select import SELECTOR, cpu_description

    torch.manual_seed(0)
    cfg = get_config(args.preset)
    policy = VPTPolicy(cfg).eval()
    ref = Reference({k: v.detach() for k, v in policy.state_dict().items()}, cfg)
    cpu = cpu_description()
    print(f"{args.preset}: {policy.num_parameters():,} parameters, torch {torch.__version__}")
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags']) or '-'}")
    if args.recalibrate:
        print(f"dropped {SELECTOR.forget()} cached conv choice(s) of this machine")
    print(f"conv choices cached in {SELECTOR.file()}")

    def warm_states(b: int):
        """States with a full memory (the steady state of an episode)."""
        g = torch.Generator().manual_seed(1)
        img = torch.randint(0, 256, (b, cfg.memory, *cfg.img_shape, 3), dtype=torch.uint8, generator=g)
        first = torch.zeros(b, cfg.memory, dtype=torch.bool)
        policy.set_conv_impl("direct")
        with torch.inference_mode():
            _, s_ours = policy(img, None, first, None)
        with torch.no_grad():
            _, s_ref = ref(img, first, ref.initial_state(b))
        return s_ours, s_ref

    print("| threads | batch | reference ms/step | aimc auto ms | ratio | aimc direct ms | ratio | max abs dlogp |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for b in args.batch:
            s_ours, s_ref = warm_states(b)
            img = torch.randint(0, 256, (b, 1, *cfg.img_shape, 3), dtype=torch.uint8)
            first = torch.zeros(b, 1, dtype=torch.bool)
            policy.set_conv_impl("auto")
            with torch.inference_mode():
                out, _ = policy(img, None, first, s_ours)  # the first call also calibrates (cached per machine)
            with torch.no_grad():
                ref_out, _ = ref(img, first, s_ref)
            diff = max((out.logp[k] - ref_out[k]).abs().max().item() for k in ("camera", "buttons"))
            assert diff < 1e-3, f"outputs differ by {diff}"

            def run_ours(img=img, first=first, s=s_ours) -> None:
                with torch.inference_mode():
                    policy(img, None, first, s)

            def run_ref(img=img, first=first, s=s_ref) -> None:
                with torch.no_grad():
                    ref(img, first, s)

            times = {"ref": float("inf"), "auto": float("inf"), "direct": float("inf")}
            for _ in range(2):  # interleaved rounds share any background load fairly; the minimum counts
                times["ref"] = min(times["ref"], timed(run_ref, args.steps))
                for impl in ("auto", "direct"):  # switching drops the transformed weights: outside the timing
                    policy.set_conv_impl(impl)
                    times[impl] = min(times[impl], timed(run_ours, args.steps))
            rows.append((threads, b, times))
            print(f"| {threads} | {b} | {times['ref'] * 1e3:.1f} | {times['auto'] * 1e3:.1f} | "
                  f"{times['ref'] / times['auto']:.2f}x | {times['direct'] * 1e3:.1f} | "
                  f"{times['ref'] / times['direct']:.2f}x | {diff:.1e} |", flush=True)
    for m in SELECTOR.measured:
        print(f"calibrated {m['key']}: direct {m['direct_ms']:.2f} ms, winograd {m['winograd_ms']:.2f} ms -> {m['impl']}")
    worst = min(t["ref"] / t["auto"] for _, _, t in rows)
    b1t1 = [t["ref"] / t["auto"] for th, b, t in rows if (th, b) == (1, 1)]
    print(f"aimc auto vs reference: worst cell {worst:.2f}x (target >= 1.0x)"
          + (f", B=1 1 thread {b1t1[0]:.2f}x (target >= 1.3x)" if b1t1 else ""))


if __name__ == "__main__":
    main()
