"""Odyssey's domain library: data sources, cleaning, features, splits and metrics.

Nothing in this package imports Dagster; every formula here is testable on its own.
"""

__version__ = "0.1.0"
