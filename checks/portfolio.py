"""Blocking checks of the portfolio group: the policy earns its place over its baseline on days it
never trained on, the ONNX export acts like the torch policy, and the recommended weights respect
the position limits."""

import dagster as dg
import numpy as np
import pandas as pd

from odyssey import backtest as bt
from odyssey.portfolio import limit_violations, policy_periods
from odyssey.metrics import ANNUAL_DAYS
from odyssey.gates import policy_gate_thresholds
from resources.metadata import md_table
from resources.portfolio import forecast_panel, held_out_blocks, load_onnx, load_policy, policy_constraints
from resources.settings import SettingsResource
from resources.storage import Storage
from resources.tracking import ArtifactSigner


@dg.asset_check(asset="ppo_policy", blocking=True,
                additional_ins={"walkforward_forecasts": dg.AssetIn(), "returns": dg.AssetIn()},
                description="non-inferiority over the policy's walk-forward: on its held-out blocks (each traded by "
                            "the fold's policy, trained only on the days before it), the lower bound of the 90 % "
                            "interval of the excess return over the baseline after costs is >= -gates.policy_margin "
                            "(1 %/yr); when it fails, the policy cannot advise")
def policy_earns_its_place(settings: SettingsResource, storage: Storage, signer: ArtifactSigner, ppo_policy: dict,
                           walkforward_forecasts: dict, returns: pd.DataFrame) -> dg.AssetCheckResult:
    # Severity WARN on failure: the run goes on to backtest the policy (so the report shows how it
    # fails); strategy_selection and recommendations read this verdict and never let the policy advise.
    gates, portfolio = settings.value.gates, settings.value.portfolio
    thresholds = policy_gate_thresholds(settings.value)
    folds = ppo_policy.get("folds") or []
    tickers = tuple(ppo_policy["tickers"])
    panel = forecast_panel(walkforward_forecasts, tickers, returns)
    # the verdict records the settings' values: the stored policy must have walked forward by them
    periods = policy_periods(panel.dates, settings.profile().validation_end, settings.value.forecast.horizon,
                             portfolio.validation_fraction, portfolio.policy_folds)
    wanted = [(str(f.start.date()), str(f.end.date())) for f in periods.folds]
    if [(f["start"], f["end"]) for f in folds] != wanted:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={
            **thresholds, "reason": f"the stored policy's held-out blocks {[(f['start'], f['end']) for f in folds]} "
                                    f"are not the settings' {wanted} (validation_fraction, policy_folds): "
                                    "materialize ppo_policy again; the policy cannot advise"})
    blocks = held_out_blocks(storage, signer, ppo_policy, panel, returns)
    policies, baselines = bt.walk_forward_runs(blocks, policy_constraints(ppo_policy), ppo_policy["tilt"],
                                               ppo_policy["trade_rate"])
    verdict = bt.judge_policy(bt.concatenate("policy", policies), bt.concatenate("baseline", baselines),
                              gates.policy_margin, gates.policy_level, gates.policy_block_days, blocks=len(blocks))
    per_block = pd.DataFrame([{"fold": f["fold"], "start": f["start"], "end": f["end"], "days": len(p.returns),
                               "excess_return": float((p.returns - b.returns).mean() * ANNUAL_DAYS)}
                              for f, p, b in zip(folds, policies, baselines)])
    return dg.AssetCheckResult(
        passed=verdict.passed, severity=dg.AssetCheckSeverity.WARN,
        metadata={**thresholds, "baseline": ppo_policy["baseline"], "excess_return": verdict.excess_return,
                  "excess_return_ci_low": verdict.ci_low, "excess_return_ci_high": verdict.ci_high,
                  "validation_days": verdict.days, "policy_turnover": verdict.policy_turnover,
                  "baseline_turnover": verdict.baseline_turnover, "blocks": md_table(per_block, rows=len(per_block)),
                  "reason": verdict.reason + ("" if verdict.passed else "; the policy cannot advise")})


class OnnxCheckConfig(dg.Config):
    tolerance: float = 1e-5
    observations: int = 2000
    seed: int = 0


@dg.asset_check(asset="policy_onnx", blocking=True, additional_ins={"ppo_policy": dg.AssetIn()},
                description="ONNX and torch actions agree within 1e-5 on random observations from the space")
def onnx_matches_torch(config: OnnxCheckConfig, storage: Storage, signer: ArtifactSigner, policy_onnx: dict,
                       ppo_policy: dict) -> dg.AssetCheckResult:
    from odyssey.policy import onnx_decider, torch_decider

    model = load_policy(storage, signer, ppo_policy)
    space = model.observation_space
    space.seed(config.seed)
    obs = np.stack([space.sample() for _ in range(config.observations)])
    exported = onnx_decider(load_onnx(storage, signer, policy_onnx, ppo_policy))
    difference = float(np.max(np.abs(torch_decider(model)(obs) - exported(obs))))
    return dg.AssetCheckResult(passed=difference <= config.tolerance, metadata={
        "max_abs_difference": difference, "tolerance": config.tolerance, "observations": config.observations,
        "reason": f"max |onnx - torch| = {difference:.2e} (tolerance {config.tolerance:.0e})"})


@dg.asset_check(asset="recommendations", blocking=True, additional_ins={"ppo_policy": dg.AssetIn()},
                description="every target weight within 0-20 %, at most 80 % invested, every ticker present, "
                            "orders consistent with the weight changes")
def recommendation_limits(recommendations: pd.DataFrame, ppo_policy: dict) -> dg.AssetCheckResult:
    tickers = list(ppo_policy["tickers"])
    problems = limit_violations(recommendations["ticker"].tolist(), recommendations["target_weight"].to_numpy(),
                                policy_constraints(ppo_policy))
    missing = sorted(set(tickers) - set(recommendations["ticker"]))
    if missing:
        problems.append(f"no recommendation for {missing}")
    expected = np.select([recommendations["change"] > 1e-12, recommendations["change"] < -1e-12], ["BUY", "SELL"], "HOLD")
    wrong = recommendations.loc[recommendations["action"] != expected, "ticker"].tolist()
    if wrong:
        problems.append(f"action does not match the weight change for {wrong}")
    return dg.AssetCheckResult(passed=not problems, metadata={
        "invested": float(recommendations["target_weight"].sum()),
        "reason": "; ".join(problems) if problems else "all limits hold"})


PORTFOLIO_CHECKS = [policy_earns_its_place, onnx_matches_torch, recommendation_limits]
