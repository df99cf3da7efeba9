"""Group `features`: the feature registry, engineered features, splits, scaling and exports.

The data layer fits the feature pipeline (clip thresholds, regime model) on the train split and
the scaler on the train rows; the walk-forward and the models fit their own (odyssey/fitting.py).
"""

import json

import dagster as dg
import pandas as pd

from odyssey import features as registry
from odyssey.exports import write_exports
from odyssey.fitting import Scaler, feature_pipeline, market_inputs
from odyssey.splits import make_splits, target_name
from odyssey.lineage import Artifact
from resources.metadata import artifacts_metadata, describe_table, line_plot, md_table
from resources.settings import SettingsResource
from resources.storage import Storage

GROUP = "features"


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"}, code_version=registry.REGISTRY_VERSION)
def feature_registry(settings: SettingsResource) -> dg.MaterializeResult:
    """The 94 registry features: name, category, formula, lookback (warm-up rows), whether they use
    fitted parameters, the alternative series and bar fields they need and whether this run has them
    (settings universe.alt_series and universe.bar_fields)."""
    universe = settings.value.universe
    table = registry.registry_table(universe.alt_series, universe.bar_fields)
    counts = table.groupby("category").agg(features=("name", "size"), present=("present", "sum")).reset_index()
    absent = table.loc[~table["present"], "name"].tolist()
    return dg.MaterializeResult(value=table, metadata={
        "version": registry.REGISTRY_VERSION, "features": int(table["present"].sum()), "registry_size": len(table),
        "absent_without_their_inputs": ", ".join(absent) or "none",
        "by_category": md_table(counts, rows=10),
        "registry": md_table(table[["name", "category", "formula", "lookback", "fitted", "needs", "present"]], rows=100)})


@dg.multi_asset(
    outs={
        "features": dg.AssetOut(description="The registry features per ticker and session, with the pipeline fitted "
                                            "on the train split; see odyssey/features.py.",
                                kinds={"pandas", "parquet"}, code_version=registry.REGISTRY_VERSION),
        "return_clip_thresholds": dg.AssetOut(description="Per-ticker return clip thresholds (mean +- 3 sigma) fitted "
                                                          "on the train split (JSON).",
                                              io_manager_key="json_io_manager", kinds={"json"}),
        "regime_model": dg.AssetOut(description="K-means market-regime model fitted on the train split (JSON).",
                                    io_manager_key="json_io_manager", kinds={"json"}),
    },
    ins={"clean_prices": dg.AssetIn(), "returns": dg.AssetIn(), "clean_alt_data": dg.AssetIn()},
    deps=[feature_registry],
    group_name=GROUP,
)
def features(settings: SettingsResource, clean_prices: pd.DataFrame, returns: pd.DataFrame,
             clean_alt_data: pd.DataFrame):
    """Every registry feature present for this universe, from data at or before each date, with
    clip thresholds and regimes fitted on the train split."""
    profile = settings.profile()
    pipeline = feature_pipeline(settings.value, scale=False)
    params, table = pipeline.fit_transform(market_inputs(clean_prices, returns, clean_alt_data),
                                           end=pd.Timestamp(profile.train_end))
    table = table.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    bench = table[table["ticker"] == profile.benchmark]
    plot = line_plot(bench, "date", ["Price_SMA_20_ratio", "RSI_14", "Realized_Vol_20", "Regime"],
                     f"{profile.benchmark}: a few features")
    yield dg.Output(table, "features", metadata={
        **describe_table(table, ["date", "ticker", "SMA_20_rel", "RSI_14", "Realized_Vol_20", "Regime"]),
        "registry_version": registry.REGISTRY_VERSION, "features": len(pipeline.names), "plot": plot,
        "fitted_on": f"sessions up to {profile.train_end}"})
    limits = pd.DataFrame([{"ticker": t, **v} for t, v in params.clip["tickers"].items()])
    yield dg.Output(params.clip, "return_clip_thresholds",
                    metadata={"train_end": params.clip["train_end"], "thresholds": md_table(limits, rows=30, digits=5)})
    regimes = pd.DataFrame(params.regime["centers"], columns=params.regime["columns"])
    regimes.insert(0, "regime", params.regime["labels"])
    yield dg.Output(params.regime, "regime_model", metadata={
        "train_end": params.regime["train_end"], "centers_standardised": md_table(regimes)})


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def dataset_splits(settings: SettingsResource, features: pd.DataFrame, clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Features with the forward log return target (the settings' horizon) and a
    train/validation/test label; rows whose target window crosses a split boundary are purged."""
    horizon = settings.value.forecast.horizon
    table, report = make_splits(features, clean_prices, settings.profile(), horizon)
    rows = pd.DataFrame([{"split": s, "rows": n} for s, n in report["rows"].items()])
    return dg.MaterializeResult(value=table, metadata={
        **describe_table(table, ["date", "ticker", "split", target_name(horizon), "RSI_14"]),
        "split_rows": md_table(rows), "purged_boundary_rows": report["purged_boundary_rows"],
        "dropped_no_target_rows": report["dropped_no_target_rows"], "target": target_name(horizon),
    })


@dg.multi_asset(
    outs={
        "scaled_features": dg.AssetOut(description="Dataset with features standardised by train-only statistics.",
                                       kinds={"pandas", "parquet"}),
        "scaler_params": dg.AssetOut(description="Standard-scaler means and scales fitted on train rows (JSON).",
                                     io_manager_key="json_io_manager", kinds={"json"}),
    },
    ins={"dataset_splits": dg.AssetIn()},
    group_name=GROUP,
)
def scaled_features(settings: SettingsResource, dataset_splits: pd.DataFrame):
    """Fit the standard scaler on train rows only and apply it to every split."""
    scaler = Scaler(registry.features_of(settings.value.universe))
    params = scaler.fit_rows(dataset_splits[dataset_splits["split"] == "train"])
    table = scaler.apply(dataset_splits, params)
    target = target_name(settings.value.forecast.horizon)
    yield dg.Output(table, "scaled_features", metadata=describe_table(table, ["date", "ticker", "split", target, "RSI_14"]))
    stats = pd.DataFrame([{"feature": k, **v} for k, v in params["features"].items()])
    yield dg.Output({**params, "registry_version": registry.REGISTRY_VERSION}, "scaler_params",
                    metadata={"train_rows": params["rows"], "train_end": params["train_end"],
                              "params": md_table(stats, rows=100, digits=6)})


@dg.asset(group_name=GROUP, kinds={"parquet", "json"}, io_manager_key="json_io_manager")
def feature_exports(settings: SettingsResource, storage: Storage, scaled_features: pd.DataFrame,
                    scaler_params: dict) -> dg.MaterializeResult:
    """ML-ready per-ticker and global Parquet files (zstd) with a manifest of SHA-256 hashes."""
    root = storage.path("exports")
    names = registry.features_of(settings.value.universe)
    manifest = write_exports(scaled_features, root, names, registry.REGISTRY_VERSION, scaler_params,
                             target_name(settings.value.forecast.horizon))
    files = pd.DataFrame(manifest["files"])[["path", "rows", "bytes", "sha256"]]
    written = [Artifact(str(root / f["path"]), f["sha256"], f["bytes"], "export") for f in manifest["files"]]
    written.append(Artifact.of(str(root / "manifest.json"), (root / "manifest.json").read_bytes(), "export"))
    return dg.MaterializeResult(value=manifest, metadata={**artifacts_metadata(written),
        "root": dg.MetadataValue.path(str(root)), "manifest": dg.MetadataValue.path(str(root / "manifest.json")),
        "files": len(files), "total_bytes": int(files["bytes"].sum()),
        "global_files": md_table(files[files["path"].str.startswith("global/")]),
        "settings": dg.MetadataValue.json(json.loads(settings.document)["universe"]),
    })
