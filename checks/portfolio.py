"""Blocking checks of the portfolio group: the ONNX export acts like the torch policy, and the
recommended weights respect the position limits."""

import dagster as dg
import numpy as np
import pandas as pd

from odyssey.policy import onnx_decider, torch_decider
from odyssey.portfolio import limit_violations
from resources.portfolio import load_onnx, load_policy, policy_constraints
from resources.storage import Storage
from resources.tracking import ArtifactSigner


class OnnxCheckConfig(dg.Config):
    tolerance: float = 1e-5
    observations: int = 2000
    seed: int = 0


@dg.asset_check(asset="policy_onnx", blocking=True, additional_ins={"ppo_policy": dg.AssetIn()},
                description="ONNX and torch actions agree within 1e-5 on random observations from the space")
def onnx_matches_torch(config: OnnxCheckConfig, storage: Storage, signer: ArtifactSigner, policy_onnx: dict,
                       ppo_policy: dict) -> dg.AssetCheckResult:
    model = load_policy(storage, signer, ppo_policy)
    space = model.observation_space
    space.seed(config.seed)
    obs = np.stack([space.sample() for _ in range(config.observations)])
    difference = float(np.max(np.abs(torch_decider(model)(obs) - onnx_decider(load_onnx(storage, signer, policy_onnx))(obs))))
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


PORTFOLIO_CHECKS = [onnx_matches_torch, recommendation_limits]
