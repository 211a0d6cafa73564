"""One interface for every text -> goal predictor, and the registry that loads any of them from disk.

A goal predictor turns instructions into goals in the policy's goal space. Kinds:

* `text`: the embedder's text side itself (no file; what a policy trained on text goals reads);
* `cvae`: STEVE-1's conditional VAE over (text embedding -> visual embedding), `aimc.prior.cvae`;
* `aligner`: design note 001's language-model features -> learnable queries -> goal, `aimc.prior.aligner`.

Every trained kind has `fit(pairs)`, `sample(texts, seed)`, `save_pretrained(dir)` and `from_pretrained(dir)`, and
trains through the same `loss(batch)` on the same pairs (`aimc.prior.train.build_pairs`), so `aimc train prior
--kind K` and `aimc eval prior` treat them alike. `load_predictor(path)` reads the kind from `config.json`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from aimc.core.errors import AimcError, CheckpointError
from aimc.core.io import TMP_PREFIX

TextEncoder = Callable[[list[str]], np.ndarray]
"""The embedder's text side as a function: N instructions -> float32 (N, D)."""

PREDICTORS: dict[str, str] = {"cvae_prior": "aimc.prior.cvae:CVAEPrior", "aligner": "aimc.prior.aligner:Aligner"}
"""`config.json` type -> class ("module:Class", imported on first use so a CVAE never imports transformers)."""

KINDS: dict[str, str] = {"cvae": "cvae_prior", "aligner": "aligner"}
"""`aimc train prior --kind` names -> `config.json` types."""


def check_texts(texts: Any) -> list[str]:
    """A list of non-empty instructions (a single string counts as one); anything else is one clear error."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise AimcError(f"instruction {bad[0]} is empty ({texts[bad[0]]!r}); give the goal predictor non-empty text")
    return texts


class GoalPredictor(nn.Module, ABC):
    """Base of the trained predictors: a seeded `sample`, and a generic in-memory `fit`.

    Subclasses set `kind` (the `config.json` type) and implement `dim`, `training_inputs` (pairs -> tensors indexed
    by pair row, built once), `loss` (a batch of rows -> {"loss", ...}), `_predict` (texts -> goals) and
    `save_pretrained` / `from_pretrained`.
    """

    kind: ClassVar[str] = ""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width of the goals it outputs (must equal the policy's goal dimension)."""

    @abstractmethod
    def training_inputs(self, pairs: dict[str, np.ndarray], target: np.ndarray) -> dict[str, Tensor]:
        """Everything `loss` reads, as tensors whose first axis is the pair row (a batch indexes them)."""

    @abstractmethod
    def loss(self, batch: dict[str, Tensor], settings: Any, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """{"loss": scalar to minimise, ...named terms} for a batch of `training_inputs` rows."""

    @abstractmethod
    def _predict(self, texts: list[str], generator: torch.Generator, deterministic: bool) -> Tensor:
        """(N,) instructions -> (N, dim) goals, under no_grad in eval mode (`sample` arranges both)."""

    @abstractmethod
    def save_pretrained(self, path: str | Path) -> Path:
        """Write `config.json` (with the kind's type) + `model.safetensors`."""

    def sample(self, text: list[str] | np.ndarray, seed: int = 0, deterministic: bool = False) -> np.ndarray:
        """Instructions -> float32 (N, dim) goals; the same seed gives the same goals."""
        texts = check_texts(text)
        param = next(self.parameters())
        gen = torch.Generator(device=param.device).manual_seed(int(seed))
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = self._predict(texts, gen, deterministic)
        finally:
            self.train(was_training)
        return out.float().cpu().numpy()

    def fit(self, pairs: dict[str, np.ndarray], settings: Any = None, *, target: str = "visual", epochs: int = 20,
            batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> list[float]:
        """Train in memory on `pairs` (`build_pairs` layout); returns the mean loss per epoch.

        `aimc train prior` runs the same `loss` with a run directory, validation and resume; this is the short
        path for notebooks and tests. `settings` carries the kind's loss options (a `PriorTrainConfig`)."""
        from aimc.prior.config import PriorTrainConfig

        settings = settings or PriorTrainConfig(kind=self.cli_kind(), target=target)
        inputs = self.training_inputs(pairs, pair_targets(pairs, target))
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=lr)
        gen = torch.Generator(device=next(self.parameters()).device)
        n = len(pairs["label"])
        history = []
        self.train()
        for epoch in range(epochs):
            rng = np.random.default_rng([seed, epoch])
            gen.manual_seed(seed * 100003 + epoch)
            losses = [train_step(self, opt, inputs, idx, settings, gen)
                      for idx in np.array_split(rng.permutation(n), max(1, -(-n // batch_size)))]
            history.append(float(np.mean(losses)))
        self.eval()
        return history

    @classmethod
    def cli_kind(cls) -> str:
        return next(k for k, v in KINDS.items() if v == cls.kind)

    def num_parameters(self, trainable: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable)


def train_step(model: GoalPredictor, opt: torch.optim.Optimizer, inputs: dict[str, Tensor], idx: np.ndarray,
               settings: Any, gen: torch.Generator) -> float:
    """One optimiser step on pair rows `idx` (shared by `fit` and `aimc train prior`)."""
    dev = next(iter(inputs.values())).device
    ix = torch.from_numpy(np.asarray(idx)).to(dev)
    terms = model.loss({k: v[ix] for k, v in inputs.items()}, settings, generator=gen)
    opt.zero_grad(set_to_none=True)
    terms["loss"].backward()
    opt.step()
    return float(terms["loss"].detach())


def pair_targets(pairs: dict[str, np.ndarray], target: str) -> np.ndarray:
    """What the predictor regresses to: the clip embeddings ("visual", STEVE-1 and note 001: for policies trained on
    visual goals) or the text-side embedding of the task's canonical instruction ("instruction": for policies trained
    on text goals, which read that space)."""
    if target == "visual":
        return pairs["visual"]
    if target == "instruction":
        if "canon" not in pairs:
            raise AimcError("these pairs have no canonical-instruction embeddings (built by an older version); rebuild them")
        return pairs["canon"]
    raise AimcError(f"prior target must be 'visual' or 'instruction', got {target!r}")


def _class(type_name: str, where: str) -> type[GoalPredictor]:
    import importlib

    if type_name not in PREDICTORS:
        raise CheckpointError(f"{where}: type {type_name!r} is not a goal predictor ({', '.join(sorted(PREDICTORS))})")
    module, name = PREDICTORS[type_name].split(":")
    return getattr(importlib.import_module(module), name)


def predictor_type(path: str | Path) -> str:
    """The `config.json` type of a saved predictor directory ("cvae_prior" for a released `.pt` file)."""
    path = Path(path)
    if path.is_file():
        return "cvae_prior"
    cfg = path / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"goal predictor {path} does not exist (pass a saved predictor directory or a steve1_prior.pt file)")
    try:
        kind = json.loads(cfg.read_text()).get("type")
    except (json.JSONDecodeError, AttributeError):
        raise CheckpointError(f"{cfg} is not a goal predictor's config.json") from None
    _class(kind, str(path))
    return str(kind)


def load_predictor(path: str | Path, device: str = "cpu", text_encoder: TextEncoder | None = None) -> GoalPredictor:
    """Any saved goal predictor (or a released `steve1_prior.pt`). `text_encoder` (the embedder's text side) is bound
    to predictors that read text embeddings (the CVAE), so all of them take plain instructions in `sample`."""
    kind = predictor_type(path)
    cls = _class(kind, str(path))
    model = cls.from_pretrained(path, device=device) if Path(path).is_dir() else cls.from_released(path, device=device)  # type: ignore[attr-defined]
    if text_encoder is not None and hasattr(model, "bind"):
        model.bind(text_encoder)
    return model


class TextSide:
    """The `text` goal source as a predictor: the embedder's text embedding is the goal (no training)."""

    kind = "text"

    def __init__(self, text_encoder: TextEncoder, dim: int) -> None:
        self._encode = text_encoder
        self.dim = dim

    def sample(self, text: list[str], seed: int = 0, deterministic: bool = False) -> np.ndarray:
        return np.asarray(self._encode(check_texts(text)), np.float32)


def check_goal_dim(predictor: Any, goal_dim: int, where: str) -> None:
    """A predictor whose goals the policy cannot read is one clear error, before any episode runs."""
    if int(predictor.dim) != int(goal_dim):
        raise AimcError(f"goal predictor {where} outputs {predictor.dim}-d goals but the policy expects {goal_dim}-d "
                        "goals; train the predictor on the policy's embedder (aimc train prior --embedder ...)")


GOAL_SPACE_FILE = "goal_space.json"
"""Beside a trained predictor: which embedder's space its goals live in, so a policy of another space refuses it."""


def check_goal_space(predictor_dir: str | Path, embedder_ref: str | Path | None) -> None:
    """One clear error when a predictor was trained on another embedder than the policy's (same width, other space:
    the dimension check cannot see it). Predictors without the record (released priors, pairs-only runs) pass."""
    record = Path(predictor_dir) / GOAL_SPACE_FILE
    if embedder_ref is None or not record.is_file():
        return
    trained_on = json.loads(record.read_text()).get("embedder")
    mine = embedder_identity(str(embedder_ref))
    if trained_on and trained_on != mine:
        raise AimcError(f"goal predictor {predictor_dir} was trained on another embedder's goal space ({trained_on[:19]}...) "
                        f"than this policy's embedder {embedder_ref} ({mine[:19]}...); train it with --embedder {embedder_ref}")


def embedder_identity(name_or_dir: str) -> str:
    """A registered name as is; a saved directory by the digest of its files (a retrained embedder written
    to the same path is a different embedder)."""
    path = Path(name_or_dir)
    if not path.is_dir():
        return name_or_dir
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if f.is_file() and not any(part.startswith(TMP_PREFIX) for part in rel.parts):
            h.update(str(rel).encode() + b"\0")
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return "sha256:" + h.hexdigest()
