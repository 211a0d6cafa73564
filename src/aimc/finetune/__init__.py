"""aimc.finetune: improving a trained agent with its own rollouts (`aimc train dagger`, `aimc train ppo`).

    >>> from aimc.finetune import load_dagger_config, run_dagger
    >>> run_dagger(load_dagger_config("crafter", bundle="runs/small/bundle", out="runs/dagger"))["final"]

DAgger (Ross et al. 2011): the learner plays from instruction prompts, the scripted demonstrator labels every
visited state with the instructed task's action, the labels are aggregated with the earlier data and the
policy is fine-tuned, K times. PPO (`run_ppo(load_ppo_config("ppo-crafter", bundle=..., out=...))`) trains the
policy on the tasks' success events with a KL penalty toward the starting policy. The study
(`run_study(load_study_config("study-cpu", task="collect_wood", out=...))`) compares BC, BC + DAgger and
BC + PPO from scratch and pretrained over N task demonstrations. Names are imported on first use, so the
`*config` modules need no torch.
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("DaggerConfig", "beta_at", "load_dagger_config", "valid_tasks"), "aimc.finetune.config"),
    **dict.fromkeys(("format_table", "run_dagger", "train_config"), "aimc.finetune.dagger"),
    **dict.fromkeys(("DaggerActor", "LabelHook", "RolloutJob", "RolloutSpec", "collect_rollouts", "make_jobs"),
                    "aimc.finetune.rollout"),
    **dict.fromkeys(("PPOConfig", "RewardConfig", "kl_coef_at", "load_ppo_config"), "aimc.finetune.ppo_config"),
    **dict.fromkeys(("format_ppo_table", "gae", "kl_categorical", "ppo_loss", "run_ppo"), "aimc.finetune.ppo"),
    **dict.fromkeys(("StudyConfig", "load_study_config"), "aimc.finetune.study_config"),
    "run_study": "aimc.finetune.study",
    "format_study_table": "aimc.finetune.study_report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
