"""The forecasting partitions in Dagster: MLflow registration, gates recorded on the candidate's
version, promotion that refuses a candidate whose gates failed (in the same run; materialized
alone, deployed_models reads the last candidate that passed), a constant model refused for lack of skill, and verified
batch inference that says so for a ticker without a model."""

import json
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from odyssey import registry as mlreg
from odyssey.gates import REQUIRED_GATES, GateNotPassed, require_gates
from resources import mlflow_resource
from tests.dagster_helpers import (check_results, failed_checks, fast_forecasting_config, gate_settings, materialized,
                                   quick_settings, read_table, run_graph, signing_key, step_errors)

PER_TICKER = {"walkforward_forecasts", "walkforward_summary", "forecast_models", "shap_importance", "deployed_models",
              "analog_forecasts", "analog_summary"}


class Env(tuple):
    """(settings, instance, tracker) of the module's market, with the two first forecasting runs:
    SPY's first candidate (`spy`) and AAPL's constant model (`aapl`)."""

    spy: dg.ExecuteInProcessResult
    aapl: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The quick market's data layer, SPY's first candidate and AAPL's constant model, so that every
    test below starts from the same registry whether it runs alone or after the others."""
    settings = quick_settings(tmp_path_factory.mktemp("forecasting"))
    with dg.instance_for_test() as instance:
        assert run_graph(settings, instance=instance).success
        made = Env((settings, instance, mlflow_resource(settings).tracker()))
        made.spy = _forecast(made, "SPY")
        made.aapl = _forecast(made, "AAPL", xgb={"min_child_weight": 1e9})  # no split: one constant forecast
        yield made


def _forecast(env, ticker, xgb=None, settings=None):
    base, instance, _ = env
    return run_graph(settings or base, job="forecasting", partition_key=ticker, instance=instance,
                     run_config=fast_forecasting_config(xgb))


@pytest.mark.slow
def test_first_candidate_passes_the_gates_and_becomes_champion(env):
    settings, _, tracker = env
    result = env.spy
    assert result.success
    assert materialized(result) == PER_TICKER
    assert check_results(result) == {g: True for g in REQUIRED_GATES}
    assert mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version == "1"
    assert mlreg.gate_results(tracker, "SPY", "1", signing_key(settings)) == {g: "passed" for g in REQUIRED_GATES}
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta["walkforward_forecasts"]["folds"].value == 7  # six full folds and the partial one
    assert "fold_metrics" in meta["walkforward_forecasts"] and "plot" in meta["shap_importance"]
    run = tracker.client().get_run(meta["forecast_models"]["mlflow_run_id"].value)
    assert run.data.params["registry_version"] == "v2" and "oos_ic" in run.data.metrics
    assert run.data.tags["ticker"] == "SPY"


@pytest.mark.slow
def test_a_failed_gate_stops_deployment_and_deployed_models_alone_never_reads_the_failed_candidate(env):
    settings, instance, tracker = env
    # any accuracy now counts as implausible: the new candidate fails plausible_accuracy
    # (and skill judged leniently, so that plausibility is the one gate this seed's candidate fails)
    strict = gate_settings(settings, implausible_direction_accuracy=0.0, naive_margin=-1.0, family_rate=0.5)
    result = _forecast(env, "SPY", xgb={"seed": 7}, settings=strict)
    assert not result.success
    assert set(failed_checks(result)) == {"plausible_accuracy"}
    built = materialized(result)
    assert "forecast_models" in built and "deployed_models" not in built and "shap_importance" not in built
    failed = mlreg.version_by_alias(tracker, "SPY", mlreg.CANDIDATE).version
    champion = mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version
    assert failed != champion
    assert "suspected leakage" in failed_checks(result)["plausible_accuracy"].metadata["reason"].value
    gates = mlreg.gate_results(tracker, "SPY", failed, signing_key(settings))
    assert gates["plausible_accuracy"] == "failed" and gates["leakage_canary"] == "passed"
    # retrained on the same sessions, the champion has no live outcomes to be compared on
    assert "not yet evaluable" in check_results_reasons(result)["no_regression"]

    # materialized alone, deployed_models reads the newest candidate whose gates all passed (the
    # champion's), not the one that failed
    alone = run_graph(settings, job="forecasting", partition_key="SPY", instance=instance,
                      selection=[dg.AssetKey("deployed_models")])
    assert alone.success and materialized(alone) == {"deployed_models"}
    meta = alone.get_asset_materialization_events()[0].materialization.metadata
    assert meta["champion_version"].value == champion
    assert "rejected by plausible_accuracy" in meta["input_versions"].value
    assert mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version == champion


def check_results_reasons(result) -> dict[str, str]:
    return {e.check_name: e.metadata["reason"].value for e in result.get_asset_check_evaluations()}


def test_promotion_needs_every_gate_recorded_for_exactly_this_candidate():
    require_gates({g: "passed" for g in REQUIRED_GATES}, "v3")
    with pytest.raises(GateNotPassed, match="never evaluated.*has_skill"):
        require_gates({g: "passed" for g in REQUIRED_GATES if g != "has_skill"}, "v3")
    with pytest.raises(GateNotPassed, match="failed gates \\['leakage_canary'\\]"):
        require_gates({**{g: "passed" for g in REQUIRED_GATES}, "leakage_canary": "failed"}, "v3")


@pytest.mark.slow
def test_a_constant_model_has_no_skill_and_is_not_deployed(env):
    _, _, tracker = env
    result = env.aapl
    assert set(failed_checks(result)) == {"has_skill"}
    assert "excess IC +0.000 (p 1), long-only tilt over holding +0.00%/yr after costs (p 1)" in \
        failed_checks(result)["has_skill"].metadata["reason"].value
    assert mlreg.version_by_alias(tracker, "AAPL", mlreg.CHAMPION) is None


@pytest.mark.slow
def test_batch_forecasts_use_verified_champions_and_name_tickers_without_skill(env):
    settings, instance, tracker = env
    result = run_graph(settings, job="batch_forecasts", instance=instance)
    assert result.success
    table = read_table(settings, "forecasts").set_index("ticker")
    champion = mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version
    assert table.loc["SPY", "model_version"] == champion and table.loc["SPY", "status"] == "champion"
    assert table.loc[["AAPL", "QQQ", "NVDA", "IEF"], "status"].eq("no model with skill").all()
    assert table.loc[["AAPL", "QQQ"], "prediction"].isna().all()
    log = read_table(settings, "forecast_log")
    assert set(log["ticker"]) == {"SPY"} and log["date"].max() == table.loc["SPY", "date"]
    meta = next(e for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "forecasts").materialization.metadata
    assert "AAPL" in meta["no_model_with_skill"].value


def _served(settings) -> pd.DataFrame:
    return read_table(settings, "forecasts").set_index("ticker")


@pytest.mark.slow
def test_serving_refuses_a_champion_whose_gates_did_not_pass_and_keeps_serving_the_others(env):
    """AAPL's constant model failed has_skill. The champion alias moved to it by hand (the MLflow UI
    allows it), then its gate tag edited to `passed`: forecasts refuse AAPL each time and keep
    serving SPY, and promoting the edited version is refused."""
    settings, instance, tracker = env
    client, name = tracker.client(), mlreg.model_name("AAPL")
    client.set_registered_model_alias(name, mlreg.CHAMPION, "1")
    try:
        for edit in (None, "passed"):
            if edit:
                client.set_model_version_tag(name, "1", "gate.has_skill", edit)
            result = run_graph(settings, job="batch_forecasts", instance=instance)
            assert result.success
            table = _served(settings)
            assert table.loc["SPY", "status"] == "champion" and not pd.isna(table.loc["SPY", "prediction"])
            status = table.loc["AAPL", "status"]
            assert status.startswith("champion refused") and "champion not gated" in status, status
            assert "failed gates ['has_skill']" in status and pd.isna(table.loc["AAPL", "prediction"])
            assert "AAPL" not in set(read_table(settings, "forecast_log")["ticker"])
            assert "AAPL" in failed_checks(result)["champions_verified"].metadata["reason"].value
        client.delete_registered_model_alias(name, mlreg.CHAMPION)
        promoted = run_graph(settings, job="forecasting", partition_key="AAPL", instance=instance,
                             selection=[dg.AssetKey("deployed_models")])
        # deployed_models reads the newest forecast_models whose gates passed: AAPL has none
        errors = " ".join(step_errors(promoted))
        assert not promoted.success and "has no version that passed its blocking checks" in errors
        assert "rejected by has_skill" in errors, errors
        assert mlreg.version_by_alias(tracker, "AAPL", mlreg.CHAMPION) is None
    finally:
        client.set_model_version_tag(name, "1", "gate.has_skill", "failed")
        if mlreg.version_by_alias(tracker, "AAPL", mlreg.CHAMPION) is not None:
            client.delete_registered_model_alias(name, mlreg.CHAMPION)


@pytest.mark.slow
def test_a_champion_whose_card_was_edited_is_refused_and_the_card_named(env):
    settings, instance, tracker = env
    champion = mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION)
    path = Path(champion.source.removeprefix("file://")) / mlreg.CARD_FILE
    original = path.read_text()
    card = json.loads(original)
    card["walkforward"]["oos_ic"] = 0.9
    for values in (card["pipeline"].get("scaler") or {}).get("features", {}).values():
        values["mean"] += 3 * values["scale"]
    try:
        path.write_text(json.dumps(card))
        result = run_graph(settings, job="batch_forecasts", instance=instance)
        assert result.success
        status = _served(settings).loc["SPY", "status"]
        assert status.startswith("champion refused") and "card.json" in status, status
    finally:
        path.write_text(original)


@pytest.mark.slow
def test_a_champion_signed_with_another_key_is_refused(env, monkeypatch):
    settings, instance, _ = env
    monkeypatch.setenv("ODYSSEY_SIGNING_KEY", "not-the-key-the-model-was-signed-with")
    keyed = settings.updated({"paths": {"signing_key_env": "ODYSSEY_SIGNING_KEY"}})
    result = run_graph(keyed, job="batch_forecasts", instance=instance)
    assert result.success  # the batch still runs: each ticker without a servable champion says why
    status = _served(settings).loc["SPY", "status"]
    assert status.startswith("champion refused") and "signature does not verify" in status, status
    assert "SPY" in failed_checks(result)["champions_verified"].metadata["reason"].value


@pytest.mark.slow
def test_a_champion_trained_on_other_features_is_replaced_not_a_deadlock(env):
    """Without the alternative series the run has 85 features; SPY's champion was trained on 94. It
    cannot be compared or served, so it does not block its replacement, and forecasts says why."""
    settings, instance, tracker = env
    # (skill judged leniently: the point is the features, and this weaker model's skill is marginal)
    no_alt = settings.updated({"universe": {"alt_series": []}, "gates": {"family_rate": 0.5}})
    before = mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version
    result = _forecast(env, "SPY", settings=no_alt)
    assert result.success, {k: v.metadata["reason"].value for k, v in failed_checks(result).items()}
    assert "cannot be compared" in check_results_reasons(result)["no_regression"]
    after = mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version
    assert after != before
    # the data layer still holds 94 features; any other ticker's old champion is refused with the reason
    assert run_graph(settings, job="batch_forecasts", instance=instance).success


@pytest.mark.slow
def test_has_skill_adjusts_for_every_ticker_and_every_variant_tried(env):
    """Family-wise (Holm at 10 %): SPY's verdict counts the five tickers of the universe times the
    variants the tracking store has evaluated. AAPL's stored walk-forward (the constant model) is
    read with its p = 1; NVDA, QQQ and IEF, never walked forward, count with p = 1. So SPY needs
    p <= 0.1 / hypotheses, and the variants, method and rate are in the signed verdict."""
    settings, _, tracker = env
    holm = gate_settings(settings, family_method="holm")
    result = _forecast(env, "SPY", settings=holm)
    evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}["has_skill"]
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    variants = mlreg.variants_tried(tracker)
    assert variants >= 2  # SPY's small model and AAPL's constant one at least
    assert meta["variants"] == variants and meta["hypotheses"] == 5 * variants
    assert re.search(r"\|\s*AAPL\s*\|\s*1(\.0*)?\s*\|", meta["family"]), meta["family"]
    assert re.search(r"\|\s*NVDA\s*\|\s*nan\s*\|", meta["family"]), meta["family"]
    assert evaluation.passed == (meta["p"] * 5 * variants <= 0.1)
    assert meta["adjusted_p"] == pytest.approx(min(1.0, meta["p"] * 5 * variants))
    version = mlreg.version_by_alias(tracker, "SPY", mlreg.CANDIDATE).version
    tags = tracker.client().get_model_version(mlreg.model_name("SPY"), version).tags
    thresholds = json.loads(tags["gate.has_skill.record"])["thresholds"]
    assert thresholds["family_method"] == "holm" and thresholds["hypotheses"] == 5 * variants
