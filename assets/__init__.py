"""Dagster assets, one module per group; thin wrappers around the odyssey library."""
