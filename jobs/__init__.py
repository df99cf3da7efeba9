"""Jobs: the whole graph, and the market + features part."""

import dagster as dg

main_job = dg.define_asset_job(
    "odyssey_main",
    selection=dg.AssetSelection.all(),
    description="Materialize the whole Odyssey graph (the README's main command runs this).",
)
market_features_job = dg.define_asset_job(
    "market_features",
    selection=dg.AssetSelection.groups("market", "features", "monitoring"),
    description="Load, clean, engineer, split, scale and export market features.",
)

ALL_JOBS = [main_job, market_features_job]
