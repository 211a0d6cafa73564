"""Pipeline config: one section per stage, each a partial override of that stage's own config class.

Every section is turned into its stage's config (`stage_configs`) as soon as a `PipelineConfig` is made, so a
wrong key in any section fails when the pipeline config loads, naming the section, the key and the valid keys,
before the first stage runs. The stage config classes live in modules without torch, so this costs well
under a second. Sections stay plain dicts: they are what the stage fingerprints hash (docs/pipeline.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimc.core.config import build_config, deep_merge, from_dict, load_yaml, to_dict
from aimc.core.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from aimc.data.collect import CollectConfig
    from aimc.embed.config import EmbedderTrainConfig
    from aimc.eval.config import EvalConfig
    from aimc.finetune.ppo_config import PPOConfig
    from aimc.prior.config import PriorTrainConfig
    from aimc.train.config import TrainConfig

PRESET_DIR = Path(__file__).parent / "presets"

# recipe -> its stages in order (every stage's runner lives in aimc.pipeline.run)
RECIPES: dict[str, tuple[str, ...]] = {
    "steve1": ("collect", "embedder", "embed", "pretrain", "goal", "prior", "bundle", "eval"),
    "instruct": ("collect", "embedder", "goal", "bundle", "eval"),
    "instruct-ppo": ("collect", "embedder", "goal", "bundle", "ppo", "polish", "finish", "distill", "eval"),
}
ALL_STAGES: tuple[str, ...] = ("collect", "embedder", "embed", "pretrain", "goal", "prior", "bundle", "ppo", "polish",
                               "finish", "distill", "eval")
"""Every stage of any recipe, in the order they run."""
OPTIONAL: dict[str, str] = {"polish": "polish", "finish": "finish", "distill": "distill"}
"""Stages that run only when their section is not empty (stage -> section): without one, the recipe, and every
fingerprint, is what it was before the stage existed."""


def recipe_stages(cfg: PipelineConfig) -> tuple[str, ...]:
    """The stages this config runs: its recipe's, less the optional ones whose section is empty."""
    return tuple(s for s in RECIPES[cfg.recipe] if s not in OPTIONAL or getattr(cfg, OPTIONAL[s]))


@dataclass
class PipelineConfig:
    """The whole recipe; sections hold overrides for each stage's config (see docs/pipeline.md)."""

    out: str = "runs/crafter-small"
    """Run directory: data/, embedder/, pretrain/, goal/, prior/, bundle/, eval/, stages/, summary.json."""
    recipe: str = "steve1"
    """Which stages make the agent (`RECIPES`). "steve1": visual hindsight goals after unconditional pretraining,
    text through the CVAE prior. "instruct": text goals read directly (the `instruct` training preset: the
    demonstrator's recorded intentions, DART labels), trained from scratch; no embed, pretrain or prior stage.
    "instruct-ppo": the instruct recipe, then PPO with a KL anchor on the suite tasks' success events
    (`aimc train ppo`), evaluated after PPO."""
    seed: int = 0
    """Seed for every stage (each derives its own)."""
    workers: int = 2
    """Worker processes for collection and evaluation."""
    device: str = "cpu"
    """torch device for training and evaluation ('cuda' on a GPU machine)."""
    embed_name: str = "videotext"
    """Name of the per-episode goal embeddings (embeds_<name>.npy)."""
    collect: dict[str, Any] = field(default_factory=lambda: {"episodes": 100, "max_steps": 1000})
    """aimc.data.collect.CollectConfig fields (agent is the demonstrator; `out` is the pipeline's)."""
    embedder: dict[str, Any] = field(default_factory=lambda: {"steps": 600})
    """aimc.embed.config.EmbedderTrainConfig fields (`data` and `out` are the pipeline's)."""
    pretrain: dict[str, Any] = field(default_factory=dict)
    """aimc.train.TrainConfig fields over the `pretrain` preset (unconditional BC)."""
    goal: dict[str, Any] = field(default_factory=dict)
    """aimc.train.TrainConfig fields over the goal stage's training preset (`goal_preset`)."""
    goal_preset: str | None = None
    """Training preset the goal stage starts from (aimc.train presets): None = `goal` for the steve1 recipe
    (initialised from pretrain), `instruct` for the instruct recipe; e.g. `instruct-lstm` for the LSTM policy."""
    prior: dict[str, Any] = field(default_factory=lambda: {"epochs": 50})
    """aimc.prior.config.PriorTrainConfig fields (`data`, `embedder` and `out` are the pipeline's)."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """aimc.finetune.PPOConfig fields over `ppo_preset` (`bundle` and `out` are the pipeline's), instruct-ppo only."""
    ppo_preset: str = "ppo-crafter"
    """PPO preset the ppo stage starts from (aimc.finetune presets `ppo-*`)."""
    polish: dict[str, Any] = field(default_factory=dict)
    """instruct-ppo only, optional (empty = no such stage): a second PPO run from ppo/bundle into polish/, anchored
    to that agent, with an auxiliary BC loss on the pipeline's own demonstrations at every optimiser step (the
    shipped agent's last stages, docs/results.md). PPOConfig fields over the ppo stage's resolved settings (so the
    planner, rewards, task weights and threads carry over); `iterations` must be given; `seed` is the pipeline's
    + 1 (other worlds than ppo's); `bc` defaults to coef 0.6, 4 segments per step, `data` = the pipeline's data,
    cut as the goal stage cut it (its preset, its `segment` and `trunc_t` settings) with p_uncond 0."""
    finish: dict[str, Any] = field(default_factory=dict)
    """instruct-ppo with a polish stage only, optional (empty = no such stage): a third PPO run from polish/bundle
    into finish/, anchored to the polished agent. PPOConfig fields over the polish stage's resolved settings (BC
    term included), so a section states only what it changes, e.g. one task weighted up for a last stretch (the
    shipped agent's rung 14e: collect_coal 24); `iterations` must be given; `seed` is the pipeline's + 2."""
    distill: dict[str, Any] = field(default_factory=dict)
    """instruct-ppo only, optional (empty = no such stage): after the last PPO stage (finish, polish or ppo), distil
    its agent into a student that reads smaller frames (`aimc train ppo --preset ppo-distill`: the agent, frozen,
    teaches on the student's own rollouts, with the task reward's surrogate) into distill/; the student is the
    recipe's agent, about twice as fast to act on a CPU. PPOConfig fields over the `ppo-distill` preset (not over
    the stage before: no anchor, no BC term), with the ppo stage's world, suite, tasks and `max_steps` (the
    preset's task weights kept for the tasks among them); `iterations` must be given; `seed` is the pipeline's + 3."""
    eval: dict[str, Any] = field(default_factory=lambda: {"episodes": 10})
    """aimc.eval.config.EvalConfig fields (`checkpoint` and `out` are the pipeline's)."""

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise UnknownNameError(f"unknown recipe {self.recipe!r}; recipes: {', '.join(RECIPES)}")
        if self.workers < 1:
            raise ConfigError(f"workers must be positive, got {self.workers}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.goal_preset is not None:
            from aimc.train.config import preset_names as train_presets

            if self.goal_preset not in train_presets():
                raise UnknownNameError(f"unknown goal_preset {self.goal_preset!r}; training presets: {', '.join(train_presets())}")
        stage_configs(self)  # a typo in any section fails now, not after the stages before it ran


class Paths:
    """Where each stage writes, under the run directory."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.data = self.root / "data"
        self.embedder_run = self.root / "embedder"
        self.embedder = self.embedder_run / "model"
        self.pretrain = self.root / "pretrain"
        self.goal = self.root / "goal"
        self.prior_run = self.root / "prior"
        self.prior = self.prior_run / "prior"
        self.bundle = self.root / "bundle"
        self.ppo = self.root / "ppo"
        self.polish = self.root / "polish"
        self.finish = self.root / "finish"
        self.distill = self.root / "distill"
        self.eval = self.root / "eval"
        self.stages = self.root / "stages"


# Keys the pipeline sets after a section is applied (paths under `out`, earlier stages' outputs): a section
# that set them would be silently overridden, so it is refused instead.
RESERVED = {"collect": ("out",), "embedder": ("data", "out"), "prior": ("data", "embedder", "out"),
            "eval": ("checkpoint", "out"), "ppo": ("bundle", "out"), "polish": ("bundle", "out"),
            "finish": ("bundle", "out"), "distill": ("bundle", "out")}


def _section(cls: type, name: str, section: dict[str, Any], before: dict[str, Any],
             after: dict[str, Any] | None = None) -> Any:
    """`cls` from pipeline values `before`, then the section, then `after`; errors name the section."""
    _check_keys(cls, name, section)
    return _named(name, lambda: from_dict(cls, {**before, **section, **(after or {})}, where=name))


def _check_keys(cls: type, name: str, section: Any) -> None:
    """A section is a mapping of `cls` fields other than the ones the pipeline sets; else one line naming both."""
    if not isinstance(section, dict):
        raise ConfigError(f"{name}: expected a mapping of {cls.__name__} fields, got {section!r}")
    reserved = RESERVED.get(name, ())
    valid = sorted(f.name for f in dataclasses.fields(cls) if f.init and f.name not in reserved)
    unknown = sorted(set(section) - set(valid) - set(reserved))
    if unknown:
        raise ConfigError(f"{name}: unknown key(s) {unknown}; valid keys: {valid}")
    taken = sorted(set(section) & set(reserved))
    if taken:
        raise ConfigError(f"{name}: {taken} cannot be set here, the pipeline sets them (paths under --out); "
                          f"valid keys: {valid}")


def _named(name: str, build: Any) -> Any:
    """Run `build()`; a config error from a stage's own checks gets the section name in front."""
    try:
        return build()
    except (ConfigError, UnknownNameError) as e:
        if str(e).startswith((f"{name}:", f"{name}.")):  # from_dict already named it
            raise
        raise type(e)(f"{name}: {e}") from None


def collect_config(cfg: PipelineConfig, p: Paths) -> CollectConfig:
    from aimc.data.collect import CollectConfig

    return _section(CollectConfig, "collect", cfg.collect,
                    {"agent": "demonstrator", "workers": cfg.workers, "seed": cfg.seed},
                    {"out": str(p.data)})


def embedder_config(cfg: PipelineConfig, p: Paths) -> EmbedderTrainConfig:
    from aimc.embed.config import EmbedderTrainConfig

    return _section(EmbedderTrainConfig, "embedder", cfg.embedder, {"seed": cfg.seed, "device": cfg.device},
                    {"data": str(p.data), "out": str(p.embedder_run)})


def train_config(cfg: PipelineConfig, p: Paths, stage: str) -> TrainConfig:
    """The `pretrain` or `goal` section over the training preset of the same name (for the goal stage of the
    "instruct" recipe: the `instruct` preset, from scratch, text goals from the pipeline's embedder)."""
    from aimc.train.config import PRESET_DIR as TRAIN_PRESETS
    from aimc.train.config import TrainConfig

    section = cfg.pretrain if stage == "pretrain" else cfg.goal
    if not isinstance(section, dict):
        raise ConfigError(f"{stage}: expected a mapping of TrainConfig fields, got {section!r}")
    values: dict[str, Any] = {"seed": cfg.seed, "data": [{"path": str(p.data), "weight": 1.0}],
                              "out": str(p.pretrain if stage == "pretrain" else p.goal)}
    preset = stage if stage == "pretrain" else cfg.goal_preset or ("instruct" if cfg.recipe != "steve1" else "goal")
    if stage == "goal" and cfg.recipe != "steve1":  # instruct, instruct-ppo: text goals from scratch
        values["embedder"] = str(p.embedder)
    elif stage == "goal":
        values.update(init_from=str(p.pretrain / "best"), embedder=str(p.embedder))
        values["segment"] = {"embed_name": cfg.embed_name}
    if cfg.device != "cpu":
        values["mixed_precision"] = "bf16"
    merged = deep_merge(load_yaml(TRAIN_PRESETS / f"{preset}.yaml"), deep_merge(values, section))
    return _named(stage, lambda: from_dict(TrainConfig, merged, where=stage))


def prior_config(cfg: PipelineConfig, p: Paths) -> PriorTrainConfig:
    from aimc.prior.config import PriorTrainConfig

    return _section(PriorTrainConfig, "prior", cfg.prior, {"seed": cfg.seed, "device": cfg.device},
                    {"data": str(p.data), "embedder": str(p.embedder), "out": str(p.prior_run)})


def ppo_config(cfg: PipelineConfig, p: Paths) -> PPOConfig:
    """The `ppo` section over `ppo_preset`: PPO from the pipeline's bundle into ppo/ (its bundle is ppo/bundle)."""
    from aimc.finetune.ppo_config import PRESET_DIR as PPO_PRESETS
    from aimc.finetune.ppo_config import PPOConfig, preset_names

    if cfg.ppo_preset not in preset_names():
        raise UnknownNameError(f"unknown ppo_preset {cfg.ppo_preset!r}; PPO presets: {', '.join(preset_names())}")
    preset = load_yaml(PPO_PRESETS / f"{cfg.ppo_preset}.yaml")
    return _section(PPOConfig, "ppo", cfg.ppo, {**preset, "seed": cfg.seed, "device": cfg.device},
                    {"bundle": str(p.bundle), "out": str(p.ppo)})


def polish_config(cfg: PipelineConfig, p: Paths) -> PPOConfig:
    """The `polish` section over the ppo stage's settings: PPO from ppo/bundle into polish/, with the BC term on the
    pipeline's demonstrations (see `PipelineConfig.polish`)."""
    import json

    from aimc.finetune.ppo_config import PPOConfig

    section = cfg.polish
    _check_keys(PPOConfig, "polish", section)
    if "iterations" not in section:
        raise ConfigError("polish: set iterations (how many PPO iterations the polish stage runs on top of ppo's)")
    ppo = dict(to_dict(ppo_config(cfg, p)))
    goal = cfg.goal if isinstance(cfg.goal, dict) else {}
    carried = [f"segment.{k}={json.dumps(v)}" for k, v in (goal.get("segment") or {}).items()]
    carried += [f"trunc_t={json.dumps(goal['trunc_t'])}"] if "trunc_t" in goal else []
    bc = {"coef": 0.6, "segments": 4, "data": [str(p.data)], "preset": cfg.goal_preset or "instruct",
          "overrides": [*carried, "segment.p_uncond=0.0"]}
    before = deep_merge({k: v for k, v in ppo.items() if k not in ("bundle", "out")},
                        {"seed": cfg.seed + 1, "bc": bc})
    merged = deep_merge(before, section)
    return _named("polish", lambda: from_dict(PPOConfig, {**merged, "bundle": str(p.ppo / "bundle"),
                                                         "out": str(p.polish)}, where="polish"))


def finish_config(cfg: PipelineConfig, p: Paths) -> PPOConfig:
    """The `finish` section over the polish stage's settings: PPO from polish/bundle into finish/ (see
    `PipelineConfig.finish`)."""
    from aimc.finetune.ppo_config import PPOConfig

    section = cfg.finish
    _check_keys(PPOConfig, "finish", section)
    if not cfg.polish:
        raise ConfigError("finish: the finish stage continues the polish stage's agent; add a polish: section "
                          "(with its iterations) or drop finish:")
    if "iterations" not in section:
        raise ConfigError("finish: set iterations (how many PPO iterations the finish stage runs on top of polish's)")
    polish = dict(to_dict(polish_config(cfg, p)))
    before = {**{k: v for k, v in polish.items() if k not in ("bundle", "out", "iterations")}, "seed": cfg.seed + 2}
    merged = deep_merge(before, section)
    return _named("finish", lambda: from_dict(PPOConfig, {**merged, "bundle": str(p.polish / "bundle"),
                                                         "out": str(p.finish)}, where="finish"))


def distill_config(cfg: PipelineConfig, p: Paths) -> PPOConfig:
    """The `distill` section over the `ppo-distill` preset: the last PPO stage's agent distilled into distill/ (see
    `PipelineConfig.distill`)."""
    from aimc.finetune.ppo_config import PRESET_DIR as PPO_PRESETS
    from aimc.finetune.ppo_config import PPOConfig

    section = cfg.distill
    _check_keys(PPOConfig, "distill", section)
    if "iterations" not in section:
        raise ConfigError("distill: set iterations (how many iterations the student is distilled for; the "
                          "ppo-distill preset runs 300)")
    preset = load_yaml(PPO_PRESETS / "ppo-distill.yaml")
    # the student plays where its teacher was trained: the ppo stage's world, suite, tasks and episode length
    ppo = to_dict(ppo_config(cfg, p))
    carried = {k: ppo[k] for k in ("world", "world_config", "suite", "tasks", "max_steps")}
    weights = {t: w for t, w in preset.get("task_weights", {}).items() if t in carried["tasks"]}
    return _section(PPOConfig, "distill", section,
                    {**preset, **carried, "task_weights": weights, "seed": cfg.seed + 3, "device": cfg.device},
                    {"bundle": str(final_bundle(cfg, p, before="distill")), "out": str(p.distill)})


def final_bundle(cfg: PipelineConfig, p: Paths, before: str | None = None) -> Path:
    """The agent the recipe ends with (or the last one made before stage `before`): the last PPO stage's bundle
    (distill, finish, polish, ppo), else the BC bundle."""
    stages = recipe_stages(cfg)
    made = (("distill", p.distill), ("finish", p.finish), ("polish", p.polish), ("ppo", p.ppo))
    if before is not None:
        made = made[[s for s, _ in made].index(before) + 1:]
    for stage, path in made:
        if stage in stages:
            return path / "bundle"
    return p.bundle


def eval_config(cfg: PipelineConfig, p: Paths) -> EvalConfig:
    from aimc.eval.config import EvalConfig
    from aimc.eval.tasks import load_suite

    ec = _section(EvalConfig, "eval", cfg.eval, {"workers": cfg.workers, "seed": cfg.seed, "device": cfg.device},
                  {"checkpoint": str(final_bundle(cfg, p)), "out": str(p.eval)})
    _named("eval", lambda: load_suite(ec.suite).select(ec.tasks))  # a wrong suite or task name fails now too
    return ec


def stage_configs(cfg: PipelineConfig) -> dict[str, Any]:
    """Every stage's resolved config, keyed by stage (the embed and bundle stages have none); only the
    recipe's stages (a section of a stage the recipe skips is not read)."""
    p = Paths(cfg.out)
    builders = {"collect": lambda: collect_config(cfg, p), "embedder": lambda: embedder_config(cfg, p),
                "pretrain": lambda: train_config(cfg, p, "pretrain"), "goal": lambda: train_config(cfg, p, "goal"),
                "prior": lambda: prior_config(cfg, p), "ppo": lambda: ppo_config(cfg, p),
                "polish": lambda: polish_config(cfg, p), "finish": lambda: finish_config(cfg, p),
                "distill": lambda: distill_config(cfg, p),
                "eval": lambda: eval_config(cfg, p)}
    for stage, section in OPTIONAL.items():
        if getattr(cfg, section) and stage not in RECIPES[cfg.recipe]:
            raise ConfigError(f"{section}: the {cfg.recipe} recipe has no {stage} stage; it needs recipe: "
                              + " or ".join(r for r, st in RECIPES.items() if stage in st))
    return {stage: builders[stage]() for stage in recipe_stages(cfg) if stage in builders}


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _preset_layers(preset: str, chain: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A preset's YAML, after the presets it names as `base:` (each a partial override of its base), so a longer
    variant of a recipe states only what it changes and keeps every other setting, and so every fingerprint,
    of the recipe it extends (e.g. `crafter-instruct-chain-long`: more PPO iterations on `crafter-instruct-chain`)."""
    path = Path(preset) if preset.endswith((".yaml", ".yml")) else PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise UnknownNameError(f"unknown pipeline preset {preset!r}; available: {', '.join(preset_names())}")
    data = dict(load_yaml(path) or {})
    base = data.pop("base", None)
    if base is None:
        return [data]
    if not isinstance(base, str) or base in (*chain, preset):
        raise ConfigError(f"pipeline preset {preset!r}: base must name another preset, not {base!r} "
                          f"(presets read so far: {', '.join((*chain, preset))})")
    return [*_preset_layers(base, (*chain, preset)), data]


def load_pipeline_config(preset: str | None, overrides: list[str] | None = None, **fields: Any) -> PipelineConfig:
    """Defaults <- preset YAML (after its `base:` presets) <- CLI fields <- `key=value` overrides."""
    layers: list[Any] = _preset_layers(preset) if preset is not None else []
    layers.append({k: v for k, v in fields.items() if v is not None})
    return build_config(PipelineConfig, *layers, overrides=overrides)
