"""End-to-end recipe on the embedded world: collect -> embedder -> embed -> pretrain -> goal BC -> prior -> eval."""

from aimc.pipeline.config import RECIPES, PipelineConfig, load_pipeline_config, preset_names, stage_configs
from aimc.pipeline.run import STAGES, run_pipeline

__all__ = ["RECIPES", "STAGES", "PipelineConfig", "load_pipeline_config", "preset_names", "run_pipeline", "stage_configs"]
