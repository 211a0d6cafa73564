"""aimc.data stage."""
