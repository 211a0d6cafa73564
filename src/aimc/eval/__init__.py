"""aimc.eval stage."""
