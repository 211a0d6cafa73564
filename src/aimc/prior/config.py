"""`PriorTrainConfig` and `AlignerConfig`, in a module without torch so that a pipeline config can be validated
cheaply."""

from __future__ import annotations

from dataclasses import dataclass, field

from aimc.core.errors import ConfigError


@dataclass(frozen=True)
class AlignerConfig:
    """Sizes of the aligner; the backbone is named, not stored."""

    backbone: str = "minilm"
    """'minilm' (the bundled all-MiniLM-L6-v2) or a local Hugging Face AutoModel directory."""
    out_dim: int = 256
    """Goal width (the policy's goal dimension; training sets it from the pairs' goal width)."""
    n_queries: int = 8
    """Learnable query tokens that read the language model's hidden states."""
    width: int = 256
    """Width of the query tokens and the refiner."""
    layers: int = 2
    """Refiner layers (self-attention over the queries, cross-attention to the hidden states, MLP)."""
    heads: int = 4
    """Attention heads of the refiner."""
    max_tokens: int = 48
    """Instructions are cut to this many tokens."""
    lora_rank: int = 0
    """> 0: train LoRA adapters of this rank on the backbone (peft); 0 keeps it frozen."""
    lora_alpha: int = 16
    """LoRA scaling numerator (peft's `lora_alpha`)."""
    load_in_4bit: bool = False
    """Load the backbone in 4 bits (bitsandbytes; a CUDA GPU)."""

    def __post_init__(self) -> None:
        if min(self.out_dim, self.n_queries, self.width, self.layers, self.heads, self.max_tokens) < 1:
            raise ConfigError(f"aligner sizes must be positive, got {self}")
        if self.width % self.heads:
            raise ConfigError(f"aligner width {self.width} must be divisible by heads {self.heads}")
        if self.lora_rank < 0:
            raise ConfigError(f"lora_rank must be >= 0, got {self.lora_rank}")


@dataclass
class PriorTrainConfig:
    """One goal-predictor training run (`aimc train prior`); the CVAE defaults are STEVE-1's recipe."""

    kind: str = "cvae"
    """'cvae' (STEVE-1's prior) or 'aligner' (note 001: language model -> queries -> goal)."""
    target: str = "visual"
    """What goals are regressed to: 'visual' (clip embeddings; policies trained on visual goals) or 'instruction'
    (the text side's embedding of the task's canonical instruction; policies trained on text goals)."""
    out: str = "runs/prior"
    """Run directory (resumed when it already holds a train state)."""
    data: str = ""
    """Episode-store directory the captioned clips are cut from."""
    task_data: list[str] = field(default_factory=list)
    """More stores whose clips join the pairs, e.g. task-mode demonstrations (`aimc collect --task`), whose
    success clips show the task done on purpose."""
    embedder: str = ""
    """Registered embedder name or saved embedder directory (must be the one the policy's goals came from)."""
    epochs: int = 50
    """Passes over the training pairs."""
    batch_size: int = 256
    """Pairs per AdamW step."""
    lr: float = 1e-4
    """AdamW learning rate."""
    beta: float = 1.0
    """CVAE: weight of the KL term against the (mean) MSE."""
    kl: str = "sum"
    """CVAE: KL 'sum' over batch and latent (STEVE-1) or 'mean' per dimension (on the MSE's scale)."""
    free_bits: float = 0.0
    """CVAE: per-dimension KL (nats, batch mean) below which it is not penalised; 0 = off."""
    val_pairs: int = 200
    """Pairs held out for choosing the best epoch (capped at 20 % of the data)."""
    hidden_dim: int = 512
    """Width of the CVAE's encoder and decoder layers."""
    latent_dim: int = 512
    """Size of the CVAE's latent."""
    aligner: AlignerConfig = field(default_factory=AlignerConfig)
    """Aligner architecture and backbone (`--set aligner.backbone=DIR`, `aligner.lora_rank=8`, ...)."""
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
        if self.kind not in ("cvae", "aligner"):
            raise ConfigError(f"prior kind must be 'cvae' or 'aligner', got {self.kind!r}")
        if self.target not in ("visual", "instruction"):
            raise ConfigError(f"prior target must be 'visual' or 'instruction', got {self.target!r}")
        if self.kl not in ("sum", "mean") or self.free_bits < 0:
            raise ConfigError(f"kl must be 'sum' or 'mean' and free_bits >= 0, got {self.kl!r}, {self.free_bits}")
