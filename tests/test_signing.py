"""What is signed and verified: one manifest per stored model covering every file a load reads,
gate verdicts signed for exactly one model version and hash, and the registry refusing a champion
whose gates did not pass (a hand-moved alias, an edited gate tag) or whose card was edited."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from odyssey import features as F
from odyssey import registry as mlreg
from odyssey.gates import REQUIRED_GATES, GateNotPassed, GateVerdict, require_gates, sign_verdict, verdict_status
from odyssey.hashing import sha256_bytes
from odyssey.models import ModelCard, serialize
from odyssey.signing import Manifest, SignatureError, sign_manifest, verify_manifest

KEY = b"test-key"
FILES = {"model.ubj": b"{model bytes}", "card.json": b'{"tau": 0.5, "oos_ic": 0.03}'}


def _manifest() -> Manifest:
    return sign_manifest("forecast model", "odyssey-forecast-SPY", "SPY", "run-1", FILES, KEY)


def test_a_manifest_covers_every_file_and_names_the_one_edited():
    manifest = _manifest()
    assert manifest.files == {name: sha256_bytes(data) for name, data in FILES.items()}
    round_tripped = Manifest.from_json(manifest.to_json(), "SPY model")
    verify_manifest(round_tripped, FILES, KEY, model="odyssey-forecast-SPY", run_id="run-1", where="SPY model")
    edited = {**FILES, "card.json": b'{"tau": 0.5, "oos_ic": 0.9}'}
    with pytest.raises(SignatureError, match=r"SPY model: card\.json .*SHA-256"):
        verify_manifest(manifest, edited, KEY, model="odyssey-forecast-SPY", run_id="run-1", where="SPY model")
    with pytest.raises(SignatureError, match=r"card\.json .*missing"):
        verify_manifest(manifest, {"model.ubj": FILES["model.ubj"]}, KEY, model="odyssey-forecast-SPY",
                        run_id="run-1", where="SPY model")


def test_a_manifest_is_refused_when_edited_signed_with_another_key_or_moved_to_another_model():
    manifest = _manifest()
    # re-hashing an edited card into the manifest breaks its signature
    forged = Manifest.from_json(manifest.to_json().replace(manifest.files["card.json"], "0" * 64), "SPY model")
    with pytest.raises(SignatureError, match="manifest signature does not verify"):
        verify_manifest(forged, FILES, KEY, model="odyssey-forecast-SPY", run_id="run-1", where="SPY model")
    with pytest.raises(SignatureError, match="manifest signature does not verify"):
        verify_manifest(manifest, FILES, b"another key", model="odyssey-forecast-SPY", run_id="run-1", where="x")
    with pytest.raises(SignatureError, match="belongs to odyssey-forecast-SPY run run-1, not odyssey-forecast-QQQ"):
        verify_manifest(manifest, FILES, KEY, model="odyssey-forecast-QQQ", run_id="run-1", where="QQQ model")
    with pytest.raises(SignatureError, match="not odyssey-forecast-SPY run run-2"):
        verify_manifest(manifest, FILES, KEY, model="odyssey-forecast-SPY", run_id="run-2", where="SPY model")
    with pytest.raises(SignatureError, match="not a signed manifest"):
        Manifest.from_json("{}", "SPY model")


def test_gate_verdicts_count_only_when_signed_for_exactly_this_version_and_model_hash():
    verdict = GateVerdict("odyssey-forecast-SPY", "2", "a" * 64, "has_skill", "failed", {"min_skill_days": 250})
    record, signature = verdict.to_json(), sign_verdict(verdict, KEY)

    def status(record=record, signature=signature, version="2", sha="a" * 64, key=KEY):
        return verdict_status(record, signature, key, "odyssey-forecast-SPY", version, sha, "has_skill")

    assert status() == "failed"
    assert status(record=None, signature=None) == "unsigned"
    assert status(record=record.replace('"failed"', '"passed"')) == "bad signature"
    assert status(key=b"another key") == "bad signature"
    assert status(version="3") == "another version or model"  # a verdict copied onto another version
    assert status(sha="b" * 64) == "another version or model"  # the version now holds other model bytes
    passed = GateVerdict("odyssey-forecast-SPY", "2", "a" * 64, "has_skill", "passed", {})
    assert verdict_status(passed.to_json(), sign_verdict(passed, KEY), KEY, "odyssey-forecast-SPY", "2", "a" * 64,
                          "has_skill") == "passed"


def test_promotion_names_the_gates_that_failed_never_ran_or_do_not_verify():
    results = {**{g: "passed" for g in REQUIRED_GATES}, "has_skill": "bad signature", "no_regression": "unsigned"}
    with pytest.raises(GateNotPassed, match=r"verdicts that do not verify: has_skill \(bad signature\), "
                                            r"no_regression \(unsigned\)"):
        require_gates(results, "v3")


# --- the registry on MLflow ---------------------------------------------------------------------------

NAMES = ["f1", "f2", "f3"]


def _card(booster: xgb.Booster) -> ModelCard:
    return ModelCard(ticker="SPY", registry_version=F.REGISTRY_VERSION, feature_names=NAMES, horizon=5,
                     best_iteration=4, train_start="2015-01-02", train_end="2019-12-31", data_end="2020-01-15",
                     live_after="2020-01-08", train_rows=200, validation_rows=50, data_sha256="d" * 64, params={},
                     pipeline_config={}, pipeline={"scaler": {"features": {"f1": {"mean": 0.0, "scale": 1.0}}}},
                     walkforward={"oos_ic": 0.03, "oos_ic_ci_low": 0.01})


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    home = tmp_path_factory.mktemp("registry")
    tracker = mlreg.Tracker(f"sqlite:///{home / 'mlflow.db'}", (home / "artifacts").as_uri())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    dtrain = xgb.DMatrix(x, label=x[:, 0] + rng.normal(size=300), feature_names=NAMES)
    folds = pd.DataFrame(columns=["fold", "rmse", "r2", "direction_accuracy", "ic", "sharpe"])
    versions = {}
    for number, seed in ((1, 1), (2, 2)):
        booster = xgb.train({"seed": seed, "nthread": 1, "max_depth": 2, "subsample": 0.5}, dtrain, 5)
        data, card = serialize(booster, _card(booster), KEY)
        versions[number] = mlreg.log_candidate(tracker, "SPY", data, card, pd.DataFrame({"x": [1.0]}), {}, folds, {},
                                               {}, key=KEY)
        assert versions[number].version == str(number)
        for gate in REQUIRED_GATES:
            passed = not (number == 2 and gate == "has_skill")  # version 2 has no skill
            mlreg.record_gate(tracker, "SPY", str(number), gate, passed, "test verdict", key=KEY,
                              model_sha256=card.sha256, thresholds={"min_skill_days": 250})
    assert mlreg.promote(tracker, "SPY", "1", KEY) is None
    return tracker, versions


def _champion(tracker, key=KEY) -> mlreg.Champion:
    return mlreg.champion(tracker, "SPY", key, F.REGISTRY_VERSION, NAMES)


def test_the_registry_serves_a_champion_whose_every_gate_passed_and_refuses_to_promote_one_that_failed(registry):
    tracker, _ = registry
    assert mlreg.gate_results(tracker, "SPY", "1", KEY) == {g: "passed" for g in REQUIRED_GATES}
    current = _champion(tracker)
    assert current.version.version == "1" and current.booster is not None and not current.refused
    with pytest.raises(GateNotPassed, match=r"failed gates \['has_skill'\]"):
        mlreg.promote(tracker, "SPY", "2", KEY)
    assert mlreg.version_by_alias(tracker, "SPY", mlreg.CHAMPION).version == "1"
    refused = _champion(tracker, key=b"another key")
    assert refused.refused and refused.booster is None and "manifest signature does not verify" in refused.problem


def test_a_hand_moved_alias_and_edited_gate_tags_are_refused(registry):
    tracker, _ = registry
    client, name = tracker.client(), mlreg.model_name("SPY")
    tags = client.get_model_version(name, "2").tags
    client.set_registered_model_alias(name, mlreg.CHAMPION, "2")  # as the MLflow UI allows
    try:
        refused = _champion(tracker)
        assert refused.refused and refused.booster is None
        assert "champion not gated" in refused.problem and "failed gates ['has_skill']" in refused.problem
        # the shown tag edited to passed: the signed verdict still says failed
        client.set_model_version_tag(name, "2", "gate.has_skill", "passed")
        assert "failed gates ['has_skill']" in _champion(tracker).problem
        # the signed record edited to passed: its signature no longer verifies
        client.set_model_version_tag(name, "2", "gate.has_skill.record",
                                     tags["gate.has_skill.record"].replace('"failed"', '"passed"'))
        assert "has_skill (bad signature)" in _champion(tracker).problem
        # version 1's passing verdict copied onto version 2: it names another version and model hash
        v1 = client.get_model_version(name, "1").tags
        for suffix in (".record", ".signature"):
            client.set_model_version_tag(name, "2", f"gate.has_skill{suffix}", v1[f"gate.has_skill{suffix}"])
        assert "has_skill (another version or model)" in _champion(tracker).problem
        with pytest.raises(GateNotPassed, match="has_skill"):
            mlreg.promote(tracker, "SPY", "2", KEY)
    finally:
        for key, value in tags.items():
            client.set_model_version_tag(name, "2", key, value)
        client.set_registered_model_alias(name, mlreg.CHAMPION, "1")
    assert _champion(tracker).booster is not None


def test_an_edited_model_card_is_refused_and_named(registry):
    tracker, versions = registry
    folder = Path(versions[1].source.removeprefix("file://"))
    card_path = folder / mlreg.CARD_FILE
    original = card_path.read_text()
    card = json.loads(original)
    card["walkforward"]["oos_ic"] = 0.9
    card["pipeline"]["scaler"]["features"]["f1"]["mean"] += 3.0  # the scaler's mean moved by 3 sigma
    try:
        card_path.write_text(json.dumps(card))
        refused = _champion(tracker)
        assert refused.refused and refused.booster is None and "card.json" in refused.problem
        with pytest.raises(SignatureError, match=r"card\.json"):
            mlreg.load_registered(tracker, versions[1], KEY, F.REGISTRY_VERSION, NAMES)
    finally:
        card_path.write_text(original)
    assert _champion(tracker).booster is not None
