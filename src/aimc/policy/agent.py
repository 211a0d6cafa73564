"""Batched acting for environment loops: N envs, per-env reset, sampled or greedy actions, optional CFG."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aimc.core.precision import resolve_acting_precision
from aimc.policy import actions as A
from aimc.policy.base import sample
from aimc.policy.cfg import cfg_forward, cfg_initial_state
from aimc.policy.graphed import GraphedStep, StepFn
from aimc.policy.vpt.model import VPTPolicy, VPTState


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, h, w, 3) -> (N, H, W, 3) with bilinear interpolation.

    Uses OpenCV's ``INTER_LINEAR`` when ``cv2`` is installed (what VPT was trained with: 640x360 squashed to
    128x128); otherwise torch's bilinear (align_corners=False, no antialias), which can differ by 1 level.
    """
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    try:
        import cv2  # type: ignore[import-not-found]

        return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames])
    except ImportError:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        y = torch.nn.functional.interpolate(
            x, size=(h, w), mode="bilinear", align_corners=False, antialias=False
        )
        return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class Agent:
    """Acts for ``n_envs`` environments at once.

        agent = Agent(policy, n_envs=8, cond_scale=6.0)
        agent.reset()                       # all envs start a new episode
        acts = agent.act(povs, goals)       # dict head -> (8,) int64 numpy
        agent.reset([3])                    # env 3 was reset: forget its memory
        agent.reset([3], seeds=[11])        # ... and sample its actions from a generator seeded 11
        acts = agent.act(povs[[3]], goals[[3]], env_ids=[3])   # step env 3 alone; the others keep their memory

    ``cond_scale`` (goal-conditioned policies only) enables classifier-free guidance. ``seed`` makes the
    Gumbel-max sampling reproducible: all envs draw from one generator, so an env's actions depend on the
    batch it is in, unless `reset(ids, seeds=...)` gave it its own (what the rollout engine does, so an
    episode samples the same actions whichever envs share its batch). ``conv_impl``: the policy's
    convolution algorithm while acting; ``"auto"`` = on CPU, per layer whichever of Winograd and direct
    measured faster on this machine and thread count (equal up to float rounding; see
    ``VPTPolicy.set_conv_impl``), direct elsewhere. ``temperature`` divides the (guided) action scores before
    sampling: below 1 the agent plays closer to its most likely action (measured worse for the Crafter agents:
    greedy play loops; docs/evaluation.md); the random draws are the same at every temperature, so a seed
    stays a seed. ``cuda_graphs`` (on a GPU, when all envs step together): each step replays a CUDA graph
    captured at the first step of that batch size (`aimc.policy.graphed`), because small-batch acting there is
    bound by kernel launches; outputs equal eager ones up to float rounding. Off (or a CPU): eager steps.
    ``compile`` (with ``cuda_graphs`` on a GPU): the captured step is ``torch.compile``'s fused kernels, which
    pays for big policies (vpt-2x at B=1 on an H200 under bf16 autocast: 1.41 ms against 4.0 as a plain graph,
    docs/policy.md) at the price of a compilation (tens of seconds) at each batch size's first step.
    ``precision`` "bf16": each step runs under bf16 autocast where the device computes bf16 natively (a GPU, a
    CPU with AMX or AVX-512 BF16; elsewhere it stays fp32, which `precision` then reads), with the outputs and
    the memory kept in fp32 between steps. The Crafter policy's step at 16 envs is about 1.4x faster on an AMX
    CPU and its rollouts 1.22-1.26x (docs/results.md, "Rollout speed"); the action probabilities move slightly
    (mean KL ~1e-4 per step), so a seed reproduces a run only at the precision it was made with.
    """

    def __init__(
        self,
        policy: VPTPolicy,
        n_envs: int = 1,
        deterministic: bool = False,
        cond_scale: float | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
        conv_impl: str = "auto",
        temperature: float = 1.0,
        cuda_graphs: bool = True,
        compile: bool = False,
        precision: str = "fp32",
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.policy = policy.eval()
        self.n_envs = int(n_envs)
        self.deterministic = deterministic
        self.cond_scale = cond_scale
        self.device = torch.device(device) if device is not None else policy.net.final_ln.weight.device
        self.policy.to(self.device)
        if conv_impl == "auto" and self.device.type != "cpu":
            conv_impl = "direct"
        self.policy.set_conv_impl(conv_impl)
        # What the steps run in: "bf16" only where asked for and native on this device, else "fp32".
        self.precision = resolve_acting_precision(precision, self.device.type)
        if cond_scale is not None and not policy.config.goal_dim:
            raise ValueError("cond_scale needs a goal-conditioned policy (goal_dim > 0)")
        self.generator = torch.Generator(device=self.device)
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self.state: VPTState = self._fresh_state(self.n_envs)
        self._first = torch.ones(self.n_envs, dtype=torch.bool, device=self.device)
        self._env_generators: list[torch.Generator | None] = [None] * self.n_envs
        self.last_outputs: Any = None
        self.cuda_graphs = bool(cuda_graphs)
        self.compile = bool(compile)
        self._graphs: dict[tuple, GraphedStep] = {}
        self._cast: tuple[tuple[tuple[int, int], ...], VPTPolicy] | None = None  # (source weights' identity, copy)

    def _acting_policy(self) -> VPTPolicy:
        """The policy a step runs: in bf16 on a CPU, a copy whose convolution, linear and LSTM weights are already
        bf16, remade whenever the source's weights change (a PPO trainer updates them in place between rollouts).

        Why: autocast casts every weight to bf16 again at each step (its cache lives only inside one autocast
        region, one step here), which was 10-12 % of the shipped Crafter policy's bf16 step at 16 envs. Autocast
        rounds fp32 weights to bf16 exactly as this cast does, and the norms keep their fp32 parameters, so the
        steps' outputs are bit-identical to casting each step (tests/policy/test_acting_precision.py). Off the
        CPU the source runs as before (a captured CUDA graph holds on to the tensors it was captured with)."""
        if self.precision != "bf16" or self.device.type != "cpu":
            return self.policy
        key = tuple((p.data_ptr(), p._version) for p in self.policy.parameters())
        if self._cast is None or self._cast[0] != key:
            cast = copy.deepcopy(self.policy)
            for m in cast.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear, nn.LSTM)):
                    m.to(torch.bfloat16)
            self._cast = (key, cast)
        return self._cast[1]

    def _fresh_state(self, n: int) -> VPTState:
        if self.cond_scale is None:
            return self.policy.initial_state(n, self.device)
        return cfg_initial_state(self.policy, n, self.device)

    def _rows(self, ids: Tensor) -> Tensor:
        """State rows of envs `ids`: with guidance the state is ``[cond rows; uncond rows]`` (2N rows)."""
        return ids if self.cond_scale is None else torch.cat([ids, ids + self.n_envs])

    def _write_rows(self, rows: Tensor, new: VPTState) -> None:
        for dst, src in zip([*self.state.keys, *self.state.values], [*new.keys, *new.values], strict=True):
            dst[rows] = src
        self.state.valid[rows] = new.valid

    @torch.inference_mode()
    def reset(self, env_ids: list[int] | np.ndarray | None = None, seeds: list[int] | np.ndarray | None = None) -> None:
        """Start new episodes: all envs (None) or the listed ones, with fresh memory.

        ``seeds`` (one per reset env) gives each of them its own sampling generator for the new episode, so
        its actions equal those of a 1-env agent with that seed, whichever envs share the batch. Without
        ``seeds`` an env keeps the generator it samples from.
        """
        if env_ids is None:
            self.state = self._fresh_state(self.n_envs)
            self._first[:] = True
            ids = list(range(self.n_envs))
        else:
            ids = [int(i) for i in np.asarray(env_ids, dtype=np.int64).reshape(-1)]
            idx = torch.as_tensor(ids, dtype=torch.long, device=self.device)
            # Zeroed as well as masked, so a restarted env is bit-identical to a fresh agent's.
            self._write_rows(self._rows(idx), self._fresh_state(len(ids)))
            self._first[idx] = True
        if seeds is not None:
            seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
            if len(seeds) != len(ids):
                raise ValueError(f"reset got {len(seeds)} seeds for {len(ids)} envs")
            for i, s in zip(ids, seeds, strict=True):
                self._env_generators[i] = torch.Generator(device=self.device).manual_seed(int(s))

    @torch.inference_mode()
    def resize(self, n_envs: int) -> None:
        """Change the number of envs: the first ``min(old, new)`` keep their memory and generators, added envs
        start fresh (sampling from the shared generator until `reset(ids, seeds)` gives them their own)."""
        n_envs, old = int(n_envs), self.n_envs
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        keep = torch.arange(min(old, n_envs), device=self.device)
        parts = [self.state.index(self._rows(keep)), self._fresh_state(max(n_envs - old, 0))]
        if self.cond_scale is not None:  # keep the [cond rows; uncond rows] layout
            k, add = len(keep), max(n_envs - old, 0)
            parts = [parts[0].index(slice(0, k)), parts[1].index(slice(0, add)),
                     parts[0].index(slice(k, 2 * k)), parts[1].index(slice(add, 2 * add))]
        self.state = VPTState.cat(parts)
        self._first = torch.cat([self._first[:n_envs], torch.ones(max(n_envs - old, 0), dtype=torch.bool, device=self.device)])
        self._env_generators = (self._env_generators + [None] * n_envs)[:n_envs]
        self.n_envs = n_envs

    def _to_tensor(self, pov: np.ndarray | Tensor, n: int) -> Tensor:
        if isinstance(pov, Tensor):
            pov = pov.cpu().numpy()
        pov = np.asarray(pov)
        if pov.ndim == 3:
            pov = pov[None]
        if pov.shape[0] != n:
            raise ValueError(f"expected {n} observations, got {pov.shape[0]}")
        pov = resize_frames(pov.astype(np.uint8, copy=False), self.policy.config.img_shape)
        return torch.from_numpy(np.ascontiguousarray(pov)).to(self.device)

    @torch.inference_mode()
    def act(
        self, pov: np.ndarray | Tensor, goal: np.ndarray | Tensor | None = None,
        env_ids: list[int] | np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """One step for every env, or only for ``env_ids`` (the others' memory is untouched: a worker whose
        envs are running episodes of different agents steps each agent's envs alone).

        ``pov``: uint8 (B, H, W, 3) and ``goal``: (B, goal_dim) or None, with B = N or ``len(env_ids)``.
        """
        ids = None if env_ids is None else torch.as_tensor(
            np.asarray(env_ids, dtype=np.int64).reshape(-1), device=self.device)
        if ids is not None and len(ids) == self.n_envs and bool((ids == torch.arange(len(ids), device=ids.device)).all()):
            ids = None  # every env, in order: no need to gather and scatter their memory
        b = self.n_envs if ids is None else len(ids)
        x = self._to_tensor(pov, b)[:, None]  # (B, 1, H, W, 3)
        g = None
        if goal is not None:
            g = torch.as_tensor(np.asarray(goal), dtype=torch.float32, device=self.device).reshape(b, 1, -1)
        rows = None if ids is None else self._rows(ids)
        state = self.state if rows is None else self.state.index(rows)
        first = (self._first if ids is None else self._first[ids])[:, None].clone()  # (B, 1)
        policy = self._acting_policy()
        if self.cond_scale is None:
            step: StepFn = policy
        else:
            if g is None:
                g = torch.zeros(b, 1, self.policy.config.goal_dim, device=self.device)
            scale = self.cond_scale

            def step(x: Tensor, g: Tensor | None, first: Tensor, state: VPTState) -> tuple[Any, VPTState]:
                assert g is not None
                return cfg_forward(policy, x, g, first, state, scale)

        bf16 = self.precision == "bf16"
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            if self._graphable(ids):
                key = (b, g is None, self.cond_scale, torch.is_autocast_enabled("cuda"))
                if key not in self._graphs:
                    fn: StepFn = torch.compile(step, dynamic=False) if self.compile else step  # type: ignore[assignment]
                    self._graphs[key] = GraphedStep(fn, x, g, first, state)
                out, state = self._graphs[key](x, g, first, state)
            else:
                out, state = step(x, g, first, state)
        if bf16:
            out, state = out.fp32(), state.to_dtype(self.state.keys[0].dtype if self.state.keys else torch.float32)
        if rows is None:
            self.state = state
            self._first[:] = False
        else:
            self._write_rows(rows, state)
            self._first[ids] = False
        self.last_outputs = out
        logp = {k: v[:, 0] for k, v in out.logp.items()}
        if self.temperature != 1.0:  # after guidance: sample from softmax(scores / T); argmax is unchanged
            logp = {k: v / self.temperature for k, v in logp.items()}
        acts = self._sample(logp, list(range(self.n_envs)) if ids is None else ids.tolist())
        return {k: v.cpu().numpy() for k, v in acts.items()}

    def _graphable(self, ids: Tensor | None) -> bool:
        """Whether this step replays a CUDA graph: on a GPU, with `cuda_graphs`, all envs stepping together."""
        return self.cuda_graphs and self.device.type == "cuda" and ids is None

    def _sample(self, logp: dict[str, Tensor], env_ids: list[int]) -> dict[str, Tensor]:
        """Rows of envs with their own generator draw from it exactly as a 1-env agent would (one (1, n)
        draw per head, in head order); the other rows draw together from the shared generator."""
        own = [self._env_generators[i] for i in env_ids]
        if self.deterministic or all(gen is None for gen in own):
            return sample(logp, deterministic=self.deterministic, generator=self.generator)
        out = {k: torch.empty(v.shape[0], dtype=torch.long, device=v.device) for k, v in logp.items()}
        shared = [j for j, gen in enumerate(own) if gen is None]
        if shared:
            for k, v in sample({k: v[shared] for k, v in logp.items()}, generator=self.generator).items():
                out[k][shared] = v
        for j, gen in enumerate(own):
            if gen is not None:
                for k, v in sample({k: v[j : j + 1] for k, v in logp.items()}, generator=gen).items():
                    out[k][j] = v[0]
        return out

    def act_minerl(
        self, pov: np.ndarray | Tensor, goal: np.ndarray | Tensor | None = None
    ) -> list[dict[str, Any]]:
        """Like :meth:`act`, converted to one MineRL env action dict per env (VPT heads only)."""
        if self.policy.config.action_head != "vpt":
            raise ValueError("act_minerl needs the VPT camera/buttons heads")
        a = self.act(pov, goal)
        return [A.joint_to_env(a["buttons"][i], a["camera"][i], squeeze=True) for i in range(self.n_envs)]
