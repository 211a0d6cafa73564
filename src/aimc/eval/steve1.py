"""The released STEVE-1 as one agent bundle: `aimc convert steve1` (the exact setup STEVE-1's `run_agent.py` runs).

STEVE-1 acts with three released pieces, and `aimc play` / `aimc eval tasks` take one bundle directory, so this
converts each piece the way its own converter does and writes them side by side with a `bundle.json`:

| piece | released file | converted by | bundle member |
|---|---|---|---|
| policy (VPT 2x + goal layer) | `2x.model` + `steve1.weights` | `load_official` (`aimc convert vpt`) | `policy/` |
| goal embedder | MineCLIP `attn.pth` | `convert_mineclip` (`aimc convert mineclip`) | `embedder/` |
| text -> goal prior | `steve1_prior.pt` | `CVAEPrior.from_released` | `prior/` |

and the settings `run_agent.py` uses for text prompts: guidance scale 6.0 (`--text_cond_scale`), goals = the prior's
sample from MineCLIP's text embedding, held for the whole episode, and a world whose frames are the game's
640x360 squashed to the policy's 128x128 with `INTER_LINEAR` (`world: minecraft`, `world_config: {size, backend}`).
A converted MineCLIP or prior directory is accepted in place of the released file. The pieces must agree on the
goal width (512 for the release); anything else is refused with one line, and nothing is left half-written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from aimc.core.errors import CheckpointError
from aimc.core.io import atomic_dir

STEVE1_COND_SCALE = 6.0
"""`run_agent.py --text_cond_scale` (visual prompts use 7.0: `aimc play --visual-goal ... --cond-scale 7`)."""
STEVE1_EMBED_NAME = "attn"
"""The goal embeddings STEVE-1 trained on (`embeds_attn.pkl`: MineCLIP attn)."""


def convert_steve1(
    model: str | Path, weights: str | Path, mineclip: str | Path, prior: str | Path, out: str | Path, *,
    backend: str = "minestudio", cond_scale: float = STEVE1_COND_SCALE, mineclip_options: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the STEVE-1 agent bundle `out` from the released files; returns a summary for the CLI to print."""
    from aimc.embed.base import make_embedder
    from aimc.embed.mineclip import convert_mineclip
    from aimc.envs.minecraft.world import MinecraftConfig
    from aimc.policy.vpt.load import load_official, save_pretrained
    from aimc.prior import load_prior
    from aimc.train.bundle import AgentBundle

    MinecraftConfig(backend=backend)  # an unknown backend fails before anything is converted
    mineclip, prior = Path(mineclip), Path(prior)
    with atomic_dir(out, overwrite=overwrite) as tmp:  # refuses an existing `out` before the slow loading
        policy = load_official(model, weights)
        cfg = policy.config
        if cfg.action_head != "vpt" or not cfg.goal_dim:
            raise CheckpointError(f"{weights}: not a STEVE-1 policy (needs VPT's buttons/camera heads and a goal "
                                  f"input; got action_head={cfg.action_head!r}, goal_dim={cfg.goal_dim})")
        summary: dict[str, Any] = {"out": str(out), "parameters": policy.num_parameters(), "goal_dim": cfg.goal_dim}
        save_pretrained(policy, tmp / "policy", source={"model": Path(model).name, "weights": Path(weights).name,
                                                         "converted_by": "aimc convert steve1"})
        if mineclip.is_dir():
            shutil.copytree(mineclip, tmp / "embedder")
            summary["mineclip_md5"] = None
        else:
            s = convert_mineclip(mineclip, tmp / "embedder", **(mineclip_options or {}))
            summary["mineclip_md5"] = "matches the official release" if s["official_md5"] else "differs from the official release"
        embed_dim = make_embedder(tmp / "embedder").dim
        if embed_dim != cfg.goal_dim:
            raise CheckpointError(f"{mineclip}: MineCLIP gives {embed_dim}-d embeddings but the policy takes "
                                  f"{cfg.goal_dim}-d goals; use the MineCLIP the policy was trained with")
        text_to_goal = load_prior(prior)
        if text_to_goal.dim != cfg.goal_dim:
            raise CheckpointError(f"{prior}: the prior maps {text_to_goal.dim}-d embeddings, the policy takes "
                                  f"{cfg.goal_dim}-d goals")
        text_to_goal.save_pretrained(tmp / "prior")
        bundle = AgentBundle(
            policy="policy", embedder="embedder", embed_name=STEVE1_EMBED_NAME, prior="prior",
            cond_scale=float(cond_scale), world="minecraft",
            world_config={"backend": backend, "size": [int(cfg.img_shape[0]), int(cfg.img_shape[1])]})
        bundle.write(tmp)
    summary["bundle"] = bundle.to_dict()
    return summary
