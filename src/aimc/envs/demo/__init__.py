"""Scripted Crafter demonstrator: free-play data collection and task-mode labelling (see docs/demonstrator.md)."""

from aimc.envs.demo.agent import CrafterDemonstrator
from aimc.envs.demo.config import DEFAULT_CATALOGUE, DemonstratorConfig
from aimc.envs.demo.planner import EXPLORE, TASKS

__all__ = ["DEFAULT_CATALOGUE", "EXPLORE", "TASKS", "CrafterDemonstrator", "DemonstratorConfig"]
