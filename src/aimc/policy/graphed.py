"""One acting step replayed as a CUDA graph (issue 18).

Why: one VPT acting step at batch 1 is a few hundred small kernels; on a GPU, launching them one by one from
Python takes longer than running them, so the GPU idles and a faster card changes nothing. A CUDA graph
records the step's kernels once, for fixed shapes, into buffers that stay put, and replays them with one
launch. The step's inputs are copied into those buffers before each replay and its outputs copied out after
it, because the next replay overwrites them (an output that outlived its step would silently change).

On a CPU there is nothing to capture: the same object runs the step eagerly through the same static buffers,
so the buffer handling (inputs in, outputs cloned out, state carried between steps by the caller) is what the
CPU tests exercise, and the GPU test (``pytest -m gpu``) checks replay against eager on a real device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from aimc.policy.base import PolicyOutput
from aimc.policy.vpt.model import VPTState

StepFn = Callable[[Tensor, Tensor | None, Tensor, VPTState], tuple[PolicyOutput, VPTState]]


def clone_tree(obj: Any) -> Any:
    """A copy of every tensor inside dicts, lists, tuples, `PolicyOutput` and `VPTState` (the step's outputs)."""
    if isinstance(obj, Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_tree(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: clone_tree(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    return obj


def _copy_state(dst: VPTState, src: VPTState) -> None:
    if src.batch_size != dst.batch_size or len(src.keys) != len(dst.keys):
        raise ValueError(f"state has {src.batch_size} rows and {len(src.keys)} layers; this graph was captured "
                         f"for {dst.batch_size} rows and {len(dst.keys)} layers")
    for d, s in zip([*dst.keys, *dst.values, dst.valid], [*src.keys, *src.values, src.valid], strict=True):
        d.copy_(s)


class GraphedStep:
    """``fn(x, goal, first, state) -> (outputs, new_state)`` for fixed shapes, replayed as a CUDA graph on a GPU.

    Built from one example call's arguments (their shapes, dtypes and device fix the graph). Calling it with
    new values of the same shapes returns what ``fn`` would, as fresh tensors. ``warmup`` eager calls on a side
    stream come first, as CUDA graph capture needs (lazy cuBLAS/cuDNN set-up must not happen inside it).
    """

    def __init__(self, fn: StepFn, x: Tensor, goal: Tensor | None, first: Tensor, state: VPTState,
                 warmup: int = 3) -> None:
        self.fn = fn
        self.device = x.device
        self._x, self._first = x.clone(), first.clone()
        self._goal = None if goal is None else goal.clone()
        self._state = clone_tree(state)
        self.graph: torch.cuda.CUDAGraph | None = None
        self._out: tuple[PolicyOutput, VPTState] | None = None
        if self.device.type == "cuda":
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    self.fn(self._x, self._goal, self._first, self._state)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._out = self.fn(self._x, self._goal, self._first, self._state)

    @property
    def captured(self) -> bool:
        """True when steps replay a CUDA graph (a GPU); False when they run eagerly (a CPU)."""
        return self.graph is not None

    def __call__(self, x: Tensor, goal: Tensor | None, first: Tensor, state: VPTState) -> tuple[PolicyOutput, VPTState]:
        if x.shape != self._x.shape or first.shape != self._first.shape or (goal is None) != (self._goal is None) or (
                goal is not None and self._goal is not None and goal.shape != self._goal.shape):
            raise ValueError(f"inputs of shape x={tuple(x.shape)}, first={tuple(first.shape)} do not match the "
                             f"captured x={tuple(self._x.shape)}, first={tuple(self._first.shape)}")
        self._x.copy_(x)
        self._first.copy_(first)
        if goal is not None and self._goal is not None:
            self._goal.copy_(goal)
        _copy_state(self._state, state)
        if self.graph is None:
            return clone_tree(self.fn(self._x, self._goal, self._first, self._state))
        self.graph.replay()
        return clone_tree(self._out)
