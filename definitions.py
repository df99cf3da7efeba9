"""The one Dagster Definitions object: every asset, check, job, sensor and resource of Odyssey."""

from __future__ import annotations

import dagster as dg

from assets import features as feature_assets
from assets import forecasting as forecasting_assets
from assets import market as market_assets
from assets import monitoring as monitoring_assets
from assets import portfolio as portfolio_assets
from checks import ALL_CHECKS
from jobs import ALL_JOBS, ALL_SCHEDULES
from resources import build_resources
from sensors import ALL_SENSORS

ALL_ASSETS = dg.load_assets_from_modules([market_assets, feature_assets, forecasting_assets, monitoring_assets,
                                             portfolio_assets])


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """Definitions with the given resources (tests) or the environment's (default)."""
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=ALL_SENSORS,
        resources=resources or build_resources(),
    )


defs = build_definitions()
