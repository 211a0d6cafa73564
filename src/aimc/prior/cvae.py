"""The STEVE-1 text->goal prior: a conditional VAE over goal embeddings, weight-compatible with `steve1_prior.pt`.

Text and video embeddings of one embedder are not interchangeable (the modality gap), and a policy
trained on video goals acts poorly on raw text embeddings. The prior learns p(visual | text): the
encoder q(z | visual, text) is only used in training; at inference z ~ N(0, I) is decoded together with
the text embedding into a "visual-like" goal.

Loss settings: with STEVE-1's loss (KL summed over batch and latent, MSE averaged, beta 1) the KL term outweighs
the reconstruction by orders of magnitude, the posterior collapses onto the prior and z carries nothing, so the
decoder outputs the task's mean clip embedding. `loss` also offers the KL averaged per dimension (`kl: mean`) and
free bits (a per-dimension floor under which the KL is not penalised). The sweep in docs/goals.md found that the
goal collapse measured before came from the embedder's clips, not from these settings.

Layout (reference/steve1.md section 5; `nn.Sequential` indices 0, 1, 3, 4, 6 hold weights):
    encoder: [visual, text] -> Linear(2D, H) -> LN -> ReLU -> Linear(H, H) -> LN -> ReLU -> Linear(H, 2L) = [mu, logvar]
    decoder: [z, text]      -> Linear(L + D, H) -> LN -> ReLU -> Linear(H, H) -> LN -> ReLU -> Linear(H, D)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aimc.core.checkpoint import load_strict, read_model_dir, save_model_dir
from aimc.core.config import from_dict, to_dict
from aimc.core.errors import AimcError, CheckpointError
from aimc.prior.base import GoalPredictor, TextEncoder

KIND = "cvae_prior"


@dataclass(frozen=True)
class PriorConfig:
    """Sizes of the CVAE; the defaults are STEVE-1's released prior (MineCLIP, 512-d)."""

    input_dim: int = 512
    """Goal/text embedding width D (the embedder's `dim`)."""
    hidden_dim: int = 512
    """Width H of the two hidden layers of encoder and decoder."""
    latent_dim: int = 512
    """Width L of the latent z."""

    def __post_init__(self) -> None:
        if min(self.input_dim, self.hidden_dim, self.latent_dim) < 1:
            raise AimcError(f"prior dims must be positive, got {self}")


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.LayerNorm(hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(),
        nn.Linear(hidden, d_out),
    )


class CVAEPrior(GoalPredictor):
    """STEVE-1's `TranslatorVAE` with aimc's persistence and a seeded numpy `sample` for inference.

    `sample` takes text embeddings (N, D) as STEVE-1's does, or instructions once `bind` gave it the embedder's
    text side (`load_predictor(..., text_encoder=...)` does that)."""

    kind = KIND

    def __init__(self, config: PriorConfig | None = None) -> None:
        super().__init__()
        self.config = config or PriorConfig()
        c = self.config
        self.encoder = _mlp(2 * c.input_dim, c.hidden_dim, 2 * c.latent_dim)
        self.decoder = _mlp(c.latent_dim + c.input_dim, c.hidden_dim, c.input_dim)
        self._text_encoder: TextEncoder | None = None

    @property
    def dim(self) -> int:
        return self.config.input_dim

    def bind(self, text_encoder: TextEncoder) -> CVAEPrior:
        """Attach the embedder's text side, so `sample` accepts instructions."""
        self._text_encoder = text_encoder
        return self

    def training_inputs(self, pairs: dict[str, np.ndarray], target: np.ndarray) -> dict[str, Tensor]:
        dev = next(self.parameters()).device
        return {"text": torch.from_numpy(np.asarray(pairs["text"], np.float32)).to(dev),
                "target": torch.from_numpy(np.asarray(target, np.float32)).to(dev)}

    def loss(self, batch: dict[str, Tensor], settings: Any, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """beta x KL + MSE, the KL summed (STEVE-1) or averaged per dimension, with an optional free-bits floor."""
        out = self(batch["target"], batch["text"], generator=generator)
        mu, logvar, mse = out["mu"], out["logvar"], out["mse"]
        kl_bd = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())  # (B, L)
        per_dim = kl_bd.mean(dim=0)
        free_bits = float(getattr(settings, "free_bits", 0.0))
        penalised = per_dim.clamp(min=free_bits) if free_bits > 0 else per_dim
        mode = getattr(settings, "kl", "sum")
        kl = penalised.sum() * mu.shape[0] if mode == "sum" else penalised.mean()
        beta = float(getattr(settings, "beta", 1.0))
        return {"loss": beta * kl + mse, "kl": out["kl"] if mode == "sum" else kl_bd.mean(), "mse": mse,
                "kl_per_dim": per_dim.mean()}

    def encode(self, visual: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D), (B, D) -> mu (B, L), logvar (B, L); the first half of the output is mu."""
        mu, logvar = self.encoder(torch.cat([visual, text], dim=1)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor, text: Tensor) -> Tensor:
        """(B, L), (B, D) -> (B, D) predicted visual embedding."""
        return self.decoder(torch.cat([z, text], dim=1))

    def forward(self, visual: Tensor, text: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Training pass: reparameterised z from q(z | v, t), reconstruction, the posterior and STEVE-1's terms."""
        mu, logvar = self.encode(visual, text)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        recon = self.decode(z, text)
        # STEVE-1: KL summed over batch and latent, MSE averaged; beta weighs them in `prior_loss`.
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        mse = nn.functional.mse_loss(recon, visual)
        return {"recon": recon, "mu": mu, "logvar": logvar, "kl": kl, "mse": mse}

    @torch.no_grad()
    def generate(self, text: Tensor, generator: torch.Generator | None = None, deterministic: bool = False) -> Tensor:
        """(N, D) text embeddings -> (N, D) goals with z ~ N(0, I) (z = 0 when `deterministic`)."""
        z = torch.zeros(text.shape[0], self.config.latent_dim, device=text.device, dtype=text.dtype)
        if not deterministic:
            z = torch.randn(z.shape, generator=generator, device=text.device, dtype=text.dtype)
        return self.decode(z, text)

    def sample(self, text: list[str] | np.ndarray, seed: int = 0, deterministic: bool = False) -> np.ndarray:
        """Float (N, D) text embeddings, or instructions when bound -> float32 (N, D) goals; same seed, same goals."""
        if isinstance(text, np.ndarray | Tensor):
            return self._sample_embeddings(np.asarray(text), seed, deterministic)
        return super().sample(text, seed, deterministic)

    def _predict(self, texts: list[str], generator: torch.Generator, deterministic: bool) -> Tensor:
        """Instructions through the bound text side, then the decoder."""
        if self._text_encoder is None:
            raise AimcError("this CVAE prior has no text encoder bound: pass text embeddings, or load it with "
                            "load_predictor(path, text_encoder=embedder's text side)")
        param = next(self.parameters())
        text = torch.as_tensor(np.asarray(self._text_encoder(texts), np.float32), device=param.device)
        return self.generate(text, generator, deterministic)

    def _sample_embeddings(self, text_emb: np.ndarray, seed: int, deterministic: bool) -> np.ndarray:
        text = np.asarray(text_emb, dtype=np.float32)
        if text.ndim != 2 or text.shape[1] != self.dim:
            raise AimcError(f"prior expects text embeddings of shape (N, {self.dim}), got {text.shape}")
        param = next(self.parameters())
        gen = torch.Generator(device=param.device).manual_seed(int(seed))
        was_training = self.training
        self.eval()
        try:
            out = self.generate(torch.from_numpy(text).to(param.device), gen, deterministic)
        finally:
            self.train(was_training)
        return out.float().cpu().numpy()

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | Path) -> Path:
        """Write `config.json` + `model.safetensors` (atomic)."""
        return save_model_dir(path, KIND, to_dict(self.config), dict(self.state_dict()))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> CVAEPrior:
        cfg, tensors = read_model_dir(path, KIND)
        model = cls(from_dict(PriorConfig, cfg, where=f"{path}/config.json"))
        load_strict(model, tensors, str(path))
        return model.to(device).eval()

    @classmethod
    def from_released(cls, path: str | Path, device: str = "cpu", config: PriorConfig | None = None) -> CVAEPrior:
        """Load a `torch.save`d state dict in the official layout (`steve1_prior.pt`), strictly.

        Dims are read from the tensor shapes unless `config` is given; a `_orig_mod.` prefix (a saved
        `torch.compile` wrapper) is accepted.
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"prior checkpoint {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # unpickling refusals and truncated files both land here
            raise CheckpointError(f"{path}: not a weights-only torch state dict ({type(e).__name__}: {e})") from None
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise CheckpointError(f"{path}: expected a flat state dict of tensors (the released prior layout)")
        state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
        if config is None:
            config = _infer_config(state, path)
        model = cls(config)
        load_strict(model, state, str(path))
        return model.to(device).eval()


def _infer_config(state: dict[str, Tensor], path: Path) -> PriorConfig:
    need = ("encoder.0.weight", "encoder.6.weight")
    if any(k not in state or state[k].ndim != 2 for k in need):
        raise CheckpointError(f"{path}: missing {list(need)}; not a STEVE-1 prior state dict")
    hidden, two_d = state["encoder.0.weight"].shape
    two_l = state["encoder.6.weight"].shape[0]
    if two_d % 2 or two_l % 2:
        raise CheckpointError(f"{path}: encoder shapes {tuple(state['encoder.0.weight'].shape)} are not a CVAE prior")
    return PriorConfig(input_dim=two_d // 2, hidden_dim=hidden, latent_dim=two_l // 2)


def load_prior(path: str | Path, device: str = "cpu") -> CVAEPrior:
    """A prior from a `save_pretrained` directory or a released `.pt` state dict."""
    path = Path(path)
    if path.is_dir():
        return CVAEPrior.from_pretrained(path, device=device)
    if path.is_file():
        return CVAEPrior.from_released(path, device=device)
    raise CheckpointError(f"prior {path} does not exist (pass a saved prior directory or a steve1_prior.pt file)")


def released_state_dict(model: CVAEPrior) -> dict[str, Any]:
    """The state dict exactly as the official code saves it (plain keys), e.g. to write a `.pt` for STEVE-1."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
