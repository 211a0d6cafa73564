"""aimc.eval: task suites, rollouts of agents and baselines, metrics and reports (`aimc eval tasks`).

    >>> from aimc.eval import EvalConfig, run_eval
    >>> run_eval(EvalConfig(checkpoint="runs/small/bundle", episodes=5, out="runs/eval"))["mean_success"]

Names are imported on first use, so `aimc.eval.config` (checked when a pipeline config loads) needs no torch.
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("BASELINES", "EvalConfig"), "aimc.eval.config"),
    **dict.fromkeys(("Condition", "build_conditions", "evaluate_suite", "run_eval", "write_outputs"), "aimc.eval.run"),
    **dict.fromkeys(("Suite", "Task", "load_suite", "parse_suite"), "aimc.eval.tasks"),
    **dict.fromkeys(("rate_summary", "specificity", "wilson_interval"), "aimc.eval.metrics"),
    **dict.fromkeys(("DemonstratorFactory", "RandomFactory", "TextAgentFactory"), "aimc.eval.baselines"),
    **dict.fromkeys(("EnvSpec", "EpisodeJob", "run_jobs"), "aimc.eval.rollout"),
    "TextAgent": "aimc.eval.agent",
    "shipped_bundle": "aimc.eval.play",
    "evaluate_priors": "aimc.eval.prior_eval",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
