"""Group `features`: the feature registry, engineered features, splits, scaling and exports."""

import dagster as dg
import pandas as pd

from assets.metadata import describe_table, line_plot, md_table
from odyssey import features as registry
from odyssey.exports import write_exports
from odyssey.scaling import apply_scaler, fit_scaler
from odyssey.splits import TARGET, make_splits
from resources.market import MarketSource
from resources.storage import Storage

GROUP = "features"

class FeatureConfig(dg.Config):
    benchmark: str = "SPY"
    regime_seed: int = 42

class SplitConfig(dg.Config):
    horizon_days: int = 5

@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"}, code_version=registry.REGISTRY_VERSION)
def feature_registry() -> dg.MaterializeResult:
    """The 94 features: name, category, formula, lookback (warm-up rows) and registry version."""
    table = registry.registry_table()
    counts = table.groupby("category").size().rename("features").reset_index()
    return dg.MaterializeResult(value=table, metadata={
        "version": registry.REGISTRY_VERSION, "features": len(table),
        "by_category": md_table(counts, rows=10), "registry": md_table(table[["name", "category", "formula", "lookback"]], rows=100),
    })

@dg.multi_asset(
    outs={
        "features": dg.AssetOut(description="94 engineered features per ticker and day (registry v1); see odyssey/features.py.",
                                kinds={"pandas", "parquet"}, code_version=registry.REGISTRY_VERSION),
        "regime_model": dg.AssetOut(description="K-means market-regime model fit on the train period (JSON).",
                                    io_manager_key="json_io_manager", kinds={"json"}),
    },
    ins={"clean_prices": dg.AssetIn(), "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
    deps=[feature_registry],
    group_name=GROUP,
)
def features(market: MarketSource, config: FeatureConfig, clean_prices: pd.DataFrame, returns: pd.DataFrame,
             clean_alt_data: pd.DataFrame):
    """Build every registry feature from data at or before each date."""
    profile = market.universe()
    result = registry.build_features(clean_prices, returns, clean_alt_data, profile.train_end,
                                     benchmark=config.benchmark, seed=config.regime_seed)
    table = result.table
    bench = table[table["ticker"] == config.benchmark]
    plot = line_plot(bench, "date", ["Price_SMA_20_ratio", "RSI_14", "Realized_Vol_20", "Regime"],
                     f"{config.benchmark}: a few features")
    yield dg.Output(table, "features", metadata={
        **describe_table(table, ["date", "ticker", "SMA_20_rel", "RSI_14", "Realized_Vol_20", "Beta_SPY_60d", "Regime"]),
        "registry_version": registry.REGISTRY_VERSION, "features": len(registry.FEATURE_NAMES), "plot": plot,
    })
    regimes = pd.DataFrame(result.regime_model["centers"], columns=result.regime_model["columns"])
    regimes.insert(0, "regime", result.regime_model["labels"])
    yield dg.Output(result.regime_model, "regime_model", metadata={
        "train_end": result.regime_model["train_end"], "centers_standardised": md_table(regimes)})

@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def dataset_splits(context: dg.AssetExecutionContext, market: MarketSource, config: SplitConfig,
                   features: pd.DataFrame, clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Features with the 5-day forward log return target and a train/validation/test label;
    rows whose target window crosses a split boundary are purged."""
    table, report = make_splits(features, clean_prices, market.universe(), config.horizon_days)
    rows = pd.DataFrame([{"split": s, "rows": n} for s, n in report["rows"].items()])
    return dg.MaterializeResult(value=table, metadata={
        **describe_table(table, ["date", "ticker", "split", TARGET, "RSI_14"]),
        "split_rows": md_table(rows), "purged_boundary_rows": report["purged_boundary_rows"],
        "dropped_no_target_rows": report["dropped_no_target_rows"], "target": TARGET,
    })

@dg.multi_asset(
    outs={
        "scaled_features": dg.AssetOut(description="Dataset with features standardised by train-only statistics.",
                                       kinds={"pandas", "parquet"}),
        "scaler_params": dg.AssetOut(description="Standard-scaler means and scales fit on train rows (JSON).",
                                     io_manager_key="json_io_manager", kinds={"json"}),
    },
    ins={"dataset_splits": dg.AssetIn()},
    group_name=GROUP,
)
def scaled_features(dataset_splits: pd.DataFrame):
    """Fit a StandardScaler on train rows only and apply it to every split."""
    params = fit_scaler(dataset_splits, registry.FEATURE_NAMES, registry.REGISTRY_VERSION)
    table = apply_scaler(dataset_splits, params)
    yield dg.Output(table, "scaled_features", metadata=describe_table(table, ["date", "ticker", "split", TARGET, "RSI_14"]))
    stats = pd.DataFrame([{"feature": k, **v} for k, v in params["features"].items()])
    yield dg.Output(params, "scaler_params", metadata={"train_rows": params["train_rows"], "train_end": params["train_end"],
                                                        "params": md_table(stats, rows=100, digits=6)})

@dg.asset(group_name=GROUP, kinds={"parquet", "json"}, io_manager_key="json_io_manager")
def feature_exports(storage: Storage, scaled_features: pd.DataFrame, scaler_params: dict) -> dg.MaterializeResult:
    """ML-ready per-ticker and global Parquet files (zstd) with a manifest of SHA-256 hashes."""
    root = storage.path("exports")
    manifest = write_exports(scaled_features, root, registry.FEATURE_NAMES, registry.REGISTRY_VERSION, scaler_params)
    files = pd.DataFrame(manifest["files"])[["path", "rows", "bytes", "sha256"]]
    return dg.MaterializeResult(value=manifest, metadata={
        "root": dg.MetadataValue.path(str(root)), "manifest": dg.MetadataValue.path(str(root / "manifest.json")),
        "files": len(files), "total_bytes": int(files["bytes"].sum()),
        "global_files": md_table(files[files["path"].str.startswith("global/")]),
    })
