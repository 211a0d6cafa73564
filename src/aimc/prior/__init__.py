"""aimc.prior: text -> goal predictors behind one interface (`aimc.prior.base`): STEVE-1's CVAE prior
(`load_prior(path).sample(text_emb, seed)`), note 001's language-model aligner, the registry that loads either
(`load_predictor(path, text_encoder=...).sample(texts, seed)`), and their training (`aimc train prior --kind`).

Names are imported on first use, so `aimc.prior.config` (checked when a pipeline config loads) needs no torch.
"""

from aimc.core.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("CVAEPrior", "PriorConfig", "load_prior"), "aimc.prior.cvae"),
    "PriorTrainConfig": "aimc.prior.config",
    **dict.fromkeys(("build_pairs", "build_predictor", "train_prior"), "aimc.prior.train"),
    **dict.fromkeys(("GoalPredictor", "TextSide", "load_predictor", "predictor_type", "check_goal_dim"), "aimc.prior.base"),
    "Aligner": "aimc.prior.aligner",
    "AlignerConfig": "aimc.prior.config",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
