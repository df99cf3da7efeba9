"""Group `monitoring`: data-quality scoring, every ticker's feature drift against its champion's
training window (Evidently's reports where it drifted), and live forecasts scored against what
happened."""

from typing import Literal, Optional

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from odyssey import features as registry
from odyssey import registry as mlreg
from odyssey.drift import daily_returns, drift_statistics, drift_windows, evidently_report
from odyssey.gates import NOT_EVALUABLE
from odyssey.live_skill import SCORING_ERROR, judge_champion
from odyssey.outcomes import empty_log, realised, score
from odyssey.quality import quality_scores
from odyssey.settings import MonitoringSettings
from odyssey.splits import forward_returns, target_name
from odyssey.lineage import Artifact
from resources.metadata import artifacts_metadata, line_plot, md_table
from resources.settings import SettingsResource, overrides
from resources.storage import Storage
from resources.tracking import ArtifactSigner, MlflowTracking

GROUP = "monitoring"


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"})
def data_quality_report(settings: SettingsResource, raw_prices: pd.DataFrame,
                        clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Completeness (sessions from each ticker's first bar), accuracy, consistency, timeliness and
    uniqueness of the market data (0-1)."""
    profile = settings.profile()
    scores = quality_scores(raw_prices, clean_prices, profile.tickers, profile.start, exchange=profile.exchange)
    overall = float(scores.loc[scores["dimension"] == "overall", "score"].iloc[0])
    return dg.MaterializeResult(value=scores, metadata={"overall": overall, "scores": md_table(scores, digits=4)})


DriftConfig = overrides("DriftConfig", "This run's changes to the settings' drift monitoring (empty: the file's).",
                        MonitoringSettings,
                        reports=(Literal["drifted", "all"],
                                 Field(default="drifted", description="Evidently reports for the tickers that drifted "
                                                                      "(every landing) or for every ticker (the "
                                                                      "daily schedule, make run)")))


def _champion_card(mlflow: MlflowTracking, signer: ArtifactSigner, ticker: str, names):
    """The champion's version and card, or (None, None) without a champion this run can use; and
    why a champion is refused (not gated, or its files do not match its signed manifest), if so."""
    current = mlreg.champion(mlflow.tracker(), ticker, signer.key(), registry.REGISTRY_VERSION, names)
    refused = f"champion v{current.version.version} refused: {current.problem}" if current and current.refused else None
    if current is None or current.card is None:
        return None, None, refused
    return current.version, current.card, None


def _window(rows: pd.DataFrame) -> str:
    return f"{rows['date'].min().date()}..{rows['date'].max().date()} ({len(rows)} rows"


@dg.asset(group_name=GROUP, kinds={"evidently", "pandas"}, ins={"features": dg.AssetIn(), "clean_prices": dg.AssetIn()},
          deps=["deployed_models"])
def feature_drift(context: dg.AssetExecutionContext, config: DriftConfig, settings: SettingsResource,
                  storage: Storage, mlflow: MlflowTracking, signer: ArtifactSigner, features: pd.DataFrame,
                  clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Every ticker's most recent window after its champion's training window (the train and
    validation splits while it has no champion, or its champion is refused: not gated, or not
    intact) against that window; the two never overlap, and with fewer than
    `min_window_days` sessions after it (soon after a retrain) the ticker is not yet evaluable.
    Per feature the window-mean z-score (the drift
    decision), PSI and KL, for the forward-return target the window-mean z-score of its
    absolute size (its volatility, the decision) and its PSI, and the ticker's volatility relative
    to the benchmark's (the decision; not for the benchmark itself). The statistics take all features of
    a ticker at once in NumPy; Evidently's HTML and JSON reports are written for the tickers that
    drifted (config `reports: all`: for every ticker, as the daily schedule does). When a
    retrained champion has learnt the new regime, its window holds it and drift clears."""
    monitoring = config.apply(settings.value.monitoring)
    horizon = settings.value.forecast.horizon
    target = target_name(horizon)
    profile = settings.profile()
    names = registry.features_of(profile)
    ticker_features = [n for n in names if not registry.BY_NAME[n].market_wide]
    rows = features[features["ticker"].isin(profile.tickers)].merge(
        forward_returns(clean_prices, horizon)[["date", "ticker", target]], on=["date", "ticker"]).merge(
        daily_returns(clean_prices, profile.benchmark), on=["date", "ticker"], how="left")
    tables, summary, artifacts = [], [], []
    for ticker, ticker_rows in rows.groupby("ticker", sort=True):
        champion, card, refused = _champion_card(mlflow, signer, ticker, names)
        if refused:
            context.log.error(f"{ticker}: {refused}")
        reference, current = drift_windows(ticker_rows, card.train_start if card else None,
                                           card.train_end if card else None, profile.validation_end,
                                           monitoring.window_days)
        source = f"champion v{champion.version}" if card else "train + validation" + (
            f" ({refused.split(':')[0]})" if refused else "")
        evaluable = len(current) >= monitoring.min_window_days
        if evaluable:
            stats = drift_statistics(reference, current, ticker_features, target, monitoring.z_threshold,
                                     monitoring.psi_threshold)
            limits = (monitoring.max_share_drifted, monitoring.z_threshold, monitoring.relative_vol_z_threshold)
            drifted, reason = stats.drifted(*limits), stats.reason(*limits)
            table, share, target_z, target_psi = stats.table, stats.share_drifted, stats.target_z, stats.target_psi
            relative_z = stats.relative_vol_z
        else:
            drifted, share, target_z, target_psi = False, float("nan"), float("nan"), float("nan")
            relative_z = float("nan")
            reason = (f"{NOT_EVALUABLE}: {len(current)} of {monitoring.min_window_days} sessions after the "
                      f"reference window ({source}, to {reference['date'].max().date()})")
            table = pd.DataFrame({"feature": ticker_features, "psi": np.nan, "kl": np.nan,
                                  "psi_above_threshold": False, "window_z": np.nan, "drifted": False})
        # the decision travels with the table, so the check judges with this run's thresholds
        tables.append(table.assign(ticker=ticker, target_psi=target_psi, target_z=target_z,
                                   relative_vol_z=relative_z, ticker_drifted=drifted,
                                   ticker_reason=reason, ticker_evaluable=evaluable, current_sessions=len(current)))
        summary.append({"ticker": ticker, "drifted": drifted, "evaluable": evaluable, "share_drifted": share,
                        "target_z": target_z, "relative_vol_z": relative_z, "target_psi": target_psi,
                        "reference": f"{_window(reference)}, {source})",
                        "current": f"{_window(current)})" if len(current) else "none yet"})
        if evaluable and (drifted or config.reports == "all"):
            report = evidently_report(reference, current, ticker_features, monitoring.z_threshold)
            folder = storage.path("reports", "drift", ticker)
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in (("feature_drift.html", report.html), ("feature_drift.json", report.json)):
                (folder / name).write_bytes(data)
                artifacts.append(Artifact.of(str(folder / name), data, "report"))
    value = pd.concat(tables, ignore_index=True)
    summary = pd.DataFrame(summary)
    drifted = summary.loc[summary["drifted"], "ticker"].tolist()
    context.log.info(f"drift: {', '.join(drifted) or 'no ticker'}; Evidently reports for {len(artifacts) // 2}")
    return dg.MaterializeResult(value=value, metadata={
        "drifted": ", ".join(drifted), "tickers": len(summary), "reports_for": config.reports,
        "summary": md_table(summary.sort_values(["drifted", "target_z"], ascending=False), rows=len(summary)),
        "reports_folder": dg.MetadataValue.path(str(storage.path("reports", "drift"))),
        **artifacts_metadata(artifacts),
    })


OutcomesConfig = overrides("OutcomesConfig", "This run's changes to the live-skill scoring (empty: the settings').",
                           window=(Optional[int], None))


@dg.asset(group_name=GROUP, kinds={"pandas"}, io_manager_key="json_io_manager", ins={"clean_prices": dg.AssetIn()},
          deps=["forecast_log"])
def forecast_outcomes(context: dg.AssetExecutionContext, config: OutcomesConfig, settings: SettingsResource,
                      storage: Storage, mlflow: MlflowTracking, signer: ArtifactSigner,
                      clean_prices: pd.DataFrame) -> dg.MaterializeResult:
    """Every champion's live forecasts against the returns that later happened: IC and hit rate
    over the last N realised forecasts with block-bootstrap intervals, beside the walk-forward
    skill the model was deployed on, and the live-skill monitor's verdict (a one-sided CUSUM on
    the daily contributions, odyssey/live_skill.py) with its path (the forecast log as stored;
    none before the first batch forecasts). One entry per ticker, scored in the run that logged
    the forecasts (the ingest of a new session, the batch forecasts): no run per ticker."""
    gates = settings.value.gates
    window = config.window or gates.live_window
    names = registry.features_of(settings.value.universe)
    forecast_log = storage.stored_table("forecast_log")
    log = forecast_log if forecast_log is not None else empty_log()
    value, paths, recent = {}, {}, []
    for ticker in settings.value.universe.tickers:
        try:
            value[ticker], path, outcomes = _ticker_outcomes(ticker, window, gates, names, mlflow, signer, log,
                                                             clean_prices)
        except Exception as error:  # one ticker's failure is its own: the others are scored, the session kept
            context.log.error(f"{ticker}: live skill not scored: {type(error).__name__}: {error}")
            value[ticker], path, outcomes = {"ticker": ticker, "live_status": SCORING_ERROR, "realised": 0,
                                             "live_reason": f"live skill not scored: {type(error).__name__}: "
                                                            f"{error}"}, None, None
        if path is not None:
            paths[ticker] = path
        if outcomes is not None and len(outcomes):
            recent.append(outcomes.tail(3).assign(ticker=ticker))
    table = pd.DataFrame([{"ticker": t, "champion": v.get("champion"), "status": v.get("live_status", NOT_EVALUABLE),
                           "realised": v.get("realised", 0), "live_ic": v.get("ic"),
                           "walkforward_ic": v.get("walkforward_ic"), "cusum": v.get("cusum"),
                           "cusum_threshold": v.get("cusum_threshold")} for t, v in value.items()])
    lost = table.loc[table["status"] == "failed", "ticker"].tolist()
    context.log.info(f"live skill lost: {', '.join(lost) or 'no ticker'}")
    plots = {}
    if paths:  # each monitor's CUSUM over its threshold: an alarm where a line crosses 1
        longest = max(len(p) for p in paths.values())
        frame = pd.DataFrame({"session": range(1, longest + 1),
                              **{t: pd.Series(p, dtype=float) for t, p in paths.items()}})
        plots["cusum_plot"] = line_plot(frame, "session", list(paths), "live-skill CUSUM / threshold (alarm above 1)")
    return dg.MaterializeResult(value=value, metadata={
        "live_skill_lost": ", ".join(lost) or "none", "tickers": len(table), "window": window,
        "monitors": md_table(table, rows=len(table), digits=4), **plots,
        **({"recent": md_table(pd.concat(recent), rows=3 * len(recent), digits=5)} if recent else {})})


def _ticker_outcomes(ticker: str, window: int, gates, names, mlflow: MlflowTracking, signer: ArtifactSigner,
                     forecast_log: pd.DataFrame, clean_prices: pd.DataFrame):
    """One ticker's entry of `forecast_outcomes`, its monitor's CUSUM path over the threshold
    (None below two realised days) and its realised outcomes (None without a champion)."""
    champion, card, refused = _champion_card(mlflow, signer, ticker, names)
    if card is None:
        return {"ticker": ticker, "champion": None, "realised": 0, "walkforward_ic": None,
                "reason": f"{refused}: nothing live to score" if refused else "no champion: nothing live to score"}, \
            None, None
    outcomes = realised(forecast_log, clean_prices, ticker, champion.version, card.horizon)
    scored = score(outcomes, window, gates.live_level)
    live = judge_champion(card.live_monitor, forecast_log, clean_prices, ticker, champion.version, gates.live_min_days)
    monitor = {"live_status": NOT_EVALUABLE, "live_reason": f"{NOT_EVALUABLE}: champion v{champion.version}'s card "
               "has no live-skill monitor (trained before it existed): retrain it"} if live is None else {
        "live_status": live.status, "live_reason": live.reason, "cusum": live.statistic,
        "cusum_threshold": live.threshold, "cusum_peak": live.peak, "alarm_date": live.alarm_date,
        "walkforward_skill": live.walkforward_skill, "live_skill": live.live_skill,
        "monitored_days": live.realised, "min_days": live.min_days, "false_alarm": live.false_alarm}
    value = {"ticker": ticker, "champion": champion.version, "walkforward_ic": float(card.walkforward["oos_ic"]),
             "walkforward_ic_ci_low": float(card.walkforward["oos_ic_ci_low"]), "window": window, **scored, **monitor}
    path = [float(x) / live.threshold for x in live.path] if live is not None and live.realised > 1 else None
    return value, path, outcomes
