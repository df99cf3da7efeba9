"""Odyssey's asset graph: every asset, check, job, schedule and sensor, and `build_definitions`,
which adds the resources of one `Settings`. Importing it reads no settings."""

from __future__ import annotations

import warnings

import dagster as dg

# Per-partition asset checks are a preview feature of Dagster 1.13; Odyssey relies on them for the
# per-ticker deployment gates, so their warning (one per check spec, on every load) tells a user
# nothing they can act on. Set before the checks are defined.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import features as feature_assets
from assets import forecasting as forecasting_assets
from assets import market as market_assets
from assets import memory as memory_assets
from assets import monitoring as monitoring_assets
from assets import portfolio as portfolio_assets
from checks import ALL_CHECKS
from jobs import ALL_JOBS, ALL_SCHEDULES
from odyssey.settings import Settings
from resources import build_resources
from sensors import ALL_SENSORS

ALL_ASSETS = dg.load_assets_from_modules([market_assets, feature_assets, memory_assets, forecasting_assets,
                                          monitoring_assets, portfolio_assets])


def build_definitions(settings: Settings, resources: dict | None = None) -> dg.Definitions:
    """Definitions for these settings (resources built from them unless given)."""
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=ALL_SENSORS,
        resources=resources or build_resources(settings),
    )

