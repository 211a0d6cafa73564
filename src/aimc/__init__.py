"""aimc: text-to-behaviour agents for Minecraft-like worlds (VPT + MineCLIP + STEVE-1 recipe)."""

__version__ = "0.1.0"
