"""aimc.embed stage."""
