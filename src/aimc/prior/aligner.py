"""Design note 001's goal predictor: a frozen language model's hidden states -> learnable query tokens refined by a
transformer -> pooled -> the policy's goal space, trained with MSE + 0.1 x (1 - cosine).

Why not the CVAE: a text-conditioned VAE has to model the whole spread of clip embeddings of a task and, with
STEVE-1's loss weights, collapses; the aligner regresses the task's mean goal directly from a stronger reader of the
instruction. The language model stays frozen (its hidden states are computed once per distinct instruction while
training); LoRA adapters (peft) and 4-bit loading (bitsandbytes, GPU) are options for larger backbones.

`backbone` is any local Hugging Face `AutoModel` directory, or "minilm": the sentence-transformer that ships with
aimc, so the default needs no download. Saved: `config.json` (type "aligner") + `model.safetensors` holding the
trainable weights only (queries, refiner, head, LoRA adapters if any); the backbone is loaded from `backbone`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aimc.core.checkpoint import read_model_dir, save_model_dir
from aimc.core.config import from_dict, to_dict
from aimc.core.errors import AimcError, CheckpointError
from aimc.prior.base import GoalPredictor
from aimc.prior.config import AlignerConfig

KIND = "aligner"


def backbone_path(name: str) -> Path:
    """'minilm' -> the bundled model directory; anything else must be a local directory."""
    from aimc.embed.config import BUNDLED

    if name == BUNDLED:
        from aimc.embed.text import resolve_text_model

        return resolve_text_model(name)
    path = Path(name)
    if not path.is_dir():
        raise AimcError(f"language model {name!r} does not exist: give a local Hugging Face model directory or 'minilm'")
    return path


def load_backbone(name: str, load_in_4bit: bool = False, device: str = "cpu") -> tuple[nn.Module, Any]:
    """(model, tokenizer) from a local directory, offline; anything that is not a text model is one clear error."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from aimc.embed.text import offline_load

    path = backbone_path(name)
    with offline_load():
        try:
            AutoConfig.from_pretrained(str(path))
        except (OSError, ValueError, KeyError) as e:
            raise AimcError(f"{name!r} is not a Hugging Face model directory ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        kwargs: dict[str, Any] = {}
        if load_in_4bit:
            kwargs["quantization_config"] = _four_bit()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModel.from_pretrained(str(path), **kwargs)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise AimcError(f"{name!r} is not a language model with a tokenizer ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not hasattr(model, "get_input_embeddings") or model.get_input_embeddings() is None:
        raise AimcError(f"{name!r} is not a language model (it has no token embeddings)")
    if tokenizer.pad_token is None:  # decoder-only models: pad with EOS, masked out anyway
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if not load_in_4bit:
        model = model.to(device)
    return model.eval(), tokenizer


def _four_bit() -> Any:
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise AimcError("load_in_4bit needs bitsandbytes and a CUDA GPU (pip install bitsandbytes)") from None
    if not torch.cuda.is_available():
        raise AimcError("load_in_4bit needs a CUDA GPU; this machine has none (set load_in_4bit false)")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4")


def _add_lora(model: nn.Module, rank: int, alpha: int) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise AimcError("lora_rank > 0 needs peft (pip install 'aimc[lm]' or pip install peft)") from None
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", lora_dropout=0.0))


def hidden_size(model: nn.Module) -> int:
    cfg = model.config
    for name in ("hidden_size", "d_model", "n_embd", "dim"):
        if isinstance(getattr(cfg, name, None), int):
            return int(getattr(cfg, name))
    raise AimcError(f"cannot tell the hidden size of language model {type(model).__name__}")


class Aligner(GoalPredictor):
    """LM hidden states -> `n_queries` learnable tokens (transformer decoder over the states) -> mean -> goal."""

    kind = KIND

    def __init__(self, config: AlignerConfig | None = None, device: str = "cpu", backbone: tuple[nn.Module, Any] | None = None) -> None:
        super().__init__()
        self.config = c = config or AlignerConfig()
        lm, self.tokenizer = backbone or load_backbone(c.backbone, c.load_in_4bit, device)
        for p in lm.parameters():
            p.requires_grad_(False)
        if c.lora_rank:
            lm = _add_lora(lm, c.lora_rank, c.lora_alpha)
        self.lm = lm
        self.in_proj = nn.Linear(hidden_size(lm), c.width)
        self.queries = nn.Parameter(0.02 * torch.randn(c.n_queries, c.width))
        layer = nn.TransformerDecoderLayer(c.width, c.heads, 2 * c.width, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.refiner = nn.TransformerDecoder(layer, c.layers)
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.out_dim)
        self.to(device)

    @property
    def dim(self) -> int:
        return self.config.out_dim

    def train(self, mode: bool = True) -> Aligner:
        """A frozen backbone stays in eval mode (no dropout), so cached hidden states equal live ones."""
        super().train(mode)
        if not self.config.lora_rank:
            self.lm.eval()
        return self

    # ------------------------------------------------------------------------------ forward
    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.config.max_tokens, return_tensors="pt")
        dev = self.in_proj.weight.device
        return {"input_ids": enc["input_ids"].to(dev), "attention_mask": enc["attention_mask"].to(dev)}

    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, T) ids -> (B, T, H) last hidden states (no graph when the backbone is frozen)."""
        ctx = torch.no_grad() if not self.config.lora_rank else contextlib.nullcontext()
        with ctx:
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state.float()

    def refine(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, T, H) hidden states + (B, T) mask -> (B, out_dim) goals."""
        memory = self.in_proj(states)
        q = self.queries.unsqueeze(0).expand(states.shape[0], -1, -1)
        x = self.refiner(q, memory, memory_key_padding_mask=attention_mask == 0)
        return self.head(self.norm(x.mean(dim=1)))

    def _predict(self, texts: list[str], generator: torch.Generator, deterministic: bool) -> Tensor:
        tok = self.tokenize(texts)
        return self.refine(self.hidden_states(**tok), tok["attention_mask"])

    # ------------------------------------------------------------------------------ training
    def training_inputs(self, pairs: dict[str, np.ndarray], target: np.ndarray) -> dict[str, Tensor]:
        """Distinct instructions are tokenised (and, with a frozen backbone, read by it) once; rows index them."""
        if "phrase" not in pairs:
            raise AimcError("these pairs have no instruction strings (built by an older version); rebuild them")
        phrases = [str(p) for p in pairs["phrase"]]
        unique = sorted(set(phrases))
        where = {p: i for i, p in enumerate(unique)}
        tok = self.tokenize(unique)
        dev = self.in_proj.weight.device
        inputs = {"row": torch.tensor([where[p] for p in phrases], device=dev),
                  "target": torch.from_numpy(np.asarray(target, np.float32)).to(dev)}
        self._table = dict(tok)
        if not self.config.lora_rank:
            self._table["states"] = self.hidden_states(**tok)
        return inputs

    def loss(self, batch: dict[str, Tensor], settings: Any, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Note 001's loss: MSE + 0.1 x (1 - cosine) against the target goal."""
        rows = batch["row"]
        mask = self._table["attention_mask"][rows]
        states = self._table["states"][rows] if "states" in self._table else self.hidden_states(self._table["input_ids"][rows], mask)
        pred = self.refine(states, mask)
        mse = nn.functional.mse_loss(pred, batch["target"])
        cos = nn.functional.cosine_similarity(pred, batch["target"], dim=-1).mean()
        return {"loss": mse + 0.1 * (1 - cos), "mse": mse, "cos": cos}

    # ------------------------------------------------------------------------------ persistence
    def trainable_state(self) -> dict[str, Tensor]:
        """The weights `save_pretrained` writes: everything but the frozen backbone (LoRA adapters included)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if k in names}

    def save_pretrained(self, path: str | Path) -> Path:
        return save_model_dir(path, KIND, to_dict(self.config), self.trainable_state())

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> Aligner:
        cfg, tensors = read_model_dir(path, KIND)
        model = cls(from_dict(AlignerConfig, cfg, where=f"{path}/config.json"), device=device)
        _load_subset(model, set(model.trainable_state()), tensors, str(path))
        return model.eval()


def _load_subset(model: nn.Module, keys: set[str], tensors: dict[str, Tensor], where: str) -> None:
    """Strict loading of the trainable subset: missing, unexpected and mis-shaped keys are named."""
    full = model.state_dict()
    missing = sorted(keys - tensors.keys())
    unexpected = sorted(tensors.keys() - keys)
    shapes = sorted(k for k in keys & tensors.keys() if tuple(tensors[k].shape) != tuple(full[k].shape))
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                 f"shape mismatch {[(k, tuple(tensors[k].shape), tuple(full[k].shape)) for k in shapes[:5]]}" if shapes else ""]
        raise CheckpointError(f"{where}: aligner weights do not fit this backbone/config: {'; '.join(p for p in parts if p)}")
    model.load_state_dict({**full, **{k: tensors[k] for k in keys}}, strict=True)
