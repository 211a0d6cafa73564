"""VPT on an accelerator: acting ms/step against the reference, training frames/s and peak memory (issue 18).

The one prepared script for a lent GPU (`run` in ../.library/device): it fits the device budget (a few minutes
for vpt-2x) and writes everything it measured to one JSON file, so a session spends its device time measuring
and records the numbers in docs/policy.md afterwards.

* Acting, per batch size: the reference forward of `bench_vpt.py` (the official code's arithmetic, fp32) and
  aimc's acting path in fp32, under bf16 autocast, and (``--compile``) compiled by ``torch.compile``, each with
  a full memory (an episode's steady state), and on a GPU the step replayed as a CUDA graph (fp32 and bf16:
  what `Agent` acts with there, `aimc.policy.graphed`; with ``--compile`` also the compiled step in a graph,
  `Agent(compile=True)`); ms per step, the ratio to the reference, the largest difference of
  the action log-probabilities from the reference, peak memory.
* Training: one optimiser step (AdamW) of the behaviour-cloning loss on random ``(batch, length)`` segments,
  fp32 and bf16 autocast; frames/s and peak memory.

TF32 is switched off so that fp32 means fp32 on both sides of the comparison.

    python benchmarks/bench_gpu.py --device cuda --preset vpt-2x --out gpu.json
    python benchmarks/bench_gpu.py --device cuda --preset vpt-2x --compile --batch 1 8 16
    python benchmarks/bench_gpu.py --device cpu --preset test-tiny --steps 2 --train-steps 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_vpt (the reference forward)

from aimc.policy import VPTPolicy, get_config  # noqa: E402
from aimc.policy.base import log_prob  # noqa: E402
from aimc.policy.graphed import GraphedStep  # noqa: E402
from bench_vpt import Reference  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], n: int, device: torch.device) -> float:
    """Median seconds per call over n calls, after 2 warm-up calls, with the device synchronised."""
    for _ in range(2):
        fn()
    _sync(device)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _to(x: Any, device: torch.device) -> Any:
    """Tensors anywhere inside nested tuples/lists moved to `device` (the reference's states)."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device) for v in x)
    return x


def _autocast(device: torch.device, bf16: bool) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def _failed(e: Exception) -> dict[str, str]:
    return {"error": f"{type(e).__name__}: {e}"[:300]}


def acting(policy: VPTPolicy, ref: Reference | None, batches: list[int], steps: int, device: torch.device,
           compile_: bool) -> list[dict[str, Any]]:
    """Per batch size: ms/step, ratio to the reference, max |dlogp| and peak MiB of each acting mode.

    Without a reference (a preset whose action heads are not VPT's, e.g. the Crafter ones) aimc's own fp32
    step is the baseline of the ratios and the differences."""
    cfg = policy.config
    heads = ("camera", "buttons") if ref is not None else tuple(cfg.head_sizes)  # the reference's (VPT) heads
    base = "reference fp32" if ref is not None else "aimc fp32"
    compiled = torch.compile(policy) if compile_ else None
    rows = []
    for b in batches:
        g = torch.Generator().manual_seed(b)
        warm = torch.randint(0, 256, (b, cfg.memory, *cfg.img_shape, 3), dtype=torch.uint8, generator=g).to(device)
        first_warm = torch.zeros(b, cfg.memory, dtype=torch.bool, device=device)
        with torch.inference_mode():
            _, s_ours = policy(warm, None, first_warm, None)
            s_ref = None if ref is None else ref(warm, first_warm, _to(ref.initial_state(b), device))[1]
        img = torch.randint(0, 256, (b, 1, *cfg.img_shape, 3), dtype=torch.uint8, generator=g).to(device)
        first = torch.zeros(b, 1, dtype=torch.bool, device=device)
        with torch.inference_mode():
            ref_out = ref(img, first, s_ref)[0] if ref is not None else policy(img, None, first, s_ours)[0].logp

        def run_ref(img: torch.Tensor = img, first: torch.Tensor = first, s: Any = s_ref) -> Any:
            assert ref is not None
            with torch.inference_mode():
                return ref(img, first, s)[0]

        modes: dict[str, Any] = {} if ref is None else {"reference fp32": run_ref}
        for name, model, bf16 in (("aimc fp32", policy, False), ("aimc bf16", policy, True),
                                  ("aimc compiled bf16", compiled, True)):
            if model is None:
                continue

            def run(model: Any = model, bf16: bool = bf16, img: torch.Tensor = img, first: torch.Tensor = first,
                    s: Any = s_ours) -> Any:
                with torch.inference_mode(), _autocast(device, bf16):
                    return model(img, None, first, s)[0].logp

            modes[name] = run
        if device.type == "cuda":  # the Agent's acting path on a GPU: the step replayed as a CUDA graph
            graphs = [("aimc graph fp32", policy, False), ("aimc graph bf16", policy, True)]
            if compiled is not None:  # torch.compile's fused kernels, captured in a graph too
                graphs.append(("aimc compiled graph bf16", compiled, True))
            for name, model, bf16 in graphs:
                try:
                    with torch.inference_mode(), _autocast(device, bf16):
                        step = GraphedStep(model, img, None, first, s_ours)
                except Exception as e:  # noqa: BLE001 - reported like a failed compile
                    modes[name] = _failed(e)
                    continue

                def run_graph(step: GraphedStep = step, img: torch.Tensor = img, first: torch.Tensor = first,
                              s: Any = s_ours) -> Any:
                    with torch.inference_mode():
                        return step(img, None, first, s)[0].logp

                modes[name] = run_graph
        row: dict[str, Any] = {"batch": b, "modes": {}}
        for name, fn in modes.items():
            if isinstance(fn, dict):  # failed before it could run
                row["modes"][name] = fn
                continue
            try:
                _reset_peak(device)
                out = fn()
                diff = 0.0 if name == base else max(
                    (out[h].float() - ref_out[h].float()).abs().max().item() for h in heads)
                ms = timed(fn, steps, device) * 1e3
            except Exception as e:  # noqa: BLE001 - a mode that fails (e.g. compile) is reported, not fatal
                row["modes"][name] = _failed(e)
                continue
            row["modes"][name] = {"ms": ms, "max_abs_dlogp": diff, "peak_mib": _peak_mib(device)}
        ref_ms = row["modes"][base]["ms"]
        for stats in row["modes"].values():
            if "ms" in stats:
                stats["ratio"] = ref_ms / stats["ms"]
        rows.append(row)
    return rows


def training(cfg_name: str, batch: int, length: int, steps: int, device: torch.device) -> list[dict[str, Any]]:
    """Frames/s and peak MiB of one AdamW step of the BC loss on random segments, fp32 and bf16 autocast."""
    rows = []
    for bf16 in (False, True):
        torch.manual_seed(0)
        policy = VPTPolicy(get_config(cfg_name)).to(device).train()
        opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
        cfg = policy.config
        img = torch.randint(0, 256, (batch, length, *cfg.img_shape, 3), dtype=torch.uint8, device=device)
        first = torch.zeros(batch, length, dtype=torch.bool, device=device)
        first[:, 0] = True
        with torch.no_grad():
            heads = {h: lp.shape[-1] for h, lp in policy(img[:, :1], None, first[:, :1], None)[0].logp.items()}
        actions = {h: torch.randint(0, n, (batch, length), device=device) for h, n in heads.items()}

        def step(policy: VPTPolicy = policy, opt: torch.optim.Optimizer = opt, img: torch.Tensor = img,
                 first: torch.Tensor = first, actions: dict = actions, bf16: bool = bf16) -> None:
            with _autocast(device, bf16):
                out, _ = policy(img, None, first, None)
                loss = -log_prob(out.logp, actions).float().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        name = "bf16 autocast" if bf16 else "fp32"
        try:
            _reset_peak(device)
            sec = timed(step, steps, device)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at this batch: reported, the rest still runs
            rows.append({"precision": name, "error": f"{type(e).__name__}: {e}"[:300]})
            continue
        rows.append({"precision": name, "batch": batch, "length": length, "sec_per_step": sec,
                     "frames_per_s": batch * length / sec, "peak_mib": _peak_mib(device)})
        del policy, opt
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="vpt-2x", help="policy preset (aimc.policy.get_config)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="acting batch sizes (one frame per env)")
    ap.add_argument("--steps", type=int, default=20, help="timed calls per acting measurement")
    ap.add_argument("--compile", action="store_true", help="also time the acting path under torch.compile")
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--train-length", type=int, default=64, help="frames per training segment")
    ap.add_argument("--train-steps", type=int, default=5, help="timed optimiser steps per precision (0 = skip)")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN time its convolution algorithms per shape and keep the fastest")
    ap.add_argument("--out", default="", help="write the results as JSON here")
    args = ap.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        ap.error(f"--device {args.device!r}: {e}")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda, but torch sees no CUDA device here (pass --device cpu for a smoke run)")
    from aimc.policy.vpt.config import PRESETS

    if args.preset not in PRESETS:
        ap.error(f"unknown --preset {args.preset!r}; available: {', '.join(sorted(PRESETS))}")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.manual_seed(0)
    cfg = get_config(args.preset)
    policy = VPTPolicy(cfg).eval().to(device)
    ref = Reference({k: v.detach() for k, v in policy.state_dict().items()}, cfg) if {
        "camera", "buttons"} <= set(cfg.head_sizes) else None
    info: dict[str, Any] = {"preset": args.preset, "parameters": policy.num_parameters(), "torch": torch.__version__,
                            "device": str(device), "cudnn_benchmark": args.cudnn_benchmark}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}", gpu_mib=props.total_memory // 2**20)
    print(json.dumps(info))
    result: dict[str, Any] = {"info": info, "acting": acting(policy, ref, args.batch, args.steps, device, args.compile)}
    print("| batch | mode | ms/step | vs reference | max abs dlogp | peak MiB |")
    print("|---|---|---|---|---|---|")
    for row in result["acting"]:
        for name, s in row["modes"].items():
            if "error" in s:
                print(f"| {row['batch']} | {name} | failed: {s['error']} | | | |")
            else:
                peak = "-" if s["peak_mib"] is None else f"{s['peak_mib']:.0f}"
                print(f"| {row['batch']} | {name} | {s['ms']:.2f} | {s['ratio']:.2f}x | {s['max_abs_dlogp']:.1e} | {peak} |")
    del policy, ref
    result["training"] = [] if args.train_steps < 1 else training(
        args.preset, args.train_batch, args.train_length, args.train_steps, device)
    if result["training"]:
        print("| training | batch x length | frames/s | peak MiB |")
        print("|---|---|---|---|")
    for r in result["training"]:
        if "error" in r:
            print(f"| {r['precision']} | failed: {r['error']} | | |")
        else:
            peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
            print(f"| {r['precision']} | {r['batch']} x {r['length']} | {r['frames_per_s']:.0f} | {peak} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
