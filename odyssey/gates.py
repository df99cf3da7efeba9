"""Deployment gates for forecast models (implausibility bound, skill, no regression; the leakage
canary is odyssey/canary.py), the signed verdict a gate records (model,
version, model SHA-256, gate, verdict, thresholds), and the rule that promotion and serving need
every gate passed, with a verified verdict, for exactly the version and model at hand."""

from __future__ import annotations

import json
from dataclasses import dataclass, asdict

import numpy as np
import pandas as pd

from odyssey.metrics import block_bootstrap_ci, direction_accuracy, spearman_ic
from odyssey.signing import canonical_json, sign, signature_matches
from odyssey.settings import Settings
from odyssey.skill import FamilyDecision, SkillEvidence

# Daily-sampled 5-day direction accuracy above this, over hundreds of out-of-sample days, has not
# been seen from honest forecasts of liquid assets; the seed system's 73 % was leakage.
IMPLAUSIBLE_DIRECTION_ACCURACY = 0.60


# A check's metadata key: False when it had nothing to judge yet (it passes, and the run's
# summary counts it apart from the passes).
EVALUABLE_KEY = "evaluable"
NOT_EVALUABLE = "not yet evaluable"


@dataclass
class GateResult:
    passed: bool
    reason: str
    details: dict
    evaluable: bool = True  # False: nothing to judge yet (it passes, and is counted apart)

    def as_dict(self) -> dict:
        return asdict(self)


def within_fold_ic(predictions: pd.DataFrame) -> float:
    """Size-weighted mean of the per-fold Spearman IC."""
    parts = [(len(g), spearman_ic(g["target"].to_numpy(), g["prediction"].to_numpy()))
             for _, g in predictions.groupby("fold") if len(g) > 2]
    total = sum(n for n, _ in parts)
    return float(sum(n * ic for n, ic in parts) / total) if total else 0.0


def plausibility_gate(predictions: pd.DataFrame, bound: float = IMPLAUSIBLE_DIRECTION_ACCURACY,
                      margin: float = 0.05) -> GateResult:
    """Out-of-sample direction accuracy above `bound` is suspected leakage, unless the naive
    forecast (the sign of the training mean) is about as accurate: an asset that nearly always
    rises, like a T-bill fund, is predictable without any leak."""
    y = predictions["target"].to_numpy()
    acc = direction_accuracy(y, predictions["prediction"].to_numpy())
    naive = direction_accuracy(y, predictions["train_mean"].to_numpy()) if "train_mean" in predictions else 0.5
    passed = acc <= bound or acc <= naive + margin
    reason = (f"out-of-sample direction accuracy {acc:.3f} is plausible (bound {bound}, naive forecast {naive:.3f})"
              if passed else
              f"out-of-sample direction accuracy {acc:.3f} exceeds {bound} and the naive forecast's {naive:.3f} "
              f"by more than {margin}: suspected leakage")
    return GateResult(passed, reason, {"direction_accuracy": acc, "naive_direction_accuracy": naive, "bound": bound})


def regression_gate(candidate: pd.DataFrame, champion: pd.DataFrame | None, tolerance: float = 0.02,
                    min_common: int = 60, level: float = 0.9, block: int = 10, reps: int = 1000) -> GateResult:
    """On the sessions the champion forecast live (after its training data) whose outcome is now
    known, the candidate's walk-forward IC must not be significantly worse than the champion's
    live IC: the upper end of the paired block-bootstrap interval of (candidate - champion) must
    reach -tolerance. `champion`: date, prediction on those sessions (None: no champion)."""
    if champion is None:
        return GateResult(True, f"{NOT_EVALUABLE}: no champion yet (first deployment)", {}, evaluable=False)
    common = candidate[["date", "target", "prediction"]].merge(
        champion[["date", "prediction"]].rename(columns={"prediction": "champion"}), on="date").sort_values("date")
    if len(common) < min_common:
        return GateResult(True, f"{NOT_EVALUABLE}: {len(common)} of {min_common} sessions the champion forecast "
                                "live have an outcome", {"common_days": int(len(common))}, evaluable=False)
    y = common["target"].to_numpy()
    cand_ic = spearman_ic(y, common["prediction"].to_numpy())
    champ_ic = spearman_ic(y, common["champion"].to_numpy())

    def difference(f: dict[str, np.ndarray]) -> float:
        t = f["target"]
        return spearman_ic(t, f["prediction"]) - spearman_ic(t, f["champion"])

    low, high = block_bootstrap_ci(common.reset_index(drop=True), difference, block=block, reps=reps, level=level)
    passed = bool(high >= -tolerance)
    reason = (f"candidate walk-forward IC {cand_ic:.4f} vs champion live IC {champ_ic:.4f} on the {len(common)} "
              f"sessions the champion forecast live (difference interval {low:+.3f} .. {high:+.3f})"
              + ("" if passed else f": significantly worse, by more than {tolerance}"))
    return GateResult(passed, reason, {"candidate_ic": cand_ic, "champion_ic": champ_ic, "difference_ci_low": low,
                                       "difference_ci_high": high, "common_days": int(len(common)),
                                       "tolerance": tolerance})


def skill_gate(ticker: str, evidence: SkillEvidence | None, decision: FamilyDecision,
               min_days: int = 250) -> GateResult:
    """A model earns deployment when its walk-forward shows skill worth deploying (odyssey/skill.py:
    the excess IC and the economic test both reject "no skill") strongly enough for the whole
    family of hypotheses tried: `decision` adjusts every ticker's p-value (Holm or
    Benjamini-Hochberg over tickers x variants) and this ticker must be among those it deploys.
    `evidence` None: the walk-forward was stored before the test existed."""
    details = {"family_method": decision.method, "family_rate": decision.rate, "variants": decision.variants,
               "hypotheses": decision.hypotheses, "adjusted_p": decision.adjusted.get(ticker)}
    if evidence is None:
        return GateResult(False, "the walk-forward has no skill test: materialize walkforward again", details)
    if ticker not in decision.adjusted:
        return GateResult(False, f"{ticker} is not in the universe the family was decided over", details)
    details.update(evidence.to_dict())
    if evidence.n < min_days:
        return GateResult(False, f"only {evidence.n} out-of-sample days (< {min_days}): skill cannot be judged",
                          details)
    passed = decision.passes(ticker)
    reason = (f"excess IC {evidence.excess_ic:+.3f} (p {evidence.p_ic:.2g}), long-only tilt over holding "
              f"{evidence.tilt_excess:+.2%}/yr after costs (p {evidence.p_economic:.2g}): p {evidence.p:.2g}, "
              + (f"{decision.method} over {decision.hypotheses} hypotheses ({len(decision.p)} tickers x "
                 f"{decision.variants} variants) gives {decision.adjusted[ticker]:.2g} " if decision.method != "none"
                 else "judged alone (family_method none) ")
              + (f"<= {decision.rate}" if passed else f"> {decision.rate}: no skill worth deploying beyond chance"))
    return GateResult(passed, reason, details)


# Every gate a candidate must pass, by the check that records it, before it may become champion.
REQUIRED_GATES: tuple[str, ...] = ("leakage_canary", "plausible_accuracy", "has_skill",
                                   "signature_and_registry_version", "no_regression")
PASSED, FAILED = "passed", "failed"
UNSIGNED, BAD_SIGNATURE, ELSEWHERE = "unsigned", "bad signature", "another version or model"


@dataclass(frozen=True)
class GateVerdict:
    """One gate's verdict on exactly one registered version and model file, with the thresholds
    and settings it judged with: what is signed, so a tag edited by hand, or copied from another
    version, does not count."""

    model: str  # the registered model's name
    version: str
    model_sha256: str
    gate: str
    verdict: str  # passed | failed
    thresholds: dict

    def payload(self) -> bytes:
        return canonical_json(asdict(self))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GateVerdict":
        return cls(**json.loads(text))


def sign_verdict(verdict: GateVerdict, key: bytes) -> str:
    return sign(verdict.payload(), key)


def verdict_status(record: str | None, signature: str | None, key: bytes, model: str, version: str, model_sha256: str,
                   gate: str) -> str:
    """What a recorded verdict counts as for (`model`, `version`, `model_sha256`): "passed" or
    "failed" only when its signature verifies and it names exactly them; else "unsigned", "bad
    signature" or "another version or model"."""
    if not record or not signature:
        return UNSIGNED
    try:
        verdict = GateVerdict.from_json(record)
    except (TypeError, ValueError):
        return BAD_SIGNATURE
    if not signature_matches(verdict.payload(), key, signature):
        return BAD_SIGNATURE
    if (verdict.model, verdict.version, verdict.model_sha256, verdict.gate) != (model, version, model_sha256, gate):
        return ELSEWHERE
    return verdict.verdict if verdict.verdict in (PASSED, FAILED) else BAD_SIGNATURE


class GateNotPassed(RuntimeError):
    """Promotion or serving refused: a required gate failed, never ran, or its verdict does not
    verify for exactly this version and model."""


RETRY = "Materialize forecast_models with its checks (the forecasting job) and promote a candidate that passes them all."


def require_gates(results: dict[str, str], candidate: str, required: tuple[str, ...] = REQUIRED_GATES,
                  retry: str = RETRY, refusal: str = "cannot be promoted") -> None:
    """`results`: gate name -> "passed" | "failed" | why its verdict does not count, as recorded
    for exactly this candidate; `retry` says how to get a candidate that passes."""
    failed = [g for g in required if results.get(g) == FAILED]
    missing = [g for g in required if g not in results]
    unverified = [f"{g} ({results[g]})" for g in required if results.get(g) not in (PASSED, FAILED, None)]
    if failed or missing or unverified:
        raise GateNotPassed(f"{candidate} {refusal}: " + "; ".join(
            ([f"failed gates {failed}"] if failed else []) + ([f"gates never evaluated {missing}"] if missing else [])
            + ([f"verdicts that do not verify: {', '.join(unverified)}"] if unverified else [])) + ". " + retry)


def policy_gate_thresholds(settings: Settings) -> dict[str, float]:
    """What policy_earns_its_place judges with, recorded in its metadata: recommendations refuse a
    verdict whose values differ from the settings' (the thresholds live in settings only)."""
    return {"policy_margin": settings.gates.policy_margin, "policy_level": settings.gates.policy_level,
            "policy_block_days": settings.gates.policy_block_days, "policy_folds": settings.portfolio.policy_folds,
            "validation_fraction": settings.portfolio.validation_fraction}


def threshold_mismatches(recorded: dict, expected: dict) -> list[str]:
    """The thresholds a recorded verdict was made with that differ from what the settings say now
    (a missing one counts as different)."""
    return [f"{name} {recorded.get(name, 'missing')} (settings: {value})" for name, value in expected.items()
            if recorded.get(name) != value]
