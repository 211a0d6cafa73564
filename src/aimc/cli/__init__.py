"""Thin typer CLI: each command builds a config, calls one library function and prints a summary."""
