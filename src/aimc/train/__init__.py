"""aimc.train stage."""
