"""Blocking checks of the portfolio group: the policy earns its place over its baseline on days it
never trained on, the ONNX export acts like the torch policy, and the recommended weights respect
the position limits."""

import dagster as dg
import numpy as np
import pandas as pd

from odyssey import backtest as bt
from odyssey.portfolio import limit_violations
from resources.portfolio import forecast_panel, load_onnx, load_policy, policy_constraints, policy_market_for
from resources.storage import Storage
from resources.tracking import ArtifactSigner


class PolicyGateConfig(dg.Config):
    level: float = 0.90
    block_days: int = 20


@dg.asset_check(asset="ppo_policy", blocking=True,
                additional_ins={"walkforward_forecasts": dg.AssetIn(), "returns": dg.AssetIn()},
                description="on the held-out validation days, the policy's excess return over its baseline after "
                            "costs is not significantly negative (the upper bound of its 90 % interval is >= 0); "
                            "when it fails, recommendations come from the baseline")
def policy_earns_its_place(config: PolicyGateConfig, storage: Storage, signer: ArtifactSigner, ppo_policy: dict,
                           walkforward_forecasts: dict, returns: pd.DataFrame) -> dg.AssetCheckResult:
    from odyssey.policy import torch_decider  # torch and SB3, imported when the check runs

    # Severity WARN on failure: the run goes on to backtest the policy (so the report shows how it
    # fails) and recommendations read this verdict and advise the baseline instead.
    tickers = tuple(ppo_policy["tickers"])
    market = policy_market_for(ppo_policy, forecast_panel(walkforward_forecasts, tickers, returns), returns)
    validation = market.between(ppo_policy["validation_start"], ppo_policy["validation_end"])
    verdict = bt.judge_policy(validation, torch_decider(load_policy(storage, signer, ppo_policy)),
                              policy_constraints(ppo_policy), ppo_policy["tilt"], ppo_policy["trade_rate"],
                              config.level, config.block_days)
    return dg.AssetCheckResult(
        passed=verdict.passed, severity=dg.AssetCheckSeverity.WARN,
        metadata={"baseline": ppo_policy["baseline"], "excess_return": verdict.excess_return,
                  "excess_return_ci_low": verdict.ci_low, "excess_return_ci_high": verdict.ci_high,
                  "validation_days": verdict.days, "policy_turnover": verdict.policy_turnover,
                  "baseline_turnover": verdict.baseline_turnover,
                  "reason": verdict.reason + ("" if verdict.passed else
                                              f"; recommendations come from the {ppo_policy['baseline']} baseline")})


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
