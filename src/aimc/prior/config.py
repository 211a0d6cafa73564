"""`PriorTrainConfig`, in a module without torch so that a pipeline config can be validated cheaply."""

from __future__ import annotations

from dataclasses import dataclass

from aimc.core.errors import ConfigError


@dataclass
class PriorTrainConfig:
    """One prior training run; defaults are STEVE-1's recipe."""

    out: str = "runs/prior"
    """Run directory (resumed when it already holds a train state)."""
    data: str = ""
    """Episode-store directory the captioned clips are cut from."""
    embedder: str = ""
    """Registered embedder name or saved embedder directory (must be the one the policy's goals came from)."""
    epochs: int = 50
    """Passes over the training pairs."""
    batch_size: int = 256
    """Pairs per AdamW step."""
    lr: float = 1e-4
    """AdamW learning rate."""
    beta: float = 1.0
    """Weight of the (summed) KL term against the (mean) MSE."""
    val_pairs: int = 200
    """Pairs held out for choosing the best epoch (capped at 20 % of the data)."""
    hidden_dim: int = 512
    """Width of the CVAE's encoder and decoder layers."""
    latent_dim: int = 512
    """Size of the CVAE's latent."""
    nothing_per_episode: int = 4
    """Event-free clips per episode, captioned with the 'nothing' paraphrases."""
    max_clips_per_task: int = 2000
    """Cap on clips per caption, so frequent events do not drown rare ones."""
    seed: int = 0
    """Seeds the clip cuts, the split, the model init and the batch order."""
    device: str = "cpu"
    """torch device for embedding the clips and training."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.beta < 0:
            raise ConfigError("prior training needs epochs >= 1, batch_size >= 1, lr > 0 and beta >= 0")
