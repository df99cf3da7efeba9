"""Loading the signed policy artifacts and reading gate results from the Dagster instance:
shared by the portfolio assets and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import dagster as dg
import numpy as np
import pandas as pd
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from odyssey.portfolio import (ONNX_FILE, ONNX_MODEL, POLICY_FILE, POLICY_MODEL, Constraints, Panel, PolicyMarket,
                               SignalScale, baseline_policy_market, build_panel, spaces)
from odyssey.signing import SignatureError, verify, verify_card
from resources.metadata import check_reason
from resources.storage import Storage
from resources.tracking import ArtifactSigner


def policy_constraints(policy: dict) -> Constraints:
    return Constraints(**policy["constraints"])


def policy_scale(policy: dict) -> SignalScale:
    return SignalScale(tuple(policy["signal_scale"]), policy["signal_clip"])


def forecast_panel(walkforward_forecasts: dict[str, pd.DataFrame], tickers: tuple[str, ...],
                   returns: pd.DataFrame) -> Panel:
    return build_panel(pd.concat([walkforward_forecasts[t] for t in tickers], ignore_index=True), tickers, returns)


def policy_market_for(policy: dict, panel: Panel, returns: pd.DataFrame) -> PolicyMarket:
    """What the policy described by its card sees over `panel`: its signal scale, its baseline and
    its forecast context."""
    return baseline_policy_market(panel, returns, policy_scale(policy), policy["baseline"], policy_constraints(policy),
                                  policy["vol_window"], policy["horizon"], policy["skill_window"])


def verified_policy(storage: Storage, signer: ArtifactSigner, policy: dict) -> bytes:
    """The policy's zip, after its card (`policy`: signal scale, limits, baseline, tilt, what acting
    with it reads) and the zip verified against the card's signed manifest."""
    data = storage.path(policy["path"]).read_bytes()
    verify_card(policy, {POLICY_FILE: data}, signer.key(), model=POLICY_MODEL, where="ppo policy")
    return data


def load_policy(storage: Storage, signer: ArtifactSigner, policy: dict):
    from odyssey.policy import load_verified  # torch and SB3, imported when a policy is loaded

    data = verified_policy(storage, signer, policy)
    return load_verified(data, policy["sha256"], policy["signature"], signer.key(),
                         *spaces(len(policy["tickers"]), policy["signal_clip"]))


def held_out_blocks(storage: Storage, signer: ArtifactSigner, policy: dict, panel: Panel,
                    returns: pd.DataFrame) -> list[tuple[PolicyMarket, Callable[[np.ndarray], np.ndarray]]]:
    """The policy's walk-forward, as its signed card records it: for each fold, its held-out block
    of `panel` as that fold's policy sees it (the fold's own signal scale) and that policy's
    deterministic actions, loaded after the card and each fold's zip verify."""
    from odyssey.policy import load_verified, torch_decider  # torch and SB3, imported when a policy is loaded

    verified_policy(storage, signer, policy)  # the card, which names every fold's hash, verifies first
    if not policy.get("folds"):
        raise SignatureError("ppo policy: its card names no walk-forward folds (stored before the policy walked "
                             "forward): materialize ppo_policy again")
    blocks = []
    for fold in policy["folds"]:
        data = storage.path(fold["path"]).read_bytes()
        model = load_verified(data, fold["sha256"], fold["signature"], signer.key(),
                              *spaces(len(policy["tickers"]), policy["signal_clip"]))
        market = policy_market_for({**policy, "signal_scale": fold["signal_scale"]}, panel, returns)
        blocks.append((market.between(fold["start"], fold["end"]), torch_decider(model)))
    return blocks


def load_onnx(storage: Storage, signer: ArtifactSigner, exported: dict, policy: dict) -> bytes:
    """The ONNX export's bytes, after the policy's card (which the caller acts with beside it),
    the export's card and bytes verified, and the export found to be of exactly this policy."""
    verified_policy(storage, signer, policy)
    data = storage.path(exported["path"]).read_bytes()
    verify_card(exported, {ONNX_FILE: data}, signer.key(), model=ONNX_MODEL, where="policy onnx")
    verify(data, signer.key(), exported["sha256"], exported["signature"], name="policy onnx")
    if exported["policy_sha256"] != policy["sha256"]:
        raise SignatureError(f"policy onnx: exported from policy {exported['policy_sha256'][:12]}…, not the stored "
                             f"ppo_policy {policy['sha256'][:12]}…: materialize policy_onnx again")
    return data


class CheckNotPassed(RuntimeError):
    """A gate's latest evaluation is missing, failed, or was made on another version of its asset."""


@dataclass(frozen=True)
class CheckVerdict:
    passed: bool
    reason: str
    metadata: dict = field(default_factory=dict)  # the evaluation's metadata values (its thresholds among them)


def check_verdict(instance: dg.DagsterInstance, asset: str, check: str) -> CheckVerdict:
    """The check's latest evaluation on the asset's latest materialization: passed, or why not
    (never evaluated, evaluated on an earlier materialization, or failed with its reason)."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    latest = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    record = instance.get_latest_asset_check_evaluation_record(key)
    where = f"{asset}:{check}"
    if not latest:
        return CheckVerdict(False, f"{asset} has never been materialized")
    if record is None or record.event is None or record.status not in (AssetCheckExecutionRecordStatus.SUCCEEDED,
                                                                        AssetCheckExecutionRecordStatus.FAILED):
        return CheckVerdict(False, f"{where} has not been evaluated on the latest {asset}: materialize {asset} with "
                                   "its checks first")
    evaluation = record.event.asset_check_evaluation
    target = evaluation.target_materialization_data if evaluation else None
    if target is None or target.storage_id != latest[0].storage_id:
        return CheckVerdict(False, f"{where} was last evaluated on an earlier {asset} (run "
                                   f"{target.run_id if target else '?'}), not the latest (run {latest[0].run_id}): "
                                   f"materialize {asset} with its checks first")
    reason = check_reason(record)
    values = {name: entry.value for name, entry in evaluation.metadata.items()}
    if not evaluation.passed:
        return CheckVerdict(False, f"{where} failed on the latest {asset}" + (f": {reason}" if reason else ""), values)
    return CheckVerdict(True, f"{where} passed" + (f": {reason}" if reason else ""), values)


def require_check_passed(instance: dg.DagsterInstance, asset: str, check: str) -> None:
    """The check's latest evaluation must have passed on the asset's latest materialization."""
    verdict = check_verdict(instance, asset, check)
    if not verdict.passed:
        raise CheckNotPassed(verdict.reason)
