"""aimc.prior: the STEVE-1 CVAE text->goal prior (`load_prior(path).sample(text_emb, seed)`)."""

from aimc.prior.cvae import CVAEPrior, PriorConfig, load_prior

__all__ = ["CVAEPrior", "PriorConfig", "load_prior"]
