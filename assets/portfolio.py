"""Group `portfolio`: the PPO allocation policy trained on out-of-sample forecasts, its ONNX export,
the backtest against baselines with identical costs and limits, reports, and recommendations."""

import dataclasses
import io
import json
from pathlib import Path
from typing import Callable, Optional

import dagster as dg
import numpy as np
import pandas as pd

from odyssey import backtest as bt
from odyssey import registry as mlreg
from odyssey import report
from odyssey.gates import policy_gate_thresholds, threshold_mismatches
from odyssey.hashing import sha256_bytes
from odyssey.portfolio import (ONNX_FILE, ONNX_MODEL, POLICY_FILE, POLICY_MODEL, Constraints, Panel, SignalScale,
                               baseline_policy_market, baseline_targets, daily_returns, observation, orders,
                               drift_holdings, policy_periods, project, read_holdings,
                               tilt_target)
from odyssey.settings import Costs, PortfolioSettings, PPOSettings
from odyssey.selection import AdvisorChoice, choose_advisor
from odyssey.signing import sign, signed_card
from odyssey.lineage import Artifact
from resources.metadata import artifacts_metadata, md_table, png_bytes_markdown
from resources.portfolio import (check_verdict, forecast_panel, held_out_blocks, load_onnx, load_policy, policy_constraints,
                                 policy_market_for, policy_scale, require_check_passed, verified_policy)
from resources.settings import SettingsResource, overrides
from resources.memory import QdrantIndex, ask
from resources.storage import Storage
from resources.tracking import ArtifactSigner, CheckpointStore, MlflowTracking

GROUP = "portfolio"
POLICY_GATE = ("ppo_policy", "policy_earns_its_place")  # the check that decides whether the policy advises

PPOConfig = overrides(
    "PPOConfig",
    "This run's changes to the settings' PPO hyperparameters, position limits and costs (empty: the file's).",
    PPOSettings, Costs, max_weight=(Optional[float], None), max_invested=(Optional[float], None))


def _ppo(settings: SettingsResource, config: PPOConfig) -> tuple[PPOSettings, Constraints]:
    s = settings.value
    limits = config.apply(s.portfolio)
    costs = config.apply(s.costs)
    return (config.apply(s.portfolio.ppo),
            Constraints(limits.max_weight, limits.max_invested, costs.cost_bps, costs.slippage_bps))


def _on_days(panel: Panel, days: Panel) -> Panel:
    """`panel`'s forecasts on the days of `days` (held-out or test sessions; the same walk-forward
    folds give the same days; a day without a forecast is an error, never a silent zero)."""
    frame = pd.DataFrame(panel.forecasts, index=panel.dates).reindex(days.dates)
    if frame.isna().any(axis=None):
        raise ValueError(f"analog_forecasts: no forecast on {frame.index[frame.isna().any(axis=1)][0].date()}, a day "
                         "a strategy is traded on: re-materialize analog_forecasts for every ticker")
    return Panel(days.dates, days.tickers, frame.to_numpy(float), days.next_returns)


def _test_period(panel: Panel, validation_end: str) -> Panel:
    """The backtest's days: every out-of-sample day after validation_end."""
    return panel.between(start=pd.Timestamp(validation_end) + pd.Timedelta(days=1))


@dg.asset(group_name=GROUP, kinds={"pytorch", "mlflow"}, io_manager_key="json_io_manager",
          ins={"walkforward_forecasts": dg.AssetIn(), "returns": dg.AssetIn()})
def ppo_policy(context: dg.AssetExecutionContext, config: PPOConfig, settings: SettingsResource, storage: Storage,
               mlflow: MlflowTracking, signer: ArtifactSigner, checkpoints: CheckpointStore,
               walkforward_forecasts: dict, returns: pd.DataFrame) -> dg.MaterializeResult:
    """PPO (stable-baselines3) policy that tilts the baseline allocation from the walk-forward's
    out-of-sample forecasts and their recent realised skill, trained on the days before a held-out
    validation period (judged by policy_earns_its_place) and the test period, on vectorized
    PortfolioEnvs, with signed checkpoints a crashed run resumes from. Saved as an SB3 zip with
    SHA-256 and HMAC, logged to MLflow."""
    from odyssey.policy import model_bytes, train_ppo  # torch and SB3, imported when a policy trains

    profile, horizon = settings.profile(), settings.value.forecast.horizon
    portfolio = settings.value.portfolio
    ppo, constraints = _ppo(settings, config)
    panel = forecast_panel(walkforward_forecasts, profile.tickers, returns)
    periods = policy_periods(panel.dates, profile.validation_end, horizon, portfolio.validation_fraction,
                             portfolio.policy_folds)
    # the asset's code version covers the environment and training code: a checkpoint from other code is never resumed
    code_version = context.assets_def.code_versions_by_key[context.asset_key]
    key = signer.key()
    day = lambda ts: str(ts.date())  # noqa: E731
    folds, artifacts, seconds = [], [], 0.0
    for number, fold in enumerate(periods.folds, start=1):
        # fit on the fold's training days only, applied to its held-out block (as every walk-forward fold)
        scale = SignalScale.fit(panel.between(fold.train_start, fold.train_end).forecasts)
        train = baseline_policy_market(panel, returns, scale, portfolio.baseline, constraints, portfolio.vol_window,
                                       horizon, ppo.skill_window).between(fold.train_start, fold.train_end)
        if len(train) < ppo.episode_length:
            raise ValueError(f"ppo_policy: fold {number} has {len(train)} out-of-sample training days before its "
                             f"held-out block ({fold.start.date()}), fewer than episode_length={ppo.episode_length}: "
                             f"on a short history lower portfolio.validation_fraction "
                             f"({portfolio.validation_fraction}) or portfolio.policy_folds ({portfolio.policy_folds}), "
                             "or shorten portfolio.ppo.episode_length")
        fingerprint = sha256_bytes(json.dumps([ppo.model_dump(), dataclasses.asdict(constraints), portfolio.baseline,
                                               list(profile.tickers), code_version], sort_keys=True).encode()
                                   + train.signals.tobytes() + train.context.tobytes() + train.baseline.tobytes()
                                   + train.next_returns.tobytes())[:16]
        trained = train_ppo(train, ppo, constraints, checkpoint_dir=checkpoints.folder("ppo", fingerprint), key=key)
        data = model_bytes(trained.model)
        digest = sha256_bytes(data)
        path = f"models/ppo/{digest[:16]}.zip"
        storage.path(path).parent.mkdir(parents=True, exist_ok=True)
        storage.path(path).write_bytes(data)
        seconds += trained.seconds
        context.log.info(f"ppo_policy: fold {number}/{len(periods.folds)} trained on {len(train)} days to "
                         f"{fold.train_end.date()}, holds out {fold.start.date()} .. {fold.end.date()}")
        folds.append({"fold": number, "path": path, "sha256": digest, "signature": sign(data, key),
                      "signal_scale": list(scale.scale), "train_start": day(fold.train_start),
                      "train_end": day(fold.train_end), "train_days": len(train), "start": day(fold.start),
                      "end": day(fold.end), "timesteps": trained.timesteps, "resumed_from": trained.resumed_from,
                      "fingerprint": fingerprint})
        artifacts.append(Artifact(str(storage.path(path)), digest, len(data), "policy", folds[-1]["signature"]))
    served = folds[-1]  # the last fold's policy (its `trained`, `data`, `scale`), trained on the most days, acts
    value = {
        "path": served["path"], "sha256": served["sha256"], "signature": served["signature"],
        "tickers": list(profile.tickers),
        "signal_scale": served["signal_scale"], "signal_clip": scale.clip,
        "constraints": dataclasses.asdict(constraints), "settings": ppo.model_dump(mode="json"),
        "baseline": portfolio.baseline, "vol_window": portfolio.vol_window, "tilt": ppo.tilt,
        "trade_rate": ppo.trade_rate, "horizon": horizon, "skill_window": ppo.skill_window,
        "train_start": served["train_start"], "train_end": served["train_end"], "train_days": served["train_days"],
        "validation_start": day(periods.validation_start), "validation_end": day(periods.validation_end),
        "evaluation_start": day(periods.test_start), "folds": folds,
        "timesteps": trained.timesteps, "resumed_from": trained.resumed_from, "fingerprint": served["fingerprint"],
    }
    tracker = dataclasses.replace(mlflow.tracker(), experiment="odyssey-portfolio")
    run_id = mlreg.log_run(
        tracker, f"ppo-{digest[:8]}",
        params={**{k: str(v) for k, v in ppo.model_dump().items()}, **dataclasses.asdict(constraints),
                "train_start": value["train_start"], "train_end": value["train_end"]},
        metrics={"train_seconds": seconds, "timesteps": trained.timesteps, "folds": len(folds),
                 "final_rollout_reward": trained.rollout_rewards[-1] if trained.rollout_rewards else 0.0},
        step_metrics={"rollout_mean_reward": trained.rollout_rewards},
        artifacts={"policy/ppo_policy.zip": data, "policy/card.json": json.dumps(value, indent=2).encode()},
        tags={"dagster_run_id": context.run.run_id, "sha256": digest})
    value["mlflow_run_id"] = run_id
    # the card is what acting with the policy reads beside the zip: one signed manifest covers both
    value = signed_card(value, "ppo policy", POLICY_MODEL, ",".join(profile.tickers), run_id, {POLICY_FILE: data}, key,
                        POLICY_FILE)
    curve = pd.DataFrame({"rollout": np.arange(len(trained.rollout_rewards)), "mean_reward": trained.rollout_rewards})
    return dg.MaterializeResult(value=value, metadata={
        **artifacts_metadata(artifacts),
        "policy_sha256": digest, "timesteps": trained.timesteps,
        "resumed_from_checkpoint": trained.resumed_from if trained.resumed_from is not None else "no",
        "train_period": f"{value['train_start']} .. {value['train_end']} ({len(train)} days)",
        "validation_period": f"{value['validation_start']} .. {value['validation_end']} (held out in {len(folds)} "
                             "walk-forward blocks, judged by policy_earns_its_place)",
        "walk_forward": md_table(pd.DataFrame(folds)[["fold", "train_start", "train_end", "train_days", "start",
                                                      "end", "timesteps"]], rows=len(folds)),
        "baseline": portfolio.baseline,
        "train_seconds": round(seconds, 1), "mlflow_run_id": run_id,
        "rollout_rewards": md_table(curve.tail(10), rows=10, digits=5),
    })


@dg.asset(group_name=GROUP, kinds={"onnx"}, io_manager_key="json_io_manager", ins={"ppo_policy": dg.AssetIn()})
def policy_onnx(storage: Storage, signer: ArtifactSigner, ppo_policy: dict) -> dg.MaterializeResult:
    """The policy's deterministic actor exported to ONNX (observation -> clipped action), signed; the
    blocking check onnx_matches_torch compares it with the torch policy."""
    from odyssey.policy import export_onnx

    model = load_policy(storage, signer, ppo_policy)
    data = export_onnx(model)
    digest = sha256_bytes(data)
    path = f"models/ppo/{ppo_policy['sha256'][:16]}.onnx"
    storage.path(path).write_bytes(data)
    value = {"path": path, "sha256": digest, "signature": sign(data, signer.key()), "policy_sha256": ppo_policy["sha256"],
             "input": "obs [batch, 2N] float32", "output": "action [batch, N] in [-1, 1]"}
    value = signed_card(value, "policy onnx", ONNX_MODEL, ppo_policy["sha256"], "", {ONNX_FILE: data}, signer.key(),
                        ONNX_FILE)
    return dg.MaterializeResult(value=value, metadata={
        "onnx_sha256": digest, **artifacts_metadata([Artifact(str(storage.path(path)), digest, len(data), "policy",
                                                              value["signature"])])})


def _top_k(portfolio: PortfolioSettings, tickers: tuple[str, ...]) -> int:
    return portfolio.top_k or max(1, len(tickers) // 3)


BaselineConfig = overrides(
    "BaselineConfig", "This run's changes to the baselines: trailing window of inverse volatility; names held by "
    "momentum and by the XGBoost top-k (0: the top third of the universe).",
    vol_window=(Optional[int], None), top_k=(Optional[int], None))


@dg.asset(group_name=GROUP, kinds={"pandas"}, ins={"walkforward_forecasts": dg.AssetIn(), "returns": dg.AssetIn(),
                                                  "ppo_policy": dg.AssetIn(), "analog_forecasts": dg.AssetIn()})
def baseline_weights(config: BaselineConfig, settings: SettingsResource, walkforward_forecasts: dict,
                     returns: pd.DataFrame, ppo_policy: dict, analog_forecasts: dict) -> dg.MaterializeResult:
    """Daily target weights of the baselines on the test period, under the policy's limits: equal
    weight, inverse volatility, 12-1 momentum, and top-k by out-of-sample XGBoost forecast and by
    out-of-sample analog forecast (market memory)."""
    profile = settings.profile()
    portfolio = config.apply(settings.value.portfolio)
    c = policy_constraints(ppo_policy)
    evaluation = _test_period(forecast_panel(walkforward_forecasts, profile.tickers, returns), profile.validation_end)
    k = _top_k(portfolio, profile.tickers)
    analog = _on_days(forecast_panel(analog_forecasts, profile.tickers, returns), evaluation)
    targets = bt.strategy_targets(evaluation, analog, returns, c, k, portfolio.vol_window)
    table = pd.concat([pd.DataFrame({"date": evaluation.dates, "strategy": name,
                                     **{t: w[:, i] for i, t in enumerate(profile.tickers)}})
                       for name, w in targets.items()], ignore_index=True)
    mean = table.groupby("strategy", sort=False)[list(profile.tickers)].mean().reset_index()
    return dg.MaterializeResult(value=table, metadata={"rows": len(table), "top_k": k,
                                                       "average_weights": md_table(mean, digits=3)})


def advice_thresholds(settings: SettingsResource) -> dict[str, float]:
    gates = settings.value.gates
    return {"advice_min_dsr": gates.advice_min_dsr, "advice_max_pbo": gates.advice_max_pbo,
            "advice_partitions": gates.advice_partitions}


def policy_eligibility(instance: dg.DagsterInstance, settings: SettingsResource) -> tuple[bool, str]:
    """Whether the PPO policy may advise: its gate passed on the latest policy, with exactly the
    settings' thresholds (a verdict made with other values is refused)."""
    verdict = check_verdict(instance, *POLICY_GATE)
    if not verdict.passed:
        return False, verdict.reason
    wrong = threshold_mismatches(verdict.metadata, policy_gate_thresholds(settings.value))
    if wrong:
        return False, (f"{POLICY_GATE[0]}:{POLICY_GATE[1]} passed with other thresholds than the settings' "
                       f"({'; '.join(wrong)}): the verdict is refused; materialize ppo_policy with its checks again")
    return True, verdict.reason


@dg.asset(group_name=GROUP, kinds={"json"}, io_manager_key="json_io_manager",
          ins={"ppo_policy": dg.AssetIn(), "walkforward_forecasts": dg.AssetIn(), "returns": dg.AssetIn(),
               "analog_forecasts": dg.AssetIn()})
def strategy_selection(context: dg.AssetExecutionContext, settings: SettingsResource, storage: Storage,
                       signer: ArtifactSigner, ppo_policy: dict, walkforward_forecasts: dict, returns: pd.DataFrame,
                       analog_forecasts: dict) -> dg.MaterializeResult:
    """Which strategy advises: every candidate (the PPO policy over its walk-forward, 12-1 momentum,
    the other baseline, XGBoost top-k and analog top-k) traded on the policy's held-out sessions
    only, block by block from cash, through the same accounting as the baseline; the best
    information ratio over the baseline advises when its deflated Sharpe ratio and the probability
    of backtest overfitting (CSCV over the candidates) pass gates.advice_min_dsr and
    gates.advice_max_pbo, else the baseline does (odyssey/selection.py). The PPO policy may advise
    only when policy_earns_its_place passed with the settings' thresholds; it counts as a trial
    either way."""
    profile, portfolio, gates = settings.profile(), settings.value.portfolio, settings.value.gates
    c = policy_constraints(ppo_policy)
    panel = forecast_panel(walkforward_forecasts, profile.tickers, returns)
    analog = forecast_panel(analog_forecasts, profile.tickers, returns)
    blocks = held_out_blocks(storage, signer, ppo_policy, panel, returns)
    policies, baselines = bt.walk_forward_runs(blocks, c, ppo_policy["tilt"], ppo_policy["trade_rate"])
    paths = {"ppo": bt.concatenate("ppo", policies)}
    k = _top_k(portfolio, profile.tickers)
    block_days = [panel.between(m.dates[0], m.dates[-1]) for m, _ in blocks]
    per_block = [bt.strategy_targets(days, _on_days(analog, days), returns, c, k, portfolio.vol_window)
                 for days in block_days]
    for name in per_block[0]:
        if name != ppo_policy["baseline"]:
            paths[name] = bt.concatenate(name, [bt.run_targets(name, days, targets[name], c)
                                                for days, targets in zip(block_days, per_block)])
    baseline = bt.concatenate(ppo_policy["baseline"], baselines)
    excess = pd.DataFrame({name: run.returns - baseline.returns for name, run in paths.items()}, index=baseline.dates)
    allowed, why = policy_eligibility(context.instance, settings)
    choice = choose_advisor(excess, ppo_policy["baseline"], {} if allowed else {"ppo": why}, gates.advice_min_dsr,
                            gates.advice_max_pbo, gates.advice_partitions)
    table = pd.DataFrame([dataclasses.asdict(candidate) for candidate in choice.candidates])
    context.log.info(f"strategy_selection: {choice.advisor} advises: {choice.reason}")
    return dg.MaterializeResult(value={**choice.to_dict(), "policy_sha256": ppo_policy["sha256"],
                                       "serving": _serving(settings, ppo_policy)},
                                metadata={"advisor": choice.advisor, "reason": choice.reason,
                                          "deflated_sharpe": choice.deflated_sharpe, "pbo": choice.pbo,
                                          "trials": choice.trials, "held_out_days": choice.days,
                                          **choice.thresholds(), "candidates": md_table(table, rows=len(table))})


@dg.multi_asset(
    outs={
        "backtest": dg.AssetOut(description="Daily net returns, costs, turnover and weights of the policy and the "
                                            "baselines on the test period.", kinds={"pandas"}),
        "backtest_metrics": dg.AssetOut(description="CAGR, volatility, Sharpe, Sortino, max drawdown, Calmar, win "
                                                    "rate, profit factor, turnover, costs; 90 % block-bootstrap "
                                                    "intervals; the policy against each baseline.",
                                        io_manager_key="json_io_manager", kinds={"json"}),
    },
    ins={"ppo_policy": dg.AssetIn(), "policy_onnx": dg.AssetIn(), "baseline_weights": dg.AssetIn(),
         "walkforward_forecasts": dg.AssetIn(), "returns": dg.AssetIn()},
    group_name=GROUP,
)
def backtest(settings: SettingsResource, storage: Storage, signer: ArtifactSigner, ppo_policy: dict, policy_onnx: dict,
             baseline_weights: pd.DataFrame, walkforward_forecasts: dict, returns: pd.DataFrame):
    """The ONNX policy and the baselines traded daily on the test period through the same
    accounting (limits, 10 bps costs + 5 bps slippage on traded value, cash at 0 %)."""
    from odyssey.policy import onnx_decider

    act = onnx_decider(load_onnx(storage, signer, policy_onnx, ppo_policy))  # the policy's card verified first
    profile = settings.profile()
    c = policy_constraints(ppo_policy)
    panel = forecast_panel(walkforward_forecasts, profile.tickers, returns)
    evaluation = _test_period(panel, profile.validation_end)
    if len(evaluation) == 0:
        raise ValueError(f"backtest: no out-of-sample forecasts after validation_end {profile.validation_end}")
    market = policy_market_for(ppo_policy, panel, returns).between(start=evaluation.dates[0])
    runs = [bt.run_policy("ppo", market, act, c, ppo_policy["tilt"], ppo_policy["trade_rate"])]
    for name, group in baseline_weights.groupby("strategy", sort=False):
        targets = group.set_index("date").reindex(evaluation.dates)[list(profile.tickers)]
        if targets.isna().any(axis=None):
            raise ValueError(f"baseline_weights: {name} has no targets for some test days (first "
                             f"{targets.index[targets.isna().any(axis=1)][0].date()}): re-materialize baseline_weights")
        targets = targets.to_numpy()
        runs.append(bt.run_targets(name, evaluation, targets, c))
    metrics = bt.metrics_table(runs)
    comparison = pd.DataFrame([{"baseline": r.name, **bt.excess_over(runs[0], r)} for r in runs[1:]])
    daily = pd.concat([r.frame(profile.tickers) for r in runs], ignore_index=True)
    wide = metrics.pivot_table(index="strategy", columns="metric", values="value", sort=False).reset_index()
    yield dg.Output(daily, "backtest", metadata={
        "rows": len(daily), "days": len(evaluation), "start": str(evaluation.dates[0].date()),
        "end": str(evaluation.dates[-1].date()), "metrics": md_table(wide, rows=10, digits=3)})
    yield dg.Output({"metrics": metrics.to_dict("records"), "comparison": comparison.to_dict("records"),
                     "policy_sha256": ppo_policy["sha256"], "days": len(evaluation),
                     "final_weights": {r.name: dict(zip(profile.tickers, r.final_weights.tolist())) for r in runs},
                     "final_date": str(runs[0].realized[-1].date())}, "backtest_metrics",
                    metadata={"ppo_vs_baselines": md_table(comparison[["baseline", "excess_return",
                                                                       "excess_return_ci_low", "excess_return_ci_high",
                                                                       "sharpe_difference"]], digits=3)})


class MonteCarloConfig(dg.Config):
    paths: int = 2000
    block_days: int = 20
    seed: int = 0


@dg.asset(group_name=GROUP, kinds={"pandas"}, ins={"backtest": dg.AssetIn(), "ppo_policy": dg.AssetIn()})
def monte_carlo(config: MonteCarloConfig, backtest: pd.DataFrame, ppo_policy: dict) -> dg.MaterializeResult:
    """Block bootstrap of each strategy's daily returns (20-day blocks, same blocks for all): the
    distribution of Sharpe, max drawdown and total return over resampled paths."""
    runs = bt.runs_from_frame(backtest, tuple(ppo_policy["tickers"]))
    paths = bt.monte_carlo(runs, config.block_days, config.paths, config.seed)
    summary = bt.monte_carlo_summary(paths)
    return dg.MaterializeResult(value=paths, metadata={
        "paths": config.paths, "summary": md_table(summary, digits=3),
        "plot": png_bytes_markdown(report.monte_carlo_chart(paths), "monte carlo")})


@dg.asset(group_name=GROUP, kinds={"pandas"}, ins={"backtest": dg.AssetIn(), "ppo_policy": dg.AssetIn()})
def stress_tests(backtest: pd.DataFrame, ppo_policy: dict) -> dg.MaterializeResult:
    """Each strategy through the 2020 crash and 2022 rate-shock windows (when the test period covers
    them) and one-day synthetic shocks (-20 % equities, +200 bp rates, -10 % everything)."""
    table = bt.stress_tests(bt.runs_from_frame(backtest, tuple(ppo_policy["tickers"])), tuple(ppo_policy["tickers"]))
    pivot = table.pivot_table(index="scenario", columns="strategy", values="return", sort=False).reset_index()
    return dg.MaterializeResult(value=table, metadata={"scenarios": md_table(pivot, rows=20, digits=3)})


@dg.asset(group_name=GROUP, kinds={"html"}, io_manager_key="json_io_manager",
          ins={"backtest": dg.AssetIn(), "backtest_metrics": dg.AssetIn(), "monte_carlo": dg.AssetIn(),
               "stress_tests": dg.AssetIn(), "ppo_policy": dg.AssetIn(), "strategy_selection": dg.AssetIn()})
def backtest_report(context: dg.AssetExecutionContext, settings: SettingsResource, storage: Storage,
                    backtest: pd.DataFrame,
                    backtest_metrics: dict, monte_carlo: pd.DataFrame, stress_tests: pd.DataFrame, ppo_policy: dict,
                    strategy_selection: dict) -> dg.MaterializeResult:
    """Self-contained HTML: metrics with intervals, the policy against each baseline, equity curves,
    drawdowns, rolling Sharpe, the policy's monthly-returns heatmap, Monte Carlo and stress tests."""
    runs = bt.runs_from_frame(backtest, tuple(ppo_policy["tickers"]))
    images = report.charts(runs, monte_carlo)
    metrics = pd.DataFrame(backtest_metrics["metrics"])
    verdict = check_verdict(context.instance, *POLICY_GATE)
    _, refused = _selected(settings, strategy_selection, ppo_policy)
    summary = {"advisor": (f"the {ppo_policy['baseline']} baseline: {refused}" if refused else
                           f"{strategy_selection['advisor']}, chosen on the held-out sessions "
                           f"{strategy_selection['start']} .. {strategy_selection['end']}, before this test period: "
                           f"{strategy_selection['reason']}"),
               "policy": ppo_policy["sha256"][:16],
               "policy gate": ("passed: the policy may advise" if verdict.passed else
                               "FAILED: the policy cannot advise") + f" ({verdict.reason})",
               "baseline": f"{ppo_policy['baseline']} (the policy tilts it by up to {ppo_policy['tilt']:.0%} of each "
                           f"weight, trading {ppo_policy['trade_rate']:.0%} of the way to its aim each day)",
               "trained on": f"{ppo_policy['train_start']} .. {ppo_policy['train_end']}",
               "test period": f"{runs[0].dates[0].date()} .. {runs[0].dates[-1].date()} ({len(runs[0].dates)} days)",
               "costs": f"{ppo_policy['constraints']['cost_bps']} bps + {ppo_policy['constraints']['slippage_bps']} bps "
                        "slippage on traded value",
               "limits": f"0-{ppo_policy['constraints']['max_weight']:.0%} per asset, at most "
                         f"{ppo_policy['constraints']['max_invested']:.0%} invested"}
    page = report.html_report("Odyssey backtest", summary, metrics, pd.DataFrame(backtest_metrics["comparison"]),
                              bt.monte_carlo_summary(monte_carlo), stress_tests, images)
    data = page.encode()
    path = storage.path("reports", "backtest_report.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    written = Artifact.of(str(path), data, "report")
    meta = {"report": dg.MetadataValue.path(str(path)), "advisor": summary["advisor"],
            "policy_gate": summary["policy gate"],
            **artifacts_metadata([written])}
    meta.update({name: png_bytes_markdown(png, name) for name, png in images.items()})
    return dg.MaterializeResult(value={"path": str(path), "sha256": written.sha256, "charts": list(images)},
                                metadata=meta)


RecommendationConfig = overrides(
    "RecommendationConfig", "Current holdings (ticker -> weight; empty: the policy's paper portfolio as it stands "
    "after the backtest), and this run's changes to the settings' portfolio value and no-trade band.",
    current_weights=(dict[str, float], {}), portfolio_value=(Optional[float], None), hold_band=(Optional[float], None))


def _current_weights(config: RecommendationConfig, tickers: list[str], backtest_metrics: dict,
                     advisor: str, holdings_file: str | None, daily: pd.DataFrame) -> tuple[np.ndarray, str]:
    """What is held now: the run's current_weights, else the settings' holdings file when it
    exists (carried from its day to the newest close by the returns since), else the advisor's
    paper portfolio as the backtest left it."""
    if config.current_weights:
        held, source, where = config.current_weights, "config", "current_weights"
    elif holdings_file and Path(holdings_file).exists():
        (held, day), where = read_holdings(Path(holdings_file)), holdings_file
        source = f"holdings file {holdings_file} ({day}, carried to {daily.index[-1].date()})"
        known = {t: w for t, w in held.items() if t in tickers}
        if len(known) == len(held):
            carried = drift_holdings(np.array([known.get(t, 0.0) for t in tickers]), daily, day)
            held = dict(zip(tickers, carried))
    else:
        held = backtest_metrics["final_weights"][advisor]
        return np.array([held[t] for t in tickers]), f"{advisor} paper portfolio at {backtest_metrics['final_date']}"
    unknown = sorted(set(held) - set(tickers))
    bad = {t: w for t, w in held.items() if not np.isfinite(w) or w < 0}
    total = sum(held.values())
    if unknown or bad or total > 1 + 1e-9:
        raise ValueError(f"recommendations: {where} must name universe tickers with weights >= 0 summing to "
                         f"at most 1; unknown {unknown}, invalid {bad}, sum {total:.4f}")
    return np.array([held.get(t, 0.0) for t in tickers]), source


def _serving(settings: SettingsResource, ppo_policy: dict) -> dict:
    """What a choice was judged with beyond the guard's thresholds: the rules' parameters, the
    baseline and the policy gate's thresholds (its verdict decided whether the policy could be chosen)."""
    portfolio = settings.value.portfolio
    return {"top_k": _top_k(portfolio, tuple(ppo_policy["tickers"])), "vol_window": portfolio.vol_window,
            "baseline": ppo_policy["baseline"], **policy_gate_thresholds(settings.value)}


def _selected(settings: SettingsResource, selection: dict, ppo_policy: dict) -> tuple[AdvisorChoice | None, str]:
    """The stored strategy_selection, or None and why it is refused: made on another policy, or
    with other thresholds or strategy parameters than the settings'."""
    choice = AdvisorChoice.from_dict({k: v for k, v in selection.items() if k not in ("serving", "policy_sha256")})
    if selection.get("policy_sha256") != ppo_policy["sha256"]:
        return None, "strategy_selection was made on another ppo_policy: materialize strategy_selection again"
    wrong = threshold_mismatches({**choice.thresholds(), **selection.get("serving", {})},
                                 {**advice_thresholds(settings), **_serving(settings, ppo_policy)})
    if wrong:
        return None, (f"strategy_selection was made with other thresholds than the settings' "
                      f"({'; '.join(wrong)}): the choice is refused; materialize strategy_selection again")
    return choice, ""


def _rule_target(name: str, k: int, daily: pd.DataFrame, returns: pd.DataFrame, views: np.ndarray,
                 analog_views: Callable[[], np.ndarray], c: Constraints, vol_window: int) -> np.ndarray:
    """A rule-based strategy's target weights at the newest close (bt.strategy_targets' rules)."""
    tickers = tuple(daily.columns)
    if name in ("equal_weight", "inverse_volatility"):
        return baseline_targets(name, daily, daily.index[-1:], c, vol_window)[0]
    if name == "momentum_12_1":
        today = Panel(daily.index[-1:], tickers, np.zeros((1, len(tickers))), np.zeros((1, len(tickers))))
        return bt.momentum_targets(today, returns, c, k)[0]
    if name == f"xgboost_top_{k}":
        return bt.top_k(views, k, c, positive_only=True)
    if name == f"analog_top_{k}":
        return bt.top_k(analog_views(), k, c, positive_only=True)
    raise ValueError(f"recommendations: strategy_selection chose {name!r}, which no rule here trades")


@dg.asset(group_name=GROUP, kinds={"onnx", "pandas"},
          ins={"ppo_policy": dg.AssetIn(), "policy_onnx": dg.AssetIn(), "forecasts": dg.AssetIn(),
               "backtest_metrics": dg.AssetIn(), "clean_prices": dg.AssetIn(), "walkforward_forecasts": dg.AssetIn(),
               "returns": dg.AssetIn(), "strategy_selection": dg.AssetIn(), "market_states": dg.AssetIn()})
def recommendations(context: dg.AssetExecutionContext, config: RecommendationConfig, settings: SettingsResource,
                    storage: Storage, signer: ArtifactSigner, memory: QdrantIndex, ppo_policy: dict,
                    policy_onnx: dict, forecasts: pd.DataFrame, backtest_metrics: dict, clean_prices: pd.DataFrame,
                    walkforward_forecasts: dict, returns: pd.DataFrame, strategy_selection: dict,
                    market_states: pd.DataFrame) -> dg.MaterializeResult:
    """Latest target weights and BUY/SELL/HOLD orders with sizes per ticker, from the strategy
    strategy_selection chose (the best validated on held-out sessions, guarded against selection
    by luck), on the newest data: the ONNX policy on the champions' latest forecasts (a ticker
    without a model with skill has no view), XGBoost top-k on those forecasts, analog top-k on the
    memory's answers for the newest session, or a rule on the returns. The policy advises only
    when policy_earns_its_place passed on this policy with the settings' thresholds, read from the
    instance; a selection or verdict made with other thresholds is refused, and then the baseline
    advises; the metadata says who advises and why. Guarded by the blocking check
    recommendation_limits."""
    from odyssey.policy import onnx_decider

    verified_policy(storage, signer, ppo_policy)  # its limits, baseline and scale are what advises
    tickers = list(ppo_policy["tickers"])
    c = policy_constraints(ppo_policy)
    s = settings.value
    portfolio = config.apply(s.portfolio)
    baseline = ppo_policy["baseline"]
    latest = forecasts.set_index("ticker").reindex(tickers)
    no_view = latest.index[latest["prediction"].isna()].tolist()
    choice, refused = _selected(settings, strategy_selection, ppo_policy)
    advisor = choice.advisor if choice else baseline
    why = refused or choice.reason
    if advisor == "ppo":
        allowed, verdict = policy_eligibility(context.instance, settings)
        advisor, why = ("ppo", f"{why}; {verdict}") if allowed else (baseline, verdict)
    daily = daily_returns(returns, tuple(tickers))
    current, source = _current_weights(config, tickers, backtest_metrics, advisor if advisor in
                                       backtest_metrics["final_weights"] else baseline,
                                       s.portfolio.holdings_file, daily)
    baseline_now = baseline_targets(baseline, daily, daily.index[-1:], c, ppo_policy["vol_window"])[0]
    # a ticker without a model with skill has no view: no forecast for top-k, a zero forecast for the policy
    views = latest["prediction"].to_numpy(float)
    if advisor == "ppo":
        market = policy_market_for(ppo_policy, forecast_panel(walkforward_forecasts, tuple(tickers), returns), returns)
        obs = observation(policy_scale(ppo_policy).apply(np.nan_to_num(views, nan=0.0)), market.context[-1], current,
                          baseline_now, ppo_policy["tilt"])
        action = onnx_decider(load_onnx(storage, signer, policy_onnx, ppo_policy))(obs)
        target = project(tilt_target(current, baseline_now, action, ppo_policy["tilt"], ppo_policy["trade_rate"]), c)
        advice = f"the PPO policy: {why}"
    elif advisor != baseline:
        def analog_views() -> np.ndarray:
            return np.array([ask(memory, market_states, t, None, s.memory.k, s.forecast.horizon)[0].forecast
                             for t in tickers])
        serving = strategy_selection["serving"]
        target = project(_rule_target(advisor, serving["top_k"], daily, returns, views, analog_views, c,
                                      serving["vol_window"]), c)
        advice = f"{advisor}: {why}"
    else:
        target = project(baseline_now, c)
        advice = f"the {baseline} baseline: {why}"
        context.log.warning(f"recommendations come from {advice}")
    final, actions = orders(current, target, c, portfolio.hold_band)
    close = clean_prices.sort_values("date").groupby("ticker")["close"].last().reindex(tickers).to_numpy(float)
    trade_value = (final - current) * portfolio.portfolio_value
    as_of = str(pd.Timestamp(latest["date"].max()).date())
    table = pd.DataFrame({"as_of": as_of, "ticker": tickers, "forecast": latest["prediction"].to_numpy(float),
                          "current_weight": current, "target_weight": final, "change": final - current,
                          "action": actions, "trade_value": trade_value, "last_close": close,
                          "baseline_weight": project(baseline_now, c),
                          "shares": np.where(close > 0, trade_value / close, 0.0).round(2),
                          "current_weights_from": source, "advisor": advisor, "advice": advice,
                          "policy_sha256": ppo_policy["sha256"], "portfolio_value": portfolio.portfolio_value})
    return dg.MaterializeResult(value=table, metadata={
        "advisor": advisor, "advice": advice, "as_of": as_of, "current_weights_from": source,
        "no_view": ", ".join(no_view) or "none", "cash_weight": round(1.0 - float(final.sum()), 4),
        "invested": round(float(final.sum()), 4),
        "orders": md_table(table.drop(columns=["current_weights_from", "advisor", "advice", "policy_sha256",
                                               "portfolio_value"]), rows=len(table), digits=4)})


@dg.asset(group_name=GROUP, kinds={"json", "csv"}, io_manager_key="json_io_manager",
          ins={"recommendations": dg.AssetIn()})
def recommendation_files(context: dg.AssetExecutionContext, storage: Storage,
                         recommendations: pd.DataFrame) -> dg.MaterializeResult:
    """reports/recommendations.json and .csv: written only when recommendation_limits passed on
    exactly the stored recommendations (read from the instance, so materializing this asset alone
    cannot publish recommendations that failed or skipped the check)."""
    require_check_passed(context.instance, "recommendations", "recommendation_limits")
    first = recommendations.iloc[0]
    cash = 1.0 - float(recommendations["target_weight"].sum())
    orders_only = recommendations.drop(columns=["as_of", "current_weights_from", "advisor", "advice", "policy_sha256",
                                                "portfolio_value"])
    payload = {"as_of": first["as_of"], "advisor": first["advisor"], "advice": first["advice"],
               "policy_sha256": first["policy_sha256"],
               "current_weights_from": first["current_weights_from"], "portfolio_value": float(first["portfolio_value"]),
               "cash_weight": cash, "orders": orders_only.to_dict("records")}
    folder = storage.path("reports")
    folder.mkdir(parents=True, exist_ok=True)
    json_data = json.dumps(payload, indent=2).encode()
    (folder / "recommendations.json").write_bytes(json_data)
    buffer = io.StringIO()
    orders_only.to_csv(buffer, index=False)
    csv_data = buffer.getvalue().encode()
    (folder / "recommendations.csv").write_bytes(csv_data)
    written = [Artifact.of(str(folder / "recommendations.json"), json_data, "report"),
               Artifact.of(str(folder / "recommendations.csv"), csv_data, "report")]
    return dg.MaterializeResult(value={"json": str(folder / "recommendations.json"),
                                       "csv": str(folder / "recommendations.csv"), "sha256": written[0].sha256},
                                metadata={"advisor": str(first["advisor"]), "json": str(folder / "recommendations.json"),
                                          "csv": str(folder / "recommendations.csv"), "cash_weight": round(cash, 4),
                                          **artifacts_metadata(written)})
