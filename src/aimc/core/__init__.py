"""Shared building blocks every pipeline stage may import: errors, registries, config, atomic I/O, seeding."""
