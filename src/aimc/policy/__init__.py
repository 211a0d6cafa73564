"""aimc.policy stage."""
