"""Final models: safe persistence, signatures and feature-version refusal."""

import numpy as np
import pytest

from odyssey import features as F
from odyssey.models import FeatureVersionError, load_verified, predict_rows, serialize, train_final_model
from odyssey.signing import SignatureError, load_or_create_key, sign, verify
from odyssey.splits import make_splits
from odyssey.walkforward import XGBParams

FAST = XGBParams(max_depth=2, learning_rate=0.1, n_estimators=50, early_stopping_rounds=10, nthread=1)
KEY = b"test-key"


@pytest.fixture(scope="module")
def dataset(quick_pipeline):
    table, _ = make_splits(quick_pipeline.features, quick_pipeline.clean, quick_pipeline.profile)
    return table


@pytest.fixture(scope="module")
def trained(dataset):
    booster, card = train_final_model(dataset, "SPY", F.FEATURE_NAMES, F.REGISTRY_VERSION, FAST)
    data, card = serialize(booster, card, KEY)
    return booster, data, card


def test_same_data_same_model_bytes(dataset, trained):
    _, data, card = trained
    again, card2 = serialize(*train_final_model(dataset, "SPY", F.FEATURE_NAMES, F.REGISTRY_VERSION, FAST), KEY)
    assert again == data and card2.sha256 == card.sha256 and card2.data_sha256 == card.data_sha256


def test_model_is_ubjson_not_pickle_and_round_trips(dataset, trained):
    booster, data, card = trained
    assert data[:1] == b"{"  # UBJSON object marker
    assert b"pickle" not in data
    loaded = load_verified(data, card, KEY, F.REGISTRY_VERSION, F.FEATURE_NAMES)
    rows = dataset[(dataset["ticker"] == "SPY") & (dataset["split"] == "test")]
    assert np.array_equal(predict_rows(loaded, rows, F.FEATURE_NAMES), predict_rows(booster, rows, F.FEATURE_NAMES))


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
    with pytest.raises(FeatureVersionError, match="registry v1 .* current registry is v2"):
        load_verified(data, card, KEY, "v2", F.FEATURE_NAMES)
    with pytest.raises(FeatureVersionError):
        load_verified(data, card, KEY, F.REGISTRY_VERSION, F.FEATURE_NAMES[:-1])


def test_signing_key_from_env_or_generated_file(tmp_path, monkeypatch):
    monkeypatch.delenv("ODYSSEY_SIGNING_KEY", raising=False)
    with pytest.warns(UserWarning, match="generated a local signing key"):
        key = load_or_create_key(tmp_path / "k")
    assert load_or_create_key(tmp_path / "k") == key and len(key) == 64
    monkeypatch.setenv("ODYSSEY_SIGNING_KEY", "from-env")
    assert load_or_create_key(tmp_path / "k") == b"from-env"
    verify(b"x", b"from-env", __import__("hashlib").sha256(b"x").hexdigest(), sign(b"x", b"from-env"))
