"""Final models: the training window, safe persistence, signatures, feature-version refusal and
forecasts from the pipeline parameters a model was trained with."""

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from odyssey import features as F
from odyssey.fitting import MarketInputs, feature_pipeline
from odyssey.models import (FeatureVersionError, card_from_json, card_to_json, check_compatible, forecast,
                            load_verified, serialize, train_final_model, training_cutoff)
from odyssey.settings import WalkForwardSettings, XGBParams, load_settings, preset_path
from odyssey.signing import SignatureError, load_or_create_key, sign, verify
from odyssey.walkforward import WalkForward

FAST = XGBParams(max_depth=2, learning_rate=0.1, n_estimators=50, early_stopping_rounds=10, nthread=1)
KEY = b"test-key"


@pytest.fixture(scope="module")
def walkforward(quick_settings):
    return WalkForward(feature_pipeline(quick_settings), FAST, WalkForwardSettings(), horizon=5,
                       costs=quick_settings.costs)


@pytest.fixture(scope="module")
def trained(walkforward, quick_pipeline):
    booster, card = train_final_model(walkforward, quick_pipeline.inputs, "SPY", F.REGISTRY_VERSION)
    data, card = serialize(booster, card, KEY)
    return booster, data, card


@pytest.fixture(scope="module")
def sessions(quick_pipeline):
    return pd.DatetimeIndex(sorted(quick_pipeline.clean["date"].unique()))


def test_same_data_same_model_bytes(walkforward, quick_pipeline, trained):
    _, data, card = trained
    again, card2 = serialize(*train_final_model(walkforward, quick_pipeline.inputs, "SPY", F.REGISTRY_VERSION), KEY)
    assert again == data and card2.sha256 == card.sha256 and card2.data_sha256 == card.data_sha256


def test_the_model_learns_up_to_horizon_plus_embargo_sessions_before_the_last_one(trained, sessions):
    _, _, card = trained
    # the last training row's 5-session target is realised, and 5 more embargo sessions follow it
    assert training_cutoff(sessions, 5, 5) == sessions[-11]
    assert card.train_end == str(sessions[-11].date()) and card.data_end == str(sessions[-1].date())
    assert card.live_after == str(sessions[-6].date())
    assert card.train_start == str(sessions[0].date())
    assert card.horizon == 5 and card.feature_names == list(F.FEATURE_NAMES)
    # the pipeline the model carries was fitted on its training window
    pipeline = card.pipeline_params()
    assert pipeline.train_end == pipeline.clip["train_end"] == pipeline.regime["train_end"] == card.train_end
    assert pipeline.scaler["train_end"] == card.train_end
    assert pipeline.scaler["rows"] == card.train_rows + card.validation_rows + 5  # the purged rows too
    with pytest.raises(ValueError, match="not enough"):
        training_cutoff(sessions[:10], 5, 5)


def test_a_rolling_training_window(walkforward, quick_pipeline, trained, sessions):
    _, _, full = trained
    _, card = train_final_model(walkforward, quick_pipeline.inputs, "SPY", F.REGISTRY_VERSION, training_years=2.0)
    assert card.train_end == full.train_end
    first = sessions[sessions >= pd.Timestamp(card.train_end) - pd.DateOffset(years=2)][0]
    assert card.train_start == str(first.date())
    params = card.pipeline_params()  # the pipeline is fitted on the window only
    assert params.train_start == params.scaler["train_start"] == card.train_start
    assert card.train_rows < full.train_rows and card.validation_rows == full.validation_rows


def test_model_is_ubjson_not_pickle_and_round_trips(quick_pipeline, trained, sessions):
    booster, data, card = trained
    assert data[:1] == b"{"  # UBJSON object marker
    assert b"pickle" not in data
    restored = card_from_json(card_to_json(card))
    loaded = load_verified(data, restored, KEY, F.REGISTRY_VERSION, F.FEATURE_NAMES)
    test_days = sessions[sessions > pd.Timestamp(quick_pipeline.profile.validation_end)]
    got = forecast(loaded, restored, quick_pipeline.inputs, test_days)
    want = forecast(booster, card, quick_pipeline.inputs, test_days)
    assert len(got) == len(test_days) and (got["ticker"] == "SPY").all()
    np.testing.assert_array_equal(got["prediction"].to_numpy(), want["prediction"].to_numpy())
    assert got["prediction"].nunique() > 1


def test_forecasts_use_the_pipeline_parameters_the_model_was_trained_with(quick_pipeline, trained, sessions):
    booster, _, card = trained
    inputs = quick_pipeline.inputs
    days = sessions[-20:]
    got = forecast(booster, card, inputs, days)
    table = card.feature_pipeline().transform(inputs, card.pipeline_params(), ["SPY"])
    table = table[table["date"].isin(days)]
    x = xgb.DMatrix(table[card.feature_names].to_numpy(np.float32), feature_names=card.feature_names)
    np.testing.assert_array_equal(got["prediction"].to_numpy(), booster.predict(x))
    # later data does not refit anything: a forecast made before the new rows arrived is unchanged
    end = days[9]
    earlier = MarketInputs(inputs.clean[inputs.clean["date"] <= end], inputs.returns[inputs.returns["date"] <= end],
                           inputs.alt[inputs.alt["date"] <= end])
    np.testing.assert_allclose(forecast(booster, card, earlier, days[:10])["prediction"].to_numpy(),
                               got["prediction"].to_numpy()[:10], rtol=1e-6)


def test_tampered_or_foreign_models_are_refused(trained):
    _, data, card = trained
    tampered = bytearray(data)
    tampered[-10] ^= 0xFF
    with pytest.raises(SignatureError, match="SHA-256 mismatch"):
        load_verified(bytes(tampered), card, KEY, F.REGISTRY_VERSION, F.FEATURE_NAMES)
    with pytest.raises(SignatureError, match="HMAC"):
        load_verified(data, card, b"another-key", F.REGISTRY_VERSION, F.FEATURE_NAMES)


def test_wrong_feature_registry_version_is_a_clear_error(trained):
    _, data, card = trained
    with pytest.raises(FeatureVersionError, match="trained on feature registry v2 .* this run has registry v3"):
        load_verified(data, card, KEY, "v3", F.FEATURE_NAMES)
    with pytest.raises(FeatureVersionError):
        load_verified(data, card, KEY, F.REGISTRY_VERSION, F.FEATURE_NAMES[:-1])
    # a run without the alternative series the model used has fewer features
    with pytest.raises(FeatureVersionError, match=r"94 features; this run has registry v2 with 85 features .*VIX"):
        check_compatible(card, F.REGISTRY_VERSION, F.feature_names(()))
    check_compatible(card, F.REGISTRY_VERSION, F.FEATURE_NAMES)


def test_signing_key_from_env_or_generated_file(tmp_path, monkeypatch):
    with pytest.warns(UserWarning, match="generated a local one"):
        key = load_or_create_key(tmp_path / "k")
    assert load_or_create_key(tmp_path / "k") == key and len(key) == 64
    assert load_or_create_key(tmp_path / "k", "from-env") == b"from-env"
    verify(b"x", b"from-env", __import__("hashlib").sha256(b"x").hexdigest(), sign(b"x", b"from-env"))
    # ODYSSEY_SIGNING_KEY reaches the signer by name: the settings never hold the key itself
    from resources import build_resources

    monkeypatch.setenv("ODYSSEY_SIGNING_KEY", "from-env")
    settings = load_settings(preset_path("quick"), environ={"ODYSSEY_SIGNING_KEY": "from-env",
                                                            "ODYSSEY_HOME": str(tmp_path / "home")})
    assert settings.paths.signing_key_env == "ODYSSEY_SIGNING_KEY" and "from-env" not in settings.model_dump_json()
    assert build_resources(settings)["signer"].process_config_and_initialize().key() == b"from-env"
    unkeyed = load_settings(preset_path("quick"), environ={"ODYSSEY_HOME": str(tmp_path / "home")})
    with pytest.warns(UserWarning, match="generated a local one"):
        assert build_resources(unkeyed)["signer"].process_config_and_initialize().key() != b"from-env"
