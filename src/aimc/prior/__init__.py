"""aimc.prior stage."""
